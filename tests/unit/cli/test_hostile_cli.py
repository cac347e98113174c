"""Hostile arguments and settings get one line and exit code 2, before any broker is asked."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import ROOT
from pydantic import ValidationError

from stream.settings import Settings


def _cli(*args: str | bytes, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stream.cli.main", *args],
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", **env},
        capture_output=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )


def _one_line(done: subprocess.CompletedProcess) -> str:
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("streamscore: error: ") and done.stdout == b"", err
    assert not any(b < 0x20 or 0x7F <= b < 0xA0 for b in done.stderr.rstrip(b"\n")), "printable"
    return err


@pytest.mark.parametrize(
    ("event_id", "said"),
    [
        ("", "empty"),
        (b"\xff\xfe", "UTF-8"),
        ("\x1b[1A\x1b[2K\rscore then 1.0", "control character"),
        ("e" * 257, "256"),
    ],
    ids=["empty", "not-utf8", "escape-sequence", "too-long"],
)
def test_explain_refuses_an_id_no_event_can_have_in_one_line(event_id, said):
    err = _one_line(_cli("explain", event_id))
    assert said in err, err


def test_explain_without_id_or_position_says_what_to_give():
    assert "EVENT_ID" in _one_line(_cli("explain"))


@pytest.mark.parametrize("app_id", ["bad id/..", "..", ".", "a/b", "x" * 201, "café", "\x1b[2J"])
def test_an_app_id_kafka_cannot_use_stops_startup_in_one_line(app_id):
    err = _one_line(_cli("worker", STREAMSCORE_APP_ID=app_id))
    assert "app_id" in err and "letters, digits" in err, err
    with pytest.raises(ValidationError, match="app_id"):
        Settings(app_id=app_id)


@pytest.mark.parametrize("app_id", ["streamscore", "app-test_1.2", "A" * 200, "a..b"])
def test_app_ids_kafka_accepts_are_kept(app_id):
    assert Settings(app_id=app_id).app_id == app_id


def test_the_clock_skew_setting_is_positive():
    assert Settings(max_clock_skew_s=60).max_clock_skew_s == 60.0
    with pytest.raises(ValidationError, match="max_clock_skew_s"):
        Settings(max_clock_skew_s=0)
