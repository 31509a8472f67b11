"""Module images: real PTX, cubin, fatbin and host objects built by nvcc, and hostile bytes.

The expected parameter layouts are what ``cuobjdump -elf tests/kernels/test_kernels.cubin`` (CUDA
13.0) prints as ``EIATTR_KPARAM_INFO`` (ordinal, offset, size) and ``EIATTR_CBANK_PARAM_SIZE``.
"""

from __future__ import annotations

import struct
import tracemalloc
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executor._errors import CudaError
from executor._modules import (
    FATBIN_MAGIC,
    MAX_GLOBAL_BYTES,
    KernelInfo,
    ModuleImage,
    ParamInfo,
    _lz4_block_decompress,
    _zstd_decompress,
    parse_module_image,
    retained_bytes,
)
from protocol import CUresult

KERNELS = Path(__file__).resolve().parents[1] / "kernels"

# name -> ((offset, size) per parameter, parameter block bytes), from cuobjdump -elf
EXPECTED_LAYOUTS: dict[str, tuple[tuple[tuple[int, int], ...], int]] = {
    "_Z10vector_addPKfS0_Pfi": (((0, 8), (8, 8), (16, 8), (24, 4)), 28),
    "_Z9scale_f32Pffi": (((0, 8), (8, 4), (12, 4)), 16),
    "_Z13add_bias_rowsPfPKfii": (((0, 8), (8, 8), (16, 4), (20, 4)), 24),
    "_Z8relu_f32PKfPfi": (((0, 8), (8, 8), (16, 4)), 20),
    "_Z8gelu_f32PKfPfi": (((0, 8), (8, 8), (16, 4)), 20),
    "_Z8silu_f32PKfPfi": (((0, 8), (8, 8), (16, 4)), 20),
    "_Z7mul_f32PKfS0_Pfi": (((0, 8), (8, 8), (16, 8), (24, 4)), 28),
    "_Z13rms_norm_rowsPKfPfiif": (((0, 8), (8, 8), (16, 4), (20, 4), (24, 4)), 28),
    "_Z12softmax_rowsPKfPfii": (((0, 8), (8, 8), (16, 4), (20, 4)), 24),
    "_Z15scale_by_globalPfi": (((0, 8), (8, 4)), 12),
    "_Z7add_lutPii": (((0, 8), (8, 4)), 12),
    # (char, double, float*, Pair{int, int}, short)
    "_Z14mystery_kernelcdPf4Pairs": (((0, 1), (8, 8), (16, 8), (24, 8), (32, 2)), 34),
}

EXPECTED_GLOBALS = {
    "g_scale": struct.pack("<f", 2.0),
    "g_lut": struct.pack("<4i", 1, 2, 3, 4),
    "g_counters": bytes(64),
}

READABLE = {
    "test_kernels.ptx": ("ptx", ("ptx",)),
    "test_kernels.cubin": ("cubin", ("elf sm_90",)),
    "test_kernels.fatbin": ("fatbin", ("elf sm_80", "ptx compute_90", "elf sm_90")),
    "test_kernels.lz4.fatbin": ("fatbin", ("elf sm_80", "ptx compute_90 lz4")),
    "test_kernels.zstd.fatbin": ("fatbin", ("elf sm_80 zstd", "ptx compute_90 zstd")),
    "test_kernels.default.fatbin": ("fatbin", ("elf sm_80", "ptx compute_90 zstd")),
    "test_kernels.host.o": ("fatbin", ("elf sm_90", "ptx compute_90 zstd")),
}


def load(name: str) -> bytes:
    return (KERNELS / name).read_bytes()


def layouts(image: ModuleImage) -> dict[str, tuple[tuple[tuple[int, int], ...], int]]:
    return {name: (tuple((p.offset, p.size) for p in k.params), k.param_bytes)
            for name, k in image.kernels.items()}


def invalid_image(data: bytes) -> CudaError:
    with pytest.raises(CudaError) as err:
        parse_module_image(data)
    assert err.value.status == CUresult.CUDA_ERROR_INVALID_IMAGE, err.value
    return err.value


# ---------------------------------------------------------------------------------------------
# the real images


@pytest.mark.parametrize("artifact", sorted(READABLE))
def test_each_image_declares_the_kernels_and_layouts_cuobjdump_reports(artifact: str) -> None:
    kind, parts = READABLE[artifact]
    image = parse_module_image(load(artifact))
    assert image.kind == kind
    assert image.parts == parts
    assert layouts(image) == EXPECTED_LAYOUTS


