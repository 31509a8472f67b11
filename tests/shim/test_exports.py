"""The shim's exported functions are exactly those of ``guest/shim/exports.tsv`` and ``public.tsv``.

exports.tsv says how the shim answers what it serves; public.tsv lists every public function of
NVIDIA's libraries (read from their headers, see test_public_api.py). The built libraries must export
the union and nothing else (NVIDIA's version nodes on cudart's, cuBLAS's and cuBLASLt's),
docs/guest.md's tables must be exports.tsv's rendering, every function not served must answer what
its return type can say (the library's "not supported" status; NULL; cuBLAS's legacy API through
cublasGetError) and log once, and cuGetProcAddress must resolve versioned look-ups to the library's
own entry points.
"""

from __future__ import annotations

import ctypes
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.qemu._support import REPO

from ._support import LIBRARIES, SHIM, VERSION_NODES, ShimBuild, all_exports, read_exports, read_public

NOT_SUPPORTED = {"cuda": 801, "cudart": 801, "cublas": 15, "cublasLt": 15, "nvml": 3}


def exported(library: Path) -> dict[str, str | None]:
    """Defined dynamic symbols of a library: name -> version node (None when unversioned)."""
    out = subprocess.run(["nm", "-D", "--defined-only", str(library)], capture_output=True, text=True,
                         check=True).stdout
    symbols: dict[str, str | None] = {}
    for line in out.splitlines():
        *_, kind, name = line.split()
        if kind == "A":  # a version definition's own absolute symbol
            continue
        base, _, version = name.partition("@@")
        symbols[base] = version or None
    return symbols


@pytest.mark.parametrize("lib", sorted(LIBRARIES))
def test_each_library_exports_exactly_its_rows_of_the_table(shim: ShimBuild, lib: str) -> None:
    expected = {row.symbol for row in all_exports() if row.library == lib}
    symbols = exported(shim.library(lib))
    assert set(symbols) == expected
    assert set(symbols.values()) == {VERSION_NODES[lib]}


def test_the_libraries_carry_the_sonames_programs_link_against(shim: ShimBuild) -> None:
    for lib, soname in LIBRARIES.items():
        dynamic = subprocess.run(["readelf", "-d", str(shim.library(lib))], capture_output=True, text=True,
                                 check=True).stdout
        assert f"Library soname: [{soname}]" in dynamic
        assert "RPATH" not in dynamic and "RUNPATH" not in dynamic


def test_the_table_has_one_row_per_function_and_known_statuses() -> None:
    rows = read_exports()
    keys = [(row.library, row.symbol) for row in rows]
    assert len(keys) == len(set(keys))
    assert {row.status for row in rows} <= {"served", "local", "unsupported", "internal"}
    assert {row.library for row in rows if row.status == "internal"} == {"cuda"}
    assert {row.library for row in rows} <= set(LIBRARIES)


def test_what_returns_a_value_is_served_unless_it_is_cublass_legacy_api() -> None:
    """A stub can only answer "not supported" where the return type can carry it: a status, nothing,
    or NULL. A function returning a value (a version, a struct) must be answered for real — except
    cuBLAS's legacy API, which reports failures through cublasGetError."""
    public = read_public()
    for row in all_exports():
        kind = public.get((row.library, row.symbol), "status")
        if row.status == "unsupported" and kind in ("integer", "floating"):
            assert row.library == "cublas", f"{row.symbol} returns a value and must be served"


def test_docs_guest_md_lists_the_table_as_generated() -> None:
    rendered = subprocess.run(["awk", "-f", str(SHIM / "exports_doc.awk"), str(SHIM / "public.tsv"),
                               str(SHIM / "exports.tsv")],
                              capture_output=True, text=True, check=True).stdout
    doc = (REPO / "docs" / "guest.md").read_text()
    begin, end = "<!-- BEGIN GENERATED: exports -->\n", "<!-- END GENERATED: exports -->"
    assert begin in doc and end in doc
    block = doc.split(begin, 1)[1].split(end, 1)[0]
    assert block == rendered, "docs/guest.md is stale: run make -C guest/shim docs"


