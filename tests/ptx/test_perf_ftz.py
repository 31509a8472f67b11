"""The fused runs' ``.ftz`` flush (``_fuse._ftz``) answers at once for an array it flushed before, and
flushes every other array as ``ftz32`` does: the cache is by identity, so equal values in another
array, or an array it never saw, are tested again."""

from __future__ import annotations

import numpy as np

from executor.ptx import _fuse
from executor.ptx._numeric import ftz32

TINY = np.float32(1e-40)  # a float32 subnormal


def test_a_flushed_array_is_known_and_others_are_flushed() -> None:
    x = np.array([1.0, TINY, -TINY, 0.0, -2.5], dtype=np.float32)
    want = ftz32(x.copy())
    y = _fuse._ftz(x)
    assert np.array_equal(y.view(np.uint32), want.view(np.uint32))
    assert _fuse._ftz(y) is y  # known: no test, the same array
    again = x.copy()  # equal values in another array: flushed again, never taken for the first
    assert np.array_equal(_fuse._ftz(again).view(np.uint32), want.view(np.uint32))
    clean = np.array([1.0, 2.0], dtype=np.float32)
    assert _fuse._ftz(clean) is clean  # nothing to flush: the array itself, now known


def test_the_cache_stays_small() -> None:
    arrays = [np.full(4, k, dtype=np.float32) for k in range(3 * _fuse._FLUSHED_ENTRIES)]
    for a in arrays:
        _fuse._ftz(a)
    assert len(_fuse._FLUSHED) <= _fuse._FLUSHED_ENTRIES
    big = np.zeros(_fuse._FLUSHED_BYTES, dtype=np.float32)  # past the size it keeps
    _fuse._ftz(big)
    assert id(big) not in _fuse._FLUSHED


def test_scalars_are_flushed_as_ftz32_does() -> None:
    assert _fuse._ftz(TINY) == 0 and np.signbit(_fuse._ftz(-TINY))
    assert _fuse._ftz(np.float32(3.0)) == 3.0


def test_every_mix_of_values_flushes_as_ftz32_does() -> None:
    rng = np.random.default_rng(5)
    pool = np.array(
        [0.0, -0.0, 1e-40, -1e-40, 1.5e-45, 1e-38, 1.17549435e-38, 3.0, np.inf, np.nan], np.float32
    )
    for size in (1, 2, 7, 64):
        for _ in range(50):
            x = rng.choice(pool, size)
            assert np.array_equal(_fuse._ftz(x.copy()).view(np.uint32), ftz32(x.copy()).view(np.uint32))
    zero_d = np.array(1e-40, dtype=np.float32)
    assert type(_fuse._ftz(zero_d)) is type(ftz32(zero_d))


def test_fma_with_zero_sums_rounds_as_the_exact_path() -> None:
    """``_fuse._fma32`` returns float64's sum rounded when the only sums it would send to the exact path
    are zeros; the exact path (round_pair of TwoSum) agrees bit for bit, signs of zero included."""
    from executor.ptx._numeric import round_pair, two_sum

    rng = np.random.default_rng(9)
    pool = np.array([0.0, -0.0, 1.0, -1.0, 3.0, 1e-20, -1e-20, 2.0**-75, 1e-40, np.inf], np.float32)
    for size in (1, 3, 64):
        for _ in range(200):
            x, y, z = (rng.choice(pool, size) for _ in range(3))
            with np.errstate(all="ignore"):
                got = _fuse._fma32(x, y, z)
                p = np.multiply(x, y, dtype=np.float64)
                want = round_pair(*two_sum(p, z.astype(np.float64)), "rn", np.dtype(np.float32))
            finite = np.isfinite(want)
            assert np.array_equal(got[finite].view(np.uint32), want[finite].view(np.uint32))
            assert np.array_equal(np.isnan(got), np.isnan(want))
