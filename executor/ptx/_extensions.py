"""The PTX engine's optional C extensions (``native/ptx*.c``, built by setup.py where a compiler is)."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

__all__ = ["optional_extension"]


def optional_extension(name: str) -> ModuleType | None:
    """``executor.ptx.<name>``, or ``None`` where it is not built or ``VGPU_PURE_PYTHON=1`` asks for
    the Python forms (the callers' fallbacks and the tests' references)."""
    if os.environ.get("VGPU_PURE_PYTHON") == "1":
        return None
    try:
        return importlib.import_module(f"{__package__}.{name}")
    except ImportError:
        return None
