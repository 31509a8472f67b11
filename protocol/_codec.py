"""Encode and decode a call's arguments and results (the inline structs of SQEs and CQEs).

Decoding untrusted bytes raises only :class:`RemoteProtocolError`, carrying the status the guest
should get: an unknown call id is ``CUDA_ERROR_NOT_SUPPORTED``, anything else malformed is
``CUDA_ERROR_INVALID_VALUE`` (for cuBLAS calls the worker maps it to ``CUBLAS_STATUS_INVALID_VALUE``).
"""

from __future__ import annotations

import struct
from typing import Any

from pydantic import ValidationError

from ._catalog import CALLS, CallSpec
from ._errors import LocalProtocolError, RemoteProtocolError
from ._frames import Submission
from ._status import CUresult
from ._wire import WireModel, layout_of

__all__ = ["decode_args", "decode_call", "decode_result", "encode_args", "encode_result"]


def _encode(model: WireModel) -> bytes:
    layout = layout_of(type(model))
    if not layout.fields:
        return b""
    values: list[Any] = [getattr(model, f.name) for f in layout.fields]
    try:
        return layout.packer.pack(*values)
    except struct.error as exc:
        raise LocalProtocolError(f"cannot encode {type(model).__name__}: {exc}") from exc


_EMPTY: dict[type[WireModel], WireModel] = {}


def _decode(model: type[WireModel], raw: bytes | memoryview, what: str) -> WireModel:
    layout = layout_of(model)
    if len(raw) != layout.size:
        raise RemoteProtocolError(f"{what}: {len(raw)} bytes, the struct is {layout.size}")
    if not layout.fields:
        empty = _EMPTY.get(model)
        if empty is None:
            empty = _EMPTY[model] = model()
        return empty
    try:
        values = layout.packer.unpack(raw)
        return model.model_validate(dict(zip(layout.names, values, strict=True)))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'args'}: {err['msg']}" for err in exc.errors()
        )
        raise RemoteProtocolError(f"{what}: {problems}") from None
    except (struct.error, ValueError, TypeError) as exc:
        raise RemoteProtocolError(f"{what}: {exc}") from exc


def encode_args(model: WireModel) -> bytes:
    return _encode(model)


def encode_result(model: WireModel) -> bytes:
    return _encode(model)


def decode_args(spec: CallSpec, raw: bytes | memoryview) -> WireModel:
    return _decode(spec.args, raw, f"{spec.name} arguments")


def decode_result(spec: CallSpec, raw: bytes | memoryview) -> WireModel:
    """Decode a completion's results; the CQE carries 48 bytes, the struct uses a prefix."""
    size = layout_of(spec.result).size
    return _decode(spec.result, bytes(raw[:size]), f"{spec.name} results")


def decode_call(sub: Submission) -> tuple[CallSpec, WireModel]:
    """Look up a submission's call and decode its arguments."""
    spec = CALLS.get(sub.call_id)
    if spec is None:
        raise RemoteProtocolError(f"submission {sub.seq}: unknown call id {sub.call_id:#06x}",
                                  CUresult.CUDA_ERROR_NOT_SUPPORTED)
    return spec, decode_args(spec, sub.args)