@pytest.mark.parametrize("artifact", sorted(READABLE))
def test_each_image_declares_its_globals_with_their_initial_bytes(artifact: str) -> None:
    image = parse_module_image(load(artifact))
    assert {name: g.initial_bytes() for name, g in image.globals.items()} == EXPECTED_GLOBALS
    assert {name: g.size for name, g in image.globals.items()} == {"g_scale": 4, "g_lut": 16,
                                                                   "g_counters": 64}


def test_a_nul_terminated_ptx_image_is_read_as_text() -> None:
    assert layouts(parse_module_image(load("test_kernels.ptx") + b"\0")) == EXPECTED_LAYOUTS


def test_kernel_info_records_name_and_params() -> None:
    image = parse_module_image(load("test_kernels.cubin"))
    kernel = image.kernels["_Z9scale_f32Pffi"]
    assert kernel == KernelInfo("_Z9scale_f32Pffi", (ParamInfo(0, 8), ParamInfo(8, 4), ParamInfo(12, 4)), 16,
                                kernel.variants)
    assert [(v.source, v.arch) for v in kernel.variants] == [("cubin", 90)]  # test_func_attributes.py: the rest


def ptx_target(text: str | None) -> str | None:
    if text is None:
        return None
    return next(line.split()[1] for line in text.splitlines() if line.startswith(".target"))


@pytest.mark.parametrize("artifact", ["test_kernels.zstd.fatbin", "test_kernels.default.fatbin",
                                      "test_kernels.lz4.fatbin", "test_kernels.fatbin"])
def test_compressed_ptx_entries_inflate_to_the_text_nvcc_wrote(artifact: str) -> None:
    plain = parse_module_image(load("test_kernels.fatbin"), compute_capability=90).ptx
    image = parse_module_image(load(artifact), compute_capability=90)
    assert image.ptx == plain and image.ptx_arch == 90
    assert image.ptx is not None and ptx_target(image.ptx) == "sm_90" and ".entry _Z10vector_addPKfS0_Pfi(" in image.ptx


@pytest.mark.parametrize(("artifact", "cc", "chosen"), [
    ("test_kernels.fatbin", 90, 90),    # the compute_90 PTX beside the sm_80/sm_90 cubins
    ("test_kernels.fatbin", 120, 90),   # a newer device compiles the older PTX
    ("test_kernels.fatbin", 89, None),  # compute_90 PTX cannot run on 8.9: cubins only
    ("test_kernels.ptx", 80, 80),
    ("test_kernels.ptx", 75, None),
    ("test_kernels.cubin", 90, None),   # a cubin has no PTX
    ("test_kernels.zstd.fatbin", None, 90),  # no device given: the highest PTX
])
def test_the_ptx_kept_is_the_one_a_driver_would_compile_for_the_device(artifact: str, cc: int | None,
                                                                        chosen: int | None) -> None:
    image = parse_module_image(load(artifact), compute_capability=cc)
    assert image.ptx_arch == chosen
    assert ptx_target(image.ptx) == (None if chosen is None else f"sm_{chosen}")
    assert layouts(image) == EXPECTED_LAYOUTS  # attributes and layouts work either way


def test_the_highest_usable_ptx_target_wins_and_arch_specific_ptx_needs_its_exact_device() -> None:
    def entry(target: str) -> bytes:
        text = f".version 8.0\n.target {target}\n.address_size 64\n.visible .entry k() {{ ret; }}\n"
        return fatbin_entry(1, int(target[3:].rstrip("a")), text.encode() + b"\0")

    data = fatbin([entry("sm_75"), entry("sm_86"), entry("sm_90a"), entry("sm_100")])
    assert [(cc, parse_module_image(data, compute_capability=cc).ptx_target) for cc in (75, 89, 90, 120)] \
        == [(75, "75"), (89, "86"), (90, "90a"), (120, "100")]


