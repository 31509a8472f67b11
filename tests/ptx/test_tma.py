"""TMA (``executor/ptx/_isa_tma.py``) through the corpus ``tests/kernels/ptx_tma.cu`` as nvcc 13 compiles
it for compute_90 (libcu++'s ``cp_async_bulk_tensor_*`` and inline-PTX prefetches): boxes of 1, 2, 3
and 5 dimensions against NumPy slices of the tensor — elements outside it zero, or NaN with the NaN
fill — element strides, the 128B/64B swizzle's chunk order, the map as a ``__grid_constant__``
parameter and in global memory, stores that leave the tensor outside the box (and outside the tensor)
alone; and what a guest may do wrong: a forged map, a map for another rank, a tensor outside its
memory, a misaligned map. The maps are what sim's ``cuTensorMapEncodeTiled`` answers
(``_tensor_map.encode``)."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executor._errors import CudaError
from executor.ptx import Limits, LoadedModule, _isa_tma
from executor.ptx._tensor_map import TensorMap, encode
from protocol import CUresult

from .conftest import KERNELS, Device

SOURCE = KERNELS / "ptx_tma.compute_90.ptx"
BLOCK = 128
TILE_WORDS = 16384 // 4  # the kernels' shared tile, the most a copy-out can write
FLOAT32, UINT8, UINT16, UINT32 = 7, 0, 1, 2
DTYPE = {FLOAT32: np.float32, UINT8: np.uint8, UINT16: np.uint16, UINT32: np.uint32}


@pytest.fixture(scope="module")
def module() -> LoadedModule:
    return LoadedModule(SOURCE.read_text())


@pytest.fixture
def dev(module: LoadedModule) -> Device:
    return Device(module)


def _tensor(
    dev: Device, shape: tuple[int, ...], pitch: int, data_type: int, seed: int = 0
) -> tuple[int, Any]:
    """A tensor of ``shape`` (outermost first) whose rows are ``pitch`` elements apart, random values;
    its device address and the NumPy array (the padded layout)."""
    rng = np.random.default_rng(seed)
    padded = (*shape[:-1], pitch)
    dt = np.dtype(DTYPE[data_type])
    if dt.kind == "f":
        values = rng.standard_normal(padded).astype(dt)
    else:
        values = rng.integers(0, 1 << (8 * dt.itemsize), padded).astype(dt)
    return dev.put(values), values


def _map(
    address: int, values: Any, shape: tuple[int, ...], box: tuple[int, ...], data_type: int, **kw: Any
) -> TensorMap:
    """The map of the tensor (CUDA's order: dimension 0 innermost; ``element_strides`` in it too)."""
    dims = tuple(reversed(shape))
    rows = values.strides[::-1][1:]  # bytes between consecutive indexes of dimensions 1..
    steps = kw.pop("element_strides", (1,) * len(shape))
    return TensorMap(data_type, len(shape), address, dims, tuple(rows), tuple(reversed(box)), steps, **kw)


def _expected(
    values: Any,
    shape: tuple[int, ...],
    box: tuple[int, ...],
    at: tuple[int, ...],
    steps: tuple[int, ...] | None = None,
    fill: float = 0,
) -> Any:
    """The box at ``at`` (outermost first) as a TMA load lays it out: out-of-tensor elements ``fill``."""
    steps = steps or (1,) * len(shape)
    counts = [-(-b // s) for b, s in zip(box, steps, strict=True)]
    out = np.full(counts, fill, dtype=values.dtype)
    index = np.indices(counts)
    coords = [at[i] + index[i] * steps[i] for i in range(len(shape))]
    inside = np.ones(counts, dtype=bool)
    for i, c in enumerate(coords):
        inside &= (c >= 0) & (c < shape[i])
    picked = tuple(np.where(inside, c, 0) for c in coords)
    out[inside] = values[picked][inside]
    return out


def _coords(at: tuple[int, ...]) -> list[int]:
    """Coordinates as the kernel's parameters take them: dimension 0 first, as u32 bits."""
    return [c & 0xFFFFFFFF for c in reversed(at)]


def _load(dev: Device, kernel: str, m: TensorMap, at: tuple[int, ...], nbytes: int) -> npt.NDArray[np.uint8]:
    out = dev.zeros(nbytes // 4, np.uint32)
    dev.run(kernel, 1, BLOCK, encode(m), out, nbytes, *_coords(at))
    return dev.get(out, nbytes, np.uint8)


@pytest.mark.parametrize("kernel", ["tma_load_2d", "tma_cutlass_2d"])
@pytest.mark.parametrize("at", [(0, 0), (5, 64), (30, 80), (-4, -8), (-40, 0)])
def test_2d_boxes(dev: Device, at: tuple[int, int], kernel: str) -> None:
    """libcu++'s spelling and CUTLASS's (no .tile, an L2 cache hint, a prefetch first)."""
    shape, box = (40, 100), (16, 32)
    address, values = _tensor(dev, shape, 128, FLOAT32)
    m = _map(address, values, shape, box, FLOAT32)
    got = _load(dev, kernel, m, at, 16 * 32 * 4)
    want = _expected(values[:, :100], shape, box, at)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32).reshape(-1))


def test_1d_3d_5d_boxes(dev: Device) -> None:
    address, values = _tensor(dev, (300,), 300 + 4, UINT32, seed=1)
    m = _map(address, values, (300,), (64,), UINT32)
    np.testing.assert_array_equal(
        _load(dev, "tma_load_1d", m, (270,), 256).view(np.uint32),
        _expected(values[:300], (300,), (64,), (270,)),
    )
    shape3, box3 = (5, 9, 40), (3, 4, 16)
    address, values = _tensor(dev, shape3, 48, UINT16, seed=2)
    m = _map(address, values, shape3, box3, UINT16)
    at3 = (3, -1, 30)
    np.testing.assert_array_equal(
        _load(dev, "tma_load_3d", m, at3, 3 * 4 * 16 * 2).view(np.uint16).reshape(-1),
        _expected(values[..., :40], shape3, box3, at3).reshape(-1),
    )
    shape5, box5 = (2, 3, 2, 5, 32), (2, 2, 2, 3, 16)
    address, values = _tensor(dev, shape5, 48, UINT8, seed=3)
    m = _map(address, values, shape5, box5, UINT8)
    at5 = (1, 2, 0, 3, 24)
    np.testing.assert_array_equal(
        _load(dev, "tma_load_5d", m, at5, 2 * 2 * 2 * 3 * 16),
        _expected(values[..., :32], shape5, box5, at5).reshape(-1),
    )


def test_element_strides_and_nan_fill(dev: Device) -> None:
    shape, box = (40, 100), (16, 32)
    address, values = _tensor(dev, shape, 128, FLOAT32, seed=4)
    m = _map(address, values, shape, box, FLOAT32, element_strides=(1, 3), oob_fill=1)
    at = (30, 80)
    got = _load(dev, "tma_load_2d", m, at, 6 * 32 * 4)  # ceil(16 / 3) = 6 rows
    want = _expected(values[:, :100], shape, box, at, steps=(3, 1), fill=np.nan)
    bits = want.view(np.uint32).copy()
    bits[np.isnan(want)] = 0x7FFFFFFF  # the canonical NaN the fill writes
    np.testing.assert_array_equal(got.view(np.uint32), bits.reshape(-1))


@pytest.mark.parametrize(("swizzle", "span"), [(3, 128), (2, 64)])
def test_swizzled_box(dev: Device, swizzle: int, span: int) -> None:
    """Each 16-byte chunk of the box lands at its offset with bits 4.. XORed by bits 7.. (CUTLASS's
    Swizzle<3,4,3> for 128B, <2,4,3> for 64B); the tile is 1024-byte aligned."""
    width = span // 4
    shape, box = (64, 64), (16, width)
    address, values = _tensor(dev, shape, 64, FLOAT32, seed=5)
    m = _map(address, values, shape, box, FLOAT32, swizzle=swizzle)
    nbytes = 16 * width * 4
    got = _load(dev, "tma_load_2d", m, (8, 16), nbytes)
    dense = _expected(values, shape, box, (8, 16)).view(np.uint8).reshape(-1, 16)
    logical = np.arange(nbytes // 16) * 16
    physical = logical ^ (((logical >> 7) & (span // 16 - 1)) << 4)
    want = np.empty_like(dense)
    want[physical // 16] = dense
    np.testing.assert_array_equal(got.reshape(-1, 16), want)
    assert not np.array_equal(physical, logical)  # the chunks did move


def test_map_in_global_memory_and_prefetch(dev: Device) -> None:
    shape, box = (40, 100), (16, 32)
    address, values = _tensor(dev, shape, 128, FLOAT32, seed=6)
    m = _map(address, values, shape, box, FLOAT32)
    raw = np.frombuffer(encode(m), dtype=np.uint8)
    at = (3, 70)
    want = _expected(values[:, :100], shape, box, at).view(np.uint32).reshape(-1)
    map_ptr = dev.put(raw)  # allocations are 256-byte aligned: the map's 64 bytes hold
    out = dev.zeros(16 * 32, np.uint32)
    dev.run("tma_load_2d_global", 1, BLOCK, map_ptr, out, 16 * 32 * 4, *_coords(at))
    np.testing.assert_array_equal(dev.get(out, 16 * 32, np.uint32), want)
    np.testing.assert_array_equal(_load(dev, "tma_prefetch_2d", m, at, 16 * 32 * 4).view(np.uint32), want)


@pytest.mark.parametrize("kernel", ["tma_store_2d", "tma_cutlass_store_2d"])
@pytest.mark.parametrize("at", [(8, 32), (30, 80), (-10, -20)])
def test_store_writes_the_box_inside_the_tensor_only(dev: Device, at: tuple[int, int], kernel: str) -> None:
    shape, box = (40, 100), (16, 32)
    address, values = _tensor(dev, shape, 128, FLOAT32, seed=7)
    m = _map(address, values, shape, box, FLOAT32)
    tile = np.random.default_rng(8).standard_normal(box).astype(np.float32)
    dev.run(kernel, 1, BLOCK, encode(m), dev.put(tile), tile.nbytes, *_coords(at))
    want = values.copy()
    for r in range(box[0]):
        for col in range(box[1]):
            y, x = at[0] + r, at[1] + col
            if 0 <= y < shape[0] and 0 <= x < shape[1]:
                want[y, x] = tile[r, col]
    got = dev.get(address, values.size, np.float32).reshape(values.shape)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))  # padding columns untouched too


def _raw_map(dev: Device) -> tuple[bytearray, int]:
    shape, box = (40, 100), (16, 32)
    address, values = _tensor(dev, shape, 128, FLOAT32)
    return bytearray(encode(_map(address, values, shape, box, FLOAT32))), address


@pytest.mark.parametrize(
    ("offset", "value"),
    [(0, 0x57), (8, 2), (10, 3), (10, 6), (12, 9), (24, 0), (64, 7), (96, 0), (100, 1), (106, 9), (120, 1)],
    ids=[
        "magic",
        "version",
        "rank",
        "rank-6",
        "swizzle",
        "dim0",
        "stride",
        "box0",
        "unused-box",
        "estride",
        "padding",
    ],
)
def test_forged_maps_fail_the_launch(dev: Device, offset: int, value: int) -> None:
    raw, _ = _raw_map(dev)
    raw[offset] = value
    out = dev.zeros(16 * 32, np.uint32)
    err = dev.fails("tma_load_2d", 1, BLOCK, bytes(raw), out, 16 * 32 * 4, 0, 0)
    assert err.status == CUresult.CUDA_ERROR_LAUNCH_FAILED and err.sticky, err.message
    assert "tensor map" in err.message


def test_a_map_of_another_rank_fails(dev: Device) -> None:
    raw, _ = _raw_map(dev)
    out = dev.zeros(16 * 32, np.uint32)
    err = dev.fails("tma_load_3d", 1, BLOCK, bytes(raw), out, 16 * 32 * 4, 0, 0, 0)
    assert err.status == CUresult.CUDA_ERROR_LAUNCH_FAILED and "rank 2" in err.message


def test_a_tensor_outside_the_vms_memory_is_an_illegal_address(dev: Device) -> None:
    """A valid map whose tensor starts past the allocation's end: the load's first element faults;
    the store does not write anything outside either."""
    shape, box = (40, 100), (16, 32)
    address, values = _tensor(dev, shape, 128, FLOAT32)
    m = _map(address + values.nbytes + (1 << 20), values, shape, box, FLOAT32)
    out = dev.zeros(16 * 32, np.uint32)
    err = dev.fails("tma_load_2d", 1, BLOCK, encode(m), out, 16 * 32 * 4, 0, 0)
    assert err.status == CUresult.CUDA_ERROR_ILLEGAL_ADDRESS and err.sticky


def test_a_misaligned_map_in_global_memory(dev: Device) -> None:
    raw, _ = _raw_map(dev)
    block = dev.put(np.frombuffer(bytes(32) + bytes(raw), dtype=np.uint8))
    out = dev.zeros(16 * 32, np.uint32)
    err = dev.fails("tma_load_2d_global", 1, BLOCK, block + 32, out, 16 * 32 * 4, 0, 0)
    assert err.status == CUresult.CUDA_ERROR_MISALIGNED_ADDRESS


def _reduced(op: str, old: Any, b: Any) -> Any:
    """The reference of one element-wise reduction (float adds in float64, rounded once)."""
    if op == "add":
        return (old.astype(np.float64) + b.astype(np.float64)).astype(old.dtype)
    if op == "max":
        return np.fmax(old.astype(np.float64), b.astype(np.float64)).astype(old.dtype)
    if op == "xor":
        return old ^ b
    return np.where(old >= b, 0, old + 1).astype(old.dtype)  # inc


@pytest.mark.parametrize(
    ("op", "data_type"), [("add", FLOAT32), ("max", 6), ("xor", UINT32), ("inc", UINT32)]
)
def test_reductions_combine_the_box_inside_the_tensor(dev: Device, op: str, data_type: int) -> None:
    shape, at = (40, 100), (30, 80)
    dt = np.dtype(np.float16 if data_type == 6 else DTYPE[data_type])
    width = 64 if dt.itemsize == 2 else 32
    box = (16, width)
    rng = np.random.default_rng(9)
    if dt.kind == "f":
        values = rng.standard_normal((40, 128)).astype(dt)
        tile = rng.standard_normal(box).astype(dt)
    else:
        values = rng.integers(0, 1 << 32, (40, 128)).astype(dt)
        tile = rng.integers(0, 1 << 32, box).astype(dt)
        if op == "inc":
            values[:, :] = rng.integers(0, 8, values.shape)
            tile[:, :] = rng.integers(0, 8, box)
    address = dev.put(values)
    m = _map(address, values, shape, box, data_type)
    dev.run(f"tma_reduce_{op}_2d", 1, BLOCK, encode(m), dev.put(tile), tile.nbytes, *_coords(at))
    want = values.copy()
    rows, cols = slice(at[0], shape[0]), slice(at[1], shape[1])
    inside = tile[: shape[0] - at[0], : shape[1] - at[1]]
    want[rows, cols] = _reduced(op, values[rows, cols], inside)
    got = dev.get(address, values.size, dt).reshape(values.shape)
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


def test_a_reduction_the_type_lacks_is_refused(dev: Device) -> None:
    shape, box = (40, 100), (16, 32)
    address, values = _tensor(dev, shape, 128, FLOAT32)
    m = _map(address, values, shape, box, FLOAT32)
    tile = np.zeros(box, dtype=np.float32)
    err = dev.fails("tma_reduce_xor_2d", 1, BLOCK, encode(m), dev.put(tile), tile.nbytes, 0, 0)
    assert err.status == CUresult.CUDA_ERROR_NOT_SUPPORTED and not err.sticky


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    edits=st.lists(st.tuples(st.integers(0, 127), st.integers(0, 255)), min_size=1, max_size=6),
    at=st.tuples(st.integers(-300, 300), st.integers(-300, 300)),
)
def test_any_map_bytes_end_in_a_cuda_error_or_a_copy_inside_the_vm(
    dev: Device, edits: list[tuple[int, int]], at: tuple[int, int]
) -> None:
    """A valid map with bytes changed anywhere (a guest forging its map) either still decodes — and then
    the copy reads only the tensor's elements inside the VM's memory or faults — or fails the launch
    with LAUNCH_FAILED; never another outcome (hypothesis)."""
    raw, _ = _raw_map(dev)
    for offset, value in edits:
        raw[offset] = value
    out = dev.zeros(TILE_WORDS, np.uint32)
    try:
        dev.run(
            "tma_load_2d", 1, BLOCK, bytes(raw), out, 16 * 32 * 4, *_coords(at), limits=Limits(seconds=0.5)
        )
    except CudaError as exc:
        assert exc.status in (
            CUresult.CUDA_ERROR_LAUNCH_TIMEOUT,  # a forged box whose bytes the barrier never sees complete
            CUresult.CUDA_ERROR_LAUNCH_FAILED,
            CUresult.CUDA_ERROR_ILLEGAL_ADDRESS,
            CUresult.CUDA_ERROR_NOT_SUPPORTED,
            CUresult.CUDA_ERROR_MISALIGNED_ADDRESS,
        ), exc


def test_a_map_inside_a_parameter_struct(dev: Device) -> None:
    """CUTLASS's kernels hold their maps in a __grid_constant__ Params struct: the map's address is the
    parameter's plus the field's offset (``add`` after ``mov``, then ``cvta.param``)."""
    shape, box = (40, 100), (16, 32)
    address, values = _tensor(dev, shape, 128, FLOAT32, seed=10)
    m = _map(address, values, shape, box, FLOAT32)
    out = dev.zeros(16 * 32, np.uint32)
    at = (12, 90)
    params = struct.pack("<iiQ", 40, 100, out) + bytes(128 - 16) + encode(m)
    params += struct.pack("<iii", 16 * 32 * 4, *_coords(at)) + bytes(384 - 256 - 12)
    dev.run("tma_load_2d_params", 1, BLOCK, params)
    want = _expected(values[:, :100], shape, box, at).view(np.uint32).reshape(-1)
    np.testing.assert_array_equal(dev.get(out, 16 * 32, np.uint32), want)


def test_multicast_fills_every_block_of_the_cluster(dev: Device) -> None:
    """``.multicast::cluster`` with ctaMask 0b11: rank 0 of each of two clusters loads the box into both
    of its blocks' tiles, each block's own barrier completing (CUTLASS's SM90_TMA_LOAD_MULTICAST)."""
    shape, box = (40, 100), (16, 32)
    address, values = _tensor(dev, shape, 128, FLOAT32, seed=11)
    m = _map(address, values, shape, box, FLOAT32)
    words = 16 * 32
    out = dev.zeros(4 * words, np.uint32)
    at = (20, 75)
    dev.run("tma_multicast_2d", 4, BLOCK, encode(m), out, words * 4, *_coords(at))
    want = _expected(values[:, :100], shape, box, at).view(np.uint32).reshape(-1)
    np.testing.assert_array_equal(dev.get(out, 4 * words, np.uint32).reshape(4, words), np.tile(want, (4, 1)))


def test_the_decoded_maps_an_instruction_keeps_are_bounded() -> None:
    """Every thread (or launch) may name a map of its own: the instruction's cache of decoded maps
    stays bounded (it grew by one entry, the guest's 128 bytes and their decoding, per distinct map)."""
    values = np.zeros((4, 16), dtype=np.float32)
    cache: dict[bytes, TensorMap] = {}
    for k in range(3 * _isa_tma._MAP_CACHE):
        m = _map(0x10000 + 16 * k, values, (4, 16), (4, 16), FLOAT32)
        assert _isa_tma._decoded(encode(m), 2, "cp.async.bulk.tensor", cache) == m
        assert len(cache) <= _isa_tma._MAP_CACHE
