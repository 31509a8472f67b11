"""The engine keeps the C heap's pages for its batch-wide arrays (``_heap``): a step's registers, made
and freed over and over, reuse memory instead of faulting zeroed pages in again (with glibc's
defaults, ten rounds of 32 arrays of 64 KiB — 16,384 f32 lanes — fault about 4,800 pages in)."""

from __future__ import annotations

import resource

import numpy as np

from executor.ptx import _heap


def _churn() -> None:
    registers = [np.ones(16384, np.float32) for _ in range(32)]
    del registers


def test_batch_wide_arrays_made_and_freed_reuse_the_heaps_pages() -> None:
    assert _heap.keep_heap()  # glibc: the thresholds are set (once per process, at the engine's import)
    _churn()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        _churn()
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before < 160
