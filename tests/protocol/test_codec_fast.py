"""The compiled codec decodes exactly what pydantic's validation would, for every model in the catalog.

For models whose constraints the struct format implies, the codec builds instances without running
the validator; these tests hold it to the validator's answer on arbitrary bytes: the same model
(field values, enum members, fields set), or the same refusal with the same message.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import CALLS, CALLS_BY_NAME, RemoteProtocolError, WireModel, decode_args, layout_of
from protocol._codec import MEMO_SIZE, codec_for

MODELS = sorted({m for spec in CALLS.values() for m in (spec.args, spec.result)}, key=lambda m: m.__name__)


def validated(model: type[WireModel], raw: bytes) -> tuple[str, Any]:
    """What plain pydantic validation makes of ``raw``: the reference."""
    layout = layout_of(model)
    try:
        instance = model.model_validate(dict(zip(layout.names, layout.packer.unpack(raw), strict=True)))
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        return "refused", type(exc).__name__
    return "model", instance


def same(a: WireModel, b: WireModel) -> bool:
    """Equal field by field (NaN equal to NaN), same types, same fields set."""
    if type(a) is not type(b) or a.model_fields_set != b.model_fields_set:
        return False
    for name in type(a).model_fields:
        x, y = getattr(a, name), getattr(b, name)
        if type(x) is not type(y):
            return False
        if not (x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y))):
            return False
    return True


@pytest.mark.parametrize("model", MODELS, ids=[m.__name__ for m in MODELS])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_fast_decoder_agrees_with_pydantic_on_any_bytes(model: type[WireModel], data: st.DataObject) -> None:
    codec = codec_for(model)
    raw = data.draw(st.binary(min_size=codec.size, max_size=codec.size))
    kind, reference = validated(model, raw)
    if kind == "refused":
        with pytest.raises(RemoteProtocolError, match="x arguments: "):
            codec.decode(raw, "x", "arguments")
    else:
        decoded = codec.decode(raw, "x", "arguments")
        assert same(decoded, reference), (decoded, reference)
        packer = layout_of(model).packer  # re-encoding gives the bytes back, padding zeroed
        assert codec.encode(decoded) == (packer.pack(*packer.unpack(raw)) if packer.size else b"")


def test_enum_fields_come_back_as_their_members_and_unknown_members_are_refused() -> None:
    spec = CALLS_BY_NAME["mem_get_allocation_granularity"]
    model = decode_args(spec, struct.pack("<iI", 0, 1))
    assert type(model.option).__name__ == "GranularityOption"  # type: ignore[attr-defined]
    with pytest.raises(RemoteProtocolError, match="mem_get_allocation_granularity arguments: option"):
        decode_args(spec, struct.pack("<iI", 0, 7))


def test_remembered_decodings_are_shared_and_bounded() -> None:
    spec = CALLS_BY_NAME["memset_d8"]
    raw = struct.pack("<QQB3xI", 0x1000, 3, 0xA5, 2)
    first = decode_args(spec, raw)
    assert decode_args(spec, bytes(raw)) is first, "the same bytes decode to the same frozen model"
    for i in range(MEMO_SIZE + 5):
        decode_args(spec, struct.pack("<QQB3xI", 0x1000 + i, 3, 0xA5, 2))
    assert len(codec_for(spec.args)._memo) <= MEMO_SIZE
    assert decode_args(spec, raw) == first
