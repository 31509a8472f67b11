"""Hostile calls straight into the PTX engine's C forms, for a build under ASan/UBSan: random texture
configurations, spans (short, exact, past the extent), coordinates (NaN, infinities, far) and layers
through ``executor.ptx._texfast.sample``, and random records over random slots (unknown ops, slots out
of range, element sizes and lengths that do not fit, uniform and scratch slots) through
``executor.ptx._fmafast.run_f32``, and random tables, indexes (near 2^63 too) and offsets through
``executor.ptx._winfast``'s ``put``, ``index`` and ``breaks``. Each call may answer or raise
ValueError; a sanitizer report, a crash or any other exception is a fault. (atheris's libFuzzer and
gcc's ASan runtime do not load together here, so this is plain random search; ``fuzz_ptx`` covers the
engine around these forms.)

Run (docs/reliability.md), against extensions built with ``-fsanitize=address,undefined``::

    LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0,abort_on_error=1 \\
        UBSAN_OPTIONS=halt_on_error=1 .venv/bin/python fuzz/native_calls.py SEED SECONDS [ROUNDS]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from executor.ptx._extensions import optional_extension

_SPECIALS = np.array(
    [np.nan, np.inf, -np.inf, 1e30, -1e30, 0.5, -0.5, 2**24, -(2**24) - 1, 1.0, 0.999999, 3e9], np.float32
)


_SLOT_TYPES = [np.dtype(t) for t in (np.float32, np.bool_, np.float64, np.uint8, np.int16)]


def _coordinate(rng: np.random.Generator, k: int) -> npt.NDArray[np.float32]:
    if rng.random() < 0.2:
        return np.array([rng.choice(_SPECIALS)], np.float32)  # uniform
    values = rng.normal(0, float(rng.choice([1, 10, 1000])), k).astype(np.float32)
    special = rng.random(k) < 0.2
    values[special] = rng.choice(_SPECIALS, int(special.sum()))
    return values


def _texture_call(native: ModuleType, rng: np.random.Generator) -> bool:
    """One sample() call; whether it answered (False: refused)."""
    dims, channels = int(rng.integers(1, 4)), int(rng.choice([1, 2, 4]))
    kind = int(rng.integers(0, 3))
    bits = 32 if kind == 2 else int(rng.choice([8, 16, 32]))
    size = [int(rng.integers(1, 9)) if a < dims else int(rng.integers(1, 3)) for a in range(3)]
    layers, texel = int(rng.integers(1, 4)), channels * bits // 8
    row = texel * size[0] + int(rng.integers(0, 3)) * 4
    slice_ = row * size[1] + int(rng.integers(0, 2)) * 16
    layer_pitch = slice_ * size[2]
    if rng.random() < 0.1:
        row = int(rng.integers(0, 1 << 62))  # a pitch whose extent overflows
    if rng.random() < 0.05:
        size[0] = int(rng.integers(1, 1 << 48))
    modes = [int(rng.integers(0, 4)) for _ in range(3)]
    flags = [int(rng.integers(0, 2)) for _ in range(5)]  # linear, normalized, norm read, as float, bordered
    config = (
        dims,
        *size,
        layers,
        texel,
        row,
        slice_,
        layer_pitch,
        channels,
        bits,
        kind,
        *modes,
        *flags,
        0.1,
        0.2,
        0.3,
        0.4,
    )
    need = texel * size[0] + (size[1] - 1) * row + (size[2] - 1) * slice_ + (layers - 1) * layer_pitch
    length = need + int(rng.integers(-8, 8)) if need < 1 << 16 else int(rng.integers(0, 4096))
    span = rng.integers(0, 256, max(0, length), dtype=np.uint8).tobytes()
    k = int(rng.integers(1, 70))
    out = np.zeros(k * (4 if flags[4] else channels), np.float64)
    xyz = [_coordinate(rng, k) if a < dims else None for a in range(3)]
    lanes = k if rng.random() < 0.7 else 1
    layer = None if rng.random() < 0.5 else rng.integers(-3, 5, lanes).astype(np.int64)
    try:
        native.sample(span, out, *xyz, layer, config)
    except ValueError:
        return False
    return True


def _pick(rng: np.random.Generator, lo: int, hi: int, bad_lo: int, bad_hi: int) -> int:
    """Mostly in [lo, hi), one time in twenty anywhere in [bad_lo, bad_hi]."""
    if rng.random() < 0.95 and hi > lo:
        return int(rng.integers(lo, hi))
    return int(rng.integers(bad_lo, bad_hi + 1))


def _ftz_bits(rng: np.random.Generator) -> int:
    """An op's .ftz flags (run_f32's 64: the result, 128/256/512: an operand) now and then, and a bit past
    them (refused) one time in fifty."""
    if rng.random() < 0.02:
        return 1 << int(rng.integers(10, 31))
    return int(rng.integers(0, 16)) << 6 if rng.random() < 0.3 else 0


def _run_call(native: ModuleType, rng: np.random.Generator) -> bool:
    """One run_f32() call; whether it answered."""
    n, given, scratch = int(rng.integers(1, 1500)), int(rng.integers(1, 6)), int(rng.integers(0, 3))
    # mostly well-formed (so that calls get past the record checks), now and then not
    total = given + scratch
    records = [  # ops 0 (mov) to 21 (cos), now and then one past them
        [_pick(rng, 0, 22, -1, 22) | _ftz_bits(rng), *(_pick(rng, 0, total, -1, total + 1) for _ in range(4))]
        for _ in range(int(rng.integers(1, 6)))
    ]
    slots: list[npt.NDArray[Any]] = []
    for _ in range(given):
        dtype = _SLOT_TYPES[0 if rng.random() < 0.6 else int(rng.integers(1, len(_SLOT_TYPES)))]
        slots.append(np.zeros(int(rng.choice([1, n, n, n + 1])), dtype))
    try:
        native.run_f32(np.array(records, np.int32).tobytes(), tuple(slots), n, scratch)
    except ValueError:
        return False
    return True


_WINDOW_TYPES = [np.dtype(t) for t in (np.uint8, np.uint16, np.uint32, np.uint64, np.float16, np.int64)]
_FAR = [-(2**63), -(2**62), -1, 2**62, 2**63 - 1]


def _window_call(native: ModuleType, rng: np.random.Generator) -> bool:
    """One of ``_winfast``'s index, put and breaks on random tables and registers: indexes inside, just
    past either end or near 2^63, offsets as far, element sizes and lengths that do not fit."""
    n = int(rng.integers(0, 40))
    table = np.zeros(int(rng.integers(0, 64)), _WINDOW_TYPES[int(rng.integers(0, len(_WINDOW_TYPES)))])
    at = rng.integers(-8, table.size + 8, n, dtype=np.int64)
    if n and rng.random() < 0.3:
        at[int(rng.integers(0, n))] = _FAR[int(rng.integers(0, len(_FAR)))]
    k = int(rng.integers(-8, 8)) if rng.random() < 0.8 else _FAR[int(rng.integers(0, len(_FAR)))]
    count = int(rng.choice([0, 1, n, n, n + 1]))
    other = _WINDOW_TYPES[int(rng.integers(0, len(_WINDOW_TYPES)))]
    values = np.arange(count, dtype=table.dtype if rng.random() < 0.7 else other)
    try:
        which = int(rng.integers(0, 3))
        if which == 0:
            native.put(table, at, k, values)
        elif which == 1:
            a = rng.integers(0, 256, n).astype(other if rng.random() < 0.3 else np.uint32)
            out = np.zeros(int(rng.choice([n, n, n + 1])), np.int64)
            starts = np.zeros(int(rng.choice([n, n, 1])), np.int64)
            native.index(a, starts, int(rng.integers(-1, 6)) if rng.random() < 0.9 else 1 << 70, out)
        else:
            wide = at.view(np.uint64) if rng.random() < 0.8 else values
            native.breaks(
                wide, int(rng.integers(-4, 64)), int(rng.integers(-1, 10)) if rng.random() < 0.9 else 1 << 70
            )
    except ValueError:
        return False
    return True


def main(seed: int, seconds: float, rounds: int | None = None) -> None:
    """Calls for ``seconds`` (or ``rounds`` rounds of one call of each form, whichever ends first)."""
    texfast, fmafast = optional_extension("_texfast"), optional_extension("_fmafast")
    winfast = optional_extension("_winfast")
    if texfast is None or fmafast is None or winfast is None:
        raise SystemExit("build the extensions first (setup.py build_ext --inplace)")
    rng = np.random.default_rng(seed)
    deadline = time.monotonic() + seconds
    answered = refused = 0
    while time.monotonic() < deadline and (rounds is None or answered + refused < 3 * rounds):
        for ok in (_texture_call(texfast, rng), _run_call(fmafast, rng), _window_call(winfast, rng)):
            answered += ok
            refused += not ok
    print(f"{answered} calls answered, {refused} refused, no fault")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(
        int(args[0]) if args else 0,
        float(args[1]) if len(args) > 1 else 60.0,
        int(args[2]) if len(args) > 2 else None,
    )
