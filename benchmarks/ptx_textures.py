"""Texture fetches per second of the PTX engine, beside a NumPy floor doing the same fetches.

    python -m benchmarks.ptx_textures                 # 64 Ki lanes on a 512x512 float4 texture, best of 3
    python -m benchmarks.ptx_textures --lanes 262144 --repeat 5
    python -m benchmarks.ptx_textures --convolution /tmp/cuda-samples --rows 192   # also NVIDIA's kernel
    python -m benchmarks.ptx_textures --pitch-linear /tmp/cuda-samples            # and another

The kernel is ``tex2d_f`` of ``tests/kernels/ptx_texture.cu`` (nvcc 13, compute_90): each thread loads
its coordinates, fetches ``tex2D<float4>`` and stores the texel — a texture instruction among 16 others.
The floor is the same fetch written as one vectorized NumPy expression over a host array (point: one
fancy-index gather; linear: four gathers blended with the 8-bit weights). Times are the least CPU time of
the repeats; results are checked against the floor's. Then the sampler alone (``_texture_sample.sample``
over ``--fetch-lanes`` lanes, a batch's fetch) beside the same floor, per fetch, for textures of one
and four float channels.

``--convolution CHECKOUT`` also runs ``convolutionRowsKernel`` of NVIDIA's convolutionTexture sample
(compiled from the checkout with nvcc 13 to compute_90 PTX) over a 3072-texel-wide float texture of
``--rows`` rows (the sample's is 1,536: 17 bilinear fetches per thread, wrap addressing), beside a NumPy
floor doing its arithmetic (17 shifted multiply-adds over the edge-clamped rows).

``--pitch-linear CHECKOUT`` runs ``shiftPitchLinear`` of NVIDIA's simplePitchLinearTexture sample (its
2048 x 2048 launch: one point fetch a thread, normalized coordinates, wrap addressing, of a pitch-linear
float texture) beside ``numpy.roll``, the same shift; the sample makes 100 such launches and 100 of its
CUDA-array twin.

The fetches run in C where ``executor.ptx._texfast`` is built (``native/ptxtex.c``); ``VGPU_PURE_PYTHON=1``
measures the NumPy form.
"""

from __future__ import annotations

import argparse
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import numpy.typing as npt

from executor._kernels import LaunchDims
from executor._sim_memory import DeviceMemory
from executor.ptx import LoadedModule, launch
from executor.ptx._texture_objects import AddressMode, Sampler, SurfaceObject, TexelLayout, TextureObject
from executor.ptx._texture_sample import Floats, sample

PTX = Path(__file__).resolve().parents[1] / "tests" / "kernels" / "ptx_texture.compute_90.ptx"
SIDE = 512
HANDLE = 1
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class _One:
    """A table of one texture object."""

    texture_object: TextureObject

    def texture(self, handle: int) -> TextureObject | None:
        return self.texture_object if handle == HANDLE else None

    def surface(self, handle: int) -> SurfaceObject | None:
        return None


