"""SIGHUP's lifecycle of a VM: removed while attached, re-added, renamed, its quota overridden."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from guest import GuestClient
from mediator._control_client import request
from mediator._launcher import MediatorProcess, write_config
from tests.reliability._support import logged, wait_for

pytestmark = pytest.mark.timeout(120)


def vms(mediator: MediatorProcess) -> dict[str, dict[str, Any]]:
    return {vm["name"]: vm for vm in request(mediator.control, {"cmd": "status"})["vms"]}


def reload(mediator: MediatorProcess, vm_ids: list[int], **kwargs: Any) -> None:
    before = logged(mediator, event="configuration reloaded")
    write_config(mediator.config, mediator.sockets, backend="sim", vm_ids=vm_ids, **kwargs)
    mediator.proc.send_signal(signal.SIGHUP)
    wait_for("the reload", lambda: logged(mediator, event="configuration reloaded") > before)


def test_a_vm_removed_while_attached_goes_when_its_guest_detaches(mediator: MediatorProcess) -> None:
    with GuestClient.connect(mediator.vm_socket(2)) as gpu:
        gpu.nop()
        reload(mediator, [1])
        assert vms(mediator)["vm2"]["retiring"] is True
        gpu.nop()  # the attached guest keeps being served
    wait_for("vm2 gone once detached", lambda: "vm2" not in vms(mediator))
    assert not mediator.vm_socket(2).exists()
    reload(mediator, [1, 2])  # and it can come back
    mediator.wait_for(mediator.vm_socket(2))
    with GuestClient.connect(mediator.vm_socket(2)) as gpu:
        gpu.nop()
    assert vms(mediator)["vm2"]["retiring"] is False


def test_a_vm_re_added_before_it_detached_stays(mediator: MediatorProcess) -> None:
    with GuestClient.connect(mediator.vm_socket(2)) as gpu:
        gpu.nop()
        reload(mediator, [1])
        reload(mediator, [1, 2])
        assert vms(mediator)["vm2"]["retiring"] is False
    wait_for("vm2 idle", lambda: vms(mediator)["vm2"]["state"] == "listening")
    with GuestClient.connect(mediator.vm_socket(2)) as gpu:  # a later guest attaches
        gpu.nop()
    assert "vm2" in vms(mediator)


def _rename(config: Path, old: str, new: str) -> None:
    config.write_text(config.read_text().replace(f'name = "{old}"', f'name = "{new}"'))


def test_a_renamed_vm_moves_its_socket_and_keeps_its_guest(mediator: MediatorProcess) -> None:
    with GuestClient.connect(mediator.vm_socket(1)) as gpu:
        gpu.nop()
        before = logged(mediator, event="configuration reloaded")
        _rename(mediator.config, "vm1", "inference")
        mediator.proc.send_signal(signal.SIGHUP)
        wait_for("the reload", lambda: logged(mediator, event="configuration reloaded") > before)
        assert not mediator.vm_socket(1).exists()
        assert (mediator.sockets / "inference.sock").exists()
        assert set(vms(mediator)) == {"inference", "vm2"}
        gpu.nop()  # the attached guest noticed nothing
    wait_for("idle", lambda: vms(mediator)["inference"]["state"] == "listening")
    with GuestClient.connect(mediator.sockets / "inference.sock") as gpu:
        gpu.nop()


def test_a_quota_set_at_run_time_is_reported_as_overriding_the_file(mediator: MediatorProcess) -> None:
    assert vms(mediator)["vm1"]["memory_quota_source"] == "config"
    assert request(mediator.control, {"cmd": "set_quota", "vm": "vm1", "bytes": "1GiB"})["ok"]
    vm1 = vms(mediator)["vm1"]
    assert (vm1["memory_quota"], vm1["memory_quota_source"], vm1["config_memory_quota"]) == \
        (1 << 30, "operator", 2 << 30)
    reload(mediator, [1, 2])  # the file unchanged: the operator's quota stays
    assert vms(mediator)["vm1"]["memory_quota"] == 1 << 30
    reload(mediator, [1, 2], quota="3GiB")  # the file changed: it wins
    vm1 = vms(mediator)["vm1"]
    assert (vm1["memory_quota"], vm1["memory_quota_source"]) == (3 << 30, "config")
