"""Every public function of NVIDIA's CUDA 13 libraries, read from NVIDIA's own headers.

Writes ``guest/shim/public.tsv`` (library, symbol, kind of return value): the names the shim's
libraries must export so that no program fails to load or to find a function, whatever it calls.
The Makefile answers each name that ``exports.tsv`` does not serve with the library's "not
supported" status; tests/shim/test_public_api.py checks the built libraries export all of them (also
under ``LD_BIND_NOW=1``) and that this file is what the headers say.

The headers are read by the C compiler itself (``cc -aux-info`` writes every prototype after
preprocessing), so the names are those after NVIDIA's naming macros: ``cuMemAlloc`` becomes
``cuMemAlloc_v2``. Each header set is read in every configuration that selects other names, as
NVIDIA's libraries export all of them: per-thread default stream (``_ptsz``/``_ptds``), the driver's
internal view (which declares the legacy entry points, ``cuMemAlloc`` with 32-bit sizes), NVML
without its auto-upgrading macros (``nvmlInit`` beside ``nvmlInit_v2``), cuBLAS's legacy API beside
the v2 one. Window-system interop prototypes need GL/EGL/VDPAU types only by name: ``fake-include/``
declares those types opaquely.

The CUDA toolkit gives the driver's and runtime's headers; cuBLAS, cuBLASLt and NVML come with the
``nvidia-cublas`` and ``nvidia-nvml-dev`` wheels (``--fetch`` downloads them with pip into a cache
and keeps only the headers). Nothing of NVIDIA's is checked in but the list of names.

    python guest/shim/extract_exports.py [--cuda-include DIR] [--nvidia-include DIR] [--fetch] [--check]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "public.tsv"
FAKE_INCLUDE = HERE / "fake-include"
CUDA_INCLUDE = Path("/usr/local/cuda-13.0/include")
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vgpu-nvidia-headers"
#: the wheels that carry the headers the toolkit lacks (their CUDA 13 releases)
WHEELS = ("nvidia-cublas>=13,<14", "nvidia-nvml-dev>=13,<14")
WHEEL_HEADERS = ("cublas_api.h", "cublas.h", "cublas_v2.h", "cublasXt.h", "cublasLt.h", "nvml.h")

#: what each library's status type is called: a function returning anything else is not a status call
STATUS_TYPES = {"CUresult", "cudaError_t", "cublasStatus_t", "nvmlReturn_t"}


@dataclass(frozen=True)
class Pass:
    """One preprocessing of a header set: the headers whose prototypes count, the defines."""

    library: str
    include: str  # the header the probe includes
    headers: tuple[str, ...]  # prototypes from these files (base names) belong to the library
    defines: tuple[str, ...] = ()
    cxx: bool = False  # prototypes only C++ sees (cuBLAS's half-precision ones): status calls, read as text


_DRIVER = ("cuda.h", "cudaProfiler.h", "cudaGL.h", "cudaEGL.h", "cudaVDPAU.h")
_RUNTIME = ("cuda_runtime_api.h", "cuda_profiler_api.h", "cuda_gl_interop.h", "cuda_egl_interop.h",
            "cuda_vdpau_interop.h")
_PER_THREAD = ("CUDA_API_PER_THREAD_DEFAULT_STREAM",)
_INTERNAL = ("__CUDA_API_VERSION_INTERNAL",)  # declares the legacy entry points libcuda still exports
PASSES = tuple(
    [Pass("cuda", h, _DRIVER, d) for h in _DRIVER for d in ((), _PER_THREAD, _INTERNAL)]
    + [Pass("cudart", h, _RUNTIME, d) for h in _RUNTIME for d in ((), _PER_THREAD)]
    + [Pass("cublas", "cublas_v2.h", ("cublas_api.h",)),
       Pass("cublas", "cublas.h", ("cublas.h", "cublas_api.h")),
       Pass("cublas", "cublasXt.h", ("cublasXt.h",)),
       Pass("cublas", "cublas_v2.h", ("cublas_api.h",), cxx=True),
       Pass("cublasLt", "cublasLt.h", ("cublasLt.h",)),
       Pass("nvml", "nvml.h", ("nvml.h",)),
       Pass("nvml", "nvml.h", ("nvml.h",), ("NVML_NO_UNVERSIONED_FUNC_DEFS",))])

#: the runtime's entry points for code nvcc generates, declared in crt/host_runtime.h (C++ only)
_HOST_RUNTIME = re.compile(r'extern\s+(?:"C"\s+)?(?P<ret>[\w\s*]+?)\s*CUDARTAPI\s+(?P<name>__cuda\w+)\s*\(')
_PROTOTYPE = re.compile(r"^/\* (?P<file>[^:]+):\d+:\w+ \*/ extern (?P<ret>.*?)\s*\b(?P<name>\w+) \(")


#: values returned in floating-point registers (cuBLAS's legacy API returns its results by value)
FLOATING_TYPES = {"float", "double", "cuComplex", "cuDoubleComplex", "cuFloatComplex"}


def return_kind(ret: str) -> str:
    """``status`` (the library's status type), ``void``, ``pointer``, ``floating`` or ``integer``: how
    a function that is not served answers (the status, nothing, NULL, 0 in the register the caller
    reads)."""
    ret = " ".join(ret.replace("const", "").replace("struct", "").split())
    if "*" in ret:
        return "pointer"
    if ret in STATUS_TYPES:
        return "status"
    if ret == "void":
        return "void"
    return "floating" if ret in FLOATING_TYPES else "integer"


def cxx_prototypes(p: Pass, include_dirs: list[Path]) -> dict[str, str]:
    """The status calls a C++ compiler sees in ``p``'s headers (cc -aux-info reads C only)."""
    cmd = ["c++", "-E", "-P", "-w", "-x", "c++", *[f"-I{d}" for d in include_dirs], "-"]
    text = subprocess.run(cmd, input=f"#include <{p.include}>\n", check=True, capture_output=True,
                          text=True).stdout
    return {m[1]: "status" for m in re.finditer(rf"(?m)^\s*cublasStatus_t\s+({p.library}\w+)\s*\(", text)}


def prototypes(p: Pass, include_dirs: list[Path]) -> dict[str, str]:
    """name -> return kind of each function ``p``'s headers declare."""
    if p.cxx:
        return cxx_prototypes(p, include_dirs)
    with tempfile.TemporaryDirectory() as tmp:
        probe, aux = Path(tmp) / "probe.c", Path(tmp) / "aux.txt"
        # cudaVDPAU.h assumes cuda.h and the VDPAU types are already declared
        prelude = "#include <cuda.h>\n#include <vdpau/vdpau.h>\n" if p.library == "cuda" else ""
        probe.write_text(f"{prelude}#include <{p.include}>\n")
        cmd = ["cc", "-fsyntax-only", "-w", "-aux-info", str(aux), *[f"-D{d}" for d in p.defines],
               *[f"-I{d}" for d in [*include_dirs, FAKE_INCLUDE]], str(probe)]
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"{p.include} {' '.join(p.defines)} does not compile:\n{proc.stderr[-2000:]}")
        found = {}
        for line in aux.read_text().splitlines():
            m = _PROTOTYPE.match(line)
            if m and Path(m["file"]).name in p.headers:
                found[m["name"]] = return_kind(m["ret"])
        return found


