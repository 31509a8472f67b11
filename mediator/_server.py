"""The ring server: drain submissions, decode, execute, complete — CUDA's ordering and error rules.

Sans-I/O: it reads and writes the region and calls the executor, and never sleeps or touches a
file descriptor; the worker loop around it (``_worker.py``) decides when to run it and when to
sleep. Theory of operation:

* Submissions are served strictly in ring order, so one VM's queue stays in order.
* A completion is written for every submission without ``ASYNC``. An ``ASYNC`` submission gets none
  unless it fails; then a completion flagged ``ASYNC_ERROR`` reports it, and the error is latched.
* A call that waits (``spec.synchronizing``, or an async-capable call submitted without ``ASYNC``)
  first does its own work; if that succeeds and an error is latched, it reports the latched error
  (flag ``LATCHED``) and the latch clears, as ``cudaStreamSynchronize`` reports an earlier failure.
* A sticky error (a kernel fault) fails every later call until the executor's context is rebuilt.
* The head advances only after an entry has been executed: input payloads are not reused under us.
* Limits (``_limits.py``): with ``calls_per_s`` set, no more calls are served than the VM's token
  bucket allows (the rest wait in its ring); after ``max_async_inflight`` asynchronous calls with no
  call that waits, the server synchronizes the context itself, so a VM cannot queue unbounded work
  on a GPU that other VMs share (the guest sees backpressure, not an error).
* Back-pressure: the host never overwrites an unconsumed completion. When the completion ring is
  full and the next entry needs a completion, ``drain`` stops before it and sets ``cq_blocked``;
  the worker then sleeps (heartbeat and control kept) until the guest makes room. Nothing is lost.
* A drain returns after ``BATCH_NS`` of served calls even within its budget, so that slow calls in
  a row never keep the worker from its heartbeat and its control socket for long.
* Host-device copies on ``sim`` at the head (pinned, and staged ones' host side) are served in C
  (``_pinned_fast``) while no trace is attached, no error is latched and the context is not sticky: a
  run of them costs a C loop, not a Python call each. The C path serves only what it can check against
  what this Python path has checked before (the blocks and ranges of earlier copies, forgotten when
  anything is freed), counts them as this path would, and stops at anything else, which is then served
  here exactly as ever; a copy served here teaches it the block (and pinned range) it used. A run in C
  may go past the drain's budget, up to what is queued, for ``FAST_SLICE_NS`` (not past the token bucket).
* Anything the guest wrote wrong becomes an error status, counted; nothing here raises for it,
  except a ring whose indices are impossible, which raises :class:`RemoteProtocolError` because the
  region can no longer be served. A malformed entry header (unknown flag bits, a non-zero reserved
  word, ``args_len`` past the inline area, ``CHUNK_MORE`` on a call that is not a copy) fails that
  entry with ``CUDA_ERROR_INVALID_VALUE``, answered as any failure of an entry submitted that way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from time import perf_counter_ns
from typing import Final

import structlog

from executor import CallIO, CudaError, Executor
from protocol import (
    CALLS,
    CALLS_BY_NAME,
    CallSpec,
    ChannelField,
    CompleteFlags,
    CompletionProducer,
    CublasStatus,
    CUresult,
    MalformedSubmissionError,
    Region,
    RemoteProtocolError,
    Submission,
    SubmissionConsumer,
    SubmitFlags,
    check_payloads,
    codec_for,
    encode_result,
)

from ._limits import TokenBucket
from ._pinned_fast import FAST_COPIES, pinned_fast_path
from ._stats import LATENCY_BUCKETS, WorkerCounters

__all__ = ["BATCH_NS", "FAST_SLICE_NS", "RingServer", "TraceHook"]

#: a drain returns once the calls it served took this long, whatever its budget (see above)
BATCH_NS: Final = 50_000_000
#: a run of copies served in C goes on past the drain's budget while it has taken less than this: about
#: what a budget's worth of calls served in Python takes, so a pass holds the worker no longer (#19)
FAST_SLICE_NS: Final = 200_000
_ASYNC: Final = int(SubmitFlags.ASYNC)
_CHUNK_MORE: Final = int(SubmitFlags.CHUNK_MORE)
_ASYNC_ERROR: Final = int(CompleteFlags.ASYNC_ERROR)
_LATCHED: Final = int(CompleteFlags.LATCHED)
_HTOD: Final = CALLS_BY_NAME["memcpy_htod"].call_id
_LAST_BUCKET: Final = LATENCY_BUCKETS - 1
_DTOH: Final = CALLS_BY_NAME["memcpy_dtoh"].call_id
#: pinned copies (protocol 2.1) move their bytes with no payload: counted from their ``count``
_HTOD_PINNED: Final = CALLS_BY_NAME["memcpy_htod_pinned"].call_id
_DTOH_PINNED: Final = CALLS_BY_NAME["memcpy_dtoh_pinned"].call_id
_EMPTY: Final = memoryview(b"")
_CTX_SYNC: Final = CALLS_BY_NAME["ctx_synchronize"]
_NO_ARGS: Final = _CTX_SYNC.args()

#: called for each served call when tracing is on: (submission, call name, status, duration ns)
TraceHook = Callable[[Submission, str, int, int], None]


def _status_for(domain: str, status: CUresult) -> int:
    """Map a protocol-level refusal into a cuBLAS call's status domain."""
    if domain != "cublasStatus_t":
        return int(status)
    if status == CUresult.CUDA_ERROR_NOT_SUPPORTED:
        return int(CublasStatus.CUBLAS_STATUS_NOT_SUPPORTED)
    return int(CublasStatus.CUBLAS_STATUS_INVALID_VALUE)


