"""A worker's memory bounds: the formula, the limits a worker applies to itself, and the reasons the
supervisor gives when one ends for lack of memory."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mediator._config import ConfigError, parse_config
from mediator._worker_memory import EXIT_OUT_OF_MEMORY, OOM_SCORE_ADJ, exit_reason, worker_memory

MIB, GIB = 1 << 20, 1 << 30


@pytest.mark.parametrize(("quota", "expected"), [
    (64 * MIB, (256 * MIB, 576 * MIB, 16 * GIB + 512 * MIB)),
    (None, (256 * MIB, 16 * GIB + 512 * MIB, 16 * GIB + 512 * MIB)),  # no quota: the device's memory
    (64 * GIB, (256 * MIB, 16 * GIB + 512 * MIB, 16 * GIB + 512 * MIB)),  # a quota past the device's
])
def test_the_bounds_follow_the_quota_the_device_and_the_overhead(quota: int | None,
                                                                 expected: tuple[int, int, int]) -> None:
    bounds = worker_memory(quota, 16 * GIB, 512 * MIB)
    assert (bounds.host_budget, bounds.data_limit, bounds.data_limit_max) == expected


def test_the_overhead_is_a_configuration_key_with_a_floor() -> None:
    assert parse_config({"mediator": {"worker_memory_overhead": "1GiB"}}).mediator.worker_memory_overhead == GIB
    assert parse_config({}).mediator.worker_memory_overhead == 512 * MIB
    with pytest.raises(ConfigError, match="worker_memory_overhead"):
        parse_config({"mediator": {"worker_memory_overhead": "64MiB"}})


APPLY = """
import resource, sys
from mediator._worker_memory import apply_worker_limits
apply_worker_limits(sys.argv[1], 1 << 30, 2 << 30)
print(*resource.getrlimit(resource.RLIMIT_DATA), open("/proc/self/oom_score_adj").read().strip())
"""


@pytest.mark.parametrize(("backend", "limited"), [("sim", True), ("cuda", False)])
def test_a_worker_limits_itself_on_sim_only_and_offers_itself_to_the_oom_killer(backend: str,
                                                                                limited: bool) -> None:
    out = subprocess.run([sys.executable, "-c", APPLY, backend], capture_output=True, text=True,
                         check=True).stdout.split()
    soft, hard, score = (int(v) for v in out)
    assert score == OOM_SCORE_ADJ
    if limited:
        assert (soft, hard) == (1 << 30, 2 << 30)
    else:
        assert soft > 2 << 30 or soft == -1  # untouched: unlimited, or whatever the test runs under


def test_the_reason_a_worker_ended_says_why_when_it_can_be_known() -> None:
    assert exit_reason(EXIT_OUT_OF_MEMORY, oom_killed=False, data_limit=576 * MIB) == (
        f"worker exited with {EXIT_OUT_OF_MEMORY} (out of host memory: past its hard limit of {576 * MIB} bytes)")
    assert exit_reason(-9, oom_killed=True, data_limit=None) == \
        "worker exited with -9 (killed by the kernel's OOM killer)"
    assert exit_reason(-9, oom_killed=False, data_limit=None) == "worker exited with -9"
    assert exit_reason(1, oom_killed=True, data_limit=None) == "worker exited with 1"