def host_runtime(cuda_include: Path) -> dict[str, str]:
    text = (cuda_include / "crt" / "host_runtime.h").read_text()
    return {m["name"]: return_kind(m["ret"].replace("extern", "")) for m in _HOST_RUNTIME.finditer(text)}


def extract(cuda_include: Path, nvidia_include: Path, libraries: set[str]) -> list[tuple[str, str, str]]:
    rows: dict[tuple[str, str], str] = {}
    for p in (p for p in PASSES if p.library in libraries):
        dirs = [cuda_include] if p.library in ("cuda", "cudart") else [nvidia_include, cuda_include]
        for name, kind in prototypes(p, dirs).items():
            rows.setdefault((p.library, name), kind)
    if "cudart" in libraries:
        for name, kind in host_runtime(cuda_include).items():
            rows.setdefault(("cudart", name), kind)
    return sorted((lib, name, kind) for (lib, name), kind in rows.items())


def render(rows: list[tuple[str, str, str]], sources: str) -> str:
    head = ("# GENERATED by guest/shim/extract_exports.py from NVIDIA's headers (" + sources + "): every\n"
            "# public function of the CUDA 13 libraries the shim stands in for. Do not edit; regenerate.\n"
            "# kind: what it returns (status: the library's status type; void; pointer; floating; integer)\n"
            "# library\tsymbol\tkind\n")
    return head + "".join(f"{lib}\t{name}\t{kind}\n" for lib, name, kind in rows)


def fetch_headers(cache: Path) -> Path:
    """The wheels' headers, downloaded once with pip into ``cache`` (the wheels are not kept)."""
    include = cache / "include"
    if all((include / h).exists() for h in WHEEL_HEADERS):
        return include
    include.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp]
        subprocess.run([*pip, *WHEELS], check=True)
        for wheel in Path(tmp).glob("*.whl"):
            with zipfile.ZipFile(wheel) as zf:
                for member in zf.namelist():
                    if Path(member).name in WHEEL_HEADERS:
                        (include / Path(member).name).write_bytes(zf.read(member))
    return include


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cuda-include", type=Path, default=CUDA_INCLUDE)
    ap.add_argument("--nvidia-include", type=Path, default=CACHE / "include",
                    help="cublas_api.h, cublasLt.h, cublasXt.h, nvml.h (default: the --fetch cache)")
    ap.add_argument("--fetch", action="store_true", help="download the wheels' headers into the cache first")
    ap.add_argument("--check", action="store_true", help="compare with public.tsv instead of writing it")
    ap.add_argument("--toolkit-only", action="store_true",
                    help="with --check: only the driver's and runtime's rows (no wheel headers needed)")
    ap.add_argument("--output", type=Path, default=OUTPUT)
    args = ap.parse_args(argv)
    nvidia_include = fetch_headers(CACHE) if args.fetch else args.nvidia_include
    missing = [h for h in WHEEL_HEADERS if not (nvidia_include / h).exists()]
    if missing and not (args.check and args.toolkit_only):
        print(f"{nvidia_include} lacks {', '.join(missing)}: pass --fetch or --nvidia-include",
              file=sys.stderr)
        return 2
    libraries = {"cuda", "cudart"} if args.toolkit_only else {p.library for p in PASSES}
    rows = extract(args.cuda_include, nvidia_include, libraries)
    if args.check:
        written = [tuple(line.split("\t")) for line in args.output.read_text().splitlines()
                   if line and not line.startswith("#")]
        if [row for row in written if row[0] in libraries] != rows:
            print(f"{args.output} differs from the headers: run {Path(__file__).name} again", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(render(rows, "CUDA 13.0 toolkit, nvidia-cublas 13, nvidia-nvml-dev 13"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
