"""The atheris harness, run for a bounded time under ``-m chaos`` (skipped where atheris is missing)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fuzz.outcomes import avro_seeds, seeds

HARNESS = Path(__file__).with_name("fuzz_pipeline.py")


@pytest.mark.chaos
def test_atheris_finds_no_crash(tmp_path):
    pytest.importorskip("atheris", reason="atheris is not installed (pip install atheris)")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, seed in enumerate([*seeds(), *avro_seeds(), b"\x01" + bytes(range(64))]):
        (corpus / f"seed-{i}").write_bytes(seed)
    seconds = int(os.environ.get("STREAMSCORE_FUZZ_SECONDS", "60"))
    done = subprocess.run(
        [
            sys.executable, str(HARNESS), str(corpus),
            f"-max_total_time={seconds}", "-rss_limit_mb=1024", "-max_len=70000", "-timeout=10",
            f"-artifact_prefix={tmp_path}/",
        ],
        capture_output=True, text=True, timeout=seconds + 120, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    runs = re.search(r"Done (\d+) runs in (\d+) second", done.stderr)
    assert runs and int(runs[1]) > 1000, done.stderr[-2000:]
    print(f"atheris: {runs[1]} runs in {runs[2]} s, corpus {len(list(corpus.iterdir()))} inputs")
