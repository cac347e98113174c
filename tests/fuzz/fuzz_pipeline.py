"""Coverage-guided fuzzing of the hot path with atheris (libFuzzer).

``python tests/fuzz/fuzz_pipeline.py CORPUS_DIR -max_total_time=60``; ``test_atheris.py`` runs it.

Each input is one message, scored in a batch beside a valid event; the invariant of
:func:`outcomes.check` must hold, and any exception is a crash that libFuzzer reports with the input.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

with atheris.instrument_imports(include=["stream", "outcomes"]):
    from outcomes import check, make_pipeline, seeds

PIPELINE = make_pipeline()
VALID = seeds()[0]


def one_input(data: bytes) -> None:
    check(PIPELINE, [data, VALID])


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
