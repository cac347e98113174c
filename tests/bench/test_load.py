"""The ladder's load generator: events stamped with the time of sending, without a JSON round trip."""

from __future__ import annotations

import datetime as dt
import itertools

from bench.load import Pool, stamp_slot
from stream.contracts import Event
from stream.tools.produce import events


def test_an_event_stamped_at_send_time_is_still_a_valid_event(tmp_path):
    generated = list(itertools.islice(events(seed=3), 20))
    pool = Pool([{"key": k, "value": v} for k, v, *_ in generated], {})
    pool.write(tmp_path / "events.tsv")
    lines = (tmp_path / "events.tsv").read_bytes().splitlines()
    now = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    for line, (key, value, *_) in zip(lines, generated, strict=True):
        k, head, tail = stamp_slot(line)
        event = Event.model_validate_json(head + now.isoformat(timespec="microseconds").encode() + tail)
        original = Event.model_validate_json(value)
        assert k == key
        assert event.occurred_at == now
        assert event.model_copy(update={"occurred_at": original.occurred_at}) == original
