"""docs/ptx-engine.md lists exactly what the engine implements (its table is generated)."""

from __future__ import annotations

from pathlib import Path

from executor.ptx._docs import BEGIN, END, render, supported_table
from executor.ptx._isa import COMPILERS, SUPPORTED

DOC = Path(__file__).resolve().parents[2] / "docs" / "ptx-engine.md"
CONTROL = {"bra", "ret", "exit", "call", "bar", "barrier", "trap"}  # carried out by the SIMT loop


def test_the_documented_table_is_the_engines() -> None:
    text = DOC.read_text()
    assert BEGIN in text and END in text
    assert render(text) == text, "run: python -m executor.ptx._docs docs/ptx-engine.md"


def test_every_implemented_opcode_is_documented_and_nothing_else() -> None:
    assert set(SUPPORTED) == set(COMPILERS) | CONTROL
    assert all(f"`{opcode}`" in supported_table() for opcode in SUPPORTED)
