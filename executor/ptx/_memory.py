"""Checked, vectorised memory access for the engine: many threads' loads and stores at once.

Device memory (global and constant space) is reached only through the ``read``/``write`` methods of
the VM's memory (:class:`executor._kernels.DeviceMemory`), which refuse anything outside the VM's
allocations or without the access ``cuMemSetAccess`` granted. Threads' addresses are gathered into
*spans*: when the threads of one access lie within :data:`SPAN_LIMIT` bytes of each other the span
is read (or read, patched and written back) with one call; otherwise the sorted addresses are split
into clusters at gaps wider than :data:`CLUSTER_GAP`, one call each. When a span is refused — it
may straddle memory the VM does not own although no thread touches that — each thread's bytes are
read or written on their own, so only a thread's own range can fault, with its own address in the
message. A fault is ``CUDA_ERROR_ILLEGAL_ADDRESS``, sticky, as on a GPU; a misaligned access is
``CUDA_ERROR_MISALIGNED_ADDRESS``, sticky too, as a GPU answers it.

Shared memory (one byte array per block) and local memory (one per thread) belong to the engine;
their accesses are bounds-checked against the block's window and the thread's stack the same way.
Generic addresses put shared memory at :data:`SHARED_WINDOW` and local memory at
:data:`LOCAL_WINDOW`, above the 47-bit device address space, so the windows never alias device memory.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from protocol import CUresult

from .._errors import CudaError
from .._kernels import DeviceMemory
from ._extensions import optional_extension
from ._numeric import uint_of
from ._state import Batch, KernelFaultError, Value, count_set

__all__ = [
    "CLUSTER_GAP",
    "LOCAL_WINDOW",
    "SHARED_WINDOW",
    "SPAN_LIMIT",
    "WINDOW_CACHE_BYTES",
    "WindowIndex",
    "device_elements",
    "device_runs",
    "gather_device",
    "load_runs",
    "runs",
    "scatter_device",
    "store_runs",
    "window_index",
    "window_load",
    "window_store",
]

U8 = npt.NDArray[np.uint8]
Index = npt.NDArray[np.intp]
Addresses = npt.NDArray[Any]

#: index and scatter of the window paths in C (``native/ptxwin.c``); ``None``: NumPy's forms (not built, or
#: ``VGPU_PURE_PYTHON=1``), which stay the reference the tests compare with
_native = optional_extension("_winfast")

SHARED_WINDOW = 1 << 48
LOCAL_WINDOW = 2 << 48
WINDOW_BITS = 48
#: the widest byte range one access reads or writes in one call (bounds the engine's transient memory)
SPAN_LIMIT = 16 << 20
#: sorted addresses further apart than this start a new span
CLUSTER_GAP = 1 << 12


def illegal(message: str) -> KernelFaultError:
    return KernelFaultError(CUresult.CUDA_ERROR_ILLEGAL_ADDRESS, message)


def check_aligned(addrs: Addresses, size: int, space: str) -> None:
    """Every address a multiple of ``size`` (a power of two), as a GPU requires."""
    if size > 1 and addrs.size:
        wide = addrs.astype(np.uint64, copy=False)
        if not int(np.bitwise_or.reduce(wide, axis=None)) & (size - 1):
            return  # one reduction: no address has a low bit set
        low = wide & np.uint64(size - 1)
        if np.count_nonzero(low):
            bad = int(addrs[np.flatnonzero(low)[0]])
            raise KernelFaultError(
                CUresult.CUDA_ERROR_MISALIGNED_ADDRESS,
                f"misaligned {space} address {bad:#x} for a {size}-byte access",
            )


def _row_index(offsets: Addresses, size: int) -> Index | None:
    """Offsets as row numbers of a ``(-1, size)`` view, when each is a multiple of ``size``."""
    if size & (size - 1) or (size > 1 and (offsets & np.uint64(size - 1)).any()):
        return None
    rows: Index = (offsets >> np.uint64(size.bit_length() - 1)).astype(np.intp)
    return rows


def _in_order(offsets: Addresses, size: int, span: int) -> bool:
    """Whether the rows are the span itself: thread ``j`` at byte ``j * size`` (the common case)."""
    k = offsets.size
    return k * size == span and bool(np.array_equal(offsets, np.arange(0, span, size, dtype=offsets.dtype)))


def _rows(base: U8, offsets: Addresses, size: int) -> U8:
    """``base[offset:offset + size]`` for each offset, as rows."""
    if _in_order(offsets, size, base.size):
        return base.reshape(-1, size)
    index = _row_index(offsets, size) if base.size % size == 0 else None
    if index is not None:
        whole: U8 = base.reshape(-1, size)[index]
        return whole
    idx: Index = offsets.astype(np.intp)[:, None] + np.arange(size, dtype=np.intp)
    out: U8 = base[idx]
    return out


def _put_rows(base: U8, offsets: Addresses, data: U8) -> None:
    size = data.shape[1]
    index = _row_index(offsets, size) if base.size % size == 0 else None
    if index is not None:
        base.reshape(-1, size)[index] = data
        return
    base[offsets.astype(np.intp)[:, None] + np.arange(size, dtype=np.intp)] = data


def _clusters(addrs: Addresses, size: int) -> list[Index]:
    """Index sets (into ``addrs``) whose addresses lie close together, each within SPAN_LIMIT."""
    if addrs.size and int(addrs.max()) - int(addrs.min()) + size <= SPAN_LIMIT:
        return [np.arange(addrs.size, dtype=np.intp)]  # the common case: one span, no sorting
    order = np.argsort(addrs, kind="stable")
    ordered = addrs[order]
    gaps = np.flatnonzero(np.diff(ordered.astype(np.uint64)) > np.uint64(CLUSTER_GAP)) + 1
    out: list[Index] = []
    for part in np.split(order, gaps):
        lo, hi = int(addrs[part[0]]), int(addrs[part[-1]]) + size
        if hi - lo <= SPAN_LIMIT:
            out.append(part)
        else:  # a dense run wider than the limit: chop it
            starts = addrs[part].astype(np.uint64) - np.uint64(lo)
            chunk = (starts // np.uint64(SPAN_LIMIT // 2)).astype(np.intp)
            for k in np.unique(chunk):
                out.append(part[chunk == k])
    return out


#: the most runs one access is taken as (:func:`runs`); more, and the span paths serve it
MAX_RUNS = 8
#: the steps :func:`runs` tests for breaks before the pass over a wide batch's every thread
_FIRST_STEPS = 512

#: ``(first, end, rows)``: threads ``first`` to ``end`` and their bytes, a ``(end - first, words)``
#: view of the VM's memory in words of up to 8 bytes (:func:`_strided_rows`)
Run = tuple[int, int, npt.NDArray[Any]]


#: the last few answers of :func:`runs` by the address array's identity (held, so never another's):
#: the arrays that reach it are registers or temporaries, never changed in place, and a loop's loads
#: and stores through one address register (simpleStreams' ``init_array``: six a batch) ask again
_RUNS_SEEN: list[tuple[Addresses, int, tuple[int, list[tuple[int, int, int]]] | None]] = []
_RUNS_KEPT = 4


def runs(addrs: Addresses, size: int) -> tuple[int, list[tuple[int, int, int]]] | None:
    """:func:`_runs`, answered again for the same array and size without the pass over it."""
    for seen, seen_size, answer in _RUNS_SEEN:
        if seen is addrs and seen_size == size:
            return answer
    answer = _runs(addrs, size)
    _RUNS_SEEN.insert(0, (addrs, size, answer))
    del _RUNS_SEEN[_RUNS_KEPT:]
    return answer


def _runs(addrs: Addresses, size: int) -> tuple[int, list[tuple[int, int, int]]] | None:
    """The threads as at most :data:`MAX_RUNS` runs of one stride: ``(stride, [(first, end, lo)])``
    where thread ``first + j``'s address is ``lo + j * stride`` up to ``end``, the stride a multiple
    of ``size`` (a power of two; the threads' bytes do not overlap within a run) and each ``lo`` too:
    a coalesced access (one run of stride ``size``), one field of an array of structs (a wider
    stride), a grid-stride loop's whose threads are one iteration apart (a rotated run: two).
    ``None`` for any other layout."""
    k = int(addrs.size)
    if not k:
        return None
    wide = addrs.astype(np.uint64, copy=False)
    stride = (int(wide[1]) - int(wide[0])) if k > 1 else size
    if k > 2 and stride != int(wide[k // 2 + 1]) - int(wide[k // 2]):
        stride = int(wide[k - 1]) - int(wide[k - 2])  # the first step may be a break
    if stride < size or stride % size or (k - 1) * stride + size > SPAN_LIMIT:
        return None
    if k > 2 and all(int(wide[j + 1]) - int(wide[j]) != stride for j in (0, k // 2, k - 2)):
        return None  # three steps of three elsewhere: not worth the pass that would tell
    if _native is not None and wide.dtype == np.uint64 and wide.flags.c_contiguous:
        breaks: Any = _native.breaks(wide, stride, MAX_RUNS)  # one pass that stops at MAX_RUNS breaks
    elif (
        k > 2 * _FIRST_STEPS and count_set(np.diff(wide[: _FIRST_STEPS + 1]) != np.uint64(stride)) >= MAX_RUNS
    ):
        return None  # as many breaks among the first threads (a 2-D tile's rows): the whole pass would say so
    else:
        breaks = np.flatnonzero(np.diff(wide) != np.uint64(stride)) if k > 1 else ()
    if len(breaks) >= MAX_RUNS:
        return None
    out: list[tuple[int, int, int]] = []
    first = 0
    for end in [*(int(x) + 1 for x in breaks), k]:
        lo = int(wide[first])
        if lo & (size - 1):
            return None
        out.append((first, end, lo))
        first = end
    return stride, out


def _run_view(mem: DeviceMemory, lo: int, size: int, write: bool) -> U8 | None:
    """:func:`_span`, or ``None`` where the memory refuses the range (a thread's own access then
    decides, and names any fault) or offers no single view."""
    try:
        span = _span(mem, lo, size, write)
    except CudaError:
        return None
    return span if span is not None and span.size == size else None


def device_runs(mem: DeviceMemory, addrs: Addresses, size: int, *, write: bool) -> list[Run] | None:
    """The threads' bytes as :func:`runs`, each run's whole range one view of the VM's memory checked
    for reading (or writing) as a whole (with a wider stride: the bytes between the threads' too, as
    a span is); ``None`` when the access is not such runs or the memory does not offer each in one
    piece (then the checked path decides, and names any fault)."""
    found = runs(addrs, size)
    if found is None:
        return None
    stride, pieces = found
    out: list[Run] = []
    for first, end, lo in pieces:
        count = end - first
        view = _run_view(mem, lo, (count - 1) * stride + size, write)
        if view is None:
            return None
        out.append((first, end, _strided_rows(view, count, size, stride, write)))
    return out


def _strided_rows(view: U8, count: int, size: int, stride: int, write: bool) -> npt.NDArray[Any]:
    """``count`` rows of ``size`` bytes ``stride`` apart in ``view``, as words of up to 8 bytes (a
    strided copy moves words, not bytes): ``(count, size // word)`` of the unsigned word type."""
    word = min(size, 8)
    typed = view.view(uint_of(word)) if word > 1 else view
    # the constructor, not as_strided (whose Python wrapper costs some 10 us an access); it also refuses
    # rows that would reach past the view
    rows: npt.NDArray[Any] = np.ndarray((count, size // word), typed.dtype, typed, 0, (stride, word))
    if not write:
        rows.flags.writeable = False
    return rows


def load_runs(pieces: list[Run], k: int, size: int) -> U8:
    """The ``k * size`` bytes the runs hold, in thread order (a copy: registers never alias the VM's
    memory)."""
    if len(pieces) == 1:
        only: U8 = pieces[0][2].copy().view(np.uint8).reshape(-1)
        return only
    out = np.empty((k, size // min(size, 8)), dtype=pieces[0][2].dtype)
    for first, end, rows in pieces:
        out[first:end] = rows
    flat: U8 = out.view(np.uint8).reshape(-1)
    return flat


def store_runs(pieces: list[Run], data: U8, size: int) -> None:
    """Thread ``j``'s ``size`` bytes of ``data`` (flat) into its run, run after run in thread order
    (so where runs overlap the later thread's bytes stay, as a serial order leaves them)."""
    table = np.ascontiguousarray(data).view(pieces[0][2].dtype).reshape(-1, size // min(size, 8))
    for first, end, rows in pieces:
        rows[:] = table[first:end]


def _gather_span(span: U8, offsets: Addresses, size: int) -> U8:
    """Each thread's ``size`` bytes of ``span`` at its offset (each a multiple of ``size``, a power of
    two up to 8): one typed gather, a copy."""
    typed = span.view(uint_of(size)) if size > 1 else span
    index = (offsets >> np.uint64(size.bit_length() - 1)).view(np.int64)  # < 2^24: an index NumPy takes as is
    got: U8 = typed.take(index).view(np.uint8).reshape(-1, size)
    return got


def _span(mem: DeviceMemory, lo: int, size: int, write: bool) -> U8 | None:
    """``[lo, lo + size)`` of device memory as one view of the memory itself (checked for reading,
    or reading and writing, as ``read``/``write`` check it), where the memory offers one (the
    simulator's ``segments``) and the range is one piece; else ``None``. Raises ``CudaError`` as
    ``read``/``write`` would."""
    segments = getattr(mem, "segments", None)
    if segments is None:
        return None
    views: list[U8] = segments(lo, size, write=write, what="kernel store" if write else "kernel load")
    return views[0] if len(views) == 1 else None


def device_elements(mem: DeviceMemory, addrs: npt.NDArray[np.uint64], size: int) -> npt.NDArray[Any] | None:
    """Each thread's element of ``size`` bytes (1, 2, 4 or 8) at ``addrs``, as the unsigned integer of
    that size, when every address is aligned and all lie in one span the memory offers in place (the
    common load); else ``None`` and :func:`gather_device`, through the checked ``access``, decides —
    and names any fault. The same checks as :func:`gather_device`'s fast path, with fewer calls."""
    pieces = device_runs(mem, addrs, size, write=False)
    if pieces is not None:  # a coalesced load: a copy of each run
        loaded = load_runs(pieces, int(addrs.size), size)
        return loaded.view(uint_of(size)) if size > 1 else loaded
    if size > 1 and int(np.bitwise_or.reduce(addrs)) & (size - 1):
        return None
    lo = int(addrs.min())
    hi = int(addrs.max()) + size
    if hi - lo > SPAN_LIMIT or lo % size:
        return None
    try:
        span = _span(mem, lo, hi - lo, False)
    except CudaError:
        return None
    if span is None or span.size != hi - lo:
        return None
    typed = span.view(uint_of(size)) if size > 1 else span
    got: npt.NDArray[Any] = typed.take(
        ((addrs - np.uint64(lo)) >> np.uint64(size.bit_length() - 1)).view(np.int64)
    )
    return got


def gather_device(mem: DeviceMemory, addrs: Addresses, size: int, *, aligned: bool = False) -> U8:
    """``(len(addrs), size)`` bytes: each thread's ``[addr, addr + size)`` from device memory.

    ``aligned`` says every address is a multiple of ``size`` (checked by the caller): then threads
    whose bytes lie within one span take the fast path, one read and one typed gather."""
    k = int(addrs.size)
    if k and aligned and not size & (size - 1):
        pieces = device_runs(mem, addrs, size, write=False)
        if pieces is not None:  # coalesced (vectors too): a copy of each run
            return load_runs(pieces, k, size).reshape(k, size)
    if k and aligned and size in (1, 2, 4, 8):
        lo = int(addrs.min())
        hi = int(addrs.max()) + size
        if hi - lo <= SPAN_LIMIT:
            try:
                span = _span(mem, lo, hi - lo, False)
                if span is None:
                    span = mem.read(lo, hi - lo, "kernel load")
            except CudaError:
                span = None  # memory between the threads' own bytes may not be the VM's: per thread below
            if span is not None and span.size == hi - lo and lo % size == 0:
                return _gather_span(span, addrs.astype(np.uint64, copy=False) - np.uint64(lo), size)
    out = np.empty((k, size), dtype=np.uint8)
    if k == 0:
        return out
    if _gather_pieces(mem, addrs, size, out):
        return out
    parts = _clusters(addrs, size)
    for part in parts:
        sub = addrs[part]
        lo = int(sub.min())
        hi = int(sub.max()) + size
        try:
            span = mem.read(lo, hi - lo, "kernel load")
        except CudaError:
            span = None
        if span is not None and span.size == hi - lo:
            rows = _rows(span, sub.astype(np.uint64) - np.uint64(lo), size)
            if len(parts) == 1:
                return rows  # one span held every thread's bytes
            out[part] = rows
            continue
        for j in part:
            addr = int(addrs[j])
            try:
                out[j] = mem.read(addr, size, "kernel load")
            except CudaError as exc:
                raise illegal(f"load of {size} bytes at {addr:#x}: {exc.message}") from exc
    return out


def _gather_pieces(mem: DeviceMemory, addrs: Addresses, size: int, out: U8) -> bool:
    """Fill ``out`` from views of the memory itself (no copy, no span limit), halving the threads in
    address order until each half's span is one piece the VM owns: threads in a few allocations (half
    the warps reading A, half B) take a few views, not a read each. False (``out`` partly filled) when
    the memory offers no views or a single thread's bytes are not one piece: the checked per-thread
    path then decides, and names any fault."""
    if getattr(mem, "segments", None) is None:
        return False
    lo = int(addrs.min())
    try:
        view = _span(mem, lo, int(addrs.max()) + size - lo, False)
    except CudaError:
        view = None
    if view is not None:  # one piece (a 16-byte vector's, or wider than a read may copy): no sort
        out[:] = _rows(view, addrs.astype(np.uint64) - np.uint64(lo), size)
        return True
    order = np.argsort(addrs, kind="stable")
    ordered = addrs[order].astype(np.uint64)
    pending = [(0, int(order.size))]
    while pending:
        i, j = pending.pop()
        lo = int(ordered[i])
        try:
            view = _span(mem, lo, int(ordered[j - 1]) + size - lo, False)
        except CudaError:
            view = None
        if view is not None:
            out[order[i:j]] = _rows(view, ordered[i:j] - np.uint64(lo), size)
        elif j - i == 1:
            return False
        else:
            pending += [(i, (i + j) // 2), ((i + j) // 2, j)]
    return True


def scatter_device(mem: DeviceMemory, addrs: Addresses, data: U8, *, aligned: bool = False) -> None:
    """Store row ``j`` of ``data`` at ``addrs[j]``; threads storing to one address: the last wins.

    ``aligned`` says every address is a multiple of ``size`` (checked by the caller): threads within
    one span then store with one write (after one read and a typed scatter unless they cover it)."""
    k, size = data.shape
    if k == 0:
        return
    if aligned and not size & (size - 1):
        pieces = device_runs(mem, addrs, size, write=True)
        if pieces is not None:  # coalesced (vectors too): the threads cover their runs
            store_runs(pieces, np.ascontiguousarray(data).reshape(-1), size)
            return
    if aligned and size in (1, 2, 4, 8):
        lo = int(addrs.min())
        hi = int(addrs.max()) + size
        if hi - lo <= SPAN_LIMIT and lo % size == 0:
            offsets = addrs.astype(np.uint64, copy=False) - np.uint64(lo)
            values = np.ascontiguousarray(data)
            try:
                view = _span(mem, lo, hi - lo, True)  # the memory itself: stored into, nothing copied
                if view is None and _in_order(offsets, size, hi - lo):  # covered: nothing to read
                    mem.write(lo, values.reshape(-1), "kernel store")
                    return
                span = mem.read(lo, hi - lo, "kernel store") if view is None else view
                typed = span.view(uint_of(size)) if size > 1 else span
                index = (offsets >> np.uint64(size.bit_length() - 1)).view(np.int64)
                typed[index] = values.view(uint_of(size)).reshape(-1)
                if view is None:
                    mem.write(lo, span, "kernel store")
                return
            except CudaError:
                pass  # memory between the threads' own bytes may not be the VM's: per thread below
    for part in _clusters(addrs, size):
        sub = addrs[part]
        lo = int(sub.min())
        hi = int(sub.max()) + size
        offsets = sub.astype(np.uint64) - np.uint64(lo)
        try:
            if _in_order(offsets, size, hi - lo):  # the threads cover the span: nothing to read first
                mem.write(lo, np.ascontiguousarray(data[part]).reshape(-1), "kernel store")
                continue
            span = mem.read(lo, hi - lo, "kernel store")
            _put_rows(span, offsets, data[part])
            mem.write(lo, span, "kernel store")
            continue
        except CudaError:
            pass
        for j in part:
            addr = int(addrs[j])
            try:
                mem.write(addr, np.ascontiguousarray(data[j]), "kernel store")
            except CudaError as exc:
                raise illegal(f"store of {size} bytes at {addr:#x}: {exc.message}") from exc


def check_window(offsets: Addresses, size: int, limit: int, space: str) -> None:
    """Every ``[offset, offset + size)`` inside ``[0, limit)`` of a shared or local window."""
    if offsets.size == 0:
        return
    top = int(offsets.max())
    if top + size > limit:
        raise illegal(
            f"{space} access of {size} bytes at offset {top:#x} is outside the {limit}-byte {space} window"
        )


# -- shared and local accesses through a register's cached index ---------------------------------

#: bytes of window indexes one batch keeps (:func:`window_index`); the cache is emptied past it, so it
#: stays small however many threads the batch holds
WINDOW_CACHE_BYTES = 4 << 20
#: the batch's ``derived`` entry that holds them
_WINDOWS = "window indexes"


class WindowIndex(NamedTuple):
    """Where each thread's address register points in the flat shared (or local) memory of a batch.

    ``at`` is, per thread, the first element (of ``esize`` bytes) of its block's window (of its
    own, for local memory) plus the register's value in elements; ``lo``/``hi`` are the register's
    least and greatest value as an unsigned address; ``typed`` is the space's memory as one flat array
    of those elements, ``width`` the bytes of one window. ``base`` is the register value it was
    computed from, held so that its identity keys the cache while the entry lives (registers are
    never changed in place)."""

    base: Value
    at: npt.NDArray[np.int64]
    lo: int
    hi: int
    typed: npt.NDArray[Any]
    width: int
    #: shared memory, when in every block of the batch the register is the same function ``c0 + sx*x +
    #: sy*y + sz*z`` of ``%tid`` (in elements; no stride negative): ``typed``'s strided view of every
    #: thread's element, as (shape, byte strides, c0); a load is then a strided copy, no gather
    grid: tuple[tuple[int, ...], tuple[int, ...], int] | None = None


def window_index(batch: Batch, space: str, base: Value, esize: int) -> WindowIndex | None:
    """The index of address register value ``base`` (an integer register of 4 or 8 bytes, array or
    scalar) into the batch's ``space`` window in elements of ``esize`` bytes, or ``None`` when some
    thread's register is not a multiple of ``esize`` (then the checked path decides).

    Computed once per register value and batch: an unrolled loop reads one register at many offsets
    (``[%r10+128]``, ``[%r10+256]``, …), and each of them then costs one gather."""
    space_bytes = batch.shared if space == "shared" else batch.local
    width = space_bytes.shape[1]
    key = (id(base), space, esize, width)  # local memory grows (a new array) only to a new width
    derived = batch.derived
    cache = derived.get(_WINDOWS)
    if cache is None:
        cache = derived[_WINDOWS] = {}
    hit = cache.get(key)
    if hit is not None and hit[0] is base:
        known: WindowIndex | None = hit[1]
        if hit[2] == _PROBE_AT_USE and known is not None and space == "shared":
            hit[1] = known = known._replace(grid=_affine(batch, known, esize))
        hit[2] += 1
        return known
    a = np.asarray(base)
    if a.dtype.kind == "i":
        a = a.view(uint_of(a.dtype.itemsize))  # an address is the register's bits, unsigned
    made: WindowIndex | None = None
    if width % esize or not space_bytes.flags.c_contiguous:
        pass
    elif _native is not None and a.ndim == 1 and a.size == batch.n and a.itemsize in (4, 8):
        # one pass: the index, the least and greatest value and the bits any thread sets
        index = np.empty(a.size, dtype=np.int64)
        starts = _window_starts(batch, space, esize, width)
        lo, hi, bits = _native.index(np.ascontiguousarray(a), starts, esize.bit_length() - 1, index)
        if not bits & (esize - 1) and hi < 1 << 62:  # else misaligned, or past every window: checked
            made = WindowIndex(base, index, lo, hi, space_bytes.reshape(-1).view(uint_of(esize)), width)
    elif esize == 1 or not int(np.bitwise_or.reduce(a, axis=None)) & (esize - 1):
        lo, hi = int(a.min()), int(a.max())
        if hi < 1 << 62:  # else past every window: the checked path faults it
            starts = _window_starts(batch, space, esize, width)
            index = a.astype(np.int64)
            if esize > 1:
                index >>= esize.bit_length() - 1
            index = index + starts if index.ndim == 0 else np.add(index, starts, out=index)
            typed = space_bytes.reshape(-1).view(uint_of(esize))
            made = WindowIndex(base, index, lo, hi, typed, width)
    if (len(cache) + 1) * 8 * batch.n > WINDOW_CACHE_BYTES:
        cache.clear()
    cache[key] = [base, made, 1]  # the value, its index, how many accesses it served
    return made


#: the access at which a register's index is tested for an affine layout (a register read a few
#: times: an unrolled loop's tile row; not a data-dependent address read once and stored once)
_PROBE_AT_USE = 2


def _affine(
    batch: Batch, win: WindowIndex, esize: int
) -> tuple[tuple[int, ...], tuple[int, ...], int] | None:
    """``win``'s layout as a strided view of the batch's shared memory, when it has one (see
    :attr:`WindowIndex.grid`)."""
    if not batch.whole_blocks:  # a compacted batch (_compact): its threads are not whole blocks
        return None
    bx, by, bz = batch.block_dim
    count = batch.n // batch.block_threads
    rel = (win.at - _window_starts(batch, "shared", esize, win.width)).reshape(count, bz, by, bx)
    c0 = int(rel[0, 0, 0, 0])
    sx = int(rel[0, 0, 0, 1]) - c0 if bx > 1 else 0
    sy = int(rel[0, 0, 1, 0]) - c0 if by > 1 else 0
    sz = int(rel[0, 1, 0, 0]) - c0 if bz > 1 else 0
    if min(sx, sy, sz) < 0:
        return None
    model = c0 + sx * np.arange(bx) + sy * np.arange(by)[:, None] + sz * np.arange(bz)[:, None, None]
    if not bool((rel == model).all()):
        return None
    per_block = win.width // esize * esize
    return (count, bz, by, bx), (per_block, sz * esize, sy * esize, sx * esize), c0


def _window_starts(batch: Batch, space: str, esize: int, width: int) -> npt.NDArray[np.int64]:
    """Each thread's first element of its window (its block's, or its own for local memory), once per
    batch for each element size (shared memory's width is the batch's; local memory's grows)."""
    key = (_WINDOWS, space, esize, width)
    starts: npt.NDArray[np.int64] | None = batch.derived.get(key)
    if starts is None:
        owner = batch.block_index if space == "shared" else np.arange(batch.n, dtype=np.int64)
        starts = batch.derived[key] = owner.astype(np.int64) * (width // esize)
    return starts


def window_load(
    win: WindowIndex, offset: int, size: int, rows: npt.NDArray[np.intp] | None
) -> npt.NDArray[Any] | None:
    """Each thread's (of ``rows``, ``None`` for all) element of ``size`` bytes (the index's) at its
    register plus ``offset``, typed as the unsigned integer of that size; ``None`` when not every
    thread's access — inactive threads' too — is inside its window: the checked path then decides."""
    k, rest = divmod(offset, size)
    if rest or win.lo + offset < 0 or win.hi + offset + size > win.width:
        return None
    if win.grid is not None and rows is None:  # a strided copy of every thread's element
        shape, strides, c0 = win.grid
        typed = win.typed
        view: npt.NDArray[Any] = np.ndarray(shape, typed.dtype, typed, (c0 + k) * size, strides)
        copied: npt.NDArray[Any] = view.copy().reshape(-1)
        return copied
    index = win.at if rows is None else win.at[rows]
    got: npt.NDArray[Any] = win.typed[k:].take(index) if k >= 0 else win.typed.take(index + k)
    return got


def window_store(
    win: WindowIndex, offset: int, values: npt.NDArray[Any], rows: npt.NDArray[np.intp] | None
) -> bool:
    """Store ``values`` (the index's unsigned elements, one per thread of ``rows``, or one for every
    thread) as :func:`window_load` loads; threads storing to one address: the last wins. ``False``,
    nothing stored, where it would not load."""
    size = values.dtype.itemsize
    k, rest = divmod(offset, size)
    if rest or win.lo + offset < 0 or win.hi + offset + size > win.width:
        return False
    index = win.at if rows is None else win.at[rows]
    if _native is not None and index.ndim == 1 and values.flags.c_contiguous:
        # in C: every element checked inside the memory before any is stored (-1: all were)
        return bool(_native.put(win.typed, index, k, values) < 0)
    if k >= 0:
        win.typed[k:][index] = values
    else:
        win.typed[index + k] = values
    return True
