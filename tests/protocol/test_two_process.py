"""A million frames each way between two processes through one real shared mapping.

The child is the guest: it submits frames whose arguments are a function of their sequence number
and checks every completion. The parent is the host: it checks every submission and answers each one.
Nothing may be lost, duplicated or reordered, across many wraps of the 32-bit-free-running indices'
ring slots, with both sides spinning on each other's index words as the real ones do.
"""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
import textwrap
import time

import pytest

from protocol import CompletionProducer, Region, SubmissionConsumer, lay_out_channel

FRAMES = 1_000_000
SIZE = 1 << 20

GUEST = textwrap.dedent("""
    import mmap, sys
    from protocol import CompletionConsumer, Region, SubmissionProducer
    fd, frames = int(sys.argv[1]), int(sys.argv[2])
    region = Region(memoryview(mmap.mmap(fd, 0)))
    sq, cq = SubmissionProducer(region), CompletionConsumer(region)
    sent = received = 0
    while received < frames:
        while sent < frames and sq.push(seq=sent & 0xFFFFFFFF, call_id=0x0001 + sent % 7,
                                        args=(sent * 2654435761 & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little")):
            sent += 1
        for _ in range(cq.pending()):
            c = cq.pop()
            if c.seq != received or c.status != received % 1000 or c.out_len != received % 4096:
                sys.exit(f"completion {received}: seq {c.seq} status {c.status} out_len {c.out_len}")
            received += 1
    print(sent, received)
""")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_million_frames_each_way_nothing_lost_or_reordered() -> None:
    fd = os.memfd_create("two-process-ring")
    os.ftruncate(fd, SIZE)
    mapping = mmap.mmap(fd, SIZE)
    lay_out_channel(memoryview(mapping), vm_id=1, sq_entries=64, cq_entries=64)
    region = Region(memoryview(mapping))
    sq, cq = SubmissionConsumer(region), CompletionProducer(region)
    guest = subprocess.Popen([sys.executable, "-c", GUEST, str(fd), str(FRAMES)], pass_fds=(fd,),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = time.perf_counter()
    seen = 0
    try:
        while seen < FRAMES:
            pending = sq.pending()
            if not pending:
                assert guest.poll() is None, guest.communicate()
                continue
            room = cq.space()
            batch = min(pending, room)
            for i in range(batch):
                sub = sq.read(i)
                expected = (seen * 2654435761 & 0xFFFF_FFFF_FFFF_FFFF).to_bytes(8, "little")
                assert (sub.seq, sub.call_id, bytes(sub.args[:8])) == (seen, 0x0001 + seen % 7, expected), seen
                assert cq.push(seq=sub.seq, call_id=sub.call_id, status=seen % 1000, out_len=seen % 4096)
                seen += 1
            sq.advance(batch)
        out, err = guest.communicate(timeout=60)
    finally:
        if guest.poll() is None:
            guest.kill()
            guest.wait()
    elapsed = time.perf_counter() - started
    assert guest.returncode == 0, err
    assert out.split() == [str(FRAMES), str(FRAMES)]
    print(f"{FRAMES} frames each way in {elapsed:.1f} s ({2 * FRAMES / elapsed:,.0f} frames/s)")
