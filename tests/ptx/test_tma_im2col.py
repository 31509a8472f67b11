"""TMA im2col mode (``executor/ptx/_isa_tma.py``) through the corpus ``tests/kernels/ptx_tma_im2col.cu``
as nvcc 13 compiles it for compute_90 (CUTLASS's SM90_TMA_LOAD_IM2COL_{3,4,5}D spellings, the multicast
form and the im2col prefetch), against a CPU reference that walks the PTX ISA's "im2col mode" rules one
pixel at a time (``_reference``) and against the outputs Triton's TMA im2col tutorial records from a
GPU. Also: what a guest may do wrong with an im2col map, CUDA's rules for ``cuTensorMapEncodeIm2col``
(``_tensor_map.check``), and the register definitions the map lookup sees through vector destinations."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executor.ptx import LoadedModule, _isa_tma
from executor.ptx._parse import Reg, parse_ptx
from executor.ptx._tensor_map import IM2COL, TensorMap, TensorMapError, check, decode, encode
from protocol import CUresult

from .conftest import KERNELS, Device

SOURCE = KERNELS / "ptx_tma_im2col.compute_90.ptx"
BLOCK = 64
UINT8, UINT16, FLOAT32 = 0, 1, 7
DTYPE = {UINT8: np.uint8, UINT16: np.uint16, FLOAT32: np.float32}
KERNEL = {3: "im2col_load_3d", 4: "im2col_load_4d", 5: "im2col_load_5d"}


@pytest.fixture(scope="module")
def module() -> LoadedModule:
    return LoadedModule(SOURCE.read_text())


@pytest.fixture
def dev(module: LoadedModule) -> Device:
    return Device(module)


def _map(
    address: int,
    values: npt.NDArray[Any],
    data_type: int,
    lower: tuple[int, ...],
    upper: tuple[int, ...],
    channels: int,
    pixels: int,
    **kw: Any,
) -> TensorMap:
    """The im2col map of ``values`` (N, [D, [H,]] W, C outermost first; CUDA's order reversed), corners
    and element strides given W first as cuTensorMapEncodeIm2col takes them."""
    dims = tuple(reversed(values.shape))
    strides = tuple(values.strides[::-1][1:])
    steps = kw.pop("element_strides", (1,) * values.ndim)
    return TensorMap(
        data_type,
        values.ndim,
        address,
        dims,
        strides,
        (),
        steps,
        mode=IM2COL,
        lower=lower,
        upper=upper,
        channels=channels,
        pixels=pixels,
        **kw,
    )


def _reference(
    values: npt.NDArray[Any], m: TensorMap, at: tuple[int, ...], offsets: tuple[int, ...], fill: float = 0
) -> npt.NDArray[Any]:
    """The (pixels, channels) elements an im2col load moves, one pixel at a time as the PTX ISA says:
    from the instruction's position (``at``: c, w, [h, [d,]] n) the filter base walks the bounding box
    ``[lower, dim - 1 + upper]`` of each spatial dimension by its traversal stride, W fastest, back to
    the lower corner and a step of the next dimension past the upper one, N last; each pixel is read at
    the base plus the im2col offsets; elements outside the tensor are ``fill``."""
    spatial = m.rank - 2
    lo = list(m.lower)
    hi = [m.dims[1 + i] - 1 + m.upper[i] for i in range(spatial)]
    steps = list(m.element_strides[1:-1])
    base, n = list(at[1:-1]), at[-1]
    out = np.full((m.pixels, m.channels), fill, dtype=values.dtype)
    for p in range(m.pixels):
        where = [base[i] + offsets[i] for i in range(spatial)]
        for k in range(m.channels):
            c = at[0] + k
            point = (c, *where, n)
            if all(0 <= x < d for x, d in zip(point, m.dims, strict=True)):
                out[p, k] = values[(n, *reversed(where), c)]
        for i in range(spatial + 1):  # the next pixel
            if i == spatial:
                n += 1
                break
            base[i] += steps[i]
            if base[i] <= hi[i]:
                break
            base[i] = lo[i]
    return out


def _u32(*values: int) -> list[int]:
    return [v & 0xFFFFFFFF for v in values]


def _run(dev: Device, m: TensorMap, at: tuple[int, ...], offsets: tuple[int, ...]) -> npt.NDArray[np.uint8]:
    nbytes = m.box_bytes
    out = dev.zeros(nbytes // 4, np.uint32)
    dev.run(KERNEL[m.rank], 1, BLOCK, encode(m), out, nbytes, *_u32(*at), *offsets)
    return dev.get(out, nbytes, np.uint8)


def _tensor(dev: Device, shape: tuple[int, ...], data_type: int, seed: int) -> tuple[int, npt.NDArray[Any]]:
    rng = np.random.default_rng(seed)
    dt = np.dtype(DTYPE[data_type])
    values = rng.standard_normal(shape) if dt.kind == "f" else rng.integers(0, 1 << 8 * dt.itemsize, shape)
    values = values.astype(dt)
    return dev.put(values), values


# -- against a GPU's outputs (Triton's tutorials/gluon/13-tma-im2col.py) -------------------------------------


def _pixels_1_to(count: int) -> npt.NDArray[np.float32]:
    """(count / 16, 4, 4, 32) f32: pixel k of the NHWC images holds k + 1 in every channel."""
    return np.repeat(np.arange(1, count + 1, dtype=np.float32), 32).reshape(count // 16, 4, 4, 32)


@pytest.mark.parametrize(
    ("corner", "at", "offsets", "want"),
    [
        (0, (0, 0, 0, 0), (0, 0), list(range(1, 17))),  # the whole 4x4 image
        (-1, (0, -1, -1, 0), (0, 0), [0, 0, 0, 0, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11]),  # padding read as 0
        (-1, (0, -1, -1, 0), (1, 1), list(range(1, 17))),  # the offsets shift the window back onto it
    ],
)
def test_the_pixels_a_gpu_loads(
    dev: Device, corner: int, at: tuple[int, ...], offsets: tuple[int, int], want: list[int]
) -> None:
    """16 pixels of 32 f32 channels from a 1x4x4x32 NHWC tensor, the corners both ``corner``."""
    values = _pixels_1_to(16)
    m = _map(dev.put(values), values, FLOAT32, (corner, corner), (corner, corner), 32, 16)
    got = _run(dev, m, at, offsets).view(np.float32).reshape(16, 32)
    np.testing.assert_array_equal(got, np.repeat(np.array(want, dtype=np.float32), 32).reshape(16, 32))


def test_pixels_run_on_into_the_next_image(dev: Device) -> None:
    """From (N 0, H 1, W 3) 16 pixels of a 2x4x4x32 tensor: the rest of image 0, then image 1's first."""
    values = _pixels_1_to(32)
    m = _map(dev.put(values), values, FLOAT32, (0, 0), (0, 0), 32, 16)
    got = _run(dev, m, (0, 3, 1, 0), (0, 0)).view(np.float32).reshape(16, 32)
    np.testing.assert_array_equal(got[:, 0], np.arange(8, 24, dtype=np.float32))


# -- against the reference ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "data_type", "corners", "channels", "pixels", "at", "offsets", "steps"),
    [
        # NWC: a 1D convolution's windows with padding 2 either side, past the last batch (zeros)
        ((3, 40, 16), UINT16, ((-2,), (-1,)), 16, 128, (0, -2, 1), (3,), None),
        # NHWC, padding 1, a 3x3 filter's (2, 1) tap, channels 8.. of 24 (the last 8 past C: zeros)
        ((2, 9, 14, 24), FLOAT32, ((-1, -1), (-1, -1)), 16, 64, (8, 7, 4, 0), (2, 1), None),
        # NHWC with traversal strides 2 (PTX's example: from (7, 5) the W walk wraps to the lower corner)
        ((1, 8, 14, 64), UINT8, ((-1, -1), (-1, -1)), 16, 32, (7, 7, 5, 0), (1, 1), (1, 2, 2, 1)),
        # a start off the strides' lattice, walked one pixel at a time
        ((1, 8, 14, 16), UINT8, ((-1, -1), (-1, -1)), 16, 40, (0, 4, 2, 0), (0, 0), (1, 3, 2, 1)),
        # NDHWC, padding 1 in D, H and W
        ((2, 5, 6, 7, 8), UINT16, ((-1, -1, -1), (-1, -1, -1)), 8, 100, (0, -1, -1, -1, 0), (1, 2, 1), None),
    ],
)
def test_im2col_loads_match_the_reference(
    dev: Device,
    shape: tuple[int, ...],
    data_type: int,
    corners: tuple[tuple[int, ...], tuple[int, ...]],
    channels: int,
    pixels: int,
    at: tuple[int, ...],
    offsets: tuple[int, ...],
    steps: tuple[int, ...] | None,
) -> None:
    address, values = _tensor(dev, shape, data_type, seed=len(shape) + pixels)
    kw = {} if steps is None else {"element_strides": steps}
    m = _map(address, values, data_type, *corners, channels, pixels, **kw)
    got = _run(dev, m, at, offsets).view(values.dtype).reshape(pixels, channels)
    np.testing.assert_array_equal(got, _reference(values, m, at, offsets))


