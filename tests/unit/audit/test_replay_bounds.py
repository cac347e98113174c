"""A replay scores only the offsets of its range, whatever position its consumer is given."""

from __future__ import annotations

from stream.audit.replay import EndBound
from stream.messages import inbound


def test_the_bound_drops_offsets_before_the_start_of_the_range():
    bound = EndBound("t", {0: 5, 1: 3}, {0: 2, 1: 3})
    batch = [inbound(b"x", topic="t", partition=p, offset=o) for p in (0, 1) for o in range(6)]
    kept = [(m.partition(), m.offset()) for m in bound.clip(batch)]
    assert kept == [(0, 2), (0, 3), (0, 4)], "partition 1 from its end: nothing, though read from 0"