def test_unsupported_functions_answer_not_supported_and_log_once(shim: ShimBuild, tmp_path: Path) -> None:
    log = tmp_path / "shim.log"
    conf = tmp_path / "guest.conf"
    conf.write_text(f"log = {log}\n")
    public = read_public()
    unsupported = [(row.library, row.symbol, public.get((row.library, row.symbol), "status"))
                   for row in all_exports() if row.status == "unsupported"]
    # each called twice with no arguments (every stub takes none): its answer by what it returns, and
    # after a legacy cuBLAS function, what cublasGetError reports
    script = textwrap.dedent(f"""
        import ctypes
        libs = {{lib: ctypes.CDLL(path) for lib, path in {({lib: str(shim.library(lib)) for lib in LIBRARIES})!r}.items()}}
        libs["cublas"].cublasGetError.restype = ctypes.c_int
        for lib, symbol, kind in {unsupported!r}:
            fn = getattr(libs[lib], symbol)
            fn.restype = ctypes.c_void_p if kind == "pointer" else ctypes.c_int
            for _ in range(2):
                answer = fn()
                if kind == "status":
                    print(lib, symbol, answer)
                elif kind == "pointer":
                    print(lib, symbol, "NULL" if answer is None else hex(answer))
                else:
                    print(lib, symbol, kind, libs["cublas"].cublasGetError() if lib == "cublas" else "-")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True,
                          env={"VGPU_GUEST_CONF": str(conf), "PATH": "/usr/bin:/bin"})
    answers = [line.split() for line in proc.stdout.splitlines()]
    assert len(answers) == 2 * len(unsupported)
    assert len(unsupported) > 1500  # most of NVIDIA's API is answered this way
    for (lib, symbol, kind), answer in zip([u for u in unsupported for _ in range(2)], answers, strict=True):
        assert answer[:2] == [lib, symbol]
        if kind == "status":
            assert int(answer[2]) == NOT_SUPPORTED[lib], f"{symbol} answered {answer[2]}"
        elif kind == "pointer":
            assert answer[2] == "NULL", f"{symbol} answered {answer[2]}"
        elif lib == "cublas":  # the legacy API's void and value functions
            assert int(answer[3]) == NOT_SUPPORTED["cublas"], f"{symbol}: {answer}"
        else:  # the runtime's registration hooks return nothing: the log says it
            assert kind == "void", f"{symbol}: {answer}"
    logged = log.read_text()
    for _, symbol, _ in unsupported:
        assert logged.count(f": {symbol} is not supported") == 1, symbol


def test_cu_get_proc_address_resolves_versioned_names_to_the_shims_functions(shim: ShimBuild) -> None:
    cuda = ctypes.CDLL(str(shim.library("cuda")))

    def resolve(name: str, version: int) -> tuple[int, int | None]:
        fn = ctypes.c_void_p()
        status = ctypes.c_int(-1)
        rc = cuda.cuGetProcAddress_v2(name.encode(), ctypes.byref(fn), version, ctypes.c_uint64(0),
                                      ctypes.byref(status))
        return rc, fn.value

    def address(symbol: str) -> int | None:
        return ctypes.cast(getattr(cuda, symbol), ctypes.c_void_p).value

    assert resolve("cuMemAlloc", 13000) == (0, address("cuMemAlloc_v2"))
    assert resolve("cuStreamDestroy", 12000) == (0, address("cuStreamDestroy_v2"))
    assert resolve("cuGraphInstantiate", 12000) == (0, address("cuGraphInstantiateWithFlags"))
    assert resolve("cuGraphInstantiate", 11000) == (0, address("cuGraphInstantiate_v2"))
    assert resolve("cuStreamGetCaptureInfo", 13000) == (0, address("cuStreamGetCaptureInfo_v3"))
    assert resolve("cuInit", 2000) == (0, address("cuInit"))
    assert resolve("cuNoSuchFunction", 13000) == (500, None)  # CUDA_ERROR_NOT_FOUND
    assert resolve("vgpu_shim_call", 13000) == (500, None)  # the private interface is not handed out
