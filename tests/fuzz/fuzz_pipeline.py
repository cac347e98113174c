"""Coverage-guided fuzzing of the hot path with atheris (libFuzzer).

``python tests/fuzz/fuzz_pipeline.py CORPUS_DIR -max_total_time=60``; ``test_atheris.py`` runs it.

Each input is one message, scored in a batch beside a valid event; the invariant of
:func:`outcomes.check` must hold, and any exception is a crash that libFuzzer reports with the input.
An input starting with byte 0 (the wire format's magic byte) goes to the Avro pipeline as it is; one
starting with byte 1 is made into an Avro message from the block counts and lengths it spells
(:func:`avro_input`); any other goes to the JSON pipeline. A message after which the process's peak
resident memory has grown by more than :data:`GROWTH` since start-up is a crash too: it made far
more than its bytes.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

with atheris.instrument_imports(include=["stream", "outcomes"]):
    from outcomes import avro_message, check, make_avro_pipeline, make_pipeline, seeds, zigzag

PIPELINE, AVRO_PIPELINE = make_pipeline(), make_avro_pipeline()
VALID, VALID_AVRO = seeds()[0], avro_message(1, b"")
GROWTH = 256 * 2**10
"""KiB (ru_maxrss's unit): far above what fuzzing grows, far below what a block bomb makes."""
START = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
COUNTS = (0, 1, -1, 2, 3, 127, 128, 19_990, -19_990, 2**26, -(2**26), 2**31, 2**62, -(2**63))


def avro_input(data: bytes) -> bytes:
    """An Avro message of a schema id and tokens drawn from ``data``: block counts and lengths (from a
    list of edge cases, or any long), and raw bytes."""
    draw = atheris.FuzzedDataProvider(data)
    schema_id, tokens = draw.ConsumeIntInRange(1, 4), []
    for _ in range(draw.ConsumeIntInRange(0, 64)):
        kind = draw.ConsumeIntInRange(0, 2)
        if kind == 0:
            tokens.append(zigzag(COUNTS[draw.ConsumeIntInRange(0, len(COUNTS) - 1)]))
        elif kind == 1:
            tokens.append(zigzag(draw.ConsumeIntInRange(-(2**63), 2**63 - 1)))
        else:
            tokens.append(draw.ConsumeBytes(draw.ConsumeIntInRange(0, 8)))
    return avro_message(schema_id, b"".join(tokens))


def one_input(data: bytes) -> None:
    if data[:1] == b"\x00":
        check(AVRO_PIPELINE, [data, VALID_AVRO])
    elif data[:1] == b"\x01":
        check(AVRO_PIPELINE, [avro_input(data[1:]), VALID_AVRO])
    else:
        check(PIPELINE, [data, VALID])
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - START
    assert grown < GROWTH, f"peak memory grew by {grown // 1024} MiB"


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