def test_a_nan_fill_and_a_swizzled_tile(dev: Device) -> None:
    """Out-of-tensor f32 pixels read as NaN with the NaN fill; with the 128B swizzle (32 f32 channels: a
    pixel is the swizzle's span) each pixel's 16-byte chunks land XOR-permuted by the row, as tiled."""
    address, values = _tensor(dev, (1, 6, 6, 32), FLOAT32, seed=3)
    m = _map(address, values, FLOAT32, (-1, -1), (-1, -1), 32, 16, oob_fill=1)
    got = _run(dev, m, (0, -1, -1, 0), (0, 0)).view(np.uint32).reshape(16, 32)
    want = _reference(values, m, (0, -1, -1, 0), (0, 0), fill=np.nan)
    assert (got[np.isnan(want)] == 0x7FFFFFFF).all() and np.isnan(
        want
    ).sum() == 8 * 32  # row H -1 and W -1 of the next two
    np.testing.assert_array_equal(got[~np.isnan(want)].view(np.float32), want[~np.isnan(want)])
    m = _map(address, values, FLOAT32, (0, 0), (0, 0), 32, 16, swizzle=3)
    raw = _run(dev, m, (0, 0, 0, 0), (0, 0)).view(np.uint32).reshape(16, 8, 4)  # rows of eight 16B chunks
    want = _reference(values, m, (0, 0, 0, 0), (0, 0)).view(np.uint32).reshape(16, 8, 4)
    for row in range(16):
        np.testing.assert_array_equal(raw[row, np.arange(8) ^ (row % 8)], want[row])


