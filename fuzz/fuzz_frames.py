"""Coverage-guided fuzz target (atheris): the decoders of everything a guest writes, and the codec.

Each input picks one decoder and feeds it bytes: a submission entry, a completion entry, a region
header (a valid one with fuzzed bytes written over it), a pair of payload spans, or the argument /
result struct of one catalog call. Untrusted bytes may make a decoder raise only the protocol's own
:class:`protocol.RemoteProtocolError` (or :class:`~protocol.RegionLayoutError`); anything else is a
crash. What a decoder accepts is checked as well: an accepted entry re-encodes to the same bytes (a
refused one still carries the header fields the host answers it by, exactly as written), an
accepted struct survives encode/decode unchanged, an accepted header describes sections that lie
inside the region without overlapping, accepted payload spans lie inside the arena and apart.

Run (see docs/reliability.md)::

    .venv/bin/python fuzz/fuzz_frames.py -atheris_runs=100000
    .venv/bin/python fuzz/fuzz_frames.py -max_total_time=600 -print_final_stats=1 build/fuzz/frames
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import atheris

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with atheris.instrument_imports(include=["protocol", "fuzz"]):
    from fuzz._harness import allowed
    from protocol import (
        CALLS,
        CQE_SIZE,
        HEADER_SIZE,
        SQE_SIZE,
        CallSpec,
        CompletionProducer,
        MalformedSubmissionError,
        Region,
        Submission,
        SubmissionConsumer,
        WireModel,
        check_payloads,
        decode_args,
        decode_call,
        decode_completion,
        decode_result,
        decode_submission,
        encode_args,
        encode_result,
        encode_submission,
        lay_out_channel,
        validate_channel,
    )
    from protocol._frames import SQE_HEADER
    from protocol._layout import MIN_REGION

SPECS = sorted(CALLS.values(), key=lambda spec: spec.call_id)
_REGION_SIZES = (MIN_REGION, MIN_REGION * 2, MIN_REGION * 8)


def _submission(fdp: atheris.FuzzedDataProvider) -> None:
    raw = fdp.ConsumeBytes(SQE_SIZE)
    try:
        sub = decode_submission(raw)
    except MalformedSubmissionError as exc:  # that entry fails alone: answered by what it echoes
        seq, call_id, flags, in_off, in_len, out_off, out_cap, _, _ = SQE_HEADER.unpack_from(raw)
        assert exc.entry == Submission(seq, call_id, flags, in_off, in_len, out_off, out_cap, b""), exc.entry
        return
    except Exception as exc:
        if allowed(exc):
            return
        raise
    again = bytearray(SQE_SIZE)
    encode_submission(again, 0, seq=sub.seq, call_id=sub.call_id, args=sub.args, flags=sub.flags,
                      in_off=sub.in_off, in_len=sub.in_len, out_off=sub.out_off, out_cap=sub.out_cap)
    used = 32 + len(sub.args)
    assert bytes(again[:used]) == raw[:used], "an accepted entry does not re-encode to its own bytes"
    try:
        spec, args = decode_call(sub)
    except Exception as exc:
        if allowed(exc):
            return
        raise
    assert spec.call_id == sub.call_id
    _round_trip(encode_args(args), _decoder(spec, results=False), encode_args)


def _completion(fdp: atheris.FuzzedDataProvider) -> None:
    raw = fdp.ConsumeBytes(CQE_SIZE)
    try:
        completion = decode_completion(raw)
    except Exception as exc:
        if allowed(exc):
            return
        raise
    spec = CALLS.get(completion.call_id)
    if spec is None:
        return
    try:
        result = decode_result(spec, completion.results)
    except Exception as exc:
        if allowed(exc):
            return
        raise
    _round_trip(encode_result(result), _decoder(spec, results=True), encode_result)


Decoder = Callable[[bytes], WireModel]


def _decoder(spec: CallSpec, *, results: bool) -> Decoder:
    if results:
        return lambda raw: decode_result(spec, raw)
    return lambda raw: decode_args(spec, raw)


def _round_trip(encoded: bytes, decode: Decoder, encode: Callable[[WireModel], bytes]) -> None:
    """An accepted struct encodes, and what it encodes to decodes and encodes to the same bytes."""
    again = encode(decode(encoded))
    assert again == encoded, f"codec round trip changed {encoded.hex()} into {again.hex()}"


def _header(fdp: atheris.FuzzedDataProvider) -> None:
    size = fdp.PickValueInList(list(_REGION_SIZES))
    region = bytearray(size)
    lay_out_channel(region, vm_id=1, sq_entries=1 << fdp.ConsumeIntInRange(0, 4),
                   cq_entries=1 << fdp.ConsumeIntInRange(0, 4))
    for _ in range(fdp.ConsumeIntInRange(0, 8)):
        offset = fdp.ConsumeIntInRange(0, 255)
        patch = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 8))
        region[offset:offset + len(patch)] = patch
    if fdp.ConsumeBool():
        region = region[:fdp.ConsumeIntInRange(0, size)]
    try:
        layout = validate_channel(region)
    except Exception as exc:
        if allowed(exc):
            return
        raise
    sections = sorted([(layout.sq_offset, layout.sq_entries * SQE_SIZE),
                       (layout.cq_offset, layout.cq_entries * CQE_SIZE),
                       (layout.arena_offset, layout.arena_size)])
    end = HEADER_SIZE
    for offset, length in sections:
        assert offset >= end and length > 0 and offset + length <= len(region), layout
        end = offset + length
    view = memoryview(region)
    mapped = Region(view, layout)
    try:
        for consumer in (SubmissionConsumer(mapped), CompletionProducer(mapped)):
            count = consumer.pending() if isinstance(consumer, SubmissionConsumer) else consumer.space()
            assert 0 <= count <= consumer.entries
    except Exception as exc:
        if not allowed(exc):
            raise
    finally:
        mapped.release()


def _payloads(fdp: atheris.FuzzedDataProvider) -> None:
    arena = fdp.ConsumeIntInRange(0, 1 << 32)
    sub = Submission(1, 1, 0, fdp.ConsumeIntInRange(0, 0xFFFF_FFFF), fdp.ConsumeIntInRange(0, 0xFFFF_FFFF),
                     fdp.ConsumeIntInRange(0, 0xFFFF_FFFF), fdp.ConsumeIntInRange(0, 0xFFFF_FFFF), b"")
    try:
        check_payloads(sub, arena)
    except Exception as exc:
        if allowed(exc):
            return
        raise
    spans = [(off, off + n) for off, n in ((sub.in_off, sub.in_len), (sub.out_off, sub.out_cap)) if n]
    for start, end in spans:
        assert 0 <= start < end <= arena, (spans, arena)
    if len(spans) == 2:
        assert spans[0][1] <= spans[1][0] or spans[1][1] <= spans[0][0], spans


def _call_struct(fdp: atheris.FuzzedDataProvider) -> None:
    spec = SPECS[fdp.ConsumeIntInRange(0, len(SPECS) - 1)]
    results = fdp.ConsumeBool()
    raw = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 170))
    decode = _decoder(spec, results=results)
    encode = encode_result if results else encode_args
    try:
        model = decode(raw)
    except Exception as exc:
        if allowed(exc):
            return
        raise
    _round_trip(encode(model), decode, encode)


TARGETS = (_submission, _completion, _header, _payloads, _call_struct)


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    TARGETS[fdp.ConsumeIntInRange(0, len(TARGETS) - 1)](fdp)


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
