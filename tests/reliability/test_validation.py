"""A hostile guest over the real rings: every malformed frame, offset, handle and pointer gets its own
CUDA error, is counted for that VM, and costs nothing else; a malformed entry header fails that entry
alone; only impossible ring indices make a region too broken to serve, and it is marked broken for
that VM only."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest

from guest import DeviceGoneError, GuestClient
from mediator._launcher import MediatorProcess
from protocol import (
    CALLS_BY_NAME,
    SQE_SIZE,
    ChannelField,
    ChannelState,
    CloseReason,
    CompleteFlags,
    Completion,
    CublasStatus,
    CUresult,
    DeviceState,
    SubmissionProducer,
    SubmitFlags,
    encode_args,
    encode_submission,
)
from protocol._frames import SQE_HEADER

from ._support import vm_status, wait_for

INVALID_VALUE, INVALID_HANDLE = CUresult.CUDA_ERROR_INVALID_VALUE, CUresult.CUDA_ERROR_INVALID_HANDLE


def raw(gpu: GuestClient, call_id: int, args: bytes = b"", **fields: int) -> Completion:
    """Write one submission exactly as given (no client-side checks) and wait for its completion."""
    gpu.seq += 1
    assert gpu.sq.push(seq=gpu.seq, call_id=call_id, args=args, **fields)
    gpu._kick()
    return gpu.wait(gpu.seq)


def raw_header(gpu: GuestClient, call_id: int, *, flags: int = 0, args_len: int = 0,
               reserved: int = 0) -> int:
    """Publish one entry whose header is written field by field, as no encoder would; returns its seq."""
    gpu.seq += 1
    layout = gpu.region.layout
    slot = layout.sq_offset + (gpu.sq.index & (layout.sq_entries - 1)) * SQE_SIZE
    SQE_HEADER.pack_into(gpu.region.buf, slot, gpu.seq, call_id, flags, 0, 0, 0, 0, args_len, reserved)
    gpu.region.set_u32(ChannelField.SQ_TAIL, gpu.sq.index + 1)
    gpu.sq = SubmissionProducer(gpu.region)  # resumes at the tail the region holds
    gpu._kick()
    return gpu.seq


def args_of(name: str, **values: Any) -> tuple[int, bytes]:
    spec = CALLS_BY_NAME[name]
    return spec.call_id, encode_args(spec.args(**values))


def counts(mediator: MediatorProcess, vm: int) -> tuple[int, int]:
    row = vm_status(mediator, vm)
    return row["errors"], row["protocol_errors"]


def test_malformed_frames_get_specific_errors_and_are_counted(mediator: MediatorProcess) -> None:
    with GuestClient.connect(mediator.vm_socket(1)) as gpu:
        gpu.init()
        arena = gpu.region.layout.arena_size
        htod, htod_args = args_of("memcpy_htod", dst=gpu.mem_alloc(4096), stream=0)
        nop = CALLS_BY_NAME["nop"].call_id
        cases: list[tuple[str, Completion, int]] = [
            ("unknown call id", raw(gpu, 0x7777), CUresult.CUDA_ERROR_NOT_SUPPORTED),
            ("arguments of the wrong length", raw(gpu, htod, htod_args[:8]), INVALID_VALUE),
            ("arguments for a call that takes none", raw(gpu, nop, bytes(8)), INVALID_VALUE),
            ("input past the arena", raw(gpu, htod, htod_args, in_off=arena - 16, in_len=32), INVALID_VALUE),
            ("input offset that wraps", raw(gpu, htod, htod_args, in_off=0xFFFF_FFF0, in_len=0x20), INVALID_VALUE),
            ("output past the arena", raw(gpu, *args_of("memcpy_dtoh", src=0, count=64, stream=0),
                                          out_off=arena - 8, out_cap=64), INVALID_VALUE),
            ("input and output overlap", raw(gpu, *args_of("memcpy_dtoh", src=0, count=64, stream=0),
                                             in_off=0, in_len=64, out_off=32, out_cap=64), INVALID_VALUE),
            ("an enum value CUDA does not have", raw(gpu, CALLS_BY_NAME["mem_get_allocation_granularity"].call_id,
                                                     struct.pack("<iI", 0, 9)), INVALID_VALUE),
        ]
        for what, completion, expected in cases:
            assert completion.status == expected, what
        # a call CUDA has no asynchronous form of, submitted ASYNC: refused at once, as an async error
        alloc, alloc_args = args_of("mem_alloc", bytesize=256)
        gpu.seq += 1
        assert gpu.sq.push(seq=gpu.seq, call_id=alloc, args=alloc_args, flags=int(SubmitFlags.ASYNC))
        gpu.nop()
        assert [(c.seq, c.status) for c in gpu.async_errors] == [(gpu.seq - 1, INVALID_VALUE)]
        # and latched like any asynchronous failure: the next call that waits reports it, once
        assert gpu.call("ctx_synchronize").status == INVALID_VALUE
        gpu.ctx_synchronize()
        # every refusal is a protocol error; errors also counts the latched report
        wait_for("the refusals counted", lambda: counts(mediator, 1) == (len(cases) + 2, len(cases) + 1))
        gpu.nop()  # and the VM is served as before
        assert counts(mediator, 2) == (0, 0), "another VM's counters are its own"


def test_handles_of_the_wrong_kind_freed_never_issued_or_another_vms(mediator: MediatorProcess) -> None:
    with GuestClient.connect(mediator.vm_socket(1)) as one, GuestClient.connect(mediator.vm_socket(2)) as two:
        one.init()
        two.init()
        for _ in range(3):
            two.stream_create()
        theirs = two.stream_create()  # an id VM 1 was never given
        event = one.event_create()
        gone = one.stream_create()
        one.stream_destroy(gone)
        for what, stream in (("never issued", 999), ("another VM's", theirs), ("destroyed", gone),
                             ("an event's id as a stream", event)):
            status = one.call("stream_synchronize", one.args("stream_synchronize", stream=stream)).status
            assert status == INVALID_HANDLE, what
        assert one.call("event_record", one.args("event_record", event=theirs + 50, stream=0)).status == \
            INVALID_HANDLE
        assert one.call("cublas_destroy", one.args("cublas_destroy", handle=7)).status != 0
        two.stream_synchronize(theirs)  # still VM 2's, untouched


def test_device_pointers_are_checked_against_the_vms_own_allocations(mediator: MediatorProcess) -> None:
    with GuestClient.connect(mediator.vm_socket(1)) as one, GuestClient.connect(mediator.vm_socket(2)) as two:
        one.init()
        two.init()
        mine = one.mem_alloc(4096)
        # each VM has an address space of its own, so equal addresses may name different memory;
        # VM 2 allocates past anything VM 1 holds, so its pointer is one VM 1 was never given
        two.mem_alloc(1 << 20)
        theirs = two.mem_alloc(4096)
        assert not mine <= theirs < mine + 4096
        two.memcpy_htod(theirs, b"secret")

        def dtoh(src: int, count: int) -> int:
            return one.call("memcpy_dtoh", one.args("memcpy_dtoh", src=src, count=count, stream=0),
                            out_cap=count).status

        assert dtoh(theirs, 6) == INVALID_VALUE, "another VM's pointer"
        assert dtoh(mine + 4000, 200) == INVALID_VALUE, "starts inside, runs past the end"
        assert dtoh(0, 16) == INVALID_VALUE, "null"
        assert dtoh(2**64 - 8, 8) == INVALID_VALUE, "top of the address space"
        status = one.call("memset_d8", one.args("memset_d8", dst=theirs, value=0, count=6, stream=0)).status
        assert status == INVALID_VALUE
        status = one.call("memcpy_dtod", one.args("memcpy_dtod", dst=mine, src=theirs, count=6, stream=0)).status
        assert status == INVALID_VALUE
        one.mem_free(mine)
        assert one.call("mem_free", one.args("mem_free", dptr=mine)).status == INVALID_VALUE, "double free"
        assert dtoh(mine, 16) == INVALID_VALUE, "use after free"
        assert one.call("mem_free", one.args("mem_free", dptr=theirs)).status == INVALID_VALUE
        assert two.memcpy_dtoh(theirs, 6) == b"secret"


def _closed_for_violation(client: GuestClient) -> bool:
    return (client.region.channel_state == ChannelState.CLOSED_BY_HOST
            and client.region.u32(ChannelField.CLOSE_REASON) == CloseReason.PROTOCOL_VIOLATION)


@pytest.mark.parametrize("damage", ["tail jumps past the ring", "tail goes backwards"])
def test_impossible_ring_indices_close_that_channel_only(mediator: MediatorProcess, damage: str) -> None:
    with GuestClient.connect(mediator.vm_socket(1)) as one, GuestClient.connect(mediator.vm_socket(1)) as same_vm, \
            GuestClient.connect(mediator.vm_socket(2)) as two:
        for client in (one, same_vm, two):
            client.init()
        for _ in range(5):
            one.nop()
        tail = one.region.u32(ChannelField.SQ_TAIL)
        entries = one.region.layout.sq_entries
        one.region.set_u32(ChannelField.SQ_TAIL, tail + entries + 5 if damage.startswith("tail jumps") else tail - 3)
        one._kick()
        wait_for("the channel closed for its violation", lambda: _closed_for_violation(one), 20)
        assert one.header.device_state == DeviceState.READY, "the region is not broken"
        with pytest.raises(DeviceGoneError):
            one.nop()
        for _ in range(20):  # the VM's other process and the other VM are served on
            same_vm.nop()
            two.nop()
        assert vm_status(mediator, 1)["channels_broken"] == 1
        one.recover()  # the process may open its channel again: a fresh context
        one.init()
        one.nop()


@pytest.mark.parametrize("damage", ["completion head runs ahead of the tail", "completion head goes backwards"])
def test_impossible_completion_indices_close_that_channel_only(mediator: MediatorProcess, damage: str) -> None:
    with GuestClient.connect(mediator.vm_socket(1)) as one, GuestClient.connect(mediator.vm_socket(1)) as same_vm:
        one.init()
        same_vm.init()
        for _ in range(5):
            one.nop()
        head = one.region.u32(ChannelField.CQ_HEAD)
        entries = one.region.layout.cq_entries
        one.region.set_u32(ChannelField.CQ_HEAD, head + 9 if damage.endswith("tail") else head - entries - 1)
        one.seq += 1
        assert one.sq.push(seq=one.seq, call_id=CALLS_BY_NAME["nop"].call_id)  # the host must answer it
        one._kick()
        wait_for("the channel closed for its violation", lambda: _closed_for_violation(one), 20)
        for _ in range(20):
            same_vm.nop()
        assert vm_status(mediator, 1)["state"] == "serving"


def test_the_guest_rewriting_the_header_and_the_hosts_indices_changes_nothing_the_host_uses(
        mediator: MediatorProcess) -> None:
    with GuestClient.connect(mediator.vm_socket(1)) as gpu:
        gpu.init()
        ptr = gpu.mem_alloc(4096)
        gpu.memcpy_htod(ptr, b"kept")
        # everything the host wrote at layout, and the host's own ring indices: the host kept its copies
        for field in (ChannelField.MAGIC, ChannelField.SQ_OFFSET, ChannelField.ARENA_OFFSET):
            gpu.region.set_u64(field, 12)
        gpu.region.set_u64(ChannelField.ARENA_SIZE, 1 << 40)
        gpu.region.set_u32(ChannelField.SQ_ENTRIES, 1 << 20)
        gpu.region.set_u32(ChannelField.CQ_ENTRIES, 3)
        gpu.region.set_u32(ChannelField.LATCHED_ERROR, 700)
        # the host's own indices, scribbled on: it never reads them back, it republishes its own
        sq_head, cq_tail = gpu.region.u32(ChannelField.SQ_HEAD), gpu.region.u32(ChannelField.CQ_TAIL)
        gpu.region.set_u32(ChannelField.SQ_HEAD, sq_head + 12345)
        gpu.region.set_u32(ChannelField.CQ_TAIL, cq_tail + 999)
        gpu.seq += 1  # (pushed by hand: the guest's own space check reads the scribbled head)
        layout = gpu.region.layout  # the guest's copy, validated when it connected
        slot = layout.sq_offset + (gpu.sq.index & (layout.sq_entries - 1)) * SQE_SIZE
        encode_submission(gpu.region.buf, slot, seq=gpu.seq, call_id=CALLS_BY_NAME["nop"].call_id)
        gpu.region.set_u32(ChannelField.SQ_TAIL, gpu.sq.index + 1)
        gpu.sq = SubmissionProducer(gpu.region)  # resumes at the tail the region holds
        gpu._kick()
        wait_for("the host's indices republished", lambda: (gpu.region.u32(ChannelField.SQ_HEAD),
                                                            gpu.region.u32(ChannelField.CQ_TAIL))
                 == (sq_head + 1, cq_tail + 1))
        assert gpu.wait(gpu.seq).status == 0
        for _ in range(3 * gpu.region.layout.sq_entries):  # wraps both rings: the host's indices hold
            gpu.call("nop")
        assert gpu.memcpy_dtoh(ptr, 4) == b"kept"
        assert gpu.call("ctx_synchronize").status == 0, "a latched error the guest wrote is not the host's"
        assert vm_status(mediator, 1)["state"] == "serving"


GLOBALS_PTX = b""".version 8.0
.target sm_90
.address_size 64
.visible .global .align 4 .b8 table[256];
.visible .entry noop() { ret; }
"""


def test_a_handle_of_each_kind_is_refused_where_any_other_kind_is_expected(mediator: MediatorProcess) -> None:
    with GuestClient.connect(mediator.vm_socket(1)) as gpu:
        gpu.init()
        stream = gpu.stream_create()
        module = gpu.value("module_load_data", "module", data=GLOBALS_PTX)
        gpu.checked("stream_begin_capture", gpu.args("stream_begin_capture", stream=stream, mode=2))
        graph = gpu.value("stream_end_capture", "graph", gpu.args("stream_end_capture", stream=stream))
        ids = {
            "stream": stream,
            "event": gpu.event_create(),
            "memhandle": gpu.value("mem_create", "handle", gpu.args("mem_create", size=2 << 20, device=0, flags=0)),
            "module": module,
            "function": gpu.value("module_get_function", "function", gpu.args("module_get_function", module=module),
                                  data=b"noop\0"),
            "cublas": gpu.value("cublas_create", "handle"),
            "graph": graph,
            "graphexec": gpu.value("graph_instantiate", "graph_exec", gpu.args("graph_instantiate", graph=graph, flags=0)),
            "context": gpu.value("ctx_create", "ctx", gpu.args("ctx_create", flags=0, device=0)),
        }
        assert len(set(ids.values())) == len(ids), ids
        users: dict[str, tuple[str, str, int]] = {  # call, its handle argument, the refusal
            "stream": ("stream_query", "stream", INVALID_HANDLE),
            "event": ("event_query", "event", INVALID_HANDLE),
            "memhandle": ("mem_release", "handle", INVALID_HANDLE),
            "function": ("func_get_param_layout", "function", INVALID_HANDLE),
            "cublas": ("cublas_set_math_mode", "handle", 1),  # CUBLAS_STATUS_NOT_INITIALIZED
            "graph": ("graph_instantiate", "graph", INVALID_HANDLE),
            "graphexec": ("graph_launch", "graph_exec", INVALID_HANDLE),
            "context": ("ctx_set_current", "ctx", CUresult.CUDA_ERROR_INVALID_CONTEXT),
            "module": ("module_unload", "module", INVALID_HANDLE),  # last: unloading ends its functions
        }
        extra: dict[str, dict[str, int]] = {"cublas_set_math_mode": {"mode": 0}, "graph_instantiate": {"flags": 0},
                                            "graph_launch": {"stream": 0}}
        for kind, (name, argument, refusal) in users.items():
            for other, handle in ids.items():
                if other == kind:
                    continue
                args = gpu.args(name, **{argument: handle}, **extra.get(name, {}))
                assert gpu.call(name, args).status == refusal, f"{other} {handle} used as a {kind}"
        for kind, (name, argument, _) in users.items():  # and each works with its own kind
            args = gpu.args(name, **{argument: ids[kind]}, **extra.get(name, {}))
            assert gpu.call(name, args).status == 0, kind
        wait_for("refusals counted", lambda: vm_status(mediator, 1)["errors"] == len(users) * (len(ids) - 1))


def test_a_burst_of_refusals_is_logged_once_then_summarised(mediator: MediatorProcess) -> None:
    def failures() -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in mediator.log.splitlines() if line.startswith("{")]
        return [e for e in lines if e.get("event") == "call failed" and e.get("vm") == "vm1"]

    with GuestClient.connect(mediator.vm_socket(1)) as gpu:
        gpu.init()
        for _ in range(300):  # a flood of bad frees: hundreds of refusals inside one second
            assert gpu.call("mem_free", gpu.args("mem_free", dptr=0xDEAD00)).status == INVALID_VALUE
        wait_for("the first refusal logged", lambda: len(failures()) >= 1)
        assert len(failures()) <= 2, "a burst is not logged call by call"

        def summarised() -> bool:  # the next line, a second later, counts what it did not log
            gpu.call("mem_free", gpu.args("mem_free", dptr=0xDEAD00))
            return any(e.get("suppressed_since_last", 0) >= 250 for e in failures())

        wait_for("the burst summarised", summarised)
        wait_for("every refusal counted", lambda: vm_status(mediator, 1)["errors"] >= 301)


def test_a_malformed_entry_header_fails_that_entry_alone(mediator: MediatorProcess) -> None:
    """Unknown flag bits, a reserved word, an oversized args_len, CHUNK_MORE on a call that is not a
    copy: each entry is answered CUDA_ERROR_INVALID_VALUE by its own seq, counted, and the ring goes on."""
    with GuestClient.connect(mediator.vm_socket(1)) as gpu:
        gpu.init()
        nop = CALLS_BY_NAME["nop"].call_id
        ptr = gpu.mem_alloc(4096)
        memset, memset_args = args_of("memset_d8", dst=ptr, value=7, count=16, stream=0)
        chunk_more = int(SubmitFlags.CHUNK_MORE)
        cases: list[tuple[str, int]] = [
            ("an unknown flag bit", raw_header(gpu, nop, flags=0x4)),
            ("every flag bit", raw_header(gpu, nop, flags=0xFFFE)),
            ("a non-zero reserved word", raw_header(gpu, nop, reserved=0xDEAD)),
            ("args_len past the inline arguments", raw_header(gpu, nop, args_len=161)),
            ("args_len of 4 GiB", raw_header(gpu, nop, args_len=0xFFFF_FFFF)),
            ("an unknown call id with a reserved word", raw_header(gpu, 0x7777, reserved=1)),
        ]
        for what, seq in cases:
            completion = gpu.wait(seq)
            assert (completion.seq, completion.status) == (seq, INVALID_VALUE), what
        cublas = raw_header(gpu, CALLS_BY_NAME["cublas_create"].call_id, flags=0x10)
        assert gpu.wait(cublas).status == CublasStatus.CUBLAS_STATUS_INVALID_VALUE, "in the call's own domain"
        not_a_copy = raw(gpu, memset, memset_args, flags=chunk_more)
        assert not_a_copy.status == INVALID_VALUE, "CHUNK_MORE on a memset"
        assert gpu.memcpy_dtoh(ptr, 16) == bytes(16), "the refused memset did nothing"
        # an ASYNC entry with a malformed header fails as any ASYNC call does: reported and latched
        bad_async = raw_header(gpu, memset, flags=int(SubmitFlags.ASYNC) | 0x8, args_len=len(memset_args))
        gpu.nop()
        assert [(c.seq, c.status) for c in gpu.async_errors] == [(bad_async, INVALID_VALUE)]
        latched = gpu.call("ctx_synchronize")
        assert (latched.status, latched.flags) == (INVALID_VALUE, CompleteFlags.LATCHED)
        # CHUNK_MORE where it belongs still works: a copy the guest splits into chunks (1 MiB: four)
        data = bytes(range(256)) * 4096
        big = gpu.mem_alloc(len(data))
        gpu.memcpy_htod(big, data)
        assert gpu.memcpy_dtoh(big, len(data)) == data
        assert gpu.header.device_state == DeviceState.READY
        refusals = len(cases) + 3
        wait_for("each refusal counted once", lambda: counts(mediator, 1) == (refusals + 1, refusals))
        assert vm_status(mediator, 1)["state"] == "serving"
        assert vm_status(mediator, 1)["restarts"] == 0
