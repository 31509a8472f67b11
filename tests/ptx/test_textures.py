"""Texture and surface instructions (tests/kernels/ptx_texture.cu as nvcc 13 compiles it) against a
CPU reference written here texel by texel from the CUDA programming guide's *Texture Fetching*
appendix: point and linear filtering (8-bit weight fractions), every address mode, normalized
coordinates, layered, cube and 3D textures, tex1Dfetch, tld4, txq/suq/istypep, surfaces; and what
a hostile kernel may try (unknown handles, freed texels, huge and NaN coordinates)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from executor._errors import CudaError
from executor._sim_memory import DeviceMemory
from executor.ptx import LoadedModule, _texture_fast
from executor.ptx._texture_objects import (
    AddressMode,
    ChannelKind,
    Geometry,
    Sampler,
    SurfaceObject,
    TexelLayout,
    TextureObject,
)
from executor.ptx._texture_sample import Floats, sample
from protocol import CUresult

from .conftest import KERNELS, Device, ptx_device

ARCHS = (75, 80, 90)
N = 96
MODES = (AddressMode.WRAP, AddressMode.CLAMP, AddressMode.MIRROR, AddressMode.BORDER)
BORDER = (0.25, -2.0, 8.0, 0.5)


@dataclass
class Table:
    """The launching VM's objects: a fake of sim's table, over the test's device memory."""

    textures: dict[int, TextureObject] = field(default_factory=dict)
    surfaces: dict[int, SurfaceObject] = field(default_factory=dict)

    def texture(self, handle: int) -> TextureObject | None:
        return self.textures.get(handle)

    def surface(self, handle: int) -> SurfaceObject | None:
        return self.surfaces.get(handle)


def _module(arch: int) -> Device:
    return Device(LoadedModule((KERNELS / f"ptx_texture.compute_{arch}.ptx").read_text()))


