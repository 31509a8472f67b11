"""The fuzz targets run, as documented, for a few thousand inputs each and find nothing.

The long runs (and their figures) are in docs/reliability.md; this keeps the targets working.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris (the fuzz extra) is not installed")

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("target", "runs"), [("fuzz_frames.py", 20_000), ("fuzz_ring_server.py", 1_500)])
def test_the_fuzz_target_runs_clean(target: str, runs: int, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    done = subprocess.run(
        [sys.executable, str(ROOT / "fuzz" / target), f"-atheris_runs={runs}", "-seed=1",
         "-len_control=0", "-max_len=2048", f"-artifact_prefix={tmp_path}/", str(corpus)],
        check=False, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert re.search(rf"Done {runs} (runs|in)", output), output[-2000:]
    assert not list(tmp_path.glob("crash-*")), output[-4000:]
    assert any(corpus.iterdir()), "the fuzzer kept no input: its coverage feedback is not working"