def test_a_multicast_im2col_load_fills_both_blocks_of_the_cluster(dev: Device) -> None:
    address, values = _tensor(dev, (2, 5, 5, 16), UINT16, seed=5)
    m = _map(address, values, UINT16, (-1, -1), (-1, -1), 16, 32)
    words = m.box_bytes // 4
    out = dev.zeros(4 * words, np.uint32)
    at, offsets = (0, -1, -1, 1), (1, 0)
    dev.run("im2col_multicast_4d", 4, BLOCK, encode(m), out, m.box_bytes, *_u32(*at), *offsets)
    want = _reference(values, m, at, offsets).view(np.uint32).reshape(-1)
    np.testing.assert_array_equal(dev.get(out, 4 * words, np.uint32).reshape(4, words), np.tile(want, (4, 1)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_im2col_loads_match_the_reference(dev: Device, data: st.DataObject) -> None:
    rank = data.draw(st.sampled_from([3, 4, 5]))
    bits = {3: 15, 4: 7, 5: 4}[rank]
    spatial = rank - 2
    sizes = data.draw(st.lists(st.integers(1, 7), min_size=spatial, max_size=spatial))
    shape = (data.draw(st.integers(1, 3)), *sizes, 16)
    lower = tuple(data.draw(st.integers(-2, 1)) for _ in range(spatial))
    upper = tuple(
        data.draw(st.integers(max(-2, lo - d + 1), 2)) for lo, d in zip(lower, reversed(sizes), strict=True)
    )
    assert all(abs(c) < 1 << bits for c in (*lower, *upper))
    steps = (1, *(data.draw(st.integers(1, 3)) for _ in range(spatial)), 1)
    pixels = data.draw(st.integers(1, 70))
    at = (
        data.draw(st.sampled_from([0, 8])),
        *(data.draw(st.integers(-3, 8)) for _ in range(spatial)),
        data.draw(st.integers(0, 3)),
    )
    offsets = tuple(data.draw(st.integers(0, 3)) for _ in range(spatial))
    address, values = _tensor(dev, shape, UINT8, seed=data.draw(st.integers(0, 1 << 16)))
    m = _map(address, values, UINT8, lower, upper, 16, pixels, element_strides=steps)
    got = _run(dev, m, at, offsets).reshape(pixels, 16)
    np.testing.assert_array_equal(got, _reference(values, m, at, offsets))


# -- what a guest may do wrong -----------------------------------------------------------------------------


def test_a_map_of_the_other_mode_or_an_n_stride_ends_the_launch(dev: Device) -> None:
    address, values = _tensor(dev, (1, 4, 4, 16), UINT8, seed=9)
    m = _map(address, values, UINT8, (0, 0), (0, 0), 16, 16)
    out = dev.zeros(64, np.uint32)
    tiled = TensorMap(UINT8, 4, address, (16, 4, 4, 1), (16, 64, 256), (16, 4, 4, 1), (1, 1, 1, 1))
    err = dev.fails("im2col_load_4d", 1, BLOCK, encode(tiled), out, 256, *_u32(0, 0, 0, 0), 0, 0)
    assert err.status == CUresult.CUDA_ERROR_LAUNCH_FAILED and "is tiled, the instruction im2col" in str(err)
    strided = _map(address, values, UINT8, (0, 0), (0, 0), 16, 16, element_strides=(1, 1, 1, 2))
    err = dev.fails("im2col_load_4d", 1, BLOCK, encode(strided), out, 256, *_u32(0, 0, 0, 0), 0, 0)
    assert err.status == CUresult.CUDA_ERROR_NOT_SUPPORTED and "along N" in str(err)
    forged = bytearray(encode(m))
    forged[123] = 0  # channels per pixel 0
    err = dev.fails("im2col_load_4d", 1, BLOCK, bytes(forged), out, 256, *_u32(0, 0, 0, 0), 0, 0)
    assert err.status == CUresult.CUDA_ERROR_LAUNCH_FAILED


def test_an_im2col_map_in_a_tiled_instruction_is_refused() -> None:
    values = np.zeros((1, 4, 4, 16), dtype=np.uint8)
    m = _map(0x10000, values, UINT8, (0, 0), (0, 0), 16, 16)
    with pytest.raises(Exception, match="is im2col, the instruction tiled"):
        _isa_tma._decoded(encode(m), 4, "cp.async.bulk.tensor", {})
    assert decode(encode(m)) == m


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"lower": (-129, 0)}, "signed 8-bit"),
        ({"upper": (0, 128)}, "signed 8-bit"),
        ({"lower": (3, 0), "upper": (-1, 0)}, "no area"),  # W 4: positions 3 .. 4 - 1 - 1
        ({"channels": 0}, "channels per pixel"),
        ({"channels": 264}, "channels per pixel"),
        ({"pixels": 1025}, "pixels per column"),
        ({"channels": 12}, "multiple of 16"),
        ({"lower": (0,)}, "corners of lengths"),
        ({"box": (16, 4, 4, 1)}, "no box"),
        ({"swizzle": 1}, "past the 32-byte swizzle"),
    ],
)
def test_cuda_rules_for_im2col_maps(change: dict[str, Any], why: str) -> None:
    values = np.zeros((1, 4, 4, 48), dtype=np.uint8)
    m = _map(0x10000, values, UINT8, (0, 0), (0, 0), 48, 16)
    check(m)
    with pytest.raises(TensorMapError, match=why):
        check(TensorMap(**{f: getattr(m, f) for f in m.__slots__} | change))


