"""Kernels with a stack: .func calls with parameters and results, local depots in each frame, large
static shared memory (tests/executor/attr_kernels, nvcc 13 PTX for compute_90), and the module cache."""

from __future__ import annotations

import numpy as np

from executor.ptx import CACHED_MODULES, load_module
from executor.ptx._machine import _cache

from .conftest import ATTR_KERNELS, TEST_KERNELS, Device, ptx_device


def _attr() -> Device:
    return ptx_device(ATTR_KERNELS.read_text())


def test_a_call_passes_parameters_and_returns_through_param_space_with_a_frame_each() -> None:
    dev = _attr()
    x = np.arange(64, dtype=np.float32) * np.float32(0.5) + np.float32(3)
    for i in (0, 7, 13):
        px = dev.put(x)
        dev.run("with_stack", 1, 1, px, i)
        b = x[:10]
        a = x[i : i + 40]
        want = x.copy()
        want[1] = b[i % 10] + a[int(x[0]) % 40]
        np.testing.assert_array_equal(dev.get(px, 64, np.float32), want, err_msg=f"i={i}")


def test_launch_bounded_clustered_and_big_shared_kernels() -> None:
    dev = _attr()
    x = dev.zeros(256, np.float32)
    dev.run("bounded", 1, 256, x)
    np.testing.assert_array_equal(dev.get(x, 256, np.float32), 1.0)
    dev.run("clustered", 2, 128, x)  # the cluster shape is the hardware's business: blocks run as usual
    np.testing.assert_array_equal(dev.get(x, 256, np.float32)[:128], 2.0)
    values = np.arange(12288, dtype=np.float32)
    big = dev.put(values)
    dev.run("big_tile", 1, 1024, big)
    got = dev.get(big, 1024, np.float32)
    # thread t wrote tile[t]; it reads tile[12287 - t], which no thread wrote (zero-initialised here)
    np.testing.assert_array_equal(got, 0.0)


def test_parsed_modules_are_cached_and_the_cache_is_bounded() -> None:
    text = TEST_KERNELS.read_text()
    assert load_module(text) is load_module(text)
    for k in range(CACHED_MODULES + 2):
        load_module(text + f"\n// variant {k}\n")
    assert len(_cache) <= CACHED_MODULES
    assert text not in _cache  # the least recently used went first
