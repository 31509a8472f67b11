"""Encode and decode a call's arguments and results (the inline structs of SQEs and CQEs).

Decoding untrusted bytes raises only :class:`RemoteProtocolError`, carrying the status the guest
should get: an unknown call id is ``CUDA_ERROR_NOT_SUPPORTED``, anything else malformed is
``CUDA_ERROR_INVALID_VALUE`` (for cuBLAS calls the worker maps it to ``CUBLAS_STATUS_INVALID_VALUE``).

The hot path. Every model gets a :class:`Codec`, compiled once from its layout:

* *encoding* is one ``attrgetter`` and one precompiled ``struct.pack``;
* *decoding* is one ``struct.unpack`` and then, for a model whose every constraint the struct
  format already implies (a ``u32`` field bounded to ``[0, 2**32)`` cannot unpack out of range; a
  16-byte field is 16 bytes; there are no validators), the instance is built without running
  pydantic's validator: what validation would have checked is checked here (enum members, by one
  dict lookup each), and anything that fails falls through to ``model_validate`` for its exact
  message. Models with validators of their own always go through ``model_validate``.
* the last decodings of each model are remembered by their bytes (models are frozen, so sharing
  an instance is safe): a stream of launches or memsets with the same arguments decodes each once.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable
from enum import IntEnum
from typing import Any, Final

import annotated_types
from pydantic import ValidationError

from ._catalog import CALLS, CallSpec
from ._errors import LocalProtocolError, RemoteProtocolError
from ._frames import Submission
from ._status import CUresult
from ._wire import StructLayout, Wire, WireModel, layout_of

__all__ = ["Codec", "codec_for", "decode_args", "decode_call", "decode_result", "encode_args",
           "encode_result"]

_INT_RANGES: Final = {fmt: (-(1 << (8 * size - 1)), (1 << (8 * size - 1)) - 1) if fmt.islower()
                      else (0, (1 << (8 * size)) - 1)
                      for fmt, size in (("b", 1), ("B", 1), ("h", 2), ("H", 2), ("i", 4), ("I", 4),
                                        ("q", 8), ("Q", 8))}
#: remembered decodings per model; a full memo starts over (one dict lookup per call either way)
MEMO_SIZE: Final = 1024

_new_object = object.__new__
_set = object.__setattr__


def _implied(item: Any, fmt: str) -> bool:
    """Whether one constraint of a field always holds for what its struct format can unpack."""
    if isinstance(item, Wire):
        return True
    if fmt in _INT_RANGES:
        low, high = _INT_RANGES[fmt]
        return (isinstance(item, annotated_types.Ge) and isinstance(item.ge, int) and item.ge <= low) or (
            isinstance(item, annotated_types.Le) and isinstance(item.le, int) and item.le >= high)
    if fmt.endswith("s"):
        size = int(fmt[:-1])
        return (isinstance(item, annotated_types.MinLen) and item.min_length <= size) or (
            isinstance(item, annotated_types.MaxLen) and item.max_length >= size)
    return False


def _implied_by_format(annotation: Any, fmt: str, metadata: list[Any]) -> tuple[bool, type[IntEnum] | None]:
    """Whether every constraint on a field is implied by its struct format (and its enum, if any)."""
    enum = annotation if isinstance(annotation, type) and issubclass(annotation, IntEnum) else None
    expected: Any = {"f": float, "d": float}.get(fmt, bytes if fmt.endswith("s") else int)
    if not (annotation is expected or (enum is not None and expected is int)):
        return False, None
    return all(_implied(item, fmt) for item in metadata), enum


class Codec:
    """One model's compiled encoder and decoder (see the module docstring)."""

    def __init__(self, model: type[WireModel]) -> None:
        layout: StructLayout = layout_of(model)
        self.model = model
        self.size = layout.size
        self.names = layout.names
        self._packer = layout.packer
        self._fields_set = frozenset(layout.names)
        self.encode: Callable[[WireModel], bytes]
        if not layout.fields:
            self.encode = _encode_empty
        else:
            getter = operator.attrgetter(*layout.names)
            pack = layout.packer.pack
            name = model.__name__
            single = len(layout.fields) == 1  # attrgetter of one name returns the value itself

            def encode(instance: WireModel) -> bytes:
                values = getter(instance)
                try:
                    return pack(values) if single else pack(*values)
                except struct.error as exc:
                    raise LocalProtocolError(f"cannot encode {name}: {exc}") from exc

            self.encode = encode
        decorators = model.__pydantic_decorators__
        self.trusted_format = not (
            decorators.validators or decorators.field_validators or decorators.root_validators
            or decorators.model_validators or model.__pydantic_post_init__)
        enums: dict[int, dict[Any, Any]] = {}
        for i, (f, info) in enumerate(zip(layout.fields, model.model_fields.values(), strict=True)):
            implied, enum = _implied_by_format(info.annotation, f.wire.fmt, list(info.metadata))
            self.trusted_format &= implied
            if enum is not None:
                enums[i] = enum._value2member_map_
        #: the one instance of a model without fields (decoding it is a length check), else None
        self.empty: WireModel | None = model() if not layout.fields else None
        self._build = self._compile_builder(enums) if self.trusted_format and layout.fields else None
        self._memo: dict[bytes, WireModel] = {}

    def _compile_builder(self, enums: dict[int, dict[Any, Any]]) -> Callable[[bytes], WireModel | None]:
        """Generate ``build(raw)``: unpack, map enum values to members, and make the instance that
        ``model_validate`` would return (its ``__dict__``, fields set, no extra, no private state);
        None when an enum value is no member, for pydantic to say why. Generated code, as
        dataclasses and namedtuple generate theirs: a dict display is twice as fast as dict(zip())."""
        values = ", ".join(f"v{i}" for i in range(len(self.names))) + ("," if len(self.names) == 1 else "")
        lines = ["def build(raw):", f"    {values} = unpack(raw)"]
        for i in enums:
            lines += [f"    v{i} = e{i}.get(v{i})", f"    if v{i} is None:", "        return None"]
        fields = ", ".join(f"{name!r}: v{i}" for i, name in enumerate(self.names))
        lines += ["    obj = new(model)", f"    set_(obj, '__dict__', {{{fields}}})",
                  "    set_(obj, '__pydantic_fields_set__', set(fields_set))",
                  "    set_(obj, '__pydantic_extra__', None)", "    set_(obj, '__pydantic_private__', None)",
                  "    return obj"]
        scope: dict[str, Any] = {"unpack": self._packer.unpack, "new": _new_object, "set_": _set,
                                 "model": self.model, "fields_set": self._fields_set}
        scope.update({f"e{i}": members for i, members in enums.items()})
        exec("\n".join(lines), scope)  # our own field names, from the catalog
        build: Callable[[bytes], WireModel | None] = scope["build"]
        return build

    def pack(self, *values: Any) -> bytes:
        """The bytes ``encode(model(**fields))`` gives, from the fields' values in declaration order,
        without building the model: for a model whose constraints the format implies, the struct's
        own range checks are the model's. A guest's hot path (a copy's arguments) uses it."""
        if not self.trusted_format:
            raise TypeError(f"{self.model.__name__} has validators: build the model")
        try:
            return self._packer.pack(*values)
        except struct.error as exc:
            raise LocalProtocolError(f"cannot encode {self.model.__name__}: {exc}") from exc

    def decode(self, raw: bytes | memoryview, call: str, part: str) -> WireModel:
        """The model of ``raw``, the ``part`` ("arguments", "results") of call ``call``."""
        if len(raw) != self.size:
            raise RemoteProtocolError(f"{call} {part}: {len(raw)} bytes, the struct is {self.size}")
        if self.empty is not None:
            return self.empty
        key = raw if type(raw) is bytes else bytes(raw)
        memo = self._memo
        found = memo.get(key)
        if found is not None:
            return found
        instance = self._build(key) if self._build is not None else None
        if instance is None:
            instance = self._validate(self._packer.unpack(key), f"{call} {part}")
        if len(memo) >= MEMO_SIZE:
            memo.clear()
        memo[key] = instance
        return instance

    def _validate(self, values: tuple[Any, ...], what: str) -> WireModel:
        try:
            return self.model.model_validate(dict(zip(self.names, values, strict=True)))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'args'}: {err['msg']}" for err in exc.errors()
            )
            raise RemoteProtocolError(f"{what}: {problems}") from None
        except (ValueError, TypeError) as exc:
            raise RemoteProtocolError(f"{what}: {exc}") from exc


