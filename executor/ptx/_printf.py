"""Device ``printf``: nvcc lowers it to ``call vprintf, (format, args)``, the engine formats it here.

``format`` is a generic pointer to a NUL-terminated string, ``args`` a pointer to a buffer holding
the arguments packed with natural alignment (integers as 4 or 8 bytes, ``float`` promoted to
``double``, pointers as 8). Every byte is read through the engine's checked memory paths (the
``read`` callback), so a bad pointer faults like any other access. Formatting follows C for the
conversions CUDA supports; nothing is evaluated. A launch's output is bounded (:class:`PrintfSink`)
and logged as one rate-limited ``kernel printf`` event; a backend that runs the launch inside
:func:`listening` also hands the same bounded lines to its callback (``sim``: the worker's trace).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import structlog

from ._state import KernelFaultError

__all__ = [
    "MAX_ARGS",
    "MAX_FIELD",
    "MAX_FORMAT",
    "Listener",
    "PrintfSink",
    "emit",
    "format_printf",
    "listening",
    "read_string",
]

log = structlog.get_logger(__name__)

#: CUDA passes at most 32 arguments to one printf; conversions past them are printed as written
MAX_ARGS = 32
#: longest format string (and ``%s`` argument) read from device memory, in bytes
MAX_FORMAT = 4096
#: widest field width or precision honoured (C's larger ones are clamped): bounds one conversion's work
MAX_FIELD = 1024
_CHUNK = 64

#: ``read(address, size)``: ``size`` bytes of device memory at a generic address, checked
Reader = Callable[[int, int], bytes]

_SPEC = re.compile(rb"%([-+ #0]*)(\d+)?(?:\.(\d*))?(hh|h|ll|l|z|j|t)?([diouxXcsfFeEgGaAp%])")
_WIDE = {b"l", b"ll", b"z", b"j", b"t"}


def read_string(read: Reader, address: int, limit: int = MAX_FORMAT) -> bytes:
    """The bytes at ``address`` up to its NUL (at most ``limit``). Read in chunks; where a chunk
    runs past readable memory, byte by byte, so only a byte the string needs can fault."""
    out = bytearray()
    while len(out) < limit:
        at = address + len(out)
        want = min(_CHUNK, limit - len(out))
        try:
            chunk = read(at, want)
        except KernelFaultError:
            for k in range(want):
                byte = read(at + k, 1)  # raises the fault of the first byte that cannot be read
                if byte == b"\0":
                    return bytes(out)
                out += byte
            continue
        nul = chunk.find(b"\0")
        if nul >= 0:
            return bytes(out + chunk[:nul])
        out += chunk
    return bytes(out)


def _signed(raw: bytes) -> int:
    return int.from_bytes(raw, "little", signed=True)


def _hex_float(value: float, precision: int | None, upper: bool) -> bytes:
    """C's ``%a``: ``[-]0xh.hhhp±d``, the shortest exact form without a precision."""
    if math.isnan(value) or math.isinf(value):
        text = "nan" if math.isnan(value) else "-inf" if value < 0 else "inf"
        return (text.upper() if upper else text).encode()
    sign = "-" if str(value).startswith("-") else ""
    text = float.hex(abs(value))  # 0x1.xxxxxxxxxxxxxp+e, 13 hex digits
    lead, rest = text[2:].split(".")
    frac, exp = rest.split("p")
    mant = int(lead + frac, 16)
    digits = 13
    if precision is not None and precision < digits:
        shift = 4 * (digits - precision)
        q, r = divmod(mant, 1 << shift)
        half = 1 << (shift - 1)
        if r > half or (r == half and q & 1):
            q += 1
        mant, digits = q, precision
    body = f"{mant:0{digits + 1}x}"
    head, tail = body[:-digits] if digits else body, body[-digits:] if digits else ""
    if precision is None:
        tail = tail.rstrip("0")
    elif precision > digits:
        tail += "0" * (precision - digits)
    if value == 0:
        exp = "+0"
    out = f"{sign}0x{head}{'.' if tail else ''}{tail}p{exp}"
    return (out.upper() if upper else out).encode()


def format_printf(fmt: bytes, arg: Callable[[int], bytes], string: Reader) -> tuple[bytes, int]:
    """Format ``fmt`` as C's printf; ``arg(size)`` yields the next packed argument of ``size`` bytes
    (aligned by the caller), ``string(address, limit)`` a NUL-terminated string. Returns the output
    and the number of arguments consumed."""
    out = bytearray()
    pos = 0
    used = 0
    for m in _SPEC.finditer(fmt):
        out += fmt[pos : m.start()]
        pos = m.end()
        flags, width, prec, length, conv = m.groups()
        if width is not None and int(width) > MAX_FIELD:
            width = b"%d" % MAX_FIELD
        if prec and int(prec) > MAX_FIELD:
            prec = b"%d" % MAX_FIELD
        if conv == b"%":
            out += b"%"
            continue
        if used >= MAX_ARGS:
            out += m.group(0)
            continue
        used += 1
        precision = None if prec is None else int(prec or b"0")
        spec = b"%" + flags + (width or b"") + (b"" if prec is None else b"." + (prec or b"0"))
        if conv in b"diouxXc":
            out += _integer(conv, flags, width, precision, length, arg(8 if length in _WIDE else 4))
        elif conv in b"fFeEgGaA":
            real = _double(arg(8))
            if conv in b"aA":
                out += _pad(_hex_float(real, precision, conv == b"A"), flags, width)
            else:
                out += (spec + conv) % real
        elif conv == b"s":
            address = int.from_bytes(arg(8), "little")
            limit = MAX_FORMAT if precision is None else min(precision, MAX_FORMAT)
            text = b"(null)" if address == 0 else string(address, limit)
            out += _pad(text, flags, width)
        else:  # %p
            address = int.from_bytes(arg(8), "little")
            out += _pad(b"0x%x" % address, flags, width)
    out += fmt[pos:]
    return bytes(out), used