def test_for_a_device_only_the_entries_its_driver_would_use_are_inflated_and_read() -> None:
    image = parse_module_image(load("test_kernels.fatbin"), compute_capability=90)
    assert image.parts == ("ptx compute_90", "elf sm_90")
    assert image.skipped == ("elf sm_80: not what compute capability 9.0 runs (not read)",)
    assert layouts(image) == EXPECTED_LAYOUTS
    # on 8.0 the sm_80 cubin alone: the compute_90 PTX is neither inflated nor charged
    data = load("test_kernels.zstd.fatbin")
    budget = 160 << 10  # what reading the sm_80 entry takes (150 KiB), not what reading both does (231)
    on_ampere = parse_module_image(data, compute_capability=80, host_budget=budget)
    assert on_ampere.parts == ("elf sm_80 zstd",) and on_ampere.ptx is None
    with pytest.raises(CudaError) as err:
        parse_module_image(data, host_budget=budget)
    assert err.value.status == CUresult.CUDA_ERROR_OUT_OF_MEMORY
    # nothing the device runs: every entry is read, so layouts and attributes still answer
    assert parse_module_image(data, compute_capability=75).parts == ("elf sm_80 zstd", "ptx compute_90 zstd")


def fatbin_entry(kind: int, arch: int, payload: bytes, *, flags: int = 0, compressed: int | None = None,
                 inflated: int = 0) -> bytes:
    header = bytearray(64)
    struct.pack_into("<HHIQ", header, 0, kind, 0x101, 64, len(payload))
    struct.pack_into("<I", header, 16, len(payload) if compressed is None else compressed)
    struct.pack_into("<I", header, 28, arch)
    struct.pack_into("<Q", header, 40, flags)
    struct.pack_into("<Q", header, 56, inflated)
    return bytes(header) + payload


def fatbin(entries: list[bytes]) -> bytes:
    body = b"".join(entries)
    return struct.pack("<IHHQ", FATBIN_MAGIC, 1, 16, len(body)) + body


ZSTD = 0x8000
PTX_TEXT = b".version 8.0\n.target sm_80\n.address_size 64\n.visible .entry k() { ret; }\n\0"


def test_a_zstd_entry_that_inflates_past_its_declared_size_is_invalid_and_stops_there() -> None:
    small_window = zstandard.ZstdCompressionParameters.from_level(3, window_log=10)
    bomb = zstandard.ZstdCompressor(compression_params=small_window).compress(
        PTX_TEXT + bytes(64 << 20))  # 64 MiB of zeros behind the text, in a window the check allows
    data = fatbin([fatbin_entry(1, 80, bomb, flags=ZSTD, inflated=len(PTX_TEXT))])
    tracemalloc.start()
    try:
        message = invalid_image(data).message
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "ZSTD data inflates to more than" in message
    assert peak < 4 << 20  # it read one byte past the declared size, not the 64 MiB


def test_elf_section_headers_that_all_name_one_large_range_are_charged_for_every_copy() -> None:
    data = bytearray(load("test_kernels.cubin"))
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, names = struct.unpack_from("<HHH", data, 0x3A)
    for i in range(1, shnum):  # every section but the name table claims the whole image
        if i != names:
            struct.pack_into("<QQ", data, shoff + i * shentsize + 0x18, 0, len(data))
    with pytest.raises(CudaError) as err:
        parse_module_image(bytes(data), host_budget=len(data) * 4)
    assert err.value.status == CUresult.CUDA_ERROR_OUT_OF_MEMORY and "ELF sections" in err.value.message


def test_a_zstd_frame_that_needs_a_larger_window_than_its_output_is_invalid() -> None:
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=24, write_content_size=False)
    frame = zstandard.ZstdCompressor(compression_params=params).compress(PTX_TEXT * 100_000)
    with pytest.raises(CudaError) as err:
        _zstd_decompress(frame, 100, "test")
    assert err.value.status == CUresult.CUDA_ERROR_INVALID_IMAGE


def test_inflated_bytes_are_charged_before_they_are_inflated() -> None:
    frame = zstandard.ZstdCompressor().compress(PTX_TEXT)
    data = fatbin([fatbin_entry(1, 80, frame, flags=ZSTD, inflated=len(PTX_TEXT))])
    assert parse_module_image(data, host_budget=4096).ptx is not None
    with pytest.raises(CudaError) as err:
        parse_module_image(data, host_budget=len(PTX_TEXT) - 1)
    assert err.value.status == CUresult.CUDA_ERROR_OUT_OF_MEMORY
    assert "inflating fatbin entry ptx compute_80" in err.value.message