def _best(repeat: int, fn: Callable[[], object]) -> float:
    """The least CPU time of ``repeat`` runs (both sides are single-threaded; on the shared machine
    wall time measures the neighbours as much as the code)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def _floor(image: F32, coords: F32, linear: bool) -> F32:
    x, y = coords[:, 0].astype(np.float64), coords[:, 1].astype(np.float64)
    top = SIDE - 1
    if not linear:
        got: F32 = image[
            np.clip(np.floor(y), 0, top).astype(np.intp), np.clip(np.floor(x), 0, top).astype(np.intp)
        ]
        return got
    xb, yb = x - 0.5, y - 0.5
    i, j = np.floor(xb), np.floor(yb)
    a, b = (np.round((xb - i) * 256) / 256)[:, None], (np.round((yb - j) * 256) / 256)[:, None]
    i0, i1 = np.clip(i, 0, top).astype(np.intp), np.clip(i + 1, 0, top).astype(np.intp)
    j0, j1 = np.clip(j, 0, top).astype(np.intp), np.clip(j + 1, 0, top).astype(np.intp)
    blend = (1 - a) * (1 - b) * image[j0, i0] + a * (1 - b) * image[j0, i1]
    blend += (1 - a) * b * image[j1, i0] + a * b * image[j1, i1]
    out: F32 = blend.astype(np.float32)
    return out


def run(lanes: int, repeat: int) -> list[str]:
    module = LoadedModule(PTX.read_text())
    mem = DeviceMemory(1 << 32)
    rng = np.random.default_rng(0)
    image = rng.uniform(-1, 1, (SIDE, SIDE, 4)).astype(np.float32)
    base = mem.alloc(image.nbytes)
    mem.write(base, image.view(np.uint8).reshape(-1))
    row = SIDE * 16
    layout = TexelLayout(base, "2d", SIDE, SIDE, 1, 1, row, row * SIDE, row * SIDE, 4, 32, "float")
    coords = rng.uniform(-4, SIDE + 4, (lanes, 2)).astype(np.float32)
    pc = mem.alloc(coords.nbytes)
    mem.write(pc, coords.view(np.uint8).reshape(-1))
    out = mem.alloc(16 * lanes)
    params = struct.pack("<QQQi4x", HANDLE, pc, out, lanes)
    dims = LaunchDims(((lanes + 255) // 256, 1, 1), (256, 1, 1))
    lines = []
    for linear in (False, True):
        modes = (AddressMode.CLAMP,) * 3
        table = _One(TextureObject(layout, Sampler(modes, linear, False, False, False, (0.0,) * 4)))
        seconds = _best(repeat, partial(launch, module, "tex2d_f", mem, dims, params, {}, textures=table))
        floor = _best(repeat, partial(_floor, image, coords, linear))
        got = mem.read(out, 16 * lanes).view(np.float32).reshape(lanes, 4)
        assert np.allclose(got, _floor(image, coords, linear), rtol=1e-6, atol=1e-6)
        kind = "linear" if linear else "point"
        lines.append(
            f"tex2D<float4> {kind:6s}: {lanes} lanes  engine {seconds * 1e3:7.1f} ms "
            f"({lanes / seconds / 1e6:5.2f} M fetches/s)  NumPy floor {floor * 1e3:6.1f} ms "
            f"({lanes / floor / 1e6:5.2f} M/s): the engine takes {seconds / floor:.1f}x"
        )
    return lines


def fetches(lanes: int, repeat: int) -> list[str]:
    """The sampler alone (``_texture_sample.sample``: one fetch of ``lanes`` lanes, as a ``tex`` of a
    batch calls it) beside the NumPy floor of the same sampling, on a 512 x 512 float texture of one
    and of four channels, point and bilinear (clamp, unnormalized coordinates)."""
    rng = np.random.default_rng(1)
    mem = DeviceMemory(1 << 32)
    coords = rng.uniform(-4, SIDE + 4, (lanes, 2)).astype(np.float32)
    xs: list[Floats] = [np.ascontiguousarray(coords[:, 0]), np.ascontiguousarray(coords[:, 1])]
    layer = np.zeros(lanes, np.int64)
    lines = []
    for channels in (1, 4):
        image = rng.uniform(-1, 1, (SIDE, SIDE, channels)).astype(np.float32)
        base = mem.alloc(image.nbytes)
        mem.write(base, image.view(np.uint8).reshape(-1))
        row = SIDE * 4 * channels
        layout = TexelLayout(base, "2d", SIDE, SIDE, 1, 1, row, row * SIDE, row * SIDE, channels, 32, "float")
        for linear in (False, True):
            sampler = Sampler((AddressMode.CLAMP,) * 3, linear, False, False, False, (0.0,) * 4)
            fetch = partial(sample, mem, layout, sampler, xs, layer, True, full=False)
            seconds = _best(repeat, fetch)
            floor = _best(repeat, partial(_floor, image, coords, linear))
            assert np.allclose(fetch(), _floor(image, coords, linear), rtol=1e-6, atol=1e-6)
            kind = "bilinear" if linear else "point"
            lines.append(
                f"sample(): {channels}-channel float {kind:8s} {lanes} lanes  {seconds * 1e6:7.1f} us "
                f"({seconds / lanes * 1e9:5.1f} ns a fetch)  NumPy floor {floor * 1e6:7.1f} us "
                f"({floor / lanes * 1e9:5.1f} ns): {seconds / floor:.2f}x"
            )
    return lines


NVCC = "/usr/local/bin/nvcc"
CONV_WIDTH = 3072
CONV_RADIUS = 8


def convolution(checkout: Path, rows: int, repeat: int) -> str:
    """convolutionTexture's row kernel on the engine beside a NumPy floor (see the module's doc)."""
    source = (
        checkout / "Samples" / "2_Concepts_and_Techniques" / "convolutionTexture" / "convolutionTexture.cu"
    )
    module = _ptx(source, checkout)
    width, mem = CONV_WIDTH, DeviceMemory(1 << 32)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 16, (rows, width)).astype(np.float32)  # the sample's: whole numbers below 16
    weights = rng.random(2 * CONV_RADIUS + 1).astype(np.float32)
    base, kernel, out = mem.alloc(image.nbytes), mem.alloc(weights.nbytes), mem.alloc(image.nbytes)
    mem.write(base, image.view(np.uint8).reshape(-1))
    mem.write(kernel, weights.view(np.uint8))
    row = width * 4
    layout = TexelLayout(base, "2d", width, rows, 1, 1, row, row * rows, row * rows, 1, 32, "float")
    sampler = Sampler((AddressMode.WRAP,) * 3, True, False, False, False, (0.0,) * 4)
    table = _One(TextureObject(layout, sampler))
    params = struct.pack("<QiiQ", out, width, rows, HANDLE)
    dims = LaunchDims(((width + 15) // 16, (rows + 11) // 12, 1), (16, 12, 1))  # the sample's blocks
    name = "_Z21convolutionRowsKernelPfiiy"
    seconds = _best(
        repeat, partial(launch, module, name, mem, dims, params, {"c_Kernel": kernel}, textures=table)
    )

    def floor() -> F32:
        # texel centres: each fetch is one texel (weight 0), edges clamped (wrap needs normalized coordinates)
        padded = np.pad(image, ((0, 0), (CONV_RADIUS, CONV_RADIUS)), mode="edge")
        total = np.zeros_like(image)
        for k in range(-CONV_RADIUS, CONV_RADIUS + 1):
            total += padded[:, CONV_RADIUS + k : CONV_RADIUS + k + width] * weights[CONV_RADIUS - k]
        return total

    floor_s = _best(repeat, floor)
    got = mem.read(out, image.nbytes).view(np.float32).reshape(rows, width)
    assert np.allclose(got, floor(), rtol=1e-5, atol=1e-4)
    threads = width * rows
    return (
        f"convolutionRowsKernel: 3072 x {rows} ({threads} threads, 17 fetches each)  engine {seconds:6.2f} s "
        f"({seconds / threads * 1e6 * 1e3:6.0f} ns a thread)  NumPy floor {floor_s * 1e3:6.1f} ms: "
        f"the engine takes {seconds / floor_s:.0f}x"
    )


def _ptx(source: Path, checkout: Path) -> LoadedModule:
    """A sample's source compiled by nvcc 13 to compute_90 PTX, loaded."""
    with tempfile.TemporaryDirectory() as tmp:
        ptx = Path(tmp) / "sample.ptx"
        command = [NVCC, "-ptx", "-arch=compute_90", f"-I{checkout / 'Common'}", str(source), "-o", str(ptx)]
        subprocess.run(command, check=True)
        return LoadedModule(ptx.read_text())


