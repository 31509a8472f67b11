"""``fma.rn.f32``/``fma.rn.f64`` over a batch's registers in C (``native/ptxfma.c``, the optional
``executor.ptx._fmafast``): C's ``fmaf``/``fma`` round once, exactly as the instruction does, in one
pass; NumPy has no fused multiply-add, so the Python forms (the callers' fallbacks, and the reference
the tests compare with) take nine passes (f32) or some twenty (f64, Dekker's product). Without the
extension, or with ``VGPU_PURE_PYTHON=1``, :func:`fma_rn` answers ``None`` and the caller computes
it in Python."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._extensions import optional_extension
from ._state import Value

_native = optional_extension("_fmafast")
#: the extension itself (``None`` when not built or not wanted), for the other native forms
#: (``_native_run``)
native = _native
_F32 = np.dtype(np.float32)


def fma_rn(x: Value, y: Value, z: Value, dt: np.dtype[Any]) -> Value | None:
    """``x * y + z`` rounded once to ``dt`` (float32 or float64) for every thread, or ``None`` where
    the C form does not apply (not built; every operand uniform; not one register's shape)."""
    if _native is None:
        return None
    n = 0
    for v in (x, y, z):
        if type(v) is np.ndarray and v.ndim:
            if v.ndim != 1:
                return None
            n = n or v.size
    if not n:
        return None
    out = np.empty(n, dtype=dt)
    fn = _native.fma32 if dt == _F32 else _native.fma64
    if x.dtype == dt and y.dtype == dt and z.dtype == dt:  # the common case: the C side checks the rest
        try:
            fn(out, x, y, z)
            return out
        except ValueError:
            pass  # not contiguous, or not one register's length: as below
    xs, ys, zs = (np.ascontiguousarray(v, dtype=dt) for v in (x, y, z))
    if max(xs.ndim, ys.ndim, zs.ndim) != 1 or any(v.size not in (1, n) for v in (xs, ys, zs)):
        return None
    fn(out, xs, ys, zs)
    return out
