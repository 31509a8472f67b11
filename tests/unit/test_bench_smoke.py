"""The benchmark harness runs end to end in its quick mode (figures are not judged here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_the_quick_benchmark_reports_every_figure_with_its_floor(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--json", str(out), "--plots",
                          str(tmp_path / "plots")], check=False, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "sync nop, worker polling p50" in run.stdout and "Jain's index" in run.stdout
    results = json.loads(out.read_text())
    for key in ("rtt_polling", "rtt_polling_traced", "rtt_sleeping", "floor_ring_pingpong",
                "floor_eventfd_pingpong"):
        assert 0 < results[key]["p50_us"] <= results[key]["p99_us"] <= results[key]["p999_us"], key
    assert results["async_calls_per_s"] > 0 and results["floor_ring_calls_per_s"] > 0
    assert [b["bytes"] for b in results["bandwidth"]] == [4096, 65536, 1 << 20, 4 << 20]
    assert all(b["htod_Bps"] > 0 and b["dtoh_Bps"] > 0 and b["memcpy_Bps"] > 0 and b["staged_Bps"] > 0
               for b in results["bandwidth"])
    assert [f["pairs"] for f in results["fairness_floor"]] == [1]  # beside the one flood run (2 VMs)
    assert all(0 < f["jain"] <= 1.0 and len(f["per_pair_per_s"]) == f["pairs"] for f in results["fairness_floor"])
    assert [b["bytes"] for b in results["pinned_copies"]] == [4096, 65536, 1 << 20, 4 << 20]
    assert all(b[k] > 0 for b in results["pinned_copies"] for k in ("htod_Bps", "dtoh_batch_Bps", "memcpy_Bps"))
    runs = {(m["vms"], m["flood"]) for m in results["multi_vm"]}
    assert runs == {(1, False), (2, False), (2, True)}
    assert all(0 < m["jain"] <= 1.0 for m in results["multi_vm"])
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "bench-bandwidth.png", "bench-multi-vm.png", "bench-rtt.png"]


@pytest.mark.parametrize("what", ["nop", "memset", "htod", "dtoh"])
def test_the_in_process_profile_runs_each_workload(what: str) -> None:
    run = subprocess.run([sys.executable, "-m", "benchmarks.profile", what, "--calls", "50", "--size", "65536"],
                         check=False, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"{what}: ") and "µs per call" in run.stdout


def test_the_memcpy_floor_copies_the_bytes_it_times_and_refuses_sizes_past_its_buffers() -> None:
    from benchmarks._floors import memcpy_each_ns, page_aligned

    src, dst = page_aligned(1 << 16, 7), page_aligned(1 << 16)
    assert memcpy_each_ns(dst, src, 1 << 12, 8) > 0
    assert (dst[:1 << 12] == 7).all() and (dst[1 << 12:] == 0).all()
    with pytest.raises(ValueError):
        memcpy_each_ns(dst, src[:100], 1 << 12, 1)
