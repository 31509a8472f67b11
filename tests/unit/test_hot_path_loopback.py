"""The guest and the ring server over one region in one process, with the C rings and without them.

The same workload — synchronous calls, a stream of ASYNC memsets, copies that travel in pipelined
chunks both ways — must give the same bytes whichever ring implementation serves it; the pure-Python
run happens in a child process started with ``VGPU_PURE_PYTHON=1``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap

import pytest

from protocol import ACCELERATED

WORKLOAD = textwrap.dedent("""
    import hashlib, sys
    import numpy as np
    from benchmarks._loopback import Loopback
    from protocol import ACCELERATED, CALLS_BY_NAME, SubmitFlags

    with Loopback(region_size=8 << 20) as loop:  # 5 MiB copies: nine pipelined 576 KiB chunks each way
        gpu = loop.guest
        gpu.init()
        for _ in range(50):
            gpu.nop()
        size = 5 << 20
        ptr = gpu.mem_alloc(size)
        data = np.random.default_rng(7).integers(0, 256, size, dtype=np.uint8)
        gpu.memcpy_htod(ptr, data.data)
        spec = CALLS_BY_NAME["memset_d8"]
        for i in range(300):
            gpu.submit(spec, gpu.args("memset_d8", dst=ptr + 4096 * i, value=i % 256, count=100, stream=0),
                       flags=int(SubmitFlags.ASYNC))
            if i % 64 == 63:
                loop.server.drain()
        gpu.ctx_synchronize()
        back = bytearray(size)
        gpu.memcpy_dtoh_into(ptr, memoryview(back))
        assert not gpu.async_errors
        print(ACCELERATED, hashlib.sha256(back).hexdigest(), loop.counters.calls)
""")


def run_workload(pure: bool) -> list[str]:
    env = dict(os.environ, VGPU_PURE_PYTHON="1" if pure else "0")
    out = subprocess.run([sys.executable, "-c", WORKLOAD], env=env, capture_output=True, text=True,
                         timeout=240, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def expected_digest() -> str:
    import numpy as np

    size = 5 << 20
    data = bytearray(np.random.default_rng(7).integers(0, 256, size, dtype=np.uint8).tobytes())
    for i in range(300):
        data[4096 * i:4096 * i + 100] = bytes([i % 256]) * 100
    return hashlib.sha256(data).hexdigest()


@pytest.mark.skipif(not ACCELERATED, reason="protocol._cring is not built here")
def test_c_rings_and_python_rings_serve_the_same_workload_to_the_same_bytes() -> None:
    accelerated, pure = run_workload(pure=False), run_workload(pure=True)
    assert accelerated[0] == "True" and pure[0] == "False"
    assert accelerated[1] == pure[1] == expected_digest()
    assert accelerated[2] == pure[2], "the same number of calls reached the server"
