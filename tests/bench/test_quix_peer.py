"""The Quix Streams peer runs from a venv of its own: it may import nothing of ours."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PEER = Path(__file__).parents[2] / "bench" / "quix_peer.py"
#: What bench/quix-requirements.txt installs into .venv-quix, besides the standard library.
QUIX_VENV = {"quixstreams", "onnxruntime", "pydantic", "orjson", "numpy"}


def test_the_quix_peer_imports_only_what_its_venv_has():
    imported = set()
    for node in ast.walk(ast.parse(PEER.read_text())):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert imported - sys.stdlib_module_names - {"__future__"} <= QUIX_VENV
    assert "quixstreams" in imported


def test_the_quix_venv_installs_what_the_peer_imports():
    requirements = (PEER.parent / "quix-requirements.txt").read_text().splitlines()
    names = {line.split(">")[0].split("=")[0].strip() for line in requirements if line and line[0] != "#"}
    assert names == QUIX_VENV
