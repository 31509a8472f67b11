"""Module images: real PTX, cubin, fatbin and host objects built by nvcc, and hostile bytes.

The expected parameter layouts are what ``cuobjdump -elf tests/kernels/test_kernels.cubin`` (CUDA
13.0) prints as ``EIATTR_KPARAM_INFO`` (ordinal, offset, size) and ``EIATTR_CBANK_PARAM_SIZE``.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
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
    parse_module_image,
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
    "test_kernels.default.fatbin": ("fatbin", ("elf sm_80",)),
    "test_kernels.host.o": ("fatbin", ("elf sm_90",)),
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
    assert {name: g.init for name, g in image.globals.items()} == EXPECTED_GLOBALS
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


def test_nvccs_default_zstd_ptx_entry_is_skipped_when_elf_entries_describe_the_module() -> None:
    image = parse_module_image(load("test_kernels.default.fatbin"))
    assert len(image.skipped) == 1
    assert image.skipped[0].startswith("ptx compute_90: ZSTD")


def test_a_fatbin_whose_every_entry_is_zstd_compressed_is_not_supported() -> None:
    with pytest.raises(CudaError) as err:
        parse_module_image(load("test_kernels.zstd.fatbin"))
    assert err.value.status == CUresult.CUDA_ERROR_NOT_SUPPORTED
    assert "ZSTD" in err.value.message and "--no-compress" in err.value.message


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
    assert {n: g.init for n, g in image.globals.items()} == {
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
SEEDS = [load(name) for name in sorted(READABLE)] + [load("test_kernels.zstd.fatbin")]
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
            assert len(g.init) == g.size <= MAX_GLOBAL_BYTES


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
