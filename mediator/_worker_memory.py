"""How much host memory a VM's worker may use, derived from the VM's settings, and the hard limit
applied in the worker.

Theory of operation
-------------------
A worker spends host memory in three ways: the VM's device memory (on ``sim``, NumPy arrays; bounded
by the quota, charged before it is allocated), the memory the guest's calls make the backend keep
outside device memory (parsed modules, graph nodes: bounded by the *host budget*, charged before it
is allocated, ``executor.HostBudget``), and the interpreter and libraries themselves. With
``overhead`` the configured ``[mediator] worker_memory_overhead``::

    device      = min(quota, device total memory)        (no quota: the device's total memory)
    host budget = overhead // 2                          (charged; past it, CUDA_ERROR_OUT_OF_MEMORY)
    data limit  = device + overhead                      (RLIMIT_DATA, the worker's hard limit)

The other half of the overhead is for the interpreter, NumPy and OpenBLAS (about 110 MiB of data
segment at start on these machines) and for what a call holds only while it runs (the copy of a
module image being parsed). ``RLIMIT_DATA`` counts the private writable mappings a process makes,
which is where ``malloc`` and NumPy put everything; the region, the stats block and the trace ring
are shared mappings and are not counted (they are the supervisor's, per session: the region's
``region_size`` and 1.25 MiB of trace). Past the limit an allocation fails: NumPy's becomes the
guest's ``CUDA_ERROR_OUT_OF_MEMORY``, any other is a ``MemoryError`` that ends the worker with
:data:`EXIT_OUT_OF_MEMORY`, logged, and its supervisor restarts it like any lost worker. The soft
limit follows the quota, the hard one the device's total memory, so raising the quota at run time
raises the soft limit (``prlimit`` from the supervisor, same user) without privileges.

Only ``sim`` gets the limit: the CUDA driver reserves address ranges of the size of the GPU's memory
and more in every process that uses it (``RLIMIT_AS`` would fail it at once) and its pinned and
UVM mappings are not the guest's to bound; there the unit's ``MemoryMax=`` is the bound. Every
worker, whichever backend, raises its ``oom_score_adj`` to :data:`OOM_SCORE_ADJ`, so that when
memory runs out anyway the kernel's OOM killer takes a worker — the VM whose calls it serves is
reset — and not the daemon or a QEMU.
"""

from __future__ import annotations

import contextlib
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["EXIT_OUT_OF_MEMORY", "OOM_SCORE_ADJ", "WorkerMemory", "apply_worker_limits", "exit_reason",
           "oom_kills", "worker_memory"]

#: the worker's exit status when an allocation failed past its hard limit (ENOMEM)
EXIT_OUT_OF_MEMORY: Final = 12
#: a worker's OOM score adjustment: the kernel's OOM killer picks workers before anything else
OOM_SCORE_ADJ: Final = 1000


@dataclass(frozen=True, slots=True)
class WorkerMemory:
    """A worker's bounds, in bytes: the host budget its backend charges, and ``RLIMIT_DATA``'s soft
    (from the quota) and hard (from the device's memory) limits."""

    host_budget: int
    data_limit: int
    data_limit_max: int


def worker_memory(quota: int | None, total_memory: int, overhead: int) -> WorkerMemory:
    """The bounds of the formula in the module's docstring."""
    device = total_memory if quota is None else min(quota, total_memory)
    return WorkerMemory(overhead // 2, device + overhead, max(total_memory, device) + overhead)


def apply_worker_limits(backend: str, data_limit: int | None, data_limit_max: int | None) -> None:
    """In the worker, before it builds its backend: the hard limit (``sim`` only) and the OOM score."""
    with contextlib.suppress(OSError):  # a kernel without it, or a read-only /proc: nothing to adjust
        Path("/proc/self/oom_score_adj").write_text(f"{OOM_SCORE_ADJ}\n")
    if backend != "sim" or data_limit is None:
        return
    hard = max(data_limit_max or data_limit, data_limit)
    _, current_hard = resource.getrlimit(resource.RLIMIT_DATA)
    if current_hard != resource.RLIM_INFINITY:
        hard = min(hard, current_hard)
    resource.setrlimit(resource.RLIMIT_DATA, (min(data_limit, hard), hard))


def oom_kills() -> int | None:
    """How many processes the kernel's OOM killer has killed in this process's cgroup (v2), or None
    where that cannot be read."""
    try:
        line = Path("/proc/self/cgroup").read_text().splitlines()[0]
        events = Path("/sys/fs/cgroup", line.split(":", 2)[2].lstrip("/"), "memory.events").read_text()
    except (OSError, IndexError):
        return None
    for entry in events.splitlines():
        key, _, value = entry.partition(" ")
        if key == "oom_kill" and value.isdigit():
            return int(value)
    return None


def exit_reason(code: int, *, oom_killed: bool, data_limit: int | None) -> str:
    """Why a worker ended, for the log line of the restart: ``worker exited with CODE`` first."""
    if code == EXIT_OUT_OF_MEMORY:
        limit = f" of {data_limit} bytes" if data_limit is not None else ""
        return f"worker exited with {code} (out of host memory: past its hard limit{limit})"
    if code == -9 and oom_killed:
        return f"worker exited with {code} (killed by the kernel's OOM killer)"
    return f"worker exited with {code}"