PITCH_SIDE = 2048


def pitch_linear(checkout: Path, repeat: int) -> str:
    """simplePitchLinearTexture's shiftPitchLinear on the engine beside numpy.roll (see the module's doc)."""
    source = (
        checkout / "Samples" / "0_Introduction" / "simplePitchLinearTexture" / "simplePitchLinearTexture.cu"
    )
    module = _ptx(source, checkout)
    n, mem = PITCH_SIDE, DeviceMemory(1 << 32)
    image = np.random.default_rng(0).random((n, n)).astype(np.float32)
    base, out = mem.alloc(image.nbytes), mem.alloc(image.nbytes)
    mem.write(base, image.view(np.uint8).reshape(-1))
    layout = TexelLayout(base, "2d", n, n, 1, 1, 4 * n, 4 * n * n, 4 * n * n, 1, 32, "float")
    sampler = Sampler((AddressMode.WRAP,) * 3, False, True, False, False, (0.0,) * 4)
    shift_x, shift_y = 5, 7
    params = struct.pack("<Qiiiii4xQ", out, n, n, n, shift_x, shift_y, HANDLE)
    dims = LaunchDims((n // 16, n // 16, 1), (16, 16, 1))  # the sample's TILE_DIM blocks
    table = _One(TextureObject(layout, sampler))
    name = "_Z16shiftPitchLinearPfiiiiiy"
    seconds = _best(repeat, partial(launch, module, name, mem, dims, params, {}, textures=table))
    floor_s = _best(repeat, partial(np.roll, image, (-shift_y, -shift_x), (0, 1)))
    got = mem.read(out, image.nbytes).view(np.float32).reshape(n, n)
    assert np.array_equal(got, np.roll(image, (-shift_y, -shift_x), (0, 1)))
    threads = n * n
    return (
        f"shiftPitchLinear: {n} x {n} ({threads} threads, 1 fetch each)  engine {seconds:6.3f} s "
        f"({seconds / threads * 1e9:5.1f} ns a thread)  numpy.roll {floor_s * 1e3:6.1f} ms: "
        f"the engine takes {seconds / floor_s:.0f}x; the sample's 200 launches {200 * seconds:5.1f} s"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lanes", type=int, default=1 << 16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--convolution", type=Path, default=None, metavar="CHECKOUT")
    parser.add_argument("--rows", type=int, default=192)
    parser.add_argument(
        "--fetch-lanes", type=int, default=8192, help="lanes of the sampler alone (a batch's)"
    )
    parser.add_argument("--pitch-linear", type=Path, default=None, metavar="CHECKOUT")
    args = parser.parse_args(argv)
    for line in run(args.lanes, args.repeat):
        print(line)
    for line in fetches(args.fetch_lanes, args.repeat * 4):
        print(line)
    if args.convolution is not None:
        print(convolution(args.convolution, args.rows, args.repeat))
    if args.pitch_linear is not None:
        print(pitch_linear(args.pitch_linear, args.repeat))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
