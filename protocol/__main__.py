"""``python -m protocol``: regenerate what is derived from the catalog.

Writes ``protocol/include/vgpu_protocol.h`` (``render_c_header``) and the generated sections of
``docs/protocol.md`` (``rewrite_generated``). With ``--check`` it writes nothing and exits 1 when
either checked-in file differs from what the catalog generates (CI and the tests run that).
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from pathlib import Path

from ._cheader import render_c_header
from ._docgen import rewrite_generated

HEADER_PATH = Path(__file__).resolve().parent / "include" / "vgpu_protocol.h"
DOCS_PATH = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"


def _drift(path: Path, expected: str) -> str | None:
    """None when ``path`` holds ``expected``, else a short unified diff (or why it cannot be read)."""
    try:
        current = path.read_text(encoding="utf-8")
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    if current == expected:
        return None
    diff = difflib.unified_diff(
        current.splitlines(keepends=True), expected.splitlines(keepends=True),
        f"{path} (checked in)", f"{path} (generated)", n=1,
    )
    lines = list(diff)
    shown = "".join(lines[:40])
    more = f"… {len(lines) - 40} more diff lines\n" if len(lines) > 40 else ""
    return shown + more


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m protocol",
        description="Regenerate protocol/include/vgpu_protocol.h and docs/protocol.md's generated parts.",
    )
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 on drift")
    parser.add_argument("--header", type=Path, default=HEADER_PATH, help="the C header to write")
    parser.add_argument("--docs", type=Path, default=DOCS_PATH, help="the protocol document to update")
    opts = parser.parse_args(argv)

    header = render_c_header()
    try:
        docs = rewrite_generated(opts.docs.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"{opts.docs}: {exc}", file=sys.stderr)
        return 2

    if opts.check:
        problems = [d for d in (_drift(opts.header, header), _drift(opts.docs, docs)) if d]
        for problem in problems:
            print(problem, file=sys.stderr, end="" if problem.endswith("\n") else "\n")
        if problems:
            print("generated files are stale: run `python -m protocol`", file=sys.stderr)
            return 1
        return 0

    for path, text in ((opts.header, header), (opts.docs, docs)):
        if _drift(path, text) is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
