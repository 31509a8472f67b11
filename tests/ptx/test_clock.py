"""%clock and %clock64 count cycles at the clock rate the device reports, so a kernel that waits a number
of cycles (NVIDIA's simpleHyperQ and clock samples: cycles = milliseconds x cudaDevAttrClockRate) waits
as long as on a GPU — not as many instructions."""

from __future__ import annotations

import time

import numpy as np

from executor._base import DeviceConfig
from executor._sim_device import device_attributes
from executor.ptx._compiler import CLOCK_KHZ

from .conftest import ptx_device

CU_DEVICE_ATTRIBUTE_CLOCK_RATE = 13

SPIN = """
.version 8.0
.target sm_80
.address_size 64
.visible .entry spin(.param .u64 out, .param .u64 cycles) {
    .reg .pred %p<2>; .reg .b64 %rd<8>;
    ld.param.u64 %rd1, [out];
    ld.param.u64 %rd2, [cycles];
    cvta.to.global.u64 %rd1, %rd1;
    mov.u64 %rd3, %clock64;
$L_spin:
    mov.u64 %rd4, %clock64;
    sub.s64 %rd5, %rd4, %rd3;
    setp.lt.u64 %p1, %rd5, %rd2;
    @%p1 bra $L_spin;
    st.global.u64 [%rd1], %rd5;
    ret;
}
"""


def test_the_clock_counts_at_the_reported_clock_rate() -> None:
    assert device_attributes(DeviceConfig())[CU_DEVICE_ATTRIBUTE_CLOCK_RATE] == CLOCK_KHZ
    dev = ptx_device(SPIN)
    out = dev.zeros(1, np.uint64)
    cycles = 20 * CLOCK_KHZ  # 20 ms
    start = time.monotonic()
    dev.run("spin", 1, 1, out, cycles)
    elapsed = time.monotonic() - start
    waited = int(dev.get(out, 1, np.uint64)[0])
    assert waited >= cycles
    assert elapsed >= 0.02  # the kernel's 20 ms of cycles took at least 20 ms of the host's time
