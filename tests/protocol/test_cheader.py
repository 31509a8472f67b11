"""The generated C header: checked in as generated, and it compiles warning-free as C11 and C++17."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from protocol import CALLS_BY_NAME, CQE_SIZE, MAGIC, SQE_SIZE, ChannelField
from protocol.__main__ import DOCS_PATH, HEADER_PATH
from protocol._cheader import render_c_header
from protocol._docgen import rewrite_generated


def test_the_checked_in_header_is_what_the_catalog_generates() -> None:
    assert HEADER_PATH.read_text(encoding="utf-8") == render_c_header(), "run `python -m protocol`"


def test_the_generated_parts_of_the_protocol_doc_are_current() -> None:
    text = DOCS_PATH.read_text(encoding="utf-8")
    assert rewrite_generated(text) == text, "run `python -m protocol`"


def _probe() -> str:
    """A translation unit that uses the header and pins a few values against the Python side."""
    alloc = CALLS_BY_NAME["mem_alloc"]
    return f"""
#include "vgpu_protocol.h"
#include <stddef.h>
#include <string.h>
static_assert(VGPU_SQE_SIZE == {SQE_SIZE}, "sqe size");
static_assert(sizeof(struct vgpu_sqe) == {SQE_SIZE}, "sqe struct");
static_assert(sizeof(struct vgpu_cqe) == {CQE_SIZE}, "cqe struct");
static_assert(VGPU_MAGIC == {MAGIC:#x}ull, "magic");
static_assert(offsetof(struct vgpu_channel_header, sq_tail) == {int(ChannelField.SQ_TAIL)}, "sq_tail");
static_assert(VGPU_CALL_MEM_ALLOC == {alloc.call_id:#x}, "mem_alloc id");
int vgpu_probe(void) {{ struct vgpu_sqe sqe; memset(&sqe, 0, sizeof sqe); return (int)sqe.call_id; }}
"""


@pytest.mark.parametrize(("compiler", "flags", "suffix"), [
    ("gcc", ["-std=c11"], ".c"),
    ("g++", ["-std=c++17"], ".cc"),
])
def test_the_header_compiles_without_warnings(tmp_path: Path, compiler: str, flags: list[str],
                                              suffix: str) -> None:
    if shutil.which(compiler) is None:
        pytest.skip(f"no {compiler} here")
    source = tmp_path / f"probe{suffix}"
    source.write_text(_probe())
    run = subprocess.run([compiler, *flags, "-Wall", "-Wextra", "-Werror", "-pedantic", "-I",
                          str(HEADER_PATH.parent), "-c", str(source), "-o", str(tmp_path / "probe.o")],
                         check=False, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
