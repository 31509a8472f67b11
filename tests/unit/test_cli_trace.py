"""`trace -f` notices records the ring overwrote before they were read."""

from __future__ import annotations

from typing import Any

from mediator._trace import TraceRing
from mediator.cli import lost_records
from protocol import CALLS_BY_NAME, Submission

_NOP = Submission(1, CALLS_BY_NAME["nop"].call_id, 0, 0, 0, 0, 0, b"")


def _reply(ring: TraceRing, after: int) -> dict[str, Any]:
    records, next_index = ring.read(after)  # what the daemon's trace reply carries
    return {"records": [r.as_dict() for r in records], "next": next_index}


def test_a_follower_that_kept_up_lost_nothing() -> None:
    ring = TraceRing.create("kept-up", 8)
    for i in range(5):
        ring.append(i, 1, _NOP, 0, "")
    assert lost_records(_reply(ring, 2), 2) == 0
    assert lost_records(_reply(ring, 5), 5) == 0  # nothing new
    ring.close()


def test_a_lapped_follower_is_told_how_many_it_lost() -> None:
    ring = TraceRing.create("lapped", 8)
    for i in range(30):
        ring.append(i, 1, _NOP, 0, "")
    reply = _reply(ring, 10)
    assert [r["index"] for r in reply["records"]] == list(range(22, 30))
    assert lost_records(reply, 10) == 12
    ring.close()
