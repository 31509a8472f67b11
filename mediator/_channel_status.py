"""A channel as the operator sees it (``status``, metrics, MQTT): the typed model and its source."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from protocol import ChannelState

from ._stats import ChannelStats

__all__ = ["ChannelStatus", "channel_status"]

StateName = Literal["free", "open", "closed_by_host"]


class ChannelStatus(BaseModel):
    """One channel of a VM: who holds it (the guest process id its shim reported, the socket peer it
    uses), which context (generation), and what that context did and holds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int
    state: StateName
    owner_pid: int
    owner_peer: int
    generation: int
    calls: int
    errors: int
    memory_used: int
    live_handles: int
    opened_at: float | None  # wall clock (s), None while never opened


def channel_status(stat: ChannelStats) -> ChannelStatus:
    name: StateName = "closed_by_host"
    if stat.state == ChannelState.FREE:
        name = "free"
    elif stat.state == ChannelState.OPEN:
        name = "open"
    return ChannelStatus(index=stat.index, state=name, owner_pid=stat.owner_pid, owner_peer=stat.owner_peer,
                         generation=stat.generation, calls=stat.calls, errors=stat.errors,
                         memory_used=stat.memory_used, live_handles=stat.live_handles,
                         opened_at=stat.opened_at_ns / 1e9 if stat.opened_at_ns else None)
