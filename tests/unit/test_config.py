"""The TOML configuration: defaults, sizes, and errors that name the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from executor import CallIO
from executor._sim import SimExecutor
from executor._sim_nvml import sim_driver_version
from mediator import ConfigError, load_config, parse_config
from mediator._config import host_memory, max_region_size
from mediator._worker import _device_config
from protocol.models import NoArgs


def test_defaults_need_no_file_content() -> None:
    config = parse_config({})
    assert config.mediator.backend == "auto"
    assert config.mediator.region_size == 256 * 2**20
    assert config.mediator.control_path == Path("/run/vgpu-mediator/control.sock")
    assert config.vm == []


def test_sizes_accept_units(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[mediator]\nregion_size = "128MiB"\n[[vm]]\nid = 1\nname = "a"\nmemory_quota = "4GiB"\n')
    config = load_config(path)
    assert config.mediator.region_size == 128 * 2**20
    assert config.vm[0].memory_quota == 4 * 2**30


@pytest.mark.parametrize(
    ("toml", "names"),
    [
        ('[mediator]\nbackend = "opencl"\n', "mediator.backend"),
        ('[mediator]\nregion_size = "3MiB"\n', "mediator"),
        ('[mediator]\nregion_size = "lots"\n', "mediator.region_size"),
        ('[mediator]\nsocket_dri = "/x"\n', "mediator.socket_dri"),
        ('[[vm]]\nid = 1\nname = "a"\n[[vm]]\nid = 2\nname = "b c"\n', "vm[1].name"),
        ('[[vm]]\nid = 0\nname = "a"\n', "vm[0].id"),
        ('[[vm]]\nid = 1\nname = "a"\n[[vm]]\nid = 1\nname = "b"\n', "share id 1"),
        ('[device]\nuuid = "xyz"\n', "device"),
    ],
)
def test_errors_name_the_bad_key(tmp_path: Path, toml: str, names: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert names in str(err.value)
    assert str(path) in str(err.value)


def test_unreadable_and_invalid_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[mediator\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"vm": [{"id": 1, "name": "a", "region_size": "3MiB"}]},
         "vm[0].region_size: 3145728 must be a power of two of at least 1 MiB"),
        ({"vm": [{"id": 1, "name": "a", "region_size": "512KiB"}]}, "vm[0].region_size: 524288 must be"),
        ({"vm": [{"id": 1, "name": "a", "region_size": "1TiB"}]}, "is more than this host can give one VM"),
        ({"mediator": {"region_size": "1TiB"}}, "mediator.region_size: 1099511627776 is more than"),
        ({"vm": [{"id": 1, "name": "a", "memory_quota": True}]}, "vm[0].memory_quota: True is not a size"),
        ({"device": {"total_memory": False}}, "device.total_memory: False is not a size"),
        ({"vm": [{"id": 1, "name": "control"}]}, "a VM may not be named 'control'"),
        ({"vm": [{"id": 1, "name": "control-ro"}]}, "a VM may not be named 'control-ro'"),
        ({"mediator": {"socket_dir": "/s", "control_socket": "/s/vm1.sock"}, "vm": [{"id": 1, "name": "vm1"}]},
         "VM 'vm1''s socket /s/vm1.sock is a control socket"),
        ({"mediator": {"socket_dir": "/s", "control_socket": "/s/vm.sock"}, "vm": [{"id": 1, "name": "vm-ro"}]},
         "VM 'vm-ro''s socket /s/vm-ro.sock is a control socket"),  # the read-only one, beside /s/vm.sock
        ({"mediator": {"socket_dir": "/" + "d" * 100}}, "a Unix socket path has at most 107"),
        ({"vm": [{"id": 1, "name": "a", "owner": 1.5}]}, "vm[0].owner"),
        ({"mediator": {"allow_fault_injection": "maybe"}}, "mediator.allow_fault_injection"),
        ({"device": {"driver_version": 12080}}, "device.driver_version"),  # older than the CUDA 13 runtime
        ({"device": {"driver_version": 13005}}, "driver_version 13005 is not 1000 * major + 10 * minor"),
    ],
)
def test_configurations_that_cannot_work_are_refused(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    assert message in str(err.value)


def test_regions_are_bounded_by_the_hosts_memory_together() -> None:
    largest = max_region_size()
    assert largest & (largest - 1) == 0 and largest <= host_memory() // 8
    alone = {"id": 1, "name": "a", "region_size": largest, "pinned_size": 0}
    assert parse_config({"vm": [alone]}).vm[0].region_size == largest
    count = host_memory() // 2 // largest + 1  # just past half of the host
    many = [{"id": i, "name": f"vm{i}", "region_size": largest // 2} for i in range(1, count + 1)]
    with pytest.raises(ConfigError, match="more than half of this host's"):
        parse_config({"vm": many})  # each region: largest // 2 of channels and 256 MiB pinned = largest
    with pytest.raises(ConfigError, match=r"vm a: its region of .* pinned_size of 268435456.* is more than"):
        parse_config({"vm": [{**alone, "pinned_size": "256MiB"}]})


def test_the_region_grows_to_the_power_of_two_that_holds_the_pinned_area() -> None:
    config = parse_config({"mediator": {"pinned_size": "64MiB"}, "vm": [
        {"id": 1, "name": "a"}, {"id": 2, "name": "b", "pinned_size": 0},
        {"id": 3, "name": "c", "region_size": "128MiB", "pinned_size": "128MiB"}]})
    assert [config.region_of(vm) for vm in config.vm] == [
        (512 << 20, 64 << 20), (256 << 20, 0), (256 << 20, 128 << 20)]
    assert parse_config({}).mediator.pinned_size == 256 << 20  # the default doubles a 256 MiB region
    with pytest.raises(ConfigError, match=r"vm\[0\].pinned_size: 4096 must be a whole number of MiB"):
        parse_config({"vm": [{"id": 1, "name": "a", "pinned_size": 4096}]})


def test_access_settings_and_the_read_only_socket() -> None:
    config = parse_config({
        "mediator": {"socket_dir": "/run/v", "control_group": "vgpu-ops", "control_readers": 1234},
        "vm": [{"id": 1, "name": "vm1", "owner": "qemu-vm1", "group": "kvm"}, {"id": 2, "name": "vm2", "owner": 107}],
    })
    assert config.mediator.control_path == Path("/run/v/control.sock")
    assert config.mediator.control_ro_path == Path("/run/v/control-ro.sock")
    assert (config.mediator.control_group, config.mediator.control_readers) == ("vgpu-ops", 1234)
    assert (config.vm[0].owner, config.vm[0].group, config.vm[1].owner) == ("qemu-vm1", "kvm", 107)
    assert config.mediator.allow_fault_injection is False
    assert config.vm_socket(config.vm[1]) == Path("/run/v/vm2.sock")


def test_the_configured_driver_version_is_what_sim_reports() -> None:
    """The [device] section travels to the worker as a dict (mediator/_vm.py) and becomes the sim
    backend's DeviceConfig (mediator/_worker.py): cuDriverGetVersion and NVML report the key."""
    config = parse_config({"device": {"driver_version": 13020}})
    sim = SimExecutor(_device_config(config.device.model_dump()))
    assert sim.driver_get_version(NoArgs(), CallIO(memoryview(b""), memoryview(bytearray()), False)).value == 13020
    assert sim_driver_version(sim.config).startswith("13.2 ")
    assert parse_config({}).device.driver_version == 13000