def _integer(conv: bytes, flags: bytes, width: bytes | None, precision: int | None, length: bytes | None,
             raw: bytes) -> bytes:
    """One integer conversion (``d i o u x X c``) of the argument's bytes, as C prints it."""
    nbytes = 2 if length == b"h" else 1 if length == b"hh" else len(raw)
    value = _signed(raw[:nbytes])
    if conv == b"c":
        return (b"%" + flags.replace(b"0", b"") + (width or b"") + b"c") % (value & 0xFF)
    signed = conv in b"di"
    if not signed:
        value &= (1 << (8 * nbytes)) - 1
    if precision == 0 and value == 0:  # C prints no digits for a zero with precision 0
        sign = (b"+" if b"+" in flags else b" " if b" " in flags else b"") if signed else b""
        return _pad(b"0" if conv == b"o" and b"#" in flags else sign, flags, width)
    spec = b"%" + flags
    if conv == b"o" and b"#" in flags:  # C's alternate octal is a leading 0, not Python's 0o
        digits = len(b"%o" % value) + 1
        precision = max(precision or 0, digits)
        spec = b"%" + flags.replace(b"#", b"")
    if precision is not None:  # C ignores the 0 flag when a precision is given
        spec = spec.replace(b"0", b"") + (width or b"") + b"." + str(precision).encode()
    else:
        spec += width or b""
    return (spec + (b"d" if conv in b"diu" else conv)) % value


def _double(raw: bytes) -> float:
    return float(memoryview(raw).cast("d")[0])


def _pad(body: bytes, flags: bytes, width: bytes | None) -> bytes:
    pad = max(int(width or b"0") - len(body), 0)
    return body + b" " * pad if b"-" in flags else b" " * pad + body


@dataclass(slots=True)
class PrintfSink:
    """A launch's printf output, bounded: past ``max_bytes`` or ``max_lines`` the rest is counted,
    not kept, and the log says how much was dropped."""

    max_bytes: int = 64 << 10
    max_lines: int = 1024
    data: bytearray = field(default_factory=bytearray)
    lines: int = 0
    dropped: int = 0

    def write(self, text: bytes) -> None:
        if self.dropped or self.lines >= self.max_lines:
            self.dropped += len(text)
            return
        room = self.max_bytes - len(self.data)
        kept = text[:room]
        cut = 0
        for _ in range(kept.count(b"\n")):
            cut = kept.index(b"\n", cut) + 1
            self.lines += 1
            if self.lines >= self.max_lines:
                kept = kept[:cut]
                break
        self.data += kept
        self.dropped += len(text) - len(kept)

    def text_lines(self) -> list[str]:
        text = self.data.decode("utf-8", errors="replace")
        out = text.split("\n")  # only newline ends a line (not str.splitlines' \f, \x1c, ...)
        if out[-1] == "":
            out.pop()
        if self.dropped:
            out.append(f"… {self.dropped} bytes of printf output dropped")
        return out


@dataclass(slots=True)
class _RateLimit:
    """At most one event per interval; the next one carries how many were left unlogged."""

    interval_s: float = 1.0
    last: float | None = None
    suppressed: int = 0

    def emit(self, kernel: str, sink: PrintfSink) -> bool:
        now = time.monotonic()
        if self.last is not None and now - self.last < self.interval_s:
            self.suppressed += 1
            return False
        fields: dict[str, object] = {
            "kernel": kernel,
            "lines": sink.text_lines(),
            "dropped_bytes": sink.dropped,
        }
        if self.suppressed:
            fields["suppressed_since_last"] = self.suppressed
        log.info("kernel printf", **fields)
        self.last, self.suppressed = now, 0
        return True


_limit = _RateLimit()


#: ``listener(kernel, lines)``: a launch's bounded printf output, once per launch that printed
Listener = Callable[[str, list[str]], None]
_listener: ContextVar[Listener | None] = ContextVar("printf_listener", default=None)


@contextmanager
def listening(listener: Listener | None) -> Iterator[None]:
    """Launches run inside this hand their output to ``listener`` as well as to the log."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


def emit(kernel: str, sink: PrintfSink) -> bool:
    """Hand a launch's output (if it printed anything) to the current listener, unthrottled (it is
    bounded per launch), and log it as one rate-limited event."""
    if not sink.data and not sink.dropped:
        return False
    listener = _listener.get()
    if listener is not None:
        listener(kernel, sink.text_lines())
    return _limit.emit(kernel, sink)