def test_rank_and_corner_ranges_follow_cuda() -> None:
    three = np.zeros((1, 8, 16), dtype=np.uint8)
    check(_map(0x10000, three, UINT8, (-32768,), (32767,), 16, 1024))
    five = np.zeros((1, 2, 2, 2, 16), dtype=np.uint8)
    check(_map(0x10000, five, UINT8, (-16, -16, -16), (15, 15, 15), 16, 8))
    with pytest.raises(TensorMapError, match="signed 5-bit"):
        check(_map(0x10000, five, UINT8, (-17, 0, 0), (0, 0, 0), 16, 8))
    with pytest.raises(TensorMapError, match="rank 2"):
        check(TensorMap(UINT8, 2, 0x10000, (16, 4), (16,), (), (1, 1), mode=IM2COL, channels=16, pixels=4))


# -- the map lookup's register definitions --------------------------------------------------------------------


def test_a_register_a_vector_load_writes_is_not_taken_for_the_parameters_address() -> None:
    """``_param_offset`` follows a register to the kernel parameter it was moved from only when that is
    its one definition: a vector destination that writes it again counts as another."""
    ptx = """
    .version 8.0
    .target sm_90
    .address_size 64
    .visible .entry k(.param .align 64 .b8 k_map[128], .param .u64 k_p)
    {
        .reg .b64 %rd<4>;
        mov.u64 %rd1, k_map;
        mov.u64 %rd3, k_map;
        ld.param.u64 %rd2, [k_p];
        ld.global.v2.u64 {%rd1, %rd2}, [%rd2];
        ret;
    }
    """
    fn = parse_ptx(ptx).functions["k"]
    assert fn.body is not None
    c = SimpleNamespace(fn=fn, params={"k_map", "k_p"}, param_offsets={"k_map": 0, "k_p": 128})
    assert _isa_tma._param_offset(c, Reg("%rd3")) == 0  # type: ignore[arg-type]
    assert _isa_tma._param_offset(c, Reg("%rd1")) is None  # type: ignore[arg-type]
    assert [ins.opcode for ins in _isa_tma._definitions(c, "%rd2")] == ["ld", "ld"]  # type: ignore[arg-type]
