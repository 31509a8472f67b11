"""Properties: every call's models survive a round trip, and no bytes a peer can write make the
decoders raise anything but the protocol's own error."""

from __future__ import annotations

import contextlib
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from protocol import (
    CALLS,
    CQE_SIZE,
    SQE_SIZE,
    CallSpec,
    ProtocolError,
    WireModel,
    check_payloads,
    decode_args,
    decode_call,
    decode_completion,
    decode_result,
    decode_submission,
    encode_args,
    encode_result,
    lay_out_channel,
    layout_of,
    validate_channel,
)

_RANGES = {"B": (0, 2**8 - 1), "H": (0, 2**16 - 1), "I": (0, 2**32 - 1), "Q": (0, 2**64 - 1),
           "i": (-(2**31), 2**31 - 1), "q": (-(2**63), 2**63 - 1)}
PROPERTIES = settings(max_examples=200, deadline=None,
                      suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])


def _field(fmt: str, enum: Any) -> st.SearchStrategy[Any]:
    if enum is not None:
        return st.sampled_from(list(enum))
    if fmt == "f":
        return st.floats(width=32, allow_nan=False)
    if fmt == "d":
        return st.floats(allow_nan=False)
    if fmt == "16s":
        return st.binary(min_size=16, max_size=16)
    low, high = _RANGES[fmt]
    # small values make the models' cross-field rules (GEMM shapes, sizes) satisfiable often
    return st.one_of(st.integers(max(low, 1), 8), st.integers(max(low, -2), min(high, 300)),
                     st.integers(low, high))


@st.composite
def models(draw: st.DrawFn, model: type[WireModel]) -> WireModel:
    values = {f.name: draw(_field(f.wire.fmt, f.enum)) for f in layout_of(model).fields}
    try:
        return model.model_validate(values)
    except ValidationError:
        assume(False)
        raise  # unreachable: assume(False) stops the example


@pytest.mark.parametrize("spec", list(CALLS.values()), ids=lambda spec: spec.name)
@settings(PROPERTIES, max_examples=20)
@given(data=st.data())
def test_every_calls_arguments_and_results_round_trip(spec: CallSpec, data: st.DataObject) -> None:
    args = data.draw(models(spec.args))
    assert decode_args(spec, encode_args(args)) == args
    result = data.draw(models(spec.result))
    assert decode_result(spec, encode_result(result)) == result


@PROPERTIES
@given(raw=st.binary(min_size=SQE_SIZE, max_size=SQE_SIZE), arena=st.integers(0, 2**32))
def test_any_submission_bytes_decode_or_raise_the_protocol_error(raw: bytes, arena: int) -> None:
    try:
        sub = decode_submission(raw)
        check_payloads(sub, arena)
        decode_call(sub)
    except ProtocolError:
        pass


@pytest.mark.parametrize("spec", list(CALLS.values()), ids=lambda spec: spec.name)
@settings(max_examples=10, deadline=None)
@given(raw=st.binary(max_size=200))
def test_any_argument_bytes_decode_or_raise_the_protocol_error(spec: CallSpec, raw: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_args(spec, raw)
    with contextlib.suppress(ProtocolError):
        decode_result(spec, raw)


@PROPERTIES
@given(raw=st.binary(min_size=CQE_SIZE, max_size=CQE_SIZE))
def test_any_completion_bytes_decode_or_raise_the_protocol_error(raw: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_completion(raw)


_REGION = 1 << 20
_FRESH = bytearray(_REGION)
lay_out_channel(_FRESH, vm_id=3)


@PROPERTIES
@given(pokes=st.lists(st.tuples(st.integers(0, 4095), st.sampled_from(["B", "<H", "<I", "<Q"]),
                                st.integers(0, 2**64 - 1)), min_size=1, max_size=6),
       truncate=st.one_of(st.none(), st.integers(0, _REGION)))
def test_any_header_bytes_validate_or_raise_the_layout_error(pokes: list[tuple[int, str, int]],
                                                             truncate: int | None) -> None:
    buf = bytearray(_FRESH)
    for offset, fmt, value in pokes:
        size = struct.calcsize(fmt)
        struct.pack_into(fmt, buf, min(offset, 4096 - size), value & ((1 << (8 * size)) - 1))
    with contextlib.suppress(ProtocolError):
        validate_channel(buf[:truncate] if truncate is not None else buf)
