"""The simulator's tensor maps: what ``cuTensorMapEncodeTiled`` and ``cuTensorMapEncodeIm2col`` answer
on ``sim`` (the host encodes, ``executor/_sim_tensor_maps.py``) and what the PTX engine's TMA instructions
decode (``_isa_tma``).

CUDA's ``CUtensorMap`` is 128 opaque bytes the driver fills for the hardware; sim's are its own:

====== ======= =========================================================================
offset size    field
====== ======= =========================================================================
0      8       magic ``VGPUTMAP``
8      8       version (1), data type, rank, interleave, swizzle, L2 promotion, OOB fill,
               the mode (0 tiled, 1 im2col) (one byte each, CUDA's enum values)
16     8       the global address
24     5 x 8   the global dimensions (elements; unused ones 0)
64     4 x 8   the global strides of dimensions 1-4 (bytes; unused ones 0)
96     5 x 2   the box (elements a copy moves along each dimension; tiled, else zeros)
106    5 x 1   the element strides (the traversal step along each dimension)
111    3 x 2   im2col: the bounding box's lower corner (signed, dimensions 1 to rank - 2)
117    3 x 2   im2col: its upper corner (signed, from the far edge: dim - 1 + upper is the last)
123    2       im2col: channels per pixel
125    2       im2col: pixels per column
127    1       a zero byte
====== ======= =========================================================================

(Tiled maps have zeros at 111-127.)

The guest holds these bytes (a kernel parameter, or global or constant memory) and may change them,
so :func:`decode` checks every field again, as :func:`check` does for the encoding: CUDA's rules for
``cuTensorMapEncodeTiled`` / ``cuTensorMapEncodeIm2col`` and the engine's own limits (what it does not
serve is refused by name).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "ELEMENT_BYTES",
    "IM2COL",
    "ENGINE_TYPES",
    "FLOAT_TYPES",
    "MAP_BYTES",
    "SWIZZLE_BYTES",
    "TILED",
    "TensorMap",
    "TensorMapError",
    "check",
    "decode",
    "encode",
]

MAP_BYTES = 128
_MAGIC = b"VGPUTMAP"
_VERSION = 1
_LAYOUT = struct.Struct("<8s8BQ5Q4Q5H5B3h3hHHx")
assert _LAYOUT.size == MAP_BYTES

#: CUtensorMapDataType -> bytes per element: UINT8 UINT16 UINT32 INT32 UINT64 INT64 FLOAT16 FLOAT32 FLOAT64
#: BFLOAT16 FLOAT32_FTZ TFLOAT32 TFLOAT32_FTZ (CUDA 12.8's packed sub-byte types, 13-15, are served nowhere:
#: their footprint in memory is not checked here)
ELEMENT_BYTES = {0: 1, 1: 2, 2: 4, 3: 4, 4: 8, 5: 8, 6: 2, 7: 4, 8: 8, 9: 2, 10: 4, 11: 4, 12: 4}
#: the types the engine serves: the FTZ and TF32 variants change values in flight
ENGINE_TYPES = frozenset(range(10))
#: the floating-point ones (an OOB fill of NaN is allowed for them alone)
FLOAT_TYPES = frozenset({6, 7, 8, 9, 10, 11, 12})
#: CUtensorMapSwizzle NONE 32B 64B 128B -> the span (bytes) a box row's 16-byte chunks are permuted in
SWIZZLE_BYTES = {0: 0, 1: 32, 2: 64, 3: 128}
_DATA_TYPES_CUDA = 16  # CUDA 13 defines 0-15
_INTERLEAVES_CUDA = 3  # NONE 16B 32B
_SWIZZLES_CUDA = 7  # NONE 32B 64B 128B and CUDA 12.8's 128B_ATOM_* (4-6)
_L2_PROMOTIONS = 5  # NONE 64B 128B 256B L2_256B (a hint)
_OOB_FILLS = 2  # NONE (zeros), NAN_REQUEST_ZERO_FMA
_MAX_RANK = 5
_MAX_BOX = 256
_MAX_ELEMENT_STRIDE = 8
_MAX_STRIDE = 1 << 40
_MAX_DIM = 1 << 32
#: map modes: a box (cuTensorMapEncodeTiled), or pixels of a bounding box (cuTensorMapEncodeIm2col)
TILED, IM2COL = 0, 1
#: im2col: the corners' signed range by rank (CUDA's: 16, 8 and 5 bits), and the pixels' and channels' limits
_CORNER_BITS = {3: 16, 4: 8, 5: 5}
_MAX_CHANNELS = 256
_MAX_PIXELS = 1024


class TensorMapError(ValueError):
    """A map CUDA refuses (``supported``: False — a form sim does not serve)."""

    def __init__(self, message: str, *, supported: bool = True) -> None:
        super().__init__(message)
        self.supported = supported


@dataclass(frozen=True, slots=True)
class TensorMap:
    """A tensor map: ``dims``/``element_strides`` have ``rank`` entries, ``strides`` ``rank - 1`` (bytes,
    for dimensions 1 and up; dimension 0's is the element size). A tiled map (``mode`` TILED) has a
    ``box`` of ``rank`` entries; an im2col map (``mode`` IM2COL, ``box`` empty) has the bounding box's
    ``lower``/``upper`` corners for dimensions 1 to ``rank - 2`` and moves ``pixels`` pixels of
    ``channels`` elements each."""

    data_type: int
    rank: int
    address: int
    dims: tuple[int, ...]
    strides: tuple[int, ...]
    box: tuple[int, ...]
    element_strides: tuple[int, ...]
    interleave: int = 0
    swizzle: int = 0
    l2_promotion: int = 0
    oob_fill: int = 0
    mode: int = TILED
    lower: tuple[int, ...] = ()
    upper: tuple[int, ...] = ()
    channels: int = 0
    pixels: int = 0

    @property
    def element_bytes(self) -> int:
        return ELEMENT_BYTES[self.data_type]

    @property
    def loaded(self) -> tuple[int, ...]:
        """The elements a copy moves along each dimension: the box traversed with the element strides
        (im2col: ``pixels`` rows of ``channels``)."""
        if self.mode == IM2COL:
            return (self.channels, self.pixels)
        return tuple(-(-b // s) for b, s in zip(self.box, self.element_strides, strict=True))

    @property
    def inner_bytes(self) -> int:
        """The bytes of a row of the box in shared memory (its dimension 0; im2col: a pixel's)."""
        return (self.channels if self.mode == IM2COL else self.box[0]) * self.element_bytes

    @property
    def box_bytes(self) -> int:
        count = self.element_bytes
        for n in self.loaded:
            count *= n
        return count


def _check_im2col(m: TensorMap) -> None:
    """cuTensorMapEncodeIm2col's own rules: rank 3 to 5, the corners of dimensions 1 to rank - 2 in the
    rank's signed range and a bounding box of non-zero area, 1-256 channels and 1-1024 pixels."""
    if not 3 <= m.rank <= _MAX_RANK or m.box:
        raise TensorMapError(f"an im2col map of rank {m.rank} (3 to {_MAX_RANK}, no box)")
    spatial = m.rank - 2
    if (len(m.lower), len(m.upper), len(m.dims)) != (spatial, spatial, m.rank):
        raise TensorMapError(f"im2col corners of lengths {len(m.lower)}, {len(m.upper)} for rank {m.rank}")
    bits = _CORNER_BITS[m.rank]
    if any(not -(1 << bits - 1) <= c < 1 << bits - 1 for c in (*m.lower, *m.upper)):
        raise TensorMapError(f"im2col corners {m.lower}, {m.upper} (signed {bits}-bit for rank {m.rank})")
    if any(d - 1 + hi < lo for d, lo, hi in zip(m.dims[1:-1], m.lower, m.upper, strict=True)):
        raise TensorMapError(f"an im2col bounding box of no area (corners {m.lower}, {m.upper})")
    if not 0 < m.channels <= _MAX_CHANNELS or not 0 < m.pixels <= _MAX_PIXELS:
        raise TensorMapError(
            f"{m.channels} channels per pixel (1 to 256), {m.pixels} pixels per column (1 to 1024)"
        )


def check(m: TensorMap, *, engine: bool = True) -> None:
    """CUDA's rules for ``cuTensorMapEncodeTiled`` or ``cuTensorMapEncodeIm2col`` (TensorMapError: what
    is wrong), then what is served (TensorMapError with ``supported`` False): by the engine
    (``engine``), or at all."""
    if m.mode not in (TILED, IM2COL):
        raise TensorMapError(f"map mode {m.mode}")
    if not 0 <= m.data_type < _DATA_TYPES_CUDA:
        raise TensorMapError(f"tensor data type {m.data_type}")
    if not 1 <= m.rank <= _MAX_RANK:
        raise TensorMapError(f"rank {m.rank} (1 to {_MAX_RANK})")
    if m.mode == IM2COL:
        _check_im2col(m)
    elif m.lower or m.upper or m.channels or m.pixels:
        raise TensorMapError("a tiled map with im2col fields")
    if not 0 <= m.interleave < _INTERLEAVES_CUDA or (m.interleave and m.rank < 3):
        raise TensorMapError(f"interleave {m.interleave} for rank {m.rank}")
    if not 0 <= m.swizzle < _SWIZZLES_CUDA:
        raise TensorMapError(f"swizzle {m.swizzle}")
    if not 0 <= m.l2_promotion < _L2_PROMOTIONS:
        raise TensorMapError(f"L2 promotion {m.l2_promotion}")
    if not 0 <= m.oob_fill < _OOB_FILLS:
        raise TensorMapError(f"OOB fill {m.oob_fill}")
    if m.oob_fill and m.data_type not in FLOAT_TYPES:
        raise TensorMapError("a NaN OOB fill for an integer type")
    box = len(m.box) if m.mode == TILED else m.rank
    shapes = (len(m.dims), box, len(m.element_strides), len(m.strides) + 1)
    if shapes != (m.rank,) * 4:
        raise TensorMapError(f"arrays of lengths {shapes} for rank {m.rank}")
    align = 32 if m.interleave == 2 else 16
    if not 0 < m.address < 1 << 64 or m.address % align:
        raise TensorMapError(f"global address {m.address:#x} ({align}-byte aligned)")
    if any(not 0 < d <= _MAX_DIM for d in m.dims):
        raise TensorMapError(f"global dimensions {m.dims} (1 to 2^32)")
    if any(not 0 < s < _MAX_STRIDE or s % align for s in m.strides):
        raise TensorMapError(f"global strides {m.strides} (multiples of {align} below 2^40)")
    if any(not 0 < b <= _MAX_BOX for b in m.box):
        raise TensorMapError(f"box {m.box} (1 to {_MAX_BOX})")
    if any(not 0 < e <= _MAX_ELEMENT_STRIDE for e in m.element_strides):
        raise TensorMapError(f"element strides {m.element_strides} (1 to {_MAX_ELEMENT_STRIDE})")
    if m.data_type not in ELEMENT_BYTES:
        raise TensorMapError(f"tensor data type {m.data_type} (packed sub-byte)", supported=False)
    strides = (m.element_bytes, *m.strides)
    if m.address + sum((d - 1) * s for d, s in zip(m.dims, strides, strict=True)) + m.element_bytes > 1 << 64:
        raise TensorMapError("the tensor runs past the end of the address space")
    inner = m.inner_bytes
    span = SWIZZLE_BYTES.get(m.swizzle, 0)
    if not m.interleave and inner % 16:
        raise TensorMapError(f"the box's inner dimension is {inner} bytes (a multiple of 16)")
    if not m.interleave and span and inner > span:
        raise TensorMapError(f"the box's inner dimension is {inner} bytes, past the {span}-byte swizzle")
    if not engine:
        return
    if m.data_type not in ENGINE_TYPES:
        raise TensorMapError(f"tensor data type {m.data_type} (FTZ, TF32)", supported=False)
    if m.interleave:
        raise TensorMapError("interleaved layouts", supported=False)
    if m.swizzle not in SWIZZLE_BYTES:
        raise TensorMapError(f"swizzle {m.swizzle} (the 128B atom modes)", supported=False)


def encode(m: TensorMap) -> bytes:
    """The 128 bytes of a map :func:`check` accepts."""
    check(m)
    pad = _MAX_RANK - m.rank
    corners = 3 - len(m.lower)
    return _LAYOUT.pack(
        _MAGIC,
        _VERSION,
        m.data_type,
        m.rank,
        m.interleave,
        m.swizzle,
        m.l2_promotion,
        m.oob_fill,
        m.mode,
        m.address,
        *m.dims,
        *(0,) * pad,
        *m.strides,
        *(0,) * pad,
        *m.box,
        *(0,) * (_MAX_RANK - len(m.box)),
        *m.element_strides,
        *(0,) * pad,
        *m.lower,
        *(0,) * corners,
        *m.upper,
        *(0,) * corners,
        m.channels,
        m.pixels,
    )


def decode(raw: bytes) -> TensorMap:
    """The map in ``raw`` (128 bytes from the guest), every field checked; TensorMapError if any is not
    what :func:`encode` writes for a valid map."""
    if len(raw) != MAP_BYTES:
        raise TensorMapError(f"{len(raw)} bytes, not {MAP_BYTES}")
    fields = _LAYOUT.unpack(raw)
    magic, version, data_type, rank, interleave, swizzle, l2, oob, mode, address = fields[:10]
    if magic != _MAGIC or version != _VERSION or mode not in (TILED, IM2COL) or raw[127]:
        raise TensorMapError(
            "not a tensor map cuTensorMapEncodeTiled/Im2col made (its header or padding differ)"
        )
    if not 1 <= rank <= _MAX_RANK:
        raise TensorMapError(f"rank {rank}")
    dims, strides = fields[10:15], fields[15:19]
    box, element_strides = fields[19:24], fields[24:29]
    lower, upper, channels, pixels = fields[29:32], fields[32:35], fields[35], fields[36]
    spatial = max(rank - 2, 0) if mode == IM2COL else 0
    boxed = rank if mode == TILED else 0
    unused = (
        *dims[rank:],
        *strides[rank - 1 :],
        *box[boxed:],
        *element_strides[rank:],
        *lower[spatial:],
        *upper[spatial:],
    )
    if any(unused):
        raise TensorMapError("entries past the rank are not zero")
    m = TensorMap(
        data_type,
        rank,
        address,
        tuple(dims[:rank]),
        tuple(strides[: rank - 1]),
        tuple(box[:boxed]),
        tuple(element_strides[:rank]),
        interleave,
        swizzle,
        l2,
        oob,
        mode,
        tuple(lower[:spatial]),
        tuple(upper[:spatial]),
        channels,
        pixels,
    )
    check(m)
    return m
