"""``_memory.runs`` answers an address array it has just seen without another pass over it (a loop's
loads and stores through one register), and any other array — equal or not — with a pass of its own."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from executor.ptx import _memory


@pytest.fixture
def passes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the arrays :func:`_memory._runs` passed over."""
    seen: list[int] = []
    real = _memory._runs

    def counting(addrs: Any, size: int) -> Any:
        seen.append(int(addrs.size))
        return real(addrs, size)

    monkeypatch.setattr(_memory, "_runs", counting)
    monkeypatch.setattr(_memory, "_RUNS_SEEN", [])
    return seen


def test_the_same_array_is_answered_again_without_a_pass(passes: list[int]) -> None:
    addrs = np.arange(4096, dtype=np.uint64) * np.uint64(4) + np.uint64(1 << 20)
    first = _memory.runs(addrs, 4)
    assert first == (4, [(0, 4096, 1 << 20)])
    assert _memory.runs(addrs, 4) is first
    assert passes == [4096]


def test_an_equal_array_another_size_or_a_forgotten_one_takes_its_own_pass(passes: list[int]) -> None:
    addrs = np.arange(64, dtype=np.uint64) * np.uint64(8)
    assert _memory.runs(addrs, 8) == (8, [(0, 64, 0)])
    assert _memory.runs(addrs.copy(), 8) == (8, [(0, 64, 0)])
    assert _memory.runs(addrs, 16) is None  # 16-byte elements 8 bytes apart overlap: no run
    for k in range(_memory._RUNS_KEPT):
        _memory.runs(addrs + np.uint64(8 * (k + 1)), 8)
    _memory.runs(addrs, 8)
    assert passes == [64] * (3 + _memory._RUNS_KEPT + 1)
