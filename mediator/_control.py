"""Control requests: one typed model for the control sockets and MQTT, and who may send which.

Every request is one JSON object ``{"cmd": …, …}``; the ``cmd`` picks the model (a pydantic
discriminated union). Anything else — not JSON, invalid UTF-8, not an object, an unknown command, a
field of the wrong type, more than :data:`MAX_REQUEST_BYTES` — is a :class:`ControlRefusedError` whose
reason goes back to the sender; nothing a sender writes raises anything else.

A connection starts with the daemon's greeting, one line (as QMP's does)::

    {"greeting": {"service": "vgpu-mediator", "version": "0.1.0", "protocol": 1, "role": "reader",
                  "commands": ["status", "trace"]}}

then every request line gets exactly one reply line, ``{"ok": true, …}`` or ``{"ok": false, "error":
…}``, carrying the request's ``id`` if it had one. A client may send before it has read the greeting.
A peer that may do nothing gets ``{"ok": false, "error": …}`` instead of a greeting, and the end.

Two roles. A *reader* may ask for status and read traces; an *operator* may also change things: a
VM's quota, tracing on or off, reset, detach, and — only where the configuration enables it, for
testing — fault injection. Which role a connection has is decided by the daemon from the socket it
came in on and the peer's credentials (``docs/operations.md``, "Who may do what").
"""

from __future__ import annotations

import enum
import importlib.metadata
import json
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
)

from ._config import parse_size

__all__ = [
    "COMMANDS", "MAX_REQUEST_BYTES", "PROTOCOL_VERSION", "ControlRefusedError", "ControlRequest",
    "DetachRequest", "InjectFaultRequest", "ResetRequest", "Role", "SetQuotaRequest", "StatusRequest",
    "TraceRequest", "greeting", "parse_request", "parse_request_object",
]

MAX_REQUEST_BYTES: Final = 4096
#: the control protocol's version in the greeting: bumped when a request or reply changes meaning
PROTOCOL_VERSION: Final = 1


class Role(enum.IntEnum):
    READER = 1
    OPERATOR = 2


