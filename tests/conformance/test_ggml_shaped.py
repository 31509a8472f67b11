"""A GGML-shaped forward pass: a VMM pool, uploaded weights, GemmEx and reference kernels, captured
into a graph and replayed, checked against NumPy.

Shapes are a small transformer block (tokens T, model width D, FFN width F), row-major in device memory
as GGML keeps them; each row-major product ``Y = X @ W`` is the column-major cuBLAS call
``Y^T = W^T X^T``. The pool is reserved once and grown by ``cuMemCreate`` + ``cuMemMap`` as GGML's
``ggml_cuda_pool_vmm`` does, and one weight is placed across the boundary between two chunks.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import numpy.typing as npt

from guest import GuestClient
from protocol import StreamCaptureMode

from ._util import gemm_ex, get_function, launch, load_module, vmm_pool
from .conftest import KERNELS

T, D, F = 16, 64, 256
EPS = 1e-5
F32 = npt.NDArray[np.float32]
KERNEL_NAMES = {
    "rms_norm": "_Z13rms_norm_rowsPKfPfiif", "softmax": "_Z12softmax_rowsPKfPfii",
    "add_bias": "_Z13add_bias_rowsPfPKfii", "silu": "_Z8silu_f32PKfPfi", "add": "_Z10vector_addPKfS0_Pfi",
    "scale": "_Z9scale_f32Pffi",
}


class Pool:
    """A bump allocator over the mapped pool (256-byte aligned, as GGML's)."""

    def __init__(self, base: int, size: int, start: int = 0) -> None:
        self.base, self.size, self.next = base, size, start

    def take(self, nbytes: int) -> int:
        ptr = self.base + self.next
        self.next = -(-(self.next + nbytes) // 256) * 256
        assert self.next <= self.size, "pool exhausted"
        return ptr


def reference(x: F32, w: dict[str, F32]) -> F32:
    h = x / np.sqrt(np.mean(x * x, axis=1, keepdims=True) + EPS)
    q, k, v = h @ w["wq"], h @ w["wk"], h @ w["wv"]
    s = (q @ k.T) / np.sqrt(D)
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    attn = x + (p @ v) @ w["wo"]
    up = attn @ w["w1"] + w["b1"]
    out: F32 = (attn + (up / (1 + np.exp(-up))) @ w["w2"]).astype(np.float32)
    return out


def test_a_transformer_block_captured_into_a_graph_and_replayed(gpu: GuestClient) -> None:
    rng = np.random.default_rng(2024)
    shapes = {"wq": (D, D), "wk": (D, D), "wv": (D, D), "wo": (D, D), "w1": (D, F), "b1": (F,), "w2": (F, D)}
    weights = {name: (rng.standard_normal(shape, dtype=np.float32) / np.sqrt(shape[0])).astype(np.float32)
               for name, shape in shapes.items()}

    base, gran, _ = vmm_pool(gpu, 2, reserve_chunks=4)
    pool = Pool(base, 2 * gran, start=gran - 4096)  # w1 (64 KiB) straddles the two chunks
    dev: dict[str, int] = {}
    for name in ("w1", "wq", "wk", "wv", "wo", "b1", "w2"):
        dev[name] = pool.take(weights[name].nbytes)
        gpu.memcpy_htod(dev[name], weights[name].tobytes())
    assert dev["w1"] < base + gran < dev["w1"] + weights["w1"].nbytes
    act = {name: pool.take(4 * rows * cols) for name, rows, cols in (
        ("x", T, D), ("h", T, D), ("q", T, D), ("k", T, D), ("v", T, D), ("s", T, T), ("p", T, T),
        ("o", T, D), ("proj", T, D), ("attn", T, D), ("up", T, F), ("act", T, F), ("down", T, D),
        ("y", T, D))}

    module = load_module(gpu, (KERNELS / "test_kernels.fatbin").read_bytes())
    fn = {key: get_function(gpu, module, name) for key, name in KERNEL_NAMES.items()}
    stream = gpu.stream_create()
    blas = int(gpu.value("cublas_create", "handle"))
    gpu.checked("cublas_set_stream", gpu.args("cublas_set_stream", handle=blas, stream=stream))

    def matmul(out: str, x: str, w: int, rows: int, inner: int, cols: int) -> None:
        """Row-major out[rows, cols] = x[rows, inner] @ w[inner, cols]."""
        assert gemm_ex(gpu, blas, cols, rows, inner, w, act[x], act[out]) == 0

    def kernel(name: str, grid: int, block: int, fmt: str, *values: Any) -> None:
        assert launch(gpu, fn[name], grid, block, struct.pack(fmt, *values), stream=stream) == 0

    def forward() -> None:
        kernel("rms_norm", T, 64, "<QQiif", act["x"], act["h"], T, D, EPS)
        for name in ("q", "k", "v"):
            matmul(name, "h", dev["w" + name], T, D, D)
        # s = q @ k^T: column-major s^T = k q^T, k read transposed
        assert gemm_ex(gpu, blas, T, T, D, act["k"], act["q"], act["s"], transa=1,
                       alpha=1 / np.sqrt(D)) == 0
        kernel("softmax", T, 32, "<QQii", act["s"], act["p"], T, T)
        # o = p @ v: column-major o^T = v^T p^T
        assert gemm_ex(gpu, blas, D, T, T, act["v"], act["p"], act["o"]) == 0
        matmul("proj", "o", dev["wo"], T, D, D)
        kernel("add", (T * D + 255) // 256, 256, "<QQQi", act["x"], act["proj"], act["attn"], T * D)
        matmul("up", "attn", dev["w1"], T, D, F)
        kernel("add_bias", (T * F + 255) // 256, 256, "<QQii", act["up"], dev["b1"], T, F)
        kernel("silu", (T * F + 255) // 256, 256, "<QQi", act["up"], act["act"], T * F)
        matmul("down", "act", dev["w2"], T, F, D)
        kernel("add", (T * D + 255) // 256, 256, "<QQQi", act["attn"], act["down"], act["y"], T * D)

    def output() -> F32:
        raw = gpu.memcpy_dtoh(act["y"], 4 * T * D, stream=stream)
        return np.frombuffer(raw, dtype=np.float32).reshape(T, D)

    # eager once, to compare the graph against
    x0 = rng.standard_normal((T, D), dtype=np.float32)
    gpu.memcpy_htod(act["x"], x0.tobytes(), stream=stream)
    forward()
    gpu.stream_synchronize(stream)
    eager = output()
    np.testing.assert_allclose(eager, reference(x0, weights), rtol=1e-4, atol=1e-4)

    # capture one forward pass (GGML captures in relaxed mode) and replay it on new inputs
    gpu.checked("stream_begin_capture", gpu.args(
        "stream_begin_capture", stream=stream, mode=StreamCaptureMode.CU_STREAM_CAPTURE_MODE_RELAXED))
    forward()
    graph = gpu.value("stream_end_capture", "graph", gpu.args("stream_end_capture", stream=stream))
    graph_exec = gpu.value("graph_instantiate", "graph_exec",
                           gpu.args("graph_instantiate", graph=graph, flags=0))
    for step in range(3):
        x = rng.standard_normal((T, D), dtype=np.float32) if step else x0
        gpu.memcpy_htod(act["x"], x.tobytes(), stream=stream)
        gpu.checked("graph_launch", gpu.args("graph_launch", graph_exec=graph_exec, stream=stream))
        gpu.stream_synchronize(stream)
        np.testing.assert_allclose(output(), reference(x, weights), rtol=1e-4, atol=1e-4)
        if not step:
            np.testing.assert_array_equal(output(), eager)  # the replay is the same work, bit for bit
