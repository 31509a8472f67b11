"""Module images as ``cuModuleLoadData`` receives them: PTX text, cubin ELF, fatbin containers.

The ``sim`` backend cannot run device code, but it must know what a real image declares: its
kernels (by mangled name) with their parameter layouts, and its device globals with their sizes and
initial values. :func:`parse_module_image` reads exactly that and nothing more, and treats the bytes
as untrusted input: anything it cannot make sense of is ``CUDA_ERROR_INVALID_IMAGE`` with the reason,
and it raises nothing but :class:`CudaError`.

Theory of operation
-------------------
* **PTX** (text, optionally NUL-terminated): comments are stripped (quoted strings kept), then
  ``.entry NAME ( .param … )`` declarations give each kernel's parameters. Offsets follow PTX's
  rule: a parameter sits at the next multiple of its alignment (``.align N`` when given, else its
  type's size), and the parameter block ends at the end of the last parameter, as
  ``cuFuncGetParamInfo`` and the cubin's ``EIATTR_CBANK_PARAM_SIZE`` report it. Module-scope
  ``.global`` / ``.const`` variables become globals; scalar and brace-list initializers of numbers
  (``0f…`` / ``0d…`` hex floats included) are evaluated, anything symbolic (addresses of other
  variables) leaves the global zero-filled.
* **cubin** (an ELF64 little-endian file, ``e_machine`` EM_CUDA = 190): a kernel is a function symbol
  marked ``STO_CUDA_ENTRY`` (``st_other`` 0x10) whose section is ``.text.NAME`` (without a symbol table,
  every ``.text.NAME`` section that has a ``.nv.info.NAME`` section). Its ``.nv.info.NAME`` section
  is a list of attributes, each ``u8 format, u8 attribute`` followed by a ``u16`` that is the value
  (formats NVAL 0x01, BVAL 0x02, HVAL 0x03) or the size of the value that follows (SVAL 0x04). The
  attributes read here, as ``cuobjdump -elf`` names them:

  - ``EIATTR_KPARAM_INFO`` (0x17, SVAL, 12 bytes): ``u32 index, u16 ordinal, u16 offset, u32 bits``
    where ``bits >> 18`` is the parameter's size (bits 0-7 log2 of the pointee's alignment, 8-11
    its space, 12-16 the constant bank, 17 "not in a constant bank");
  - ``EIATTR_CBANK_PARAM_SIZE`` (0x19, HVAL): the parameter block's size.

  - ``EIATTR_MAX_THREADS`` (0x05) and ``EIATTR_REQNTID`` (0x10) (SVAL, ``u32 x, y, z``): the
    ``.maxntid`` (``__launch_bounds__``) and ``.reqntid`` the kernel was compiled with;
  - ``EIATTR_CTA_PER_CLUSTER`` (0x3d, SVAL, ``u32 x, y, z``) and ``EIATTR_EXPLICIT_CLUSTER`` (0x3e):
    compile-time cluster dimensions (``__cluster_dims__``).

  Verified against ``cuobjdump -elf`` of ``tests/kernels/test_kernels.cubin`` (CUDA 13.0): for
  ``mystery_kernel(char, double, float*, Pair, short)`` it prints ordinals 0-4 at offsets 0x0, 0x8,
  0x10, 0x18, 0x20 with sizes 1, 8, 8, 8, 2 and a ``CBANK_PARAM_SIZE`` of 0x22. Globals are the
  ``STT_OBJECT`` symbols defined in ``.nv.global*`` / ``.nv.constant*`` sections; their initial value
  is the section's bytes at the symbol (zero for ``NOBITS`` sections such as ``.nv.global``).

  What ``cuFuncGetAttribute`` reports is read as follows (:class:`KernelAttributes`; checked against
  ``ptxas -v`` of nvcc 13.0 images: the static shared memory for sm_75 to sm_120, the rest for sm_80
  and sm_90 — not yet against a driver's answers; ``tests/conformance`` does that on a GPU): the
  module-wide ``.nv.info`` section's ``EIATTR_REGCOUNT`` (0x2f) and ``EIATTR_FRAME_SIZE`` (0x11)
  entries (SVAL, ``u32 symbol index, u32 value``: "Used N registers", "N bytes stack frame"); the
  size of ``.nv.shared.NAME`` for
  the static shared memory, less the 1 KiB that sm_90 and newer images reserve at the start of every
  kernel's window (such images carry a ``.nv.shared.reserved.0`` section; ptxas's "N bytes smem"
  excludes it, as ``CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES`` does: the occupancy calculator adds the
  device's reserved amount on top); ``.nv.constant3``, where ``__constant__`` variables live, for the
  constant memory (a module-wide bank: the image does not say which kernel reads it); the binary
  architecture from ``e_flags`` (bits 8-15 from ELF ABI version 8 on, bits 0-7 before) and the virtual
  one from the ``.note.nv.cuinfo`` note (``u16 version, u16 virtual sm``; bits 16-23 of ``e_flags``
  before ABI 8); whether ``-dlcm ca`` was among the options ptxas recorded in ``.note.nv.tkinfo``.
  PTX says less: its ``.target``, the ``.maxntid``/``.reqntid``/``.reqnctapercluster``/
  ``.explicitcluster`` directives, and whether the module declares any static ``.shared`` or ``.const``
  variable at all (none: zero bytes). Registers and local memory of PTX are the JIT compiler's choice.
* **fatbin** (magic 0xBA55ED50, ``u16 version, u16 header size, u64 payload size``): a sequence of
  entries, each with a header of ``u16 kind`` (1 PTX, 2 ELF), ``u16 version, u32 header size,
  u64 payload size`` at offset 0, ``u32 compressed size`` at 16, ``u32 sm arch`` at 28, ``u64 flags``
  at 40 and ``u64 uncompressed size`` at 56. Flag 0x2000 marks an LZ4 block (nvcc
  ``--compress-mode=speed``), flag 0x8000 a ZSTD frame (nvcc's default for PTX entries, every entry
  with ``--compress-mode=size``; what llama.cpp's release builds carry). Both are inflated to exactly
  the declared uncompressed size, which is charged to the parse's host budget before a byte is
  inflated; ZSTD with a window no larger than that size, so a frame that claims more fails early.
  The entries are merged: a kernel's layout comes from an ELF entry when one has it (the highest sm
  first), from PTX otherwise; its attributes are kept per entry (``KernelInfo.variants``), for the
  backend to pick the one its device would run. Parsed for a device (``compute_capability``), only
  the entries its driver would use are inflated and read — the cubin it would load, for attributes,
  and the PTX it would compile — and the rest are listed in ``skipped`` (a release build carries
  four cubins and three PTX entries per kernel file); when none of them is there, every entry is
  read, so that layouts and attributes still answer. The PTX text kept (``ModuleImage.ptx``) is the one a
  driver would compile for the device: the highest ``.target`` it supports (an ``sm_90a`` target
  only on 9.0 itself); a cubin cannot run on the CPU, so an image without such PTX loads and
  answers attributes and layouts, and the simulator refuses its launches.

*Host memory.* A global's initial value is kept as its initialized prefix (zero-filled globals keep
no bytes, whatever size they declare), and every byte the parse keeps or inflates is counted
against ``host_budget`` before it is allocated.
* **host objects** (an x86-64 ELF with a ``.nv_fatbin`` section, as ``nvcc -c`` writes): the fatbin
  containers in that section are parsed as above.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import zstandard

from protocol import CUresult

from ._errors import CudaError

__all__ = [
    "FATBIN_MAGIC",
    "MAX_GLOBAL_BYTES",
    "GlobalInfo",
    "KernelAttributes",
    "KernelInfo",
    "ModuleImage",
    "ParamInfo",
    "parse_module_image",
    "retained_bytes",
]

#: the first four bytes of a fatbin container (little-endian 0xBA55ED50)
FATBIN_MAGIC = 0xBA55ED50
_ELF_MAGIC = b"\x7fELF"
_EM_CUDA = 190
_EM_X86_64 = 62
_STT_OBJECT = 1
_STT_FUNC = 2
_STO_CUDA_ENTRY = 0x10
_SHT_NOBITS = 8
_SHN_LORESERVE = 0xFF00

_EIFMT_NVAL, _EIFMT_BVAL, _EIFMT_HVAL, _EIFMT_SVAL = 0x01, 0x02, 0x03, 0x04
_EIATTR_MAX_THREADS = 0x05
_EIATTR_REQNTID = 0x10
_EIATTR_FRAME_SIZE = 0x11
_EIATTR_KPARAM_INFO = 0x17
_EIATTR_CBANK_PARAM_SIZE = 0x19
_EIATTR_REGCOUNT = 0x2F
_EIATTR_CTA_PER_CLUSTER = 0x3D
_EIATTR_EXPLICIT_CLUSTER = 0x3E
#: the shared memory sm_90 and newer reserve at the start of each kernel's window, which ptxas
#: includes in ``.nv.shared.NAME`` (``CU_DEVICE_ATTRIBUTE_RESERVED_SHARED_MEMORY_PER_BLOCK``)
_RESERVED_SMEM = 1024
_NOTE_NVIDIA = b"NVIDIA Corp\0"

_FATBIN_KIND_PTX = 1
_FATBIN_KIND_ELF = 2
_FATBIN_FLAG_LZ4 = 0x2000
_FATBIN_FLAG_ZSTD = 0x8000
#: refuse to inflate a compressed entry beyond this (a hostile image could claim anything)
_MAX_INFLATED = 256 * 1024 * 1024
#: a fatbin inside a host object inside … is not a thing; bounds the recursion
_MAX_DEPTH = 3
#: the largest module global the simulator backs with memory (GGML's are a few bytes)
MAX_GLOBAL_BYTES = 64 * 1024 * 1024
#: host bytes one parse may spend when the caller sets no budget (inflated entries, initial
#: values, PTX text), beyond the image's own bytes
DEFAULT_PARSE_BUDGET = 512 * 1024 * 1024
#: what one kernel, parameter, variant or global record costs in host memory, rounded up (a
#: frozen slotted dataclass with its tuple or dict slot and small ints: measured 100-300 bytes)
_OBJECT_BYTES = 512


@dataclass(frozen=True, slots=True)
class ParamInfo:
    """One kernel parameter: where it sits in the packed parameter block, and how many bytes."""

    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class KernelAttributes:
    """What one entry of an image (a cubin, or PTX that the driver would compile) says about a
    kernel's resources, in ``cuFuncGetAttribute``'s terms; ``None`` where the entry does not say."""

    source: str  # "cubin" | "ptx"
    arch: int  # the cubin's sm (90 for sm_90), or the PTX's .target
    ptx_version: int | None  # the virtual architecture it was compiled from
    num_regs: int | None = None
    static_shared: int | None = None
    const_bytes: int | None = None
    local_bytes: int | None = None
    max_threads: int | None = None  # the launch bound's thread count, None when none was declared
    cluster_dims: tuple[int, int, int] = (0, 0, 0)  # compile-time cluster dimensions, 0 when none
    explicit_cluster: bool = False
    cache_mode_ca: int | None = None


@dataclass(frozen=True, slots=True)
class KernelInfo:
    """A kernel entry point: its (mangled) name, parameter layout, and what each entry of the image
    that defines it says about its resources (``variants``: the backend picks the one the device
    would run)."""

    name: str
    params: tuple[ParamInfo, ...]
    param_bytes: int
    variants: tuple[KernelAttributes, ...] = ()


@dataclass(frozen=True, slots=True)
class GlobalInfo:
    """A module-scope ``__device__`` or ``__constant__`` variable. ``init`` is its initialized
    prefix: the bytes past it are zero (a zero-filled global of 64 MiB holds no bytes here, so a
    module declaring huge arrays costs the host nothing until device memory is charged for them)."""

    name: str
    size: int
    init: bytes = b""

    def __post_init__(self) -> None:
        if len(self.init) > self.size:
            raise ValueError(f"global {self.name}: {len(self.init)} initial bytes for size {self.size}")

    def initial_bytes(self) -> bytes:
        """Every byte of the initial value (for tests and small globals: this materializes ``size``)."""
        return self.init + bytes(self.size - len(self.init))


@dataclass(frozen=True, slots=True)
class ModuleImage:
    """What a module image declares. ``parts`` describes what was read (for logs), e.g.
    ``("elf sm_80", "ptx compute_90 lz4")``, and ``skipped`` what was not, and why.

    ``ptx`` is the source text of the PTX entry a driver would JIT-compile for the device the image
    was parsed for (the highest ``.target`` not above its compute capability; see
    :func:`parse_module_image`), ``ptx_arch`` that target; both ``None`` when the image has no such
    entry (cubins only, or PTX for a newer device): the simulator cannot run a cubin, so such a
    module loads, answers attributes and layouts, and its launches are not supported."""

    kind: str  # "ptx" | "cubin" | "fatbin"
    kernels: dict[str, KernelInfo]
    globals: dict[str, GlobalInfo]
    parts: tuple[str, ...] = ()
    skipped: tuple[str, ...] = field(default=())
    ptx: str | None = None
    ptx_arch: int | None = None
    ptx_target: str | None = None  # the .target's sm without "sm_": "90", "90a", "100f"


def _invalid(why: str) -> CudaError:
    return CudaError(CUresult.CUDA_ERROR_INVALID_IMAGE, why)


def _check_global_size(name: str, size: int) -> int:
    if size > MAX_GLOBAL_BYTES:
        raise CudaError(CUresult.CUDA_ERROR_OUT_OF_MEMORY,
                        f"module global {name} of {size} bytes exceeds the simulator's limit of "
                        f"{MAX_GLOBAL_BYTES} bytes per global")
    return size


class _Context:
    """What one parse is for: the device (which PTX entry a driver would pick) and the host bytes
    it may still spend on inflated entries, initial values and the PTX text it keeps."""

    __slots__ = ("budget", "compute_capability", "spent")

    def __init__(self, compute_capability: int | None, budget: int) -> None:
        self.compute_capability = compute_capability
        self.budget = budget
        self.spent = 0

    def spend(self, nbytes: int, what: str) -> None:
        """Account ``nbytes`` *before* they are allocated; OUT_OF_MEMORY past the budget."""
        if self.spent + nbytes > self.budget:
            raise CudaError(CUresult.CUDA_ERROR_OUT_OF_MEMORY,
                            f"{what}: {nbytes} more bytes of host memory would exceed the "
                            f"{self.budget} bytes this module load may spend ({self.spent} spent)")
        self.spent += nbytes


def parse_module_image(data: bytes | bytearray | memoryview, *, compute_capability: int | None = None,
                       host_budget: int = DEFAULT_PARSE_BUDGET) -> ModuleImage:
    """Parse a PTX, cubin, fatbin or host-object image; raises only :class:`CudaError`.

    ``compute_capability`` (major * 10 + minor) picks :attr:`ModuleImage.ptx` as a driver picks the
    PTX it compiles: the highest target the device supports (``None``: the highest of all).
    ``host_budget`` bounds the host memory the parse may spend beyond the image itself: inflated
    entries are counted at their declared size before they are inflated, initial values and the
    kept PTX text before they are copied (``CUDA_ERROR_OUT_OF_MEMORY`` past it);
    :func:`retained_bytes` tells the caller what the result keeps."""
    raw = bytes(data)
    ctx = _Context(compute_capability, host_budget)
    try:
        image = _parse(raw, 0, ctx)
    except CudaError:
        raise
    except (struct.error, ValueError, IndexError, KeyError, OverflowError, RecursionError) as exc:
        # a bounds check we missed: still a bad image, never a crash of the worker
        raise _invalid(f"malformed module image ({type(exc).__name__}: {exc})") from exc
    except zstandard.ZstdError as exc:
        raise _invalid(f"malformed ZSTD data in the module image ({exc})") from exc
    if image.ptx is not None and not _ptx_runs_on(image.ptx_target, compute_capability):
        image = replace(image, ptx=None, ptx_arch=None, ptx_target=None)
    return image


def retained_bytes(image: ModuleImage) -> int:
    """Host bytes a parsed image keeps (an estimate that errs high: text, initial values and the
    objects that describe kernels, parameters and globals)."""
    params = sum(len(k.params) for k in image.kernels.values())
    variants = sum(len(k.variants) for k in image.kernels.values())
    names = sum(len(k.name) for k in image.kernels.values()) + sum(len(g) for g in image.globals)
    inits = sum(len(g.init) for g in image.globals.values())
    return (len(image.ptx or "") + inits + names + _OBJECT_BYTES * (
        1 + len(image.kernels) + params + variants + len(image.globals) + len(image.parts)))


def _parse(raw: bytes, depth: int, ctx: _Context) -> ModuleImage:
    if depth > _MAX_DEPTH:
        raise _invalid("module image nests containers too deeply")
    if not raw:
        raise _invalid("empty module image")
    if raw[:4] == _ELF_MAGIC:
        return _parse_elf(raw, depth, ctx)
    if len(raw) >= 4 and struct.unpack_from("<I", raw)[0] == FATBIN_MAGIC:
        return _parse_fatbin(raw, depth, ctx)
    return _parse_ptx(raw, ctx)


def _ptx_runs_on(target: str | None, compute_capability: int | None) -> bool:
    """Whether a driver would compile PTX for ``.target target`` (``sm_90``, ``sm_90a``,
    ``sm_100f``) on a device of ``compute_capability``: any target up to it; an arch-specific one
    (``a``) on that exact device only, a family one (``f``) within its major version."""
    if target is None:
        return False
    if compute_capability is None:
        return True
    arch = int(target.rstrip("af"))
    if target.endswith("a"):
        return arch == compute_capability
    if target.endswith("f"):
        return arch // 10 == compute_capability // 10 and arch <= compute_capability
    return arch <= compute_capability


# ---------------------------------------------------------------------------------------------
# PTX

# an unterminated /* runs to the end (linear, where a failing lazy match would rescan per /*)
_COMMENT = re.compile(r'"(?:[^"\\\n]|\\.)*"|//[^\n]*|/\*.*?(?:\*/|\Z)', re.DOTALL)
_VERSION = re.compile(r"^\s*\.version\s+\d+\.\d+\s+\.target\s+[\w, ]+", re.ASCII)
_ENTRY = re.compile(r"\.entry\s+([A-Za-z_$%][\w$]*)\s*(\(([^()]*)\))?", re.ASCII)
_VARIABLE = re.compile(
    r"(?:^|\n)\s*((?:\.(?:visible|extern|weak|common)\s+)*)\.(global|const)\s+", re.ASCII)
_BRACE = re.compile(r"[{}]")
_TARGET = re.compile(r"\.target\s+sm_(\d+)([af]?)", re.ASCII)
_STATIC_DECL = re.compile(r"(?:^|[;{}])[ \t]*((?:\.(?:visible|extern|weak|common)\s+)*)\.(shared|const)\s",
                          re.ASCII | re.MULTILINE)
_DIRECTIVE = re.compile(r"\.(maxntid|reqntid|reqnctapercluster)\s+(\d+)(?:\s*,\s*(\d+))?(?:\s*,\s*(\d+))?"
                        r"|\.(explicitcluster)\b", re.ASCII)
#: how far past an entry's parameter list its performance directives may reach (they precede "{")
_MAX_DIRECTIVES = 4096
_DECL = re.compile(r"([A-Za-z_$%][\w$]*)\s*((?:\[\s*\d*\s*\]\s*)*)$", re.ASCII)
_DIMS = re.compile(r"\[\s*(\d*)\s*\]", re.ASCII)
_PTX_TYPES = {
    **dict.fromkeys(("b8", "u8", "s8", "pred"), 1),
    **dict.fromkeys(("b16", "u16", "s16", "f16", "bf16"), 2),
    **dict.fromkeys(("b32", "u32", "s32", "f32", "f16x2", "bf16x2"), 4),
    **dict.fromkeys(("b64", "u64", "s64", "f64"), 8),
    "b128": 16,
}
_SPACES = ("global", "const", "shared", "local", "param")
_MAX_PTX_ARRAY = 1 << 32


def _strip_comments(text: str) -> str:
    return _COMMENT.sub(lambda m: m.group(0) if m.group(0).startswith('"') else " ", text)


def _parse_ptx(raw: bytes, ctx: _Context) -> ModuleImage:
    body = raw.rstrip(b"\0")
    if b"\0" in body:
        raise _invalid("not a module image: binary data that is neither ELF, fatbin nor PTX text")
    try:
        source = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid("not a module image: neither ELF, fatbin nor UTF-8 PTX text") from None
    # the text, its comment-stripped copy and what is cut from it live until the parse ends
    ctx.spend(2 * len(source), "the PTX source text and its comment-stripped copy")
    text = _strip_comments(source)
    header = _VERSION.match(text)
    if not header:
        raise _invalid("not a module image: PTX text must begin with .version and .target "
                       "(and the bytes are neither ELF nor a fatbin)")
    target = _TARGET.search(header.group(0))
    arch = int(target.group(1)) if target else 0
    # any static .shared/.const variable: its bytes are the JIT's to lay out; none: zero bytes
    declared = {space for qualifiers, space in _STATIC_DECL.findall(text) if ".extern" not in qualifiers}
    base = KernelAttributes("ptx", arch, arch or None, static_shared=None if "shared" in declared else 0,
                            const_bytes=None if "const" in declared else 0, cache_mode_ca=0)
    kernels: dict[str, KernelInfo] = {}
    for match in _ENTRY.finditer(text):
        name = match.group(1)
        if name in kernels:
            raise _invalid(f"PTX declares the entry {name} twice")
        kernel = _ptx_kernel(name, match.group(3) or "")
        ctx.spend(_OBJECT_BYTES * (2 + len(kernel.params)) + len(name), f"PTX entry {name}")
        kernels[name] = replace(kernel, variants=(_ptx_directives(text, match.end(), base),))
    globals_ = _ptx_globals(text, ctx)
    kept = source if target else None  # for the engine that runs it (charged above)
    return ModuleImage("ptx", kernels, globals_, parts=("ptx",), ptx=kept,
                       ptx_arch=arch if target else None,
                       ptx_target=(target.group(1) + target.group(2)) if target else None)


def _ptx_directives(text: str, start: int, base: KernelAttributes) -> KernelAttributes:
    """``base`` with the launch bounds and cluster directives between an entry's parameters and
    its body."""
    stops = [i for i in (text.find("{", start, start + _MAX_DIRECTIVES),
                         text.find(";", start, start + _MAX_DIRECTIVES)) if i >= 0]
    window = text[start:min(stops, default=start)]
    dims: dict[str, tuple[int, int, int]] = {}
    explicit = False
    for match in _DIRECTIVE.finditer(window):
        if match.group(5):
            explicit = True
            continue
        x, y, z = (int(v) if v else 1 for v in match.group(2, 3, 4))
        dims[match.group(1)] = (x, y, z)
    bound = dims.get("reqntid") or dims.get("maxntid")
    return replace(base, max_threads=bound[0] * bound[1] * bound[2] if bound else None,
                   cluster_dims=dims.get("reqnctapercluster", (0, 0, 0)), explicit_cluster=explicit)


def _ptx_kernel(name: str, param_text: str) -> KernelInfo:
    params: list[ParamInfo] = []
    offset = 0
    for decl in (d.strip() for d in param_text.split(",")):
        if not decl:
            if param_text.strip():
                raise _invalid(f"PTX entry {name}: empty parameter declaration")
            continue
        size, align = _ptx_param(name, decl)
        offset = -(-offset // align) * align
        params.append(ParamInfo(offset, size))
        offset += size
    return KernelInfo(name, tuple(params), offset)


def _ptx_param(kernel: str, decl: str) -> tuple[int, int]:
    """(size, alignment) of one ``.param`` declaration."""
    tokens = decl.replace(".", " .").split()
    if not tokens or tokens[0] != ".param":
        raise _invalid(f"PTX entry {kernel}: parameter {decl!r} is not a .param declaration")
    align: int | None = None
    elem: int | None = None
    pointee = False
    i = 1
    while i < len(tokens) and tokens[i].startswith("."):
        word = tokens[i][1:]
        if word == "align":
            if i + 1 == len(tokens) or not tokens[i + 1].isdigit():
                raise _invalid(f"PTX entry {kernel}: .align without a number in {decl!r}")
            if not pointee:  # after .ptr, .align is the pointee's alignment
                align = int(tokens[i + 1])
            i += 2
            continue
        if word == "ptr":
            pointee = True
        elif word in _PTX_TYPES and elem is None:
            elem = _PTX_TYPES[word]
        elif word not in _SPACES:
            raise _invalid(f"PTX entry {kernel}: unknown parameter attribute .{word} in {decl!r}")
        i += 1
    if elem is None:
        raise _invalid(f"PTX entry {kernel}: parameter {decl!r} has no type")
    rest = "".join(tokens[i:])
    declared = _DECL.match(rest)
    if declared is None:
        raise _invalid(f"PTX entry {kernel}: cannot read the parameter name in {decl!r}")
    count = _array_count(declared.group(2), kernel)
    if align is None:
        align = elem
    if align <= 0 or align & (align - 1) or align > 4096:
        raise _invalid(f"PTX entry {kernel}: bad alignment {align} in {decl!r}")
    return elem * count, align


def _array_count(dims: str, where: str) -> int:
    count = 1
    for dim in _DIMS.findall(dims):
        if not dim:
            raise _invalid(f"PTX {where}: array without a size")
        count *= int(dim)
        if count > _MAX_PTX_ARRAY:
            raise _invalid(f"PTX {where}: array of {count} elements is too large")
    return count


def _ptx_globals(text: str, ctx: _Context) -> dict[str, GlobalInfo]:
    # only module scope: drop every {...} body (kernels and functions) first; an initializer's
    # braces (after "=") stay
    scope: list[str] = []
    depth = 0
    keep = False
    pos = 0
    for brace in _BRACE.finditer(text):
        at = brace.start()
        if brace.group() == "{":
            if depth == 0:
                scope.append(text[pos:at])
                keep = text[max(0, at - 256):at].rstrip().endswith("=")
                pos = at if keep else at + 1
            depth += 1
        elif depth:
            depth -= 1
            if depth == 0:
                if keep:
                    scope.append(text[pos:at + 1])
                else:
                    scope.append(";")
                pos = at + 1
    if depth == 0:
        scope.append(text[pos:])
    module_text = "".join(scope)
    found: dict[str, GlobalInfo] = {}
    for statement in module_text.split(";")[:-1]:  # the text after the last ";" declares nothing
        match = _VARIABLE.search(statement)
        if match is None:
            continue
        qualifiers, decl = match.group(1), statement[match.end():]
        if ".extern" in qualifiers:
            continue  # declared here, defined elsewhere: no storage in this module
        info = _ptx_variable(decl, ctx)
        if info is not None:
            ctx.spend(_OBJECT_BYTES + len(info.name), f"PTX variable {info.name}")
            found[info.name] = info
    return found


def _ptx_variable(decl: str, ctx: _Context) -> GlobalInfo | None:
    head, _, init_text = decl.partition("=")
    tokens = head.replace(".", " .").split()
    elem: int | None = None
    type_name = ""
    i = 0
    while i < len(tokens) and tokens[i].startswith("."):
        word = tokens[i][1:]
        if word == "align":
            i += 2
            continue
        if word in _PTX_TYPES and elem is None:
            elem, type_name = _PTX_TYPES[word], word
        elif word.startswith("v") and word[1:].isdigit():
            raise _invalid(f"PTX variable {decl.strip()!r}: vector variables are not supported")
        i += 1
    if elem is None:
        return None  # .global of a .texref/.samplerref etc.: nothing the host can address
    declared = _DECL.match("".join(tokens[i:]))
    if declared is None:
        raise _invalid(f"cannot read the PTX variable declaration {decl.strip()!r}")
    name = declared.group(1)
    size = _check_global_size(name, elem * _array_count(declared.group(2), f"variable {name}"))
    return GlobalInfo(name, size, _ptx_init(init_text, type_name, elem, size, ctx))


_NUMBER = re.compile(r"^(-?)(0[fF][0-9a-fA-F]{8}|0[dD][0-9a-fA-F]{16}|0[xX][0-9a-fA-F]+[uU]?"
                     r"|0[0-7]*[uU]?|[1-9]\d*[uU]?|\d+\.\d*(?:[eE][-+]?\d+)?)$", re.ASCII)


def _ptx_init(text: str, type_name: str, elem: int, size: int, ctx: _Context) -> bytes:
    """The initialized prefix of a variable (the rest is zero): evaluated for numeric
    initializers, empty otherwise. Never longer than the initializer's text makes it."""
    values = [v for v in re.split(r"[\s{},]+", text) if v]
    encoded: list[bytes] = []
    for value in values[:-(-size // elem)]:
        piece = _ptx_number(value, type_name, elem)
        if piece is None:
            return b""  # symbolic (an address): the loader would fill it in; we cannot
        encoded.append(piece)
    length = min(size, elem * len(encoded))
    ctx.spend(length, "the initial value of a PTX variable")
    return b"".join(encoded)[:size].rstrip(b"\0")


def _ptx_number(token: str, type_name: str, elem: int) -> bytes | None:
    match = _NUMBER.match(token)
    if match is None:
        return None
    sign, digits = match.groups()
    lower = digits.lower()
    if lower.startswith("0f"):
        bits, width = int(lower[2:], 16), 4
        value: float | int = struct.unpack("<f", bits.to_bytes(4, "little"))[0]
    elif lower.startswith("0d"):
        bits, width = int(lower[2:], 16), 8
        value = struct.unpack("<d", bits.to_bytes(8, "little"))[0]
    elif "." in lower:
        value, width = float(lower), elem
    else:
        lower = lower.rstrip("u")
        value = int(lower, 16) if lower.startswith("0x") else int(lower, 8) if lower.startswith("0") \
            else int(lower)
        width = elem
    if sign:
        value = -value
    if type_name.startswith("f"):
        if elem == 4:
            return struct.pack("<f", float(value))
        if elem == 8:
            return struct.pack("<d", float(value))
        return None  # f16 initializers: rare, left zero
    if isinstance(value, float):
        if width != elem:  # 0f/0d bit patterns into an integer-typed variable: the raw bits
            return (bits & ((1 << (8 * elem)) - 1)).to_bytes(elem, "little")
        return None
    return (value & ((1 << (8 * elem)) - 1)).to_bytes(elem, "little")


# ---------------------------------------------------------------------------------------------
# ELF (cubin, host object)


@dataclass(frozen=True, slots=True)
class _Section:
    name: str
    type: int
    offset: int
    size: int
    link: int
    entsize: int
    data: bytes


def _elf_sections(raw: bytes, ctx: _Context) -> tuple[int, int, list[_Section]]:
    """(e_machine, e_flags, sections) of an ELF64 little-endian file, every bound checked."""
    if len(raw) < 64:
        raise _invalid("truncated ELF header")
    if raw[4] != 2 or raw[5] != 1:
        raise _invalid("only 64-bit little-endian ELF images are supported")
    (_, machine, _, _, phoff, shoff, flags, _, phentsize, phnum, shentsize, shnum,
     shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", raw, 16)
    if phnum and phoff + phnum * phentsize > len(raw):
        raise _invalid("ELF program headers run past the end of the image")
    if shnum == 0 or shoff == 0:
        raise _invalid("ELF image has no section headers")
    if shentsize < 64:
        raise _invalid(f"ELF section header size {shentsize} is too small")
    if shoff + shnum * shentsize > len(raw):
        raise _invalid("ELF section headers run past the end of the image")
    headers = []
    for i in range(shnum):
        (name_off, sh_type, _, _, offset, size, link, _, _, entsize) = struct.unpack_from(
            "<IIQQQQIIQQ", raw, shoff + i * shentsize)
        if sh_type not in (_SHT_NOBITS, 0) and offset + size > len(raw):
            raise _invalid(f"ELF section {i} runs past the end of the image")
        headers.append((name_off, sh_type, offset, size, link, entsize))
    if shstrndx >= shnum:
        raise _invalid("ELF section name table index is out of range")
    _, str_type, str_off, str_size, _, _ = headers[shstrndx]
    if str_type == _SHT_NOBITS:
        raise _invalid("ELF section name table has no data")
    strtab = raw[str_off:str_off + str_size]
    sections = []
    for name_off, sh_type, offset, size, link, entsize in headers:
        copied = 0 if sh_type in (_SHT_NOBITS, 0) else size
        # every header may name the same bytes: each copy is charged, so a few KiB of headers
        # over one large range cannot become gigabytes of copies
        ctx.spend(_OBJECT_BYTES + copied, "ELF sections")
        data = raw[offset:offset + copied]
        sections.append(_Section(_cstring(strtab, name_off, "section name"), sh_type, offset, size,
                                 link, entsize, data))
    return machine, flags, sections


def _cstring(table: bytes, offset: int, what: str) -> str:
    if offset >= len(table) and offset != 0:
        raise _invalid(f"ELF {what} offset {offset} is outside its string table")
    end = table.find(b"\0", offset)
    if end < 0:
        raise _invalid(f"ELF {what} at {offset} is not NUL-terminated")
    try:
        return table[offset:end].decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid(f"ELF {what} at {offset} is not UTF-8") from None


@dataclass(frozen=True, slots=True)
class _Symbol:
    name: str
    type: int
    other: int
    shndx: int
    value: int
    size: int


def _elf_symbols(sections: list[_Section], ctx: _Context) -> list[_Symbol] | None:
    symtab = next((s for s in sections if s.type == 2), None)  # SHT_SYMTAB
    if symtab is None:
        return None
    if symtab.link >= len(sections):
        raise _invalid("ELF symbol table names a string table that does not exist")
    strtab = sections[symtab.link].data
    if len(symtab.data) % 24:
        raise _invalid("ELF symbol table size is not a multiple of 24")
    ctx.spend(_OBJECT_BYTES * (len(symtab.data) // 24), "ELF symbols")
    symbols = []
    for off in range(0, len(symtab.data), 24):
        name_off, info, other, shndx, value, size = struct.unpack_from("<IBBHQQ", symtab.data, off)
        symbols.append(_Symbol(_cstring(strtab, name_off, "symbol name"), info & 0xF, other, shndx,
                               value, size))
    return symbols


def _parse_elf(raw: bytes, depth: int, ctx: _Context) -> ModuleImage:
    machine, flags, sections = _elf_sections(raw, ctx)
    if machine == _EM_CUDA:
        # e_ident[EI_ABIVERSION]: from version 8 on the sm sits in bits 8-15 of e_flags
        arch, virtual = ((flags >> 8) & 0xFF, None) if raw[8] >= 8 else (flags & 0xFF, (flags >> 16) & 0xFF)
        cuinfo = _nv_note(sections, ".note.nv.cuinfo", 1000)
        if cuinfo is not None and len(cuinfo) >= 4:
            virtual = struct.unpack_from("<H", cuinfo, 2)[0]
        base = KernelAttributes("cubin", arch, virtual or None, cache_mode_ca=_cache_mode_ca(sections))
        kernels, globals_ = _cubin_contents(sections, base, ctx)
        return ModuleImage("cubin", kernels, globals_, parts=(f"elf sm_{arch}",))
    wrapped = [s for s in sections if s.name == ".nv_fatbin"]
    if machine == _EM_X86_64 or wrapped:
        if not wrapped or not wrapped[0].data:
            raise _invalid("host object has no .nv_fatbin section: it carries no device code")
        return _parse_fatbin_stream(wrapped[0].data, depth + 1, ctx)
    raise _invalid(f"ELF image for machine {machine} is neither a cubin (EM_CUDA) nor a host object")


def _nv_note(sections: list[_Section], name: str, note_type: int) -> bytes | None:
    """The descriptor of the NVIDIA note of ``note_type`` in section ``name``; None when there is
    none or the notes are malformed (they describe the build, not the code: no reason to refuse it)."""
    section = next((s for s in sections if s.name == name), None)
    data = section.data if section is not None else b""
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, kind = struct.unpack_from("<III", data, pos)
        desc = pos + 12 + -(-namesz // 4) * 4
        if desc + descsz > len(data):
            return None
        if kind == note_type and data[pos + 12:pos + 12 + namesz] == _NOTE_NVIDIA:
            return data[desc:desc + descsz]
        pos = desc + -(-descsz // 4) * 4
    return None


def _cache_mode_ca(sections: list[_Section]) -> int | None:
    """1 when ptxas recorded ``-dlcm ca`` among its options (``.note.nv.tkinfo``: ``u32 version, u32
    object, u32 tool, u32 tool version, u32 branch, u32 options``, offsets into the strings that
    follow), 0 when it recorded others, None when the image keeps no ptxas options."""
    desc = _nv_note(sections, ".note.nv.tkinfo", 2000)
    if desc is None or len(desc) < 24:
        return None
    _, _, tool, _, _, options = struct.unpack_from("<6I", desc)
    strings = desc[24:]
    try:
        if _cstring(strings, tool, "tool name") != "ptxas":
            return None
        tokens = _cstring(strings, options, "ptxas options").split()
    except CudaError:  # a malformed note: the options are unknown
        return None
    mode = ""
    for i, token in enumerate(tokens):
        key, equals, value = token.partition("=")
        if key in ("-dlcm", "--def-load-cache"):
            mode = value if equals else (tokens[i + 1] if i + 1 < len(tokens) else "")
    return int(mode == "ca")


def _per_function(data: bytes, attr: int, symbols: list[_Symbol]) -> dict[str, int]:
    """``EIATTR_REGCOUNT``-style entries of the module-wide ``.nv.info``: symbol name -> value."""
    found: dict[str, int] = {}
    for fmt, kind, value in _nv_info_attributes(data, "<module>"):
        if kind == attr and fmt == _EIFMT_SVAL and len(value) >= 8:
            index, number = struct.unpack_from("<II", value)
            if index >= len(symbols):
                raise _invalid(f".nv.info: attribute {attr:#x} names symbol {index}, past the symbol table")
            found[symbols[index].name] = number
    return found


def _cubin_attributes(name: str, base: KernelAttributes, by_name: dict[str, _Section], info: bytes,
                      regs: dict[str, int], frames: dict[str, int]) -> KernelAttributes:
    shared = by_name.get(".nv.shared." + name)
    static: int | None = shared.size if shared is not None else 0
    if shared is not None and ".nv.shared.reserved.0" in by_name:
        static = shared.size - _RESERVED_SMEM if shared.size >= _RESERVED_SMEM else None
    bounds: dict[int, tuple[int, int, int]] = {}
    explicit = False
    for fmt, attr, value in _nv_info_attributes(info, name):
        if attr in (_EIATTR_MAX_THREADS, _EIATTR_REQNTID, _EIATTR_CTA_PER_CLUSTER) and fmt == _EIFMT_SVAL:
            if len(value) < 12:
                raise _invalid(f".nv.info.{name}: attribute {attr:#x} of {len(value)} bytes (12 expected)")
            bounds[attr] = struct.unpack_from("<3I", value)
        elif attr == _EIATTR_EXPLICIT_CLUSTER:
            explicit = True
    bound = bounds.get(_EIATTR_REQNTID) or bounds.get(_EIATTR_MAX_THREADS)
    constants = by_name.get(".nv.constant3")
    return replace(base, num_regs=regs.get(name), static_shared=static, local_bytes=frames.get(name),
                   const_bytes=constants.size if constants is not None else 0,
                   max_threads=bound[0] * bound[1] * bound[2] if bound else None,
                   cluster_dims=bounds.get(_EIATTR_CTA_PER_CLUSTER, (0, 0, 0)), explicit_cluster=explicit)


def _cubin_contents(sections: list[_Section], base: KernelAttributes, ctx: _Context,
                    ) -> tuple[dict[str, KernelInfo], dict[str, GlobalInfo]]:
    by_name = {s.name: s for s in sections}
    symbols = _elf_symbols(sections, ctx)
    module_info = by_name[".nv.info"].data if ".nv.info" in by_name and symbols is not None else b""
    regs = _per_function(module_info, _EIATTR_REGCOUNT, symbols or [])
    frames = _per_function(module_info, _EIATTR_FRAME_SIZE, symbols or [])
    if symbols is None:
        names = [s.name[6:] for s in sections
                 if s.name.startswith(".text.") and ".nv.info." + s.name[6:] in by_name]
    else:
        names = [sym.name for sym in symbols
                 if sym.type == _STT_FUNC and sym.other & _STO_CUDA_ENTRY and sym.name
                 and 0 < sym.shndx < len(sections) and sections[sym.shndx].name == ".text." + sym.name]
    kernels: dict[str, KernelInfo] = {}
    for name in names:
        section = by_name.get(".nv.info." + name)
        info = section.data if section is not None else b""
        kernel = _kernel_from_nv_info(name, info)
        ctx.spend(_OBJECT_BYTES * (2 + len(kernel.params)) + len(name), f"cubin kernel {name}")
        variant = _cubin_attributes(name, base, by_name, info, regs, frames)
        kernels[name] = replace(kernel, variants=(variant,))
    globals_: dict[str, GlobalInfo] = {}
    for sym in symbols or ():
        if sym.type != _STT_OBJECT or not sym.name or not 0 < sym.shndx < min(len(sections),
                                                                                _SHN_LORESERVE):
            continue
        section = sections[sym.shndx]
        if not section.name.startswith((".nv.global", ".nv.constant")):
            continue
        _check_global_size(sym.name, sym.size)
        if sym.value + sym.size > section.size:
            raise _invalid(f"global {sym.name} runs past the end of its section {section.name}")
        if section.type == _SHT_NOBITS:
            init = b""  # zero-filled: nothing to keep
        else:
            ctx.spend(sym.size, f"the initial value of global {sym.name}")
            init = section.data[sym.value:sym.value + sym.size].rstrip(b"\0")
        ctx.spend(_OBJECT_BYTES + len(sym.name), f"global {sym.name}")
        globals_[sym.name] = GlobalInfo(sym.name, sym.size, init)
    return kernels, globals_


def _nv_info_attributes(data: bytes, kernel: str) -> Iterable[tuple[int, int, bytes]]:
    """(format, attribute, value bytes) of each attribute in a ``.nv.info`` section."""
    pos = 0
    while pos < len(data):
        if pos + 4 > len(data):
            raise _invalid(f".nv.info.{kernel}: truncated attribute at {pos}")
        fmt, attr, word = struct.unpack_from("<BBH", data, pos)
        pos += 4
        if fmt == _EIFMT_SVAL:
            if pos + word > len(data):
                raise _invalid(f".nv.info.{kernel}: attribute {attr:#x} runs past the section")
            yield fmt, attr, data[pos:pos + word]
            pos += word
        elif fmt in (_EIFMT_NVAL, _EIFMT_BVAL, _EIFMT_HVAL):
            yield fmt, attr, struct.pack("<H", word)
        else:
            raise _invalid(f".nv.info.{kernel}: unknown attribute format {fmt:#x} at {pos - 4}")


def _kernel_from_nv_info(name: str, data: bytes) -> KernelInfo:
    by_ordinal: dict[int, ParamInfo] = {}
    param_bytes: int | None = None
    for fmt, attr, value in _nv_info_attributes(data, name):
        if attr == _EIATTR_KPARAM_INFO and fmt == _EIFMT_SVAL:
            if len(value) < 12:
                raise _invalid(f".nv.info.{name}: KPARAM_INFO of {len(value)} bytes (12 expected)")
            _, ordinal, offset, bits = struct.unpack_from("<IHHI", value)
            if ordinal in by_ordinal:
                raise _invalid(f".nv.info.{name}: parameter {ordinal} is described twice")
            by_ordinal[ordinal] = ParamInfo(offset, bits >> 18)
        elif attr == _EIATTR_CBANK_PARAM_SIZE and fmt == _EIFMT_HVAL:
            param_bytes = struct.unpack("<H", value)[0]
    if sorted(by_ordinal) != list(range(len(by_ordinal))):
        raise _invalid(f".nv.info.{name}: parameter ordinals {sorted(by_ordinal)} have gaps")
    params = tuple(by_ordinal[i] for i in range(len(by_ordinal)))
    end = max((p.offset + p.size for p in params), default=0)
    if param_bytes is None:
        param_bytes = end
    elif param_bytes < end:
        raise _invalid(f".nv.info.{name}: parameters end at {end}, past the block size {param_bytes}")
    return KernelInfo(name, params, param_bytes)


# ---------------------------------------------------------------------------------------------
# fatbin


def _parse_fatbin_stream(data: bytes, depth: int, ctx: _Context) -> ModuleImage:
    """One or more fatbin containers back to back (a host object's ``.nv_fatbin`` section)."""
    images: list[ModuleImage] = []
    pos = 0
    while pos + 16 <= len(data):
        magic, _, header_size, size = struct.unpack_from("<IHHQ", data, pos)
        if magic != FATBIN_MAGIC:
            if images and not data[pos:].strip(b"\0"):
                break  # trailing alignment padding
            raise _invalid(f".nv_fatbin: no fatbin container at offset {pos}")
        end = pos + header_size + size
        images.append(_parse_fatbin(data[pos:end], depth, ctx))
        pos = -(-end // 8) * 8
    if not images:
        raise _invalid(".nv_fatbin section holds no fatbin container")
    return _merge("fatbin", images, ctx, extra_skipped=())


def _parse_fatbin(raw: bytes, depth: int, ctx: _Context) -> ModuleImage:
    if len(raw) < 16:
        raise _invalid("truncated fatbin header")
    _, version, header_size, size = struct.unpack_from("<IHHQ", raw)
    if header_size < 16 or header_size + size > len(raw):
        raise _invalid(f"fatbin header (size {header_size}) claims {size} payload bytes; "
                       f"the image has {len(raw)}")
    parts: list[ModuleImage] = []
    skipped: list[str] = []
    entries: list[_Entry] = []
    pos, end = header_size, header_size + size
    while pos < end:
        if pos + 64 > end:
            raise _invalid(f"fatbin entry header at {pos} is truncated")
        kind, _, entry_header, payload = struct.unpack_from("<HHIQ", raw, pos)
        (compressed,) = struct.unpack_from("<I", raw, pos + 16)
        (arch,) = struct.unpack_from("<I", raw, pos + 28)
        (flags,) = struct.unpack_from("<Q", raw, pos + 40)
        (inflated,) = struct.unpack_from("<Q", raw, pos + 56)
        if entry_header < 64 or pos + entry_header + payload > end:
            raise _invalid(f"fatbin entry at {pos} runs past the end of the container")
        body_at = pos + entry_header
        pos += entry_header + payload
        if kind not in (_FATBIN_KIND_PTX, _FATBIN_KIND_ELF):
            skipped.append(f"entry of unknown kind {kind} for arch {arch}")
            continue
        entries.append(_Entry(kind, arch, flags, compressed, inflated, body_at, payload))
    wanted = _entries_for(entries, ctx.compute_capability)
    for entry in entries:
        kind, arch, flags, compressed, inflated = (entry.kind, entry.arch, entry.flags, entry.compressed,
                                                   entry.inflated)
        label = f"elf sm_{arch}" if kind == _FATBIN_KIND_ELF else f"ptx compute_{arch}"
        if entry not in wanted:
            cc = ctx.compute_capability or 0
            skipped.append(f"{label}: not what compute capability {cc // 10}.{cc % 10} runs (not read)")
            continue
        body = raw[entry.body_at:entry.body_at + entry.payload]
        if flags & (_FATBIN_FLAG_ZSTD | _FATBIN_FLAG_LZ4):
            if compressed > len(body):
                raise _invalid(f"fatbin {label}: compressed size {compressed} exceeds its payload")
            if inflated > _MAX_INFLATED:
                raise _invalid(f"fatbin {label}: claims {inflated} uncompressed bytes")
            ctx.spend(inflated, f"inflating fatbin entry {label}")  # before a byte is inflated
            if flags & _FATBIN_FLAG_ZSTD:
                body = _zstd_decompress(body[:compressed], inflated, label)
                label += " zstd"
            else:
                body = _lz4_block_decompress(body[:compressed], inflated, label)
                label += " lz4"
        part = _parse_ptx(body, ctx) if kind == _FATBIN_KIND_PTX else _parse(body, depth + 1, ctx)
        if part.kind not in ("ptx", "cubin"):
            raise _invalid(f"fatbin {label}: the entry is a {part.kind}, not device code")
        parts.append(replace(part, parts=(label,)))
    if not parts:
        if skipped:
            raise CudaError(CUresult.CUDA_ERROR_NOT_SUPPORTED,
                            "the simulator cannot read any entry of this fatbin: " + "; ".join(skipped))
        raise _invalid(f"fatbin (version {version}) has no entries")
    return _merge("fatbin", parts, ctx, extra_skipped=skipped)


@dataclass(frozen=True, slots=True)
class _Entry:
    """One fatbin entry's header: where its payload is, not yet inflated or parsed."""

    kind: int
    arch: int
    flags: int
    compressed: int
    inflated: int
    body_at: int
    payload: int


def _entries_for(entries: list[_Entry], compute_capability: int | None) -> list[_Entry]:
    """The entries a driver would look at on this device: the cubin it would load (same major, the
    highest sm not above it), for its attributes, and the PTX it would compile (the highest
    compute_XX not above it; ties kept: an arch-specific one may not run), which the simulator runs.
    The others are not inflated or parsed. No device given, or none of them there: every entry (a
    module still loads, and its layouts and attributes are read, when nothing runs on the device)."""
    if compute_capability is None:
        return entries
    cc = compute_capability
    cubins = [e for e in entries if e.kind == _FATBIN_KIND_ELF and e.arch // 10 == cc // 10 and e.arch <= cc]
    ptx = [e for e in entries if e.kind == _FATBIN_KIND_PTX and e.arch <= cc]
    best_cubin = max((e.arch for e in cubins), default=None)
    best_ptx = max((e.arch for e in ptx), default=None)
    chosen = [e for e in cubins if e.arch == best_cubin] + [e for e in ptx if e.arch == best_ptx]
    return chosen or entries


def _arch_of(part: ModuleImage) -> int:
    label = part.parts[0] if part.parts else ""
    digits = label.split("sm_", 1)[-1].split()[0] if "sm_" in label else "0"
    return int(digits) if digits.isdigit() else 0


def _merge(kind: str, images: list[ModuleImage], ctx: _Context, extra_skipped: Iterable[str]) -> ModuleImage:
    """Union of several images' kernels and globals: ELF layouts first, the highest sm first; the
    PTX a driver would compile for ``ctx``'s device (the highest target it supports)."""
    def preference(img: ModuleImage) -> tuple[int, int]:
        return (0 if img.kind == "cubin" else 1, -_arch_of(img))

    kernels: dict[str, KernelInfo] = {}
    globals_: dict[str, GlobalInfo] = {}
    for image in sorted(images, key=preference):
        for name, kernel in image.kernels.items():
            known = kernels.get(name)
            kernels[name] = kernel if known is None else replace(
                known, variants=known.variants + kernel.variants)
        for name, var in image.globals.items():
            globals_.setdefault(name, var)
    parts = tuple(p for img in images for p in img.parts)
    skipped = tuple(s for img in images for s in img.skipped) + tuple(extra_skipped)
    usable = [img for img in images if _ptx_runs_on(img.ptx_target, ctx.compute_capability)]
    chosen = max(usable, key=lambda img: img.ptx_arch or 0, default=None)
    return ModuleImage(kind, kernels, globals_, parts=parts, skipped=skipped,
                       ptx=chosen.ptx if chosen else None, ptx_arch=chosen.ptx_arch if chosen else None,
                       ptx_target=chosen.ptx_target if chosen else None)


def _zstd_decompress(src: bytes, size: int, label: str) -> bytes:
    """Inflate one ZSTD frame (nvcc's ``--compress-mode=size``, and its default for PTX) to
    exactly ``size`` bytes, reading no more than ``size + 1`` and with a window no larger than the
    output needs: a frame that claims more, or a huge window, fails without allocating it."""
    window = max(1 << 10, 1 << max(size - 1, 1).bit_length())
    reader = zstandard.ZstdDecompressor(max_window_size=window).stream_reader(src)
    out = bytearray()
    try:
        while len(out) <= size:
            chunk = reader.read(min(1 << 20, size + 1 - len(out)))
            if not chunk:
                break
            out += chunk
    except zstandard.ZstdError as exc:
        raise _invalid(f"fatbin {label}: ZSTD data cannot be inflated within {size} bytes "
                       f"and a {window}-byte window ({exc})") from None
    if len(out) != size:
        raise _invalid(f"fatbin {label}: ZSTD data inflates to {'more than ' if len(out) > size else ''}"
                       f"{len(out) if len(out) <= size else size} bytes, not the declared {size}")
    return bytes(out)


def _lz4_block_decompress(src: bytes, size: int, label: str) -> bytes:
    """Decode one LZ4 block (the format nvcc's ``--compress-mode=speed`` writes) of ``size`` bytes."""
    if size > _MAX_INFLATED:
        raise _invalid(f"fatbin {label}: claims {size} uncompressed bytes")
    out = bytearray()
    pos = 0
    n = len(src)
    while pos < n:
        token = src[pos]
        pos += 1
        literal = token >> 4
        if literal == 15:
            while True:
                if pos >= n:
                    raise _invalid(f"fatbin {label}: truncated LZ4 literal length")
                extra = src[pos]
                pos += 1
                literal += extra
                if extra != 255:
                    break
        if pos + literal > n:
            raise _invalid(f"fatbin {label}: LZ4 literals run past the compressed data")
        out += src[pos:pos + literal]
        pos += literal
        if len(out) > size:
            raise _invalid(f"fatbin {label}: LZ4 data inflates past the declared {size} bytes")
        if pos == n:
            break  # the last sequence has literals only
        if pos + 2 > n:
            raise _invalid(f"fatbin {label}: truncated LZ4 match offset")
        offset = src[pos] | (src[pos + 1] << 8)
        pos += 2
        if offset == 0 or offset > len(out):
            raise _invalid(f"fatbin {label}: LZ4 match offset {offset} points before the output")
        match = (token & 0xF) + 4
        if token & 0xF == 15:
            while True:
                if pos >= n:
                    raise _invalid(f"fatbin {label}: truncated LZ4 match length")
                extra = src[pos]
                pos += 1
                match += extra
                if extra != 255:
                    break
        if len(out) + match > size:
            raise _invalid(f"fatbin {label}: LZ4 data inflates past the declared {size} bytes")
        start = len(out) - offset
        if match <= offset:
            out += out[start:start + match]
        else:  # overlapping copy: the last ``offset`` bytes repeat
            pattern = bytes(out[start:])
            out += (pattern * (match // offset + 1))[:match]
    if len(out) != size:
        raise _invalid(f"fatbin {label}: LZ4 data inflates to {len(out)} bytes, not {size}")
    return bytes(out)