class _Call:
    """What serving one call id needs, looked up once instead of per submission."""

    __slots__ = ("args", "handler", "is_async", "name", "no_args", "no_result", "spec", "waits")

    def __init__(self, spec: CallSpec, executor: Executor) -> None:
        self.spec = spec
        self.handler = executor.handler_for(spec)  # None: execute() answers "not supported"
        self.name = spec.name
        self.args = codec_for(spec.args)
        self.no_args = self.args.empty  # the instance every call without arguments shares, or None
        # a result model without fields encodes to no bytes: no encoder call for it
        self.no_result = spec.result if codec_for(spec.result).empty is not None else None
        self.is_async = spec.is_async
        self.waits = spec.synchronizing or spec.is_async  # reports a latched error when not ASYNC


class RingServer:
    def __init__(self, region: Region, executor: Executor, counters: WorkerCounters,
                 *, vm: str = "?") -> None:
        self.region = region
        self.executor = executor
        self.counters = counters
        self.sq = SubmissionConsumer(region)
        self.cq = CompletionProducer(region)
        self.arena = region.arena
        self.arena_size = region.layout.arena_size
        self.latched: int = 0  # first unreported asynchronous error (CUresult), 0 if none
        self.sticky: CudaError | None = None
        self.trace: TraceHook | None = None
        self.log = structlog.get_logger("worker").bind(vm=vm)
        self._last_error_log = 0.0
        self._suppressed = 0
        self.limiter: TokenBucket | None = None
        self.rate_limited = False  # the last drain stopped for the token bucket
        self.cq_blocked = False  # the last drain stopped at an entry that needs a full ring's room
        self.max_async_inflight = 0  # 0: no cap
        self._async_run = 0  # asynchronous calls since the last call that waited
        self._calls = {call_id: _Call(spec, executor) for call_id, spec in CALLS.items()}
        # calls without payloads share these (handlers never keep their CallIO; out_len is reset)
        self._io_sync = CallIO(_EMPTY, _EMPTY, True)
        self._io_async = CallIO(_EMPTY, _EMPTY, False)
        #: pinned copies served in C (None: no extension, or not ``sim``)
        self.pinned_fast = pinned_fast_path(region, executor, counters, self.cq)

    # -- the hot path -------------------------------------------------------------------------

    def drain(self, budget: int = 256) -> int:
        """Serve up to ``budget`` pending submissions; returns how many were served."""
        sq = self.sq
        pending = sq.pending()
        self.rate_limited = self.cq_blocked = False
        if not pending:
            return 0
        limiter = self.limiter
        if limiter is not None:
            allowed = limiter.available(time.monotonic())
            if allowed < min(pending, budget):
                self.rate_limited = True
                budget = allowed
        count = min(pending, budget)
        # a run of copies in C may go past the budget, up to what is queued, for FAST_SLICE_NS: the
        # budget bounds a pass's time, and such a copy costs a fraction of a Python call's (#19);
        # never past what the token bucket allows
        fast_limit = count if limiter is not None else pending
        cq, serve, counters = self.cq, self._serve, self.counters
        spent = counters.latency_sum_ns + BATCH_NS
        served = 0
        refused: MalformedSubmissionError | None
        fast = self.pinned_fast.c if self.pinned_fast is not None else None
        while served < count:
            try:
                sub = sq.read()
            except MalformedSubmissionError as exc:  # answered like any bad call, by what it echoes
                sub, refused = exc.entry, exc
            else:
                refused = None
                if (fast is not None and sub[1] in FAST_COPIES and self.trace is None
                        and self.sticky is None and not self.latched):
                    done = fast.serve(sq.index, fast_limit - served, self._async_run, self.max_async_inflight,
                                      spent - counters.latency_sum_ns, count - served, FAST_SLICE_NS)
                    if done:  # counted in C; the entry it stopped at (if any) is read again
                        self._async_run = fast.async_run
                        sq.advance(done)
                        served += done
                        if counters.latency_sum_ns > spent:
                            break
                        continue
            if not sub[2] & _ASYNC and cq.space() == 0:
                self.cq_blocked = True  # the guest has not consumed completions: wait for room
                break
            serve(sub, refused)
            sq.advance()
            served += 1
            if counters.latency_sum_ns > spent:
                break  # slow calls: let the worker beat and look at its control socket first
        if limiter is not None and served:
            limiter.take(served, time.monotonic())
        return served

    def _serve(self, sub: Submission, refused: MalformedSubmissionError | None = None) -> None:
        counters = self.counters
        counters.calls += 1
        seq, call_id, sub_flags, in_off, in_len, out_off, out_cap, raw_args = sub
        is_async = sub_flags & _ASYNC
        call = self._calls.get(call_id)
        started = perf_counter_ns()
        results = b""
        out_len = 0
        flags = 0
        try:
            if refused is not None:
                raise refused
            if call is None:
                raise RemoteProtocolError(f"unknown call id {call_id:#06x}",
                                          CUresult.CUDA_ERROR_NOT_SUPPORTED)
            if is_async and not call.is_async:
                raise RemoteProtocolError(f"{call.name} cannot be submitted ASYNC")
            if sub_flags & _CHUNK_MORE and call_id not in (_HTOD, _DTOH):
                raise RemoteProtocolError(f"{call.name} is not a copy: CHUNK_MORE marks copy chunks only")
            if in_len or out_cap:
                check_payloads(sub, self.arena_size)
            args = call.no_args
            if args is None or raw_args:
                args = call.args.decode(raw_args, call.name, "arguments")
            if self.sticky is not None:
                raise self.sticky
            if in_len or out_cap:
                arena = self.arena
                io = CallIO(arena[in_off:in_off + in_len] if in_len else _EMPTY,
                            arena[out_off:out_off + out_cap] if out_cap else _EMPTY, not is_async)
            else:
                io = self._io_async if is_async else self._io_sync
                io.out_len = 0
            executor = self.executor
            handler = call.handler
            if handler is None or executor.pending_faults:
                result = executor.execute(call.spec, args, io)
            else:
                result = handler(args, io)
            results = b"" if type(result) is call.no_result else encode_result(result)
            out_len = io.out_len
            status = 0
            # a copy served here teaches the C path its block (and pinned range), unless tracing
            if call_id == _HTOD:
                counters.bytes_htod += in_len
                if in_len and self.pinned_fast is not None and self.trace is None:
                    self.pinned_fast.learn(args.dst, in_len)  # type: ignore[attr-defined]
            elif call_id == _DTOH:
                counters.bytes_dtoh += out_len
                if out_len and self.pinned_fast is not None and self.trace is None:
                    self.pinned_fast.learn(args.src, out_len)  # type: ignore[attr-defined]
            elif call_id == _HTOD_PINNED:
                counters.bytes_htod += args.count  # type: ignore[attr-defined]
                if self.pinned_fast is not None and self.trace is None:
                    self.pinned_fast.learn(args.dst, args.count, args.offset)  # type: ignore[attr-defined]
            elif call_id == _DTOH_PINNED:
                counters.bytes_dtoh += args.count  # type: ignore[attr-defined]
                if self.pinned_fast is not None and self.trace is None:
                    self.pinned_fast.learn(args.src, args.count, args.offset)  # type: ignore[attr-defined]
            if self.latched and not is_async and call.waits:
                status, flags, self.latched = self.latched, _LATCHED, 0
                self.region.set_u32(ChannelField.LATCHED_ERROR, 0)
        except RemoteProtocolError as exc:
            counters.protocol_errors += 1
            status = _status_for(call.spec.status_domain if call else "CUresult", exc.status)
            self._log_error(sub, self._name(call, call_id), status, exc.message)
        except CudaError as exc:
            status = int(exc.status)
            if exc.sticky and self.sticky is None:
                self.sticky = exc
            self._log_error(sub, self._name(call, call_id), status, exc.message)
        except MemoryError:  # past the worker's hard memory limit: the worker ends (mediator._worker)
            raise
        except Exception as exc:  # a bug of ours: answer, log, and keep serving the VM
            status = int(CUresult.CUDA_ERROR_UNKNOWN)
            self.log.exception("call crashed in the executor", call=self._name(call, call_id), seq=seq)
            self._log_error(sub, self._name(call, call_id), status, repr(exc))
        if status:
            counters.errors += 1
        if is_async:
            counters.async_calls += 1
            self._async_run += 1
            if self.max_async_inflight and self._async_run >= self.max_async_inflight:
                self._throttle()
            if status:
                if not self.latched:
                    self.latched = status
                    self.region.set_u32(ChannelField.LATCHED_ERROR, status)
                    counters.latched_errors += 1
                if self.cq.space():
                    self.cq.push(seq=seq, call_id=call_id, status=status, flags=_ASYNC_ERROR)
        else:
            self._async_run = 0
            self.cq.push(seq=seq, call_id=call_id, status=status, results=results, out_len=out_len,
                         flags=flags)
        duration = perf_counter_ns() - started
        counters.latency_sum_ns += duration
        bucket = (duration >> 10).bit_length()
        counters.latency[bucket if bucket < _LAST_BUCKET else _LAST_BUCKET] += 1
        if self.trace is not None:
            self.trace(sub, self._name(call, call_id), status, duration)

    @staticmethod
    def _name(call: _Call | None, call_id: int) -> str:
        return call.name if call is not None else f"call_{call_id:#06x}"

    def _throttle(self) -> None:
        """Wait for the VM's queued GPU work (its asynchronous errors latch as usual)."""
        self._async_run = 0
        self.counters.throttles += 1
        try:
            self.executor.execute(_CTX_SYNC, _NO_ARGS, CallIO(_EMPTY, _EMPTY, True))
        except CudaError as exc:
            if not self.latched:
                self.latched = int(exc.status)
                self.region.set_u32(ChannelField.LATCHED_ERROR, self.latched)
                self.counters.latched_errors += 1
            if exc.sticky and self.sticky is None:
                self.sticky = exc

    # -- errors -------------------------------------------------------------------------------

    def _log_error(self, sub: Submission, name: str, status: int, message: str) -> None:
        """Log the first error of a burst, then at most one line a second with a count."""
        now = time.monotonic()
        if now - self._last_error_log < 1.0:
            self._suppressed += 1
            return
        self.log.warning("call failed", call=name, seq=sub.seq, status=status, reason=message,
                         suppressed_since_last=self._suppressed)
        self._last_error_log = now
        self._suppressed = 0