def test_zero_filled_globals_keep_no_bytes_and_huge_declarations_cost_the_parse_nothing() -> None:
    # the attack of issue 16: eight 64 MiB .global arrays in a 252-byte module
    arrays = "".join(f".global .align 4 .b8 g{i}[{64 << 20}];\n" for i in range(8))
    tracemalloc.start()
    try:
        image = ptx(arrays + ".global .u32 small[4] = {1, 2};\n")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    assert [(g.size, g.init) for g in image.globals.values()] == [(64 << 20, b"")] * 8 + [
        (16, struct.pack("<2I", 1, 2).rstrip(b"\0"))]  # the prefix: the trailing zeros are implied
    assert retained_bytes(image) < 64 << 10


# ---------------------------------------------------------------------------------------------
# PTX details


def ptx(body: str) -> ModuleImage:
    return parse_module_image(f".version 8.0\n.target sm_80\n.address_size 64\n{body}".encode())


def test_ptx_parameters_follow_alignment_rules() -> None:
    image = ptx("""
        .visible .entry k(
            .param .u8 k_p0,
            .param .align 16 .b8 k_p1[20],
            .param .u64 .ptr .global .align 16 k_p2,
            .param .f16 k_p3,
            .param .align 8 .b8 k_p4[2][3]
        )
        { ret; }
    """)
    assert layouts(image) == {"k": (((0, 1), (16, 20), (40, 8), (48, 2), (56, 6)), 62)}


def test_ptx_entries_without_parameters_and_comments_that_look_like_entries() -> None:
    image = ptx("""
        .file 1 "/src//dir/a.cu"   // a quoted path with // in it is not a comment
        // .visible .entry commented_out(.param .u32 x)
        /* .entry also_commented(.param .u32 y) */
        .visible .entry no_params()
        { ret; }
        .entry bare
        { ret; }
        .func helper(.param .b32 z) { ret; }
    """)
    assert layouts(image) == {"no_params": ((), 0), "bare": ((), 0)}


def test_ptx_globals_with_initializers() -> None:
    image = ptx("""
        .global .align 8 .f64 d = 0d3FF0000000000000;
        .visible .global .align 4 .s32 neg[3] = {-1, 0x10, 7};
        .const .align 4 .f32 f[2] = {0f3F800000, 2.5};
        .global .align 8 .u64 addr = generic(d);
        .extern .global .align 4 .b32 elsewhere;
        .global .align 1 .b8 grid[2][3];
        .shared .align 4 .b8 scratch[64];
        .visible .entry k() {
            .reg .b32 %r<2>;
            ret;
        }
    """)
    assert {n: g.initial_bytes() for n, g in image.globals.items()} == {
        "d": struct.pack("<d", 1.0),
        "neg": struct.pack("<3i", -1, 16, 7),
        "f": struct.pack("<2f", 1.0, 2.5),
        "addr": bytes(8),  # an address the loader would fill in: left zero
        "grid": bytes(6),
    }


def test_a_huge_ptx_global_is_refused_before_any_memory_is_spent() -> None:
    with pytest.raises(CudaError) as err:
        ptx(f".global .align 1 .b8 huge[{MAX_GLOBAL_BYTES + 1}];")
    assert err.value.status == CUresult.CUDA_ERROR_OUT_OF_MEMORY


@pytest.mark.parametrize("body", [
    ".entry k(.param .u32 a,, .param .u32 b) { ret; }",
    ".entry k(.param .q32 a) { ret; }",
    ".entry k(.param .align 3 .b8 a[4]) { ret; }",
    ".entry k(.param .b8 a[]) { ret; }",
    ".entry k(.reg .u32 a) { ret; }",
    ".entry k() { ret; } .entry k() { ret; }",
])
def test_malformed_ptx_is_an_invalid_image(body: str) -> None:
    invalid_image(f".version 8.0\n.target sm_80\n{body}".encode())


@pytest.mark.parametrize("data", [
    b"",
    b"hello world",
    b"\0\0\0\0",
    b".target sm_80\n.version 8.0\n",  # .version must come first
    b"\xff\xfe.version 8.0",
    b".version 8.0\n.target sm_80\n\0garbage after the terminator",
])
def test_bytes_that_are_no_image_are_invalid(data: bytes) -> None:
    invalid_image(data)


# ---------------------------------------------------------------------------------------------
# binary containers, damaged


@pytest.mark.parametrize("artifact", ["test_kernels.cubin", "test_kernels.fatbin",
                                      "test_kernels.host.o"])
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.999])
def test_a_truncated_binary_image_is_invalid(artifact: str, keep: float) -> None:
    data = load(artifact)
    invalid_image(data[:int(len(data) * keep)])


