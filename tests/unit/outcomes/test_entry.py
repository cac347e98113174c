"""The entry's encodings: 29 bytes on disk, self-contained in the changelog, checked when read."""

from __future__ import annotations

import math
import struct

import pytest

from stream.outcomes.entry import LOCAL_SIZE, Entry, coherent, from_local, from_wire, to_local, to_wire

SHA = "ef" * 32
ENTRIES = [
    Entry(1_000, "loan-approval/1", SHA, 0.25),
    Entry(2_000, positive=False),
    Entry(3_000, positive=True),
    Entry(4_000, "loan-approval/2", SHA, 1.0, True, 5_000),
]


@pytest.mark.parametrize("entry", ENTRIES)
def test_round_trips(entry):
    models = {7: ("loan-approval/1", SHA), 8: ("loan-approval/2", SHA)}
    number = next((n for n, (m, _) in models.items() if m == entry.model), 0)
    assert len(to_local(entry, number)) == LOCAL_SIZE == 29
    assert from_local(to_local(entry, number), models) == entry
    assert from_wire(to_wire(entry)) == entry


@pytest.mark.parametrize(
    "body",
    [
        b"",
        to_wire(ENTRIES[0])[:20],  # cut short
        to_wire(ENTRIES[0])[:25],  # a prediction without its model
        to_wire(ENTRIES[1]) + b"m/1 x",  # an outcome with a model
        struct.pack(">Bqqd", 9, 1, 0, 0.5),  # unknown flags
        struct.pack(">Bqqd", 0, 1, 0, 0.5),  # neither prediction nor outcome
        struct.pack(">Bqqd", 2, 1, 5, 0.5),  # joined without a prediction
        struct.pack(">Bqqd", 1, 1, 0, 7.0) + b"m/1 x",  # a score out of [0, 1]
        struct.pack(">Bqqd", 1, 1, 0, math.nan) + b"m/1 x",
        struct.pack(">Bqqd", 1, -1, 0, 0.5) + b"m/1 x",  # a negative time
        struct.pack(">Bqqd", 1, 1, 0, 0.5) + b"m/1",  # no sha256
        struct.pack(">Bqqd", 1, 1, 0, 0.5) + b"m" * 600,  # too long
    ],
)
def test_malformed_changelog_bodies_are_refused(body):
    assert from_wire(body) is None


def test_coherence():
    assert all(coherent(e) for e in ENTRIES)
    assert not coherent(Entry(1)) and not coherent(Entry(1, positive=True, joined_ms=2))