@pytest.fixture(autouse=True, params=["c", "numpy"])
def sampler_form(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test once with the C sampler (native/ptxtex.c) and once with the NumPy form alone."""
    if request.param == "numpy":
        monkeypatch.setattr(_texture_fast, "_native", None)
    elif _texture_fast._native is None:
        pytest.skip("executor.ptx._texfast is not built (setup.py build_ext)")
    return str(request.param)


@pytest.fixture(params=ARCHS, ids=lambda a: f"compute_{a}")
def dev(request: pytest.FixtureRequest) -> Device:
    return _module(request.param)


@pytest.fixture
def dev90() -> Device:
    return _module(90)


_KIND = {"f": "float", "i": "signed", "u": "unsigned"}


def _layout(dev: Device, texels: npt.NDArray[Any], geometry: Geometry, pad: int = 0) -> TexelLayout:
    """Texels ``(layers, depth, height, width, channels)`` in device memory, rows ``pad`` bytes apart
    beyond their width."""
    layers, depth, height, width, channels = texels.shape
    texel = texels.dtype.itemsize * channels
    row = width * texel + pad
    rows = np.zeros((layers * depth * height, row), dtype=np.uint8)
    rows[:, : width * texel] = (
        np.ascontiguousarray(texels).view(np.uint8).reshape(layers * depth * height, -1)
    )
    base = dev.put(rows)
    kind: ChannelKind = _KIND[texels.dtype.kind]  # type: ignore[assignment]
    slice_ = row * height
    return TexelLayout(
        base,
        geometry,
        width,
        height,
        depth,
        layers,
        row,
        slice_,
        slice_ * depth,
        channels,
        texels.dtype.itemsize * 8,
        kind,
    )


def _sampler(
    mode: AddressMode = AddressMode.CLAMP,
    linear: bool = False,
    normalized: bool = False,
    read_float: bool = False,
    srgb: bool = False,
    modes: tuple[AddressMode, AddressMode, AddressMode] | None = None,
) -> Sampler:
    return Sampler(modes or (mode, mode, mode), linear, normalized, read_float, srgb, BORDER)


# -- the reference ---------------------------------------------------------------------------------


def _f32(x: float) -> float:
    with np.errstate(over="ignore"):
        return float(np.float32(x))


def _coord(c: float, size: int, normalized: bool, mode: AddressMode) -> float:
    """A coordinate in texels: normalized ones wrapped or mirrored as the guide says, then scaled
    (float32 arithmetic); NaN as 0, magnitudes bounded."""
    x = float(np.float32(c))
    if normalized and mode in (AddressMode.WRAP, AddressMode.MIRROR) and math.isfinite(x):
        whole = math.floor(x)
        x = _f32(x - whole)
        if mode == AddressMode.MIRROR and whole % 2:
            x = _f32(1 - x)
    elif normalized and mode in (AddressMode.WRAP, AddressMode.MIRROR):
        x = math.nan  # frac of an infinity
    if normalized:
        x = _f32(x * size)
    if math.isnan(x):
        return 0.0
    return float(max(min(x, 2.0**40), -(2.0**40)))


def _index(i: int, size: int, mode: AddressMode, normalized: bool) -> int | None:
    """A texel index after the address mode; ``None``: the border."""
    if mode == AddressMode.BORDER:
        return i if 0 <= i < size else None
    if normalized and mode == AddressMode.WRAP:
        return i % size
    if normalized and mode == AddressMode.MIRROR:
        j = i % (2 * size)
        return j if j < size else 2 * size - 1 - j
    return min(max(i, 0), size - 1)


def _value(
    texels: npt.NDArray[Any], at: tuple[int, int, int, int], s: Sampler, as_float: bool
) -> list[float]:
    layer, z, y, x = at
    raw = texels[layer, z, y, x]
    out = [0.0, 0.0, 0.0, 1.0]
    kind = texels.dtype.kind
    bits = texels.dtype.itemsize * 8
    for ch, v in enumerate(raw):
        if kind == "f":
            out[ch] = float(v) if as_float else float(np.array(v, dtype=np.float32).view(np.int32))
        elif as_float and s.normalized_float_read and bits < 32:
            if kind == "u":
                f = int(v) / (2**bits - 1)
                if s.srgb and bits == 8 and ch < 3:
                    f = f / 12.92 if f <= 0.04045 else ((f + 0.055) / 1.055) ** 2.4
                out[ch] = f
            else:
                out[ch] = max(int(v) / (2 ** (bits - 1) - 1), -1.0)
        else:
            out[ch] = float(int(v))
    return out


def _border(as_float: bool) -> list[float]:
    if as_float:
        return list(BORDER)
    return [float(v) for v in np.array(BORDER, dtype=np.float32).view(np.int32)]


def reference(
    texels: npt.NDArray[Any], s: Sampler, coords: list[float], layer: int, as_float: bool, cube: bool = False
) -> list[float]:
    """One lane's texture fetch, as the guide's appendix writes it."""
    sizes = (texels.shape[3], texels.shape[2], texels.shape[1])
    normalized = s.normalized_coords or cube
    modes = [AddressMode.CLAMP if cube else s.address_modes[a] for a in range(len(coords))]
    dims = len(coords)

    def texel(idx: list[int | None]) -> list[float]:
        if any(i is None for i in idx):
            return _border(as_float)
        full = [*idx, 0, 0][:3]
        return _value(texels, (layer, full[2], full[1], full[0]), s, as_float)  # type: ignore[arg-type]

    if not s.linear_filter or not as_float:
        return texel(
            [
                _index(math.floor(_coord(c, sizes[a], normalized, modes[a])), sizes[a], modes[a], normalized)
                for a, c in enumerate(coords)
            ]
        )
    lows, alphas = [], []
    for a, c in enumerate(coords):
        xb = _coord(c, sizes[a], normalized, modes[a]) - 0.5
        lows.append(math.floor(xb))
        alphas.append(round((xb - math.floor(xb)) * 256) / 256)
    total = [0.0] * 4
    for corner in range(1 << dims):
        weight = 1.0
        idx: list[int | None] = []
        for a in range(dims):
            up = (corner >> a) & 1
            weight *= alphas[a] if up else 1 - alphas[a]
            idx.append(_index(lows[a] + up, sizes[a], modes[a], normalized))
        v = texel(idx)
        total = [t + weight * x for t, x in zip(total, v, strict=True)]
    return total


def _cube(x: float, y: float, z: float) -> tuple[int, float, float]:
    ax, ay, az = abs(x), abs(y), abs(z)
    if ax >= ay and ax >= az:
        face, ma, s, t = (0 if x >= 0 else 1), ax, (-z if x >= 0 else z), -y
    elif ay >= az:
        face, ma, s, t = (2 if y >= 0 else 3), ay, x, (z if y >= 0 else -z)
    else:
        face, ma, s, t = (4 if z >= 0 else 5), az, (x if z >= 0 else -x), -y
    return face, (s / ma + 1) / 2, (t / ma + 1) / 2


def _expected(want: list[list[float]], dtype: str) -> npt.NDArray[Any]:
    if dtype == "f32":
        return np.array(want, dtype=np.float64).astype(np.float32)
    wrapped = np.array([[int(v) & 0xFFFFFFFF for v in row] for row in want], dtype=np.uint64).astype(
        np.uint32
    )
    return wrapped.view(np.int32) if dtype == "s32" else wrapped


def _coords(rng: np.random.Generator, k: int, lo: float, hi: float, dims: int) -> npt.NDArray[np.float32]:
    c = rng.uniform(lo, hi, (k, dims)).astype(np.float32)
    c[: min(k, 8)] = np.round(c[: min(k, 8)])  # texel corners and centres exactly
    c[8:16] = np.round(c[8:16]) + 0.5
    return c


# -- textures ----------------------------------------------------------------------------------


def _run2d(
    dev: Device, kernel: str, layout: TexelLayout, s: Sampler, coords: npt.NDArray[np.float32], out_dtype: Any
) -> npt.NDArray[Any]:
    table = Table({0x51: TextureObject(layout, s)})
    k = coords.shape[0]
    c = dev.put(coords)
    out = dev.zeros(4 * k, out_dtype)
    dev.run(kernel, (k + 63) // 64, 64, 0x51, c, out, k, textures=table)
    return dev.get(out, 4 * k, out_dtype).reshape(k, 4)


@pytest.mark.parametrize("linear", [False, True], ids=["point", "linear"])
@pytest.mark.parametrize("normalized", [False, True], ids=["texels", "normalized"])
def test_tex2d_every_address_mode(dev: Device, linear: bool, normalized: bool) -> None:
    rng = np.random.default_rng(7)
    texels = rng.uniform(-4, 4, (1, 1, 5, 7, 4)).astype(np.float32)
    layout = _layout(dev, texels, "2d", pad=12)
    for mode in MODES:
        s = _sampler(mode, linear, normalized)
        span = (-1.5, 2.5) if normalized else (-9.0, 16.0)
        coords = _coords(rng, N, *span, 2)
        got = _run2d(dev, "tex2d_f", layout, s, coords, np.float32)
        want = _expected([reference(texels, s, [float(x), float(y)], 0, True) for x, y in coords], "f32")
        np.testing.assert_allclose(got, want, rtol=2e-7, atol=2e-6, err_msg=f"{mode.name}")


def test_mirror_and_wrap_act_on_the_coordinate(dev90: Device) -> None:
    """The guide's wrap and mirror replace the normalized coordinate (frac(x), or 1 - frac(x) where
    floor(x) is odd) before it is scaled: 1.25 mirrored on 4 texels is 0.75, texel 3 (mirroring the
    texel index 5 instead would give texel 2)."""
    texels = np.arange(16, dtype=np.float32).reshape(1, 1, 1, 4, 4)
    layout = _layout(dev90, texels, "2d")
    coords = np.array([[1.25, 0.5], [-0.25, 0.5], [2.75, 0.5], [-1.0, 0.5]], dtype=np.float32)
    got = _run2d(dev90, "tex2d_f", layout, _sampler(AddressMode.MIRROR, normalized=True), coords, np.float32)
    np.testing.assert_array_equal(got[:, 0], [12, 4, 12, 12])  # -1.0 mirrors to 1.0: texel 4, mirrored back
    got = _run2d(dev90, "tex2d_f", layout, _sampler(AddressMode.WRAP, normalized=True), coords, np.float32)
    np.testing.assert_array_equal(got[:, 0], [4, 12, 12, 0])


@pytest.mark.parametrize("bits", [8, 16])
def test_normalized_float_reads_and_srgb(dev90: Device, bits: int) -> None:
    rng = np.random.default_rng(bits)
    for dtype, srgb in ((f"u{bits // 8}", False), (f"u{bits // 8}", True), (f"i{bits // 8}", False)):
        info = np.iinfo(np.dtype(dtype))
        texels = rng.integers(info.min, info.max, (1, 1, 4, 6, 4), endpoint=True).astype(dtype)
        layout = _layout(dev90, texels, "2d")
        s = _sampler(AddressMode.WRAP, linear=True, normalized=True, read_float=True, srgb=srgb)
        coords = _coords(rng, N, -0.5, 1.5, 2)
        got = _run2d(dev90, "tex2d_f", layout, s, coords, np.float32)
        want = _expected([reference(texels, s, [float(x), float(y)], 0, True) for x, y in coords], "f32")
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=f"{dtype} srgb={srgb}")


def test_integer_element_reads(dev90: Device) -> None:
    rng = np.random.default_rng(3)
    for dtype, kernel, out in (("u1", "tex2d_u", "u32"), ("i2", "tex2d_i", "s32"), ("u4", "tex2d_u", "u32")):
        info = np.iinfo(np.dtype(dtype))
        texels = rng.integers(info.min, info.max, (1, 1, 3, 5, 2), endpoint=True).astype(dtype)
        layout = _layout(dev90, texels, "2d")
        s = _sampler(AddressMode.BORDER)
        coords = _coords(rng, N, -3, 8, 2)
        got = _run2d(dev90, kernel, layout, s, coords, np.uint32 if out == "u32" else np.int32)
        want = _expected([reference(texels, s, [float(x), float(y)], 0, False) for x, y in coords], out)
        np.testing.assert_array_equal(got, want)


def test_half_texture_one_channel(dev90: Device) -> None:
    rng = np.random.default_rng(5)
    texels = rng.uniform(-2, 2, (1, 1, 6, 6, 1)).astype(np.float16)
    layout = _layout(dev90, texels, "2d")
    s = _sampler(AddressMode.MIRROR, linear=True, normalized=True)
    coords = _coords(rng, N, -1, 2, 2)
    table = Table({9: TextureObject(layout, s)})
    c, out = dev90.put(coords), dev90.zeros(N, np.float32)
    dev90.run("tex2d_scalar", 2, 64, 9, c, out, N, textures=table)
    want = _expected([reference(texels, s, [float(x), float(y)], 0, True) for x, y in coords], "f32")[:, 0]
    np.testing.assert_allclose(dev90.get(out, N, np.float32), want, rtol=2e-7, atol=1e-6)


def test_tex1dfetch_linear_memory(dev: Device) -> None:
    """tex1Dfetch: the element itself, 0 outside the resource (no address mode)."""
    rng = np.random.default_rng(11)
    width = 40
    index = rng.integers(-10, width + 10, N).astype(np.int32)
    index[:3] = (-(1 << 31), (1 << 31) - 1, width)
    x = dev.put(index)
    for kernel, dtype in (("fetch1d_f", np.float32), ("fetch1d_i", np.int32), ("fetch1d_u", np.uint32)):
        values = rng.integers(-1000, 1000, (1, 1, 1, width, 4)).astype(dtype)
        if dtype == np.float32:
            values = rng.uniform(-5, 5, (1, 1, 1, width, 4)).astype(np.float32)
        layout = _layout(dev, values, "1d")
        table = Table({77: TextureObject(layout, _sampler())})
        out = dev.zeros(4 * N, dtype)
        dev.run(kernel, 2, 64, 77, x, out, N, textures=table)
        want = np.zeros((N, 4), dtype=dtype)
        inside = (index >= 0) & (index < width)
        want[inside] = values[0, 0, 0, index[inside]]
        np.testing.assert_array_equal(dev.get(out, 4 * N, dtype).reshape(N, 4), want)


def test_tex1d_linear_wrap(dev90: Device) -> None:
    rng = np.random.default_rng(2)
    texels = rng.uniform(-1, 1, (1, 1, 1, 9, 4)).astype(np.float32)
    layout = _layout(dev90, texels, "1d")
    s = _sampler(AddressMode.WRAP, linear=True, normalized=True)
    coords = rng.uniform(-3, 3, N).astype(np.float32)
    table = Table({5: TextureObject(layout, s)})
    c, out = dev90.put(coords), dev90.zeros(4 * N, np.float32)
    dev90.run("tex1d_f", 2, 64, 5, c, out, N, textures=table)
    want = _expected([reference(texels, s, [float(v)], 0, True) for v in coords], "f32")
    np.testing.assert_allclose(dev90.get(out, 4 * N, np.float32).reshape(N, 4), want, rtol=2e-7, atol=1e-6)


def _run4(dev: Device, kernel: str, obj: TextureObject, coords: npt.NDArray[np.float32]) -> npt.NDArray[Any]:
    table = Table({0x1234_5678_9ABC: obj})
    k = coords.shape[0]
    c, out = dev.put(coords), dev.zeros(4 * k, np.float32)
    dev.run(kernel, (k + 63) // 64, 64, 0x1234_5678_9ABC, c, out, k, textures=table)
    return dev.get(out, 4 * k, np.float32).reshape(k, 4)


def test_tex3d_trilinear(dev: Device) -> None:
    rng = np.random.default_rng(13)
    texels = rng.uniform(-1, 1, (1, 4, 3, 5, 4)).astype(np.float32)
    layout = _layout(dev, texels, "3d", pad=16)
    for mode in (AddressMode.WRAP, AddressMode.BORDER):
        s = _sampler(mode, linear=True, normalized=True)
        coords = np.zeros((N, 4), dtype=np.float32)
        coords[:, :3] = _coords(rng, N, -0.6, 1.6, 3)
        got = _run4(dev, "tex3d_f", TextureObject(layout, s), coords)
        want = _expected([reference(texels, s, [float(v) for v in c[:3]], 0, True) for c in coords], "f32")
        np.testing.assert_allclose(got, want, rtol=2e-7, atol=1e-6, err_msg=mode.name)


def test_layered(dev90: Device) -> None:
    """Layer indices clamp to the layers there are."""
    rng = np.random.default_rng(17)
    texels = rng.uniform(-1, 1, (3, 1, 4, 6, 4)).astype(np.float32)
    s = _sampler(AddressMode.CLAMP, linear=True)
    coords = np.zeros((N, 4), dtype=np.float32)
    coords[:, :2] = _coords(rng, N, -2, 8, 2)
    coords[:, 3] = rng.integers(-2, 5, N)
    layout2 = _layout(dev90, texels, "2d_layered")
    got = _run4(dev90, "tex2dlayered_f", TextureObject(layout2, s), coords)
    layer = np.clip(coords[:, 3].astype(int), 0, 2)
    want = _expected(
        [
            reference(texels, s, [float(c[0]), float(c[1])], int(li), True)
            for c, li in zip(coords, layer, strict=True)
        ],
        "f32",
    )
    np.testing.assert_allclose(got, want, rtol=2e-7, atol=1e-6)
    rows = texels[:, :, :1]  # 1D layered: one row per layer
    layout1 = _layout(dev90, np.ascontiguousarray(rows), "1d_layered")
    got = _run4(dev90, "tex1dlayered_f", TextureObject(layout1, s), coords)
    want = _expected(
        [reference(rows, s, [float(c[0])], int(li), True) for c, li in zip(coords, layer, strict=True)], "f32"
    )
    np.testing.assert_allclose(got, want, rtol=2e-7, atol=1e-6)


def test_cubemaps(dev90: Device) -> None:
    rng = np.random.default_rng(19)
    side = 4
    for kernel, cubes, geometry in (("texcube_f", 1, "cube"), ("texcubelayered_f", 2, "cube_layered")):
        texels = rng.uniform(-1, 1, (6 * cubes, 1, side, side, 4)).astype(np.float32)
        layout = _layout(dev90, texels, geometry)  # type: ignore[arg-type]
        for linear in (False, True):
            s = _sampler(AddressMode.WRAP, linear=linear)
            coords = rng.uniform(-1, 1, (N, 4)).astype(np.float32)
            coords[:, 3] = rng.integers(0, cubes, N)
            got = _run4(dev90, kernel, TextureObject(layout, s), coords)
            want = []
            for c in coords:
                face, u, v = _cube(float(c[0]), float(c[1]), float(c[2]))
                want.append(reference(texels, s, [u, v], 6 * int(c[3]) + face, True, cube=True))
            np.testing.assert_allclose(got, _expected(want, "f32"), rtol=2e-6, atol=2e-6, err_msg=kernel)


def test_lod_and_grad_read_level_zero(dev90: Device) -> None:
    rng = np.random.default_rng(23)
    texels = rng.uniform(-1, 1, (1, 1, 5, 5, 4)).astype(np.float32)
    layout = _layout(dev90, texels, "2d")
    s = _sampler(AddressMode.CLAMP, linear=True, normalized=True)
    coords = rng.uniform(-0.2, 1.2, (N, 4)).astype(np.float32)
    coords[:, 2:] = rng.uniform(0, 4, (N, 2))
    want = _expected([reference(texels, s, [float(c[0]), float(c[1])], 0, True) for c in coords], "f32")
    for kernel in ("tex2dlod_f", "tex2dgrad_f"):
        np.testing.assert_allclose(
            _run4(dev90, kernel, TextureObject(layout, s), coords), want, rtol=2e-7, atol=1e-6
        )


def test_tld4_gathers_the_bilinear_footprint(dev: Device) -> None:
    rng = np.random.default_rng(29)
    texels = rng.uniform(-1, 1, (1, 1, 4, 5, 4)).astype(np.float32)
    layout = _layout(dev, texels, "2d")
    s = _sampler(AddressMode.BORDER)
    coords = _coords(rng, N, -2, 7, 2)
    table = Table({3: TextureObject(layout, s)})
    c, out = dev.put(coords), dev.zeros(16 * N, np.float32)
    dev.run("gather2d", 2, 64, 3, c, out, N, textures=table)
    got = dev.get(out, 16 * N, np.float32).reshape(N, 4, 4)
    for j, (x, y) in enumerate(coords):
        i0, j0 = math.floor(float(x) - 0.5), math.floor(float(y) - 0.5)
        corners = (
            (i0, j0 + 1),
            (i0 + 1, j0 + 1),
            (i0 + 1, j0),
            (i0, j0),
        )  # counter-clockwise from lower left
        for comp in range(4):
            want = [
                texels[0, 0, b, a, comp] if 0 <= a < 5 and 0 <= b < 4 else np.float32(BORDER[comp])
                for a, b in corners
            ]
            np.testing.assert_array_equal(got[j, comp], np.array(want, dtype=np.float32))


def test_queries(dev: Device) -> None:
    texels = np.zeros((3, 1, 6, 10, 2), dtype=np.int16)
    layout = _layout(dev, texels, "2d_layered")
    s = _sampler(
        modes=(AddressMode.WRAP, AddressMode.MIRROR, AddressMode.BORDER), normalized=True, read_float=True
    )
    surface = _layout(dev, np.zeros((1, 5, 4, 7, 4), dtype=np.uint8), "3d")
    table = Table({1: TextureObject(layout, s)}, {2: SurfaceObject(surface)})
    out = dev.zeros(15, np.int32)
    dev.run("query", 1, 1, 1, 2, out, textures=table)
    # width height depth, CL_SNORM_INT16, CL_RG, normalized, nearest, wrap mirror clamp_to_border, one level,
    # 3 layers; the surface: 7 x 4 x 5
    want = [10, 6, 1, 0x10D1, 0x10B2, 1, 0, 0, 1, 4, 1, 3, 7, 4, 5]
    np.testing.assert_array_equal(dev.get(out, 15, np.int32), want)
    flags = dev.zeros(2, np.int32)
    for handle, expect in ((1, [1, 0]), (2, [0, 1]), (3, [0, 0])):
        dev.run("is_texture", 1, 1, handle, flags, textures=table)
        np.testing.assert_array_equal(dev.get(flags, 2, np.int32), expect)


# -- surfaces ----------------------------------------------------------------------------------


def _surface(dev: Device, texels: npt.NDArray[Any], geometry: Geometry, pad: int = 8) -> SurfaceObject:
    return SurfaceObject(_layout(dev, texels, geometry, pad))


def _read(dev: Device, surface: SurfaceObject, like: npt.NDArray[Any]) -> npt.NDArray[Any]:
    lay = surface.layout
    rows = dev.get(lay.base, lay.row_pitch * lay.height * lay.depth * lay.layers, np.uint8)
    rows = rows.reshape(-1, lay.row_pitch)[:, : lay.width * lay.texel_bytes]
    return np.ascontiguousarray(rows).view(like.dtype).reshape(like.shape)


def test_surface_read_write_modes(dev: Device) -> None:
    rng = np.random.default_rng(31)
    w, h = 9, 5
    src_texels = rng.integers(0, 1 << 32, (1, 1, h, w, 1), dtype=np.uint64).astype(np.uint32)
    src, dst = _surface(dev, src_texels, "2d"), _surface(dev, np.zeros_like(src_texels), "2d")
    table = Table(surfaces={10: src, 11: dst})
    xy = np.stack([rng.integers(-3, w + 3, N), rng.integers(-2, h + 2, N)], axis=1).astype(np.int32)
    xy[:5] = ((0, 0), (w - 1, h - 1), (w, 0), (-1, 0), (0, h))
    c, out = dev.put(xy), dev.zeros(N, np.uint32)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    plane = src_texels[0, 0, :, :, 0]
    dev.run("surf2d_copy_u32", 2, 64, 10, 11, c, out, N, textures=table)
    zero_read = np.where(inside, plane[np.clip(xy[:, 1], 0, h - 1), np.clip(xy[:, 0], 0, w - 1)], 0)
    np.testing.assert_array_equal(dev.get(out, N, np.uint32), zero_read)
    written = np.zeros((h, w), dtype=np.uint32)
    written[xy[inside, 1], xy[inside, 0]] = plane[xy[inside, 1], xy[inside, 0]] + 1  # .zero drops the rest
    np.testing.assert_array_equal(_read(dev, dst, src_texels)[0, 0, :, :, 0], written)
    dev.run("surf2d_clamp_u32", 2, 64, 10, c, out, N, textures=table)
    np.testing.assert_array_equal(
        dev.get(out, N, np.uint32), plane[np.clip(xy[:, 1], 0, h - 1), np.clip(xy[:, 0], 0, w - 1)]
    )
    err = dev.fails("surf2d_trap_u32", 2, 64, 10, c, out, N, textures=table)
    assert err.status == CUresult.CUDA_ERROR_ILLEGAL_ADDRESS
    good = dev.put(xy[inside].copy())
    k = int(inside.sum())
    dev.run("surf2d_trap_u32", 1, 128, 10, good, out, k, textures=table)
    np.testing.assert_array_equal(dev.get(out, k, np.uint32), plane[xy[inside, 1], xy[inside, 0]])
    err = dev.fails("surf2d_write_trap", 2, 64, 11, c, N, textures=table)
    assert err.status == CUresult.CUDA_ERROR_ILLEGAL_ADDRESS


def test_surface_geometries(dev: Device) -> None:
    rng = np.random.default_rng(37)
    bytes1 = rng.integers(0, 256, (1, 1, 1, 50, 4)).astype(np.uint8)
    s1 = _surface(dev, bytes1, "1d")
    f3 = rng.uniform(-9, 9, (1, 3, 4, 5, 2)).astype(np.float32)
    s3 = _surface(dev, f3, "3d")
    sh = rng.integers(-3000, 3000, (4, 1, 3, 6, 1)).astype(np.int16)
    s2l = _surface(dev, sh, "2d_layered")
    ll = rng.integers(-(1 << 40), 1 << 40, (3, 1, 1, 7, 1)).astype(np.int64)
    s1l = _surface(dev, ll, "1d_layered")
    f4 = rng.uniform(-9, 9, (1, 1, 3, 4, 4)).astype(np.float32)
    s2 = _surface(dev, f4, "2d")
    table = Table(surfaces={1: s1, 3: s3, 4: s2l, 5: s1l, 6: s2})
    dev.run("surf1d_rw_uchar4", 1, 64, 1, 50, textures=table)
    np.testing.assert_array_equal(_read(dev, s1, bytes1), bytes1[..., ::-1])
    dev.run("surf3d_rw_float2", 3, (5, 4, 1), 3, 5, 4, 3, textures=table)
    z = np.arange(3, dtype=np.float32)[None, :, None, None]
    want3 = np.stack([f3[..., 1] * 2, f3[..., 0] + z], axis=-1)
    np.testing.assert_array_equal(_read(dev, s3, f3), want3)
    dev.run("surf2dlayered_rw_short", 4, (6, 3, 1), 4, 6, 3, 4, textures=table)
    layer = np.arange(4)[:, None, None, None, None]
    np.testing.assert_array_equal(_read(dev, s2l, sh), (sh.astype(np.int64) * 3 - layer).astype(np.int16))
    dev.run("surf1dlayered_rw_ll", 3, 7, 5, 7, 3, textures=table)
    np.testing.assert_array_equal(_read(dev, s1l, ll), ll * 3 - np.arange(3)[:, None, None, None, None])
    dev.run("surf2d_rw_float4", 3, 4, 6, 4, 3, textures=table)
    want4 = np.stack([f4[..., 3], f4[..., 2], f4[..., 1], f4[..., 0] + 1], axis=-1)
    np.testing.assert_array_equal(_read(dev, s2, f4), want4)


def test_cube_surfaces(dev: Device) -> None:
    """surfCubemap*read/write compile to suld/sust .a2d with the face (layer * 6 + face) as the layer."""
    rng = np.random.default_rng(47)
    side = 5
    for cubes, geometry in ((1, "cube"), (2, "cube_layered")):
        texels = rng.uniform(-9, 9, (6 * cubes, 1, side, side, 1)).astype(np.float32)
        surface = _surface(dev, texels, geometry)  # type: ignore[arg-type]
        dev.run(
            "surfcube_rw_float",
            6 * cubes,
            (side, side, 1),
            1,
            side,
            cubes,
            textures=Table(surfaces={1: surface}),
        )
        face = (np.arange(6 * cubes) % 6).astype(np.float32)[:, None, None, None, None]
        np.testing.assert_array_equal(_read(dev, surface, texels), texels * 2 + face)


def test_formatted_store(dev90: Device) -> None:
    """sust.p converts the 32-bit components to the surface's format: floats to half, integers
    saturated to the channel."""
    rng = np.random.default_rng(41)
    w, h = 4, 3
    values = rng.uniform(-60000, 60000, (h, w, 4)).astype(np.float32)
    half = _surface(dev90, np.zeros((1, 1, h, w, 2), dtype=np.float16), "2d")
    table = Table(surfaces={8: half})
    v = dev90.put(values)
    dev90.run("sustp_2d", h, w, 8, v, w, h, textures=table)
    got = _read(dev90, half, np.zeros((1, 1, h, w, 2), dtype=np.float16))
    np.testing.assert_array_equal(got[0, 0], values[..., :2].astype(np.float16))
    ints = rng.integers(-300, 300, (h, w, 4)).astype(np.int32)
    small = _surface(dev90, np.zeros((1, 1, h, w, 4), dtype=np.int8), "2d")
    table = Table(surfaces={8: small})
    dev90.run("sustp_2d", h, w, 8, dev90.put(ints), w, h, textures=table)
    got8 = _read(dev90, small, np.zeros((1, 1, h, w, 4), dtype=np.int8))
    np.testing.assert_array_equal(got8[0, 0], np.clip(ints, -128, 127).astype(np.int8))


_PER_LANE = """
.version 8.0
.target sm_90
.address_size 64
.visible .entry per_lane(.param .u64 handles, .param .u64 out)
{
    .reg .pred %p<2>;
    .reg .b32 %r<8>;
    .reg .b64 %rd<8>;
    ld.param.u64 %rd1, [handles];
    ld.param.u64 %rd2, [out];
    mov.u32 %r1, %tid.x;
    mul.wide.u32 %rd3, %r1, 8;
    add.s64 %rd4, %rd1, %rd3;
    ld.global.u64 %rd5, [%rd4];
    mul.wide.u32 %rd6, %r1, 4;
    add.s64 %rd7, %rd2, %rd6;
    and.b32 %r2, %r1, 3;
    setp.ne.u32 %p1, %r2, 3;
    @%p1 tex.1d.v4.s32.s32 {%r3, %r4, %r5, %r6}, [%rd5, {%r1}];
    @%p1 st.global.u32 [%rd7], %r3;
    ret;
}
"""


def test_lanes_with_different_handles() -> None:
    """Each lane names its own texture (three of them, in any order); a quarter of the lanes are
    inactive and neither fetch nor store."""
    dev = ptx_device(_PER_LANE)
    tables = {}
    for j, width in enumerate((64, 70, 80)):
        values = (np.arange(width, dtype=np.int32) + 1000 * (j + 1)).reshape(1, 1, 1, width, 1)
        tables[100 + j] = TextureObject(_layout(dev, values, "1d"), _sampler())
    handles = np.random.default_rng(53).integers(100, 103, 64).astype(np.uint64)
    out = dev.put(np.full(64, -1, np.int32))
    dev.run("per_lane", 1, 64, dev.put(handles), out, textures=Table(tables))
    lane = np.arange(64)
    want = np.where(lane % 4 != 3, lane + 1000 * (handles.astype(np.int64) - 99), -1)
    np.testing.assert_array_equal(dev.get(out, 64, np.int32), want)


# -- hostile kernels ---------------------------------------------------------------------------


def test_unknown_handle_faults(dev90: Device) -> None:
    texels = np.ones((1, 1, 2, 2, 4), dtype=np.float32)
    layout = _layout(dev90, texels, "2d")
    table = Table({1: TextureObject(layout, _sampler())}, {2: SurfaceObject(layout)})
    c, out = dev90.put(np.zeros((4, 2), np.float32)), dev90.zeros(16, np.float32)
    for tables, handle in ((table, 0xDEAD), (table, 2), (None, 1)):  # no such object, a surface, no table
        err = dev90.fails("tex2d_f", 1, 4, handle, c, out, 4, textures=tables)
        assert err.status == CUresult.CUDA_ERROR_ILLEGAL_ADDRESS and err.sticky
    xy = dev90.put(np.zeros((4, 2), np.int32))
    err = dev90.fails("surf2d_trap_u32", 1, 4, 1, xy, out, 4, textures=table)  # a texture as a surface
    assert err.status == CUresult.CUDA_ERROR_ILLEGAL_ADDRESS
    err = dev90.fails("query", 1, 1, 7, 2, out, textures=table)
    assert err.status == CUresult.CUDA_ERROR_ILLEGAL_ADDRESS


def test_texels_in_freed_memory_fault(dev90: Device) -> None:
    texels = np.ones((1, 1, 8, 8, 4), dtype=np.float32)
    layout = _layout(dev90, texels, "2d")
    dev90.memory.free(layout.base)
    table = Table({1: TextureObject(layout, _sampler(linear=True))}, {2: SurfaceObject(layout)})
    c, out = dev90.put(np.full((4, 2), 3.0, np.float32)), dev90.zeros(16, np.float32)
    err = dev90.fails("tex2d_f", 1, 4, 1, c, out, 4, textures=table)
    assert err.status == CUresult.CUDA_ERROR_ILLEGAL_ADDRESS
    err = dev90.fails("surf2d_rw_float4", 1, 4, 2, 4, 1, textures=table)
    assert err.status == CUresult.CUDA_ERROR_ILLEGAL_ADDRESS
    # a layout reaching past its allocation: the texels beyond it are no one's
    short = _layout(dev90, np.ones((1, 1, 1, 2, 4), dtype=np.float32), "2d")
    tall = TexelLayout(
        short.base,
        "2d",
        2,
        1 << 20,
        1,
        1,
        short.row_pitch,
        short.row_pitch << 20,
        short.row_pitch << 20,
        4,
        32,
        "float",
    )
    c = dev90.put(np.array([[0.5, 1e6]] * 4, np.float32))
    err = dev90.fails("tex2d_f", 1, 4, 1, c, out, 4, textures=Table({1: TextureObject(tall, _sampler())}))
    assert err.status == CUresult.CUDA_ERROR_ILLEGAL_ADDRESS


@pytest.mark.parametrize("linear", [False, True], ids=["point", "linear"])
def test_huge_and_nan_coordinates(dev90: Device, linear: bool) -> None:
    """Far, infinite and NaN coordinates stay inside the texture (NaN reads as 0) under every mode."""
    texels = np.random.default_rng(43).uniform(-1, 1, (1, 1, 3, 4, 4)).astype(np.float32)
    layout = _layout(dev90, texels, "2d")
    specials = [np.nan, np.inf, -np.inf, 3e38, -3e38, 1e10, -1e10, 2.0**31, 0.5]
    coords = np.array([(a, b) for a in specials for b in specials], dtype=np.float32)
    for mode in MODES:
        for normalized in (False, True):
            s = _sampler(mode, linear, normalized)
            got = _run2d(dev90, "tex2d_f", layout, s, coords, np.float32)
            want = _expected([reference(texels, s, [float(x), float(y)], 0, True) for x, y in coords], "f32")
            np.testing.assert_allclose(got, want, rtol=2e-7, atol=1e-6, err_msg=f"{mode.name} {normalized}")


_SPECIALS = np.array([np.nan, np.inf, -np.inf, 3e38, -3e38, 1e10, -1e10, 2.0**31, -0.0, 0.5], np.float32)
_FORMATS = [("float", 32), ("signed", 8), ("signed", 16), ("signed", 32), ("unsigned", 8), ("unsigned", 16),
            ("unsigned", 32)]  # fmt: skip


def _random_texture(
    rng: np.random.Generator, mem: DeviceMemory
) -> tuple[TexelLayout, npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """A random resource (1 to 3 dimensions, maybe layered, any format, padded rows), random bytes
    in it, and lanes' coordinates (some special) and layers (some outside)."""
    dims = int(rng.integers(1, 4))
    kind, bits = _FORMATS[int(rng.integers(len(_FORMATS)))]
    channels = int(rng.choice([1, 2, 4]))
    sizes = [int(rng.integers(1, 9)) if a < dims else 1 for a in range(3)]
    layers = int(rng.integers(1, 4)) if dims < 3 else 1
    tb = channels * bits // 8
    row = tb * (sizes[0] + int(rng.integers(0, 3)))
    slice_, layer_pitch = row * sizes[1], row * sizes[1] * sizes[2]
    nbytes = layer_pitch * layers
    base = mem.alloc(nbytes)
    raw = rng.integers(0, 256, nbytes, dtype=np.uint8)
    if kind == "float":  # finite floats, a few NaN and infinite texels
        floats = raw.view(np.float32)
        floats[:] = rng.uniform(-4, 4, floats.size)
        floats[rng.random(floats.size) < 0.05] = rng.choice([np.nan, np.inf, -np.inf])
    mem.write(base, raw)
    geometry: Geometry = (("1d", "2d", "3d") if layers == 1 else ("1d_layered", "2d_layered", "3d"))[dims - 1]
    w, h, d = sizes
    layout = TexelLayout(base, geometry, w, h, d, layers, row, slice_, layer_pitch, channels, bits, kind)  # type: ignore[arg-type]
    k = 512
    scale = max(sizes) * 1.5
    coords = rng.uniform(-scale, scale, (dims, k)).astype(np.float32)
    coords[:, : k // 2] /= np.float32(max(sizes))  # normalized-sized ones too
    special = rng.random((dims, k)) < 0.1
    coords[special] = rng.choice(_SPECIALS, int(special.sum()))
    return layout, coords, rng.integers(-1, layers + 1, k).astype(np.int64)


def _c_form_only(sampler_form: str) -> None:
    if sampler_form != "c":
        pytest.skip("the test sets the forms itself")


def test_c_sampler_is_the_numpy_form_bitwise(sampler_form: str) -> None:
    """native/ptxtex.c against _texture_sample's NumPy form, result bit for bit, over random
    resources, formats, samplers (every mode, point/linear, normalized or not, read modes, border)
    and lanes (NaN, infinite and far coordinates, layers outside)."""
    _c_form_only(sampler_form)
    rng = np.random.default_rng(7)
    mem = DeviceMemory(1 << 26)
    served = 0
    for _ in range(300):
        layout, coords, layer = _random_texture(rng, mem)
        modes = tuple(MODES[int(i)] for i in rng.integers(0, 4, 3))
        border = tuple(float(v) for v in rng.uniform(-2, 2, 4))
        s = Sampler(modes, bool(rng.integers(2)), bool(rng.integers(2)), bool(rng.integers(2)), False, border)  # type: ignore[arg-type]
        layer = np.clip(layer, 0, layout.layers - 1)  # as _isa_texture does before sampling
        lanes = list(coords)
        if rng.random() < 0.25:  # a uniform coordinate: a broadcast view of one value
            lanes[0] = np.broadcast_to(lanes[0][0], lanes[0].shape)
        for as_float in (True, False):
            args = (mem, layout, s, lanes, layer, as_float)
            got = sample(*args)
            native = _texture_fast._native
            try:
                _texture_fast._native = None
                with np.errstate(all="ignore"):  # as a batch runs: far coordinates overflow to inf
                    want = sample(*args)
            finally:
                _texture_fast._native = native
            same = got.shape == want.shape and got.view(np.uint64).tobytes() == want.view(np.uint64).tobytes()
            assert same, (layout, s, as_float)
            served += 1
    assert served == 600


def test_c_sampler_hands_a_layer_outside_the_resource_back(sampler_form: str) -> None:
    """A layer past the resource (a cube face of a cube-layered layout of 4 layers, as a fuzzed table
    makes) is the NumPy form's to decide: the C does not clamp it to another texel's layer."""
    _c_form_only(sampler_form)
    mem = DeviceMemory(1 << 20)
    texels = np.arange(4 * 2 * 2, dtype=np.float32)
    base = mem.alloc(texels.nbytes + 64)
    mem.write(base, texels.view(np.uint8))
    layout = TexelLayout(base, "cube_layered", 2, 2, 1, 4, 8, 16, 16, 1, 32, "float")
    lanes: list[Floats] = [np.full(3, 0.5, np.float32), np.full(3, 0.5, np.float32)]
    layer = np.array([0, 3, 5], np.int64)  # 5: past the 4 layers, inside the VM's memory
    got = sample(mem, layout, _sampler(), lanes, layer, True)
    native = _texture_fast._native
    try:
        _texture_fast._native = None
        want = sample(mem, layout, _sampler(), lanes, layer, True)
    finally:
        _texture_fast._native = native
    assert got.view(np.uint64).tobytes() == want.view(np.uint64).tobytes()
    assert got[1, 0] == texels[12]


def test_c_sampler_refuses_a_span_short_of_the_resource(sampler_form: str) -> None:
    """The C form checks the resource's extent against the span it is given: a span one byte short
    is refused before anything is read, whatever the caller passed."""
    _c_form_only(sampler_form)
    mem = DeviceMemory(1 << 20)
    layout = TexelLayout(mem.alloc(64), "2d", 4, 4, 1, 1, 16, 64, 64, 1, 32, "float")
    config = _texture_fast._config(layout, _sampler(), True, False, (AddressMode.CLAMP,) * 2)
    native = _texture_fast._native
    assert config is not None and native is not None
    x = np.zeros(4, np.float32)
    out = np.empty((4, 1))
    with pytest.raises(ValueError, match="smaller than the resource"):
        native.sample(np.zeros(63, np.uint8), out, x, x, None, None, config)
    tall = (*config[:2], 1 << 40, *config[3:])  # 2^40 rows of 16 bytes: far past the span
    far = (*config[:6], 1 << 62, *config[7:])  # rows 2^62 bytes apart: the extent overflows
    for bad in (tall, far):
        with pytest.raises(ValueError, match="smaller than the resource"):
            native.sample(np.zeros(64, np.uint8), out, x, x, None, None, bad)
    assert native.sample(np.zeros(64, np.uint8), out, x, x, None, None, config) is None


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("tex.2d.v4.f32.f32 {%f2, %f3, %f4, %f5}, [out, {%f1, %f1}];", "texref"),  # a texture by name
        ("tld4.r.3d.v4.f32.f32 {%f2, %f3, %f4, %f5}, [%rd1, {%f1, %f1, %f1, %f1}];", "tld4.3d"),
        ("tex.2d.v2.f32.f32 {%f2, %f3}, [%rd1, {%f1, %f1}];", "v4"),
        ("suld.b.2d.b32.trap {%f2}, [%rd1, {%f1}];", "coordinates"),
        ("txq.lod_bias.b32 %r1, [%rd1];", "txq"),
    ],
)
def test_unsupported_forms_are_refused(line: str, named: str) -> None:
    """What the engine does not serve answers NOT_SUPPORTED at the launch, naming the form."""
    text = f"""
.version 8.0
.target sm_90
.address_size 64
.visible .entry k(.param .u64 out)
{{
    .reg .f32 %f<8>;
    .reg .b32 %r<2>;
    .reg .b64 %rd<2>;
    ld.param.u64 %rd1, [out];
    mov.f32 %f1, 0f00000000;
    {line}
    ret;
}}
"""
    dev = Device(LoadedModule(text))
    with pytest.raises(CudaError) as err:
        dev.run("k", 1, 1, 0)
    assert err.value.status == CUresult.CUDA_ERROR_NOT_SUPPORTED
    assert named in err.value.message