class ControlRefusedError(Exception):
    """A control request that will not be carried out; ``reason`` goes back to the requester."""

    def __init__(self, reason: str, request_id: Any = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.request_id = request_id


def _quota(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be a non-negative integer, a size such as '4GiB', or null")
    size = parse_size(value)
    if size < 0:
        raise ValueError("must be a non-negative integer, a size such as '4GiB', or null")
    return size


VmKey = StrictInt | StrictStr
Quota = Annotated[int, BeforeValidator(_quota)]


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: JsonValue = None  # the sender's, echoed in the reply

    @property
    def required_role(self) -> Role:
        return Role.OPERATOR

    def wire(self) -> dict[str, Any]:
        """The request as JSON would carry it (without the id)."""
        return self.model_dump(exclude={"id"}, exclude_defaults=True)


class StatusRequest(_Request):
    cmd: Literal["status"]

    @property
    def required_role(self) -> Role:
        return Role.READER


class TraceRequest(_Request):
    """Read a VM's trace (``after`` a record index, at most ``limit``); ``enable`` switches it."""

    cmd: Literal["trace"]
    vm: VmKey
    enable: StrictBool | None = None
    after: StrictInt = Field(default=0, ge=0)
    limit: StrictInt | None = Field(default=None, ge=0)

    @property
    def required_role(self) -> Role:
        return Role.READER if self.enable is None else Role.OPERATOR


class SetQuotaRequest(_Request):
    cmd: Literal["set_quota"]
    vm: VmKey
    bytes: Quota | None  # required; null lifts the quota


class ResetRequest(_Request):
    cmd: Literal["reset"]
    vm: VmKey


class DetachRequest(_Request):
    cmd: Literal["detach"]
    vm: VmKey


class InjectFaultRequest(_Request):
    """Drills and tests: the VM's next call fails with ``status``; refused unless configured."""

    cmd: Literal["inject_fault"]
    vm: VmKey
    status: StrictInt = Field(default=700, gt=0, lt=1 << 31)
    sticky: StrictBool = True
    channel: StrictInt | None = Field(default=None, ge=0, lt=256)  # None: every open channel of the VM


ControlRequest = Annotated[
    StatusRequest | TraceRequest | SetQuotaRequest | ResetRequest | DetachRequest | InjectFaultRequest,
    Field(discriminator="cmd"),
]
_ADAPTER: TypeAdapter[ControlRequest] = TypeAdapter(ControlRequest)
COMMANDS: Final = ("status", "trace", "set_quota", "reset", "detach", "inject_fault")
_READ_COMMANDS: Final = ("status", "trace")  # trace: reading; switching it needs an operator

_FIELD_HELP: Final = {
    "vm": "'vm' (a VM's name or id)",
    "bytes": "'bytes' (an integer, a size such as '4GiB', or null)",
    "enable": "'enable': true or false",
    "after": "'after': a record index (an integer ≥ 0)",
    "limit": "'limit': an integer ≥ 0 or null",
    "status": "'status': a positive CUresult value",
    "sticky": "'sticky': true or false",
}


def _explain(cmd: str, exc: ValidationError) -> str:
    reasons: list[str] = []
    for err in exc.errors():
        where = [str(part) for part in err["loc"][1:]]  # loc[0] is the union's tag
        name = where[0] if where else ""
        if err["type"] == "missing":
            reasons.append(f"{cmd} needs {_FIELD_HELP.get(name, repr(name))}")
        elif err["type"] == "extra_forbidden":
            reasons.append(f"{cmd} has no field {name!r}")
        elif name == "bytes":
            detail = err["msg"].removeprefix("Value error, ")
            reasons.append(f"bytes: {detail}" if "is not a size" in detail else
                           "bytes must be a non-negative integer, a size such as '4GiB', or null")
        else:
            reasons.append(f"{cmd} needs {_FIELD_HELP.get(name, repr(name))}")
    return "; ".join(dict.fromkeys(reasons))


def greeting(role: Role, *, fault_injection: bool) -> dict[str, Any]:
    """The first line of every admitted control connection: who answers, and what this one may ask."""
    try:
        version: str | None = importlib.metadata.version("vgpu-mediator")
    except importlib.metadata.PackageNotFoundError:  # run from a tree that was never installed
        version = None
    allowed = [cmd for cmd in COMMANDS if (role is Role.OPERATOR or cmd in _READ_COMMANDS)
               and (fault_injection or cmd != "inject_fault")]
    return {"greeting": {"service": "vgpu-mediator", "version": version, "protocol": PROTOCOL_VERSION,
                         "role": role.name.lower(), "commands": allowed}}


def parse_request_object(request: object) -> ControlRequest:
    """A decoded JSON value as a checked request, or :class:`ControlRefusedError` saying why not."""
    if not isinstance(request, dict):
        raise ControlRefusedError(f"a request is a JSON object, not {type(request).__name__}")
    request_id = request.get("id")
    cmd = request.get("cmd")
    if not isinstance(cmd, str) or cmd not in COMMANDS:
        raise ControlRefusedError(f"unknown cmd {cmd!r}; one of {', '.join(COMMANDS)}", request_id)
    try:
        return _ADAPTER.validate_python(request)
    except ValidationError as exc:
        raise ControlRefusedError(_explain(cmd, exc), request_id) from None


def parse_request(payload: bytes) -> ControlRequest:
    """One request's bytes (a control socket's line, an MQTT message) as a checked request."""
    if len(payload) > MAX_REQUEST_BYTES:
        raise ControlRefusedError(f"request is {len(payload)} bytes, the limit is {MAX_REQUEST_BYTES}")
    try:
        request = json.loads(payload)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ControlRefusedError(f"not JSON: {exc}") from None
    return parse_request_object(request)
