"""Device printf (``vprintf``): the corpus kernel's exact output for several threads and formats, the
per-launch bound, and a bad string pointer, which faults like any access; device ``assert``
(``__assertfail``), which prints CUDA's line and ends the launch with ``CUDA_ERROR_ASSERT``."""

from __future__ import annotations

import struct
from collections.abc import Iterator, MutableMapping
from typing import Any

import numpy as np
import pytest
from structlog.testing import capture_logs

from executor._errors import CudaError
from executor._modules import parse_module_image
from executor.ptx import Limits, LoadedModule, _printf
from protocol import CUresult

from .conftest import CORPUS, KERNELS, Device


class PrintingDevice(Device):
    symbols: dict[str, int]


@pytest.fixture(params=sorted(CORPUS), ids=lambda arch: f"compute_{arch}")
def printing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[PrintingDevice]:
    """The corpus with its format strings placed in device memory, and a fresh log rate limit."""
    monkeypatch.setattr(_printf, "_limit", _printf._RateLimit())
    text = CORPUS[request.param].read_text()
    dev = PrintingDevice(LoadedModule(text))
    image = parse_module_image(text.encode())
    dev.symbols = {
        name: dev.put(np.frombuffer(info.initial_bytes(), dtype=np.uint8))
        for name, info in image.globals.items()
        if name.startswith(("$str", "__unnamed"))  # printf's formats, assert's strings
    }
    yield dev


def _launch(
    dev: PrintingDevice, grid: int, block: int, name: int, which: int, limits: Limits | None = None
) -> list[MutableMapping[str, Any]]:
    with capture_logs() as logs:
        try:
            dev.run("printf_formats", grid, block, name, which, symbols=dev.symbols, limits=limits)
        finally:
            events = [e for e in logs if e["event"] == "kernel printf"]
    return events


def _line(t: int) -> str:
    return f"t{t}: {-t * 7:5d}|{t * 255:<4x}|{t * 1.5:08.3f}|{t * 0.25:+e}|gpu|{chr(97 + t)}%"


def test_each_thread_prints_in_thread_order(printing: PrintingDevice) -> None:
    name = printing.put(np.frombuffer(b"gpu\0", dtype=np.uint8))
    (event,) = _launch(printing, 1, 3, name, 0)
    assert event["lines"] == [
        "t0:     0|0   |0000.000|+0.000000e+00|gpu|a%",
        "t1:    -7|ff  |0001.500|+2.500000e-01|gpu|b%",
        "t2:   -14|1fe |0003.000|+5.000000e-01|gpu|c%",
    ]
    assert event["kernel"] == "printf_formats" and event["dropped_bytes"] == 0


def test_length_modifiers_alternate_forms_and_hex_floats(printing: PrintingDevice) -> None:
    name = printing.put(np.frombuffer(b"gpu\0", dtype=np.uint8))
    (event,) = _launch(printing, 1, 1, name, 1)
    assert event["lines"] == [
        "-1234567890123 18446744073709551615 010 0XFF 4464 44 | 1e-05 1E+20 0x1p+0 0x1.55p-2     g 0x1234"
    ]


@pytest.mark.parametrize("limits", [Limits(printf_lines=8), Limits(printf_bytes=100)], ids=["lines", "bytes"])
def test_output_is_bounded_per_launch(printing: PrintingDevice, limits: Limits) -> None:
    name = printing.put(np.frombuffer(b"gpu\0", dtype=np.uint8))
    (event,) = _launch(printing, 2, 20, name, 0, limits)  # 40 threads, a line each
    text = "".join(_line(i % 20) + "\n" for i in range(40))
    kept = "".join(text.splitlines(keepends=True)[:8]) if limits.printf_lines == 8 else text[:100]
    dropped = len(text) - len(kept)
    assert event["lines"] == [*kept.splitlines(), f"… {dropped} bytes of printf output dropped"]
    assert event["dropped_bytes"] == dropped


def test_a_string_at_the_end_of_an_allocation_prints(printing: PrintingDevice) -> None:
    tail = printing.put(np.frombuffer(b"end\0", dtype=np.uint8))
    (event,) = _launch(printing, 1, 1, tail - 5, 5)  # the kernel prints name + which
    assert event["lines"] == ["end"]


def test_a_bad_string_pointer_is_an_illegal_address(printing: PrintingDevice) -> None:
    with pytest.raises(CudaError) as err:
        _launch(printing, 1, 2, 0xDEAD0000, 2)
    assert err.value.status == CUresult.CUDA_ERROR_ILLEGAL_ADDRESS
    assert "0xdead0002" in err.value.message


def test_printf_keeps_the_launch_time_bound(printing: PrintingDevice) -> None:
    name = printing.put(np.frombuffer(b"gpu\0", dtype=np.uint8))
    with pytest.raises(CudaError) as err:
        _launch(printing, 1, 4, name, 0, Limits(seconds=0.0))
    assert err.value.status == CUresult.CUDA_ERROR_LAUNCH_TIMEOUT
    assert "in printf" in err.value.message


def test_launches_faster_than_the_interval_share_one_log_event(printing: PrintingDevice) -> None:
    name = printing.put(np.frombuffer(b"gpu\0", dtype=np.uint8))
    assert len(_launch(printing, 1, 1, name, 0)) == 1
    assert _launch(printing, 1, 1, name, 0) == []


def test_format_counts_arguments_and_never_evaluates() -> None:
    args = iter([(5).to_bytes(4, "little"), (7).to_bytes(8, "little")])
    out, used = _printf.format_printf(b"%d %lx %%s %{__import__} %*d", lambda size: next(args), lambda a, n: b"")
    assert (out, used) == (b"5 7 %s %{__import__} %*d", 2)



def test_huge_widths_and_precisions_are_clamped() -> None:
    args = iter([(1).to_bytes(4, "little"), struct.pack("<d", 2.0)])
    out, used = _printf.format_printf(b"%999999999d|%.999999999f", lambda size: next(args), lambda a, n: b"")
    assert used == 2
    assert out == b" " * (_printf.MAX_FIELD - 1) + b"1|2." + b"0" * _printf.MAX_FIELD


def test_only_newline_ends_a_line() -> None:
    sink = _printf.PrintfSink()
    sink.write(b"a\x0cb\x1c\rc\nd")
    assert sink.text_lines() == ["a\x0cb\x1c\rc", "d"]


def test_a_failed_assert_prints_cudas_line_and_ends_the_launch_sticky(printing: PrintingDevice) -> None:
    line = next(k for k, text in enumerate((KERNELS / "ptx_corpus.cu").read_text().splitlines(), 1)
                if "assert(threadIdx.x < n);" in text)
    with capture_logs() as logs, pytest.raises(CudaError) as err:
        printing.run("asserts", 1, 4, 2, symbols=printing.symbols)
    expected = [f"ptx_corpus.cu:{line}: void asserts(int): block: [0,0,0], thread: [{t},0,0] Assertion "
                f"`threadIdx.x < n` failed." for t in (2, 3)]
    assert err.value.status == CUresult.CUDA_ERROR_ASSERT and err.value.sticky
    assert expected[0] in err.value.message
    (event,) = [e for e in logs if e["event"] == "kernel printf"]
    assert event["lines"] == expected
    printing.run("asserts", 1, 4, 4, symbols=printing.symbols)  # an assert that holds costs nothing