def test_a_fatbin_header_that_claims_more_than_it_has_is_invalid() -> None:
    data = bytearray(load("test_kernels.fatbin"))
    struct.pack_into("<Q", data, 8, len(data))
    assert "payload" in invalid_image(bytes(data)).message


def test_a_fatbin_without_entries_is_invalid() -> None:
    invalid_image(struct.pack("<IHHQ", FATBIN_MAGIC, 1, 16, 0))


def test_a_cubin_with_a_broken_kparam_attribute_is_invalid() -> None:
    data = bytearray(load("test_kernels.cubin"))
    # the first KPARAM_INFO attribute (format 0x04, attribute 0x17, 12 bytes): claim 0x4000 bytes
    at = data.index(bytes([0x04, 0x17, 0x0C, 0x00]))
    data[at + 2:at + 4] = struct.pack("<H", 0x4000)
    assert ".nv.info" in invalid_image(bytes(data)).message


def test_an_elf_for_another_machine_is_invalid() -> None:
    data = bytearray(load("test_kernels.cubin"))
    struct.pack_into("<H", data, 18, 183)  # EM_AARCH64
    invalid_image(bytes(data))


def test_lz4_blocks_decode_literals_and_overlapping_matches() -> None:
    # "ab" then a match of 6 at offset 2 ("ababab"), then the literal "c"
    block = bytes([0x22]) + b"ab" + struct.pack("<H", 2) + bytes([0x10]) + b"c"
    assert _lz4_block_decompress(block, 9, "test") == b"abababab" + b"c"
    for bad, size in [(block, 8), (block[:4], 9), (bytes([0x20]) + b"ab" + struct.pack("<H", 3), 9)]:
        with pytest.raises(CudaError) as err:
            _lz4_block_decompress(bad, size, "test")
        assert err.value.status == CUresult.CUDA_ERROR_INVALID_IMAGE


# ---------------------------------------------------------------------------------------------
# fuzz: arbitrary and mutated bytes raise CudaError or parse, never anything else

ALLOWED = {CUresult.CUDA_ERROR_INVALID_IMAGE, CUresult.CUDA_ERROR_NOT_SUPPORTED,
           CUresult.CUDA_ERROR_OUT_OF_MEMORY}
SEEDS = [load(name) for name in sorted(READABLE)]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parse_or_refuse(data: bytes) -> None:
    try:
        image = parse_module_image(data)
    except CudaError as exc:
        assert exc.status in ALLOWED, exc
    else:
        assert image.kind in ("ptx", "cubin", "fatbin")
        for k in image.kernels.values():
            assert all(p.offset + p.size <= k.param_bytes for p in k.params)
        for g in image.globals.values():
            assert len(g.init) <= g.size <= MAX_GLOBAL_BYTES


@FUZZ
@given(st.binary(max_size=4096))
def test_arbitrary_bytes(data: bytes) -> None:
    parse_or_refuse(data)


@FUZZ
@given(st.sampled_from([b"\x7fELF\x02\x01\x01", struct.pack("<I", FATBIN_MAGIC),
                        b".version 8.0\n.target sm_80\n"]), st.binary(max_size=2048))
def test_arbitrary_bytes_behind_a_valid_magic(magic: bytes, rest: bytes) -> None:
    parse_or_refuse(magic + rest)


@FUZZ
@given(st.integers(0, len(SEEDS) - 1),
       st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1,
                max_size=8),
       st.floats(0, 1))
def test_mutated_real_images(seed: int, flips: list[tuple[float, int]], keep: float) -> None:
    data = bytearray(SEEDS[seed])
    for where, value in flips:
        data[int(where * len(data))] = value
    parse_or_refuse(bytes(data[:max(1, int(len(data) * keep))]))


@FUZZ
@given(st.integers(0, len(SEEDS) - 1), st.integers(0, 255), st.integers(0, 0xFFFF_FFFF))
def test_mutated_header_words(seed: int, word_index: int, value: int) -> None:
    # the headers hold every offset and size: overwrite one 32-bit word among the first 1 KiB
    data = bytearray(SEEDS[seed])
    at = (word_index * 4) % max(4, min(len(data), 1024) - 4)
    struct.pack_into("<I", data, at, value)
    parse_or_refuse(bytes(data))
