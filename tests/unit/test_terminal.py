"""What the commands print from Kafka is escaped: no record can move the cursor or forge a line."""

from __future__ import annotations

import datetime as dt
import sys
import unicodedata

import pytest

from stream.messages import inbound
from stream.terminal import printable

CONTROL = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cc"]
FORGED = "\x1b[1A\x1b[2K\rscore      then 1.0  now 1.0 (approve)  bit-exact\n\x00\x9b31m\u202e"
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _clean(text: str) -> bool:
    """No control character, bidirectional override or lone surrogate: safe on a terminal."""
    return not any(unicodedata.category(c) in ("Cc", "Cs") or "\u202a" <= c <= "\u202e" for c in text)


def test_every_control_character_becomes_a_visible_escape():
    for char in CONTROL:
        shown = printable(f"a{char}b")
        assert _clean(shown) and shown.startswith("a\\") and shown.endswith("b"), repr(shown)
    assert printable("\x1b[2K\r\n\t\x00\x7f\x9b") == "\\x1b[2K\\r\\n\\t\\x00\\x7f\\x9b"


def test_reordering_controls_and_lone_surrogates_are_escaped_too():
    assert printable("a\u202eb\u2066c\u2028") == "a\\u202eb\\u2066c\\u2028"
    assert printable("id-\udcff\udcfe") == "id-\\udcff\\udcfe"
    assert printable("id-\udcff").encode() == b"id-\\udcff", "encodable as UTF-8"


@pytest.mark.parametrize("text", ["", "plain id", "café 申请 🙂", "a\\x1b literal backslash", "nbsp\u00a0"])
def test_printable_text_is_unchanged(text):
    assert printable(text) == text


def test_explain_renders_a_hostile_dead_letter_on_lines_of_its_own():
    from stream.audit.explain import Explanation, render

    found = Explanation(
        outcome="dead_letter",
        event_id=FORGED,
        input={"topic": "events", "partition": 0, "offset": 7, "timestamp_ms": 1, "key": FORGED,
               "traceparent": FORGED},
        record="events.dlq[0]@3",
        dead_letter={"stage": "schema", "reason": FORGED, "exception": "SchemaError"},
    )  # fmt: skip
    text = render(found)
    assert _clean(text.replace("\n", "")) and len(text.splitlines()) == 5
    assert not any(line.startswith("score") for line in text.splitlines()), "no forged line"
    assert "\\x1b[1A\\x1b[2K\\rscore" in text


def test_explain_renders_a_hostile_scored_event_on_lines_of_its_own():
    from stream.audit.explain import Explanation, render

    found = Explanation(
        outcome="scored",
        event_id=FORGED,
        input={"topic": "events", "partition": 0, "offset": 7, "timestamp_ms": None, "key": FORGED},
        envelope={"event_id": FORGED, "occurred_at": NOW, "entity_id": FORGED},
        record="provenance[1]@2",
        features={"salary": 1.0, "zip\ncode": "ab"},
        model={"name": FORGED, "version": "1", "sha256": "0" * 64},
        role="champion",
        code={"version": "1", "revision": FORGED, "worker_id": FORGED},
        times={"received_at": NOW, "scored_at": NOW, "emitted_at": NOW},
        score_then=0.25, score_now=0.5, label_now=FORGED, bit_exact=False, difference=FORGED,
    )  # fmt: skip
    lines = render(found).splitlines()
    assert all(_clean(line) for line in lines), lines
    heads = ["event", "input", "envelope", "features", "model", "code", "provenance", "score", "reasons"]
    assert [line.split()[0] for line in lines] == heads, "no line of a record's making"
    assert sum(line.startswith("score") for line in lines) == 1, "one score line: the real one"


def test_verify_renders_hostile_findings_on_lines_of_their_own():
    from stream.audit.verify import Finding, VerifyReport, render

    bad = Finding(event_id=FORGED, record="provenance[0]@1", detail=f"breaks the contract: {FORGED}")
    report = VerifyReport(records=2, sampled=2, exact=1, mismatched=[bad], unverifiable=[bad])
    lines = render(report).splitlines()
    assert len(lines) == 3 and all(_clean(line) for line in lines)
    assert lines[-1].startswith("verified 2 of 2")


def test_tail_prints_a_hostile_record_without_control_characters():
    from stream.tools.tail import format_message

    value = b'{"event_id": "\\u001b[2K\\r\xc2\x9b31m", "x": "\xc2\x9b"}'
    msg = inbound(
        value, FORGED.encode(), "events", 0, 5, 1, [(FORGED, FORGED.encode()), ("h", b"\x1b]0;t\x07")]
    )
    text = format_message(msg)
    assert _clean(text.replace("\n", "")), repr(text)
    assert len(text.splitlines()) == 3 + 4, "the key and the headers on a line each, then the value"
    assert text.splitlines()[0].startswith("events[0]@5 key=") and "\\x1b[1A" in text.splitlines()[0]
    raw = inbound(b"\x1b[2J\x9b not json", None, "events", 0, 6, 1)
    assert _clean(format_message(raw).replace("\n", ""))


def test_a_one_line_error_stays_one_line(capsys):
    from stream.cli.common import fail

    assert fail(f"no record for {FORGED}").exit_code == 2
    printed = capsys.readouterr().err
    assert len(printed.splitlines()) == 1 and _clean(printed.rstrip("\n")), repr(printed)
    assert printed.startswith("streamscore: error: no record for \\x1b[1A")