def _encode_empty(instance: WireModel) -> bytes:
    return b""


_CODECS: dict[type[WireModel], Codec] = {}


def codec_for(model: type[WireModel]) -> Codec:
    """The compiled codec of ``model`` (built on first use, then cached)."""
    codec = _CODECS.get(model)
    if codec is None:
        codec = _CODECS[model] = Codec(model)
    return codec


def encode_args(model: WireModel) -> bytes:
    return codec_for(type(model)).encode(model)


def encode_result(model: WireModel) -> bytes:
    return codec_for(type(model)).encode(model)


def decode_args(spec: CallSpec, raw: bytes | memoryview) -> WireModel:
    return codec_for(spec.args).decode(raw, spec.name, "arguments")


def decode_result(spec: CallSpec, raw: bytes | memoryview) -> WireModel:
    """Decode a completion's results; the CQE carries 48 bytes, the struct uses a prefix."""
    codec = codec_for(spec.result)
    return codec.decode(bytes(raw[:codec.size]), spec.name, "results")


def decode_call(sub: Submission) -> tuple[CallSpec, WireModel]:
    """Look up a submission's call and decode its arguments."""
    spec = CALLS.get(sub.call_id)
    if spec is None:
        raise RemoteProtocolError(f"submission {sub.seq}: unknown call id {sub.call_id:#06x}",
                                  CUresult.CUDA_ERROR_NOT_SUPPORTED)
    return spec, decode_args(spec, sub.args)
