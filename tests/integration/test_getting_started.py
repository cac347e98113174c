"""Every shell block of docs/getting-started.md runs, as a reader would run it.

A comment just before a block says how it is checked (none: it must exit 0):

- ``<!-- check: run until "TEXT" and stop -->``: a command that runs until stopped (``make run``);
  it must print TEXT, then it is interrupted like Ctrl-C in its terminal;
- ``<!-- check: run until "TEXT" and keep -->``: the same, kept running for the blocks after it (a
  broker, a worker), each in a terminal of its own; a ``NAME=value`` line it prints is exported to
  the later blocks, as the page tells the reader to do;
- ``<!-- check: make -n -->``: make targets that cannot run inside the suite (``make test`` itself,
  ``make up`` without a Docker engine): ``make -n`` must resolve them.

The blocks run from the repository's root in the project's virtual environment (as the page says),
with neither a broker address nor a secret given: the page has to provide both.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PAGE = ROOT / "docs/getting-started.md"
BLOCK = re.compile(r"(?:<!-- check: (?P<check>.+?) -->\n)?```bash\n(?P<body>.*?)```", re.S)
UNTIL = re.compile(r'run until "(?P<text>[^"]+)" and (?P<then>stop|keep)')
EXPORTED = re.compile(r"^([A-Z][A-Z0-9_]*)=(\S+)$", re.M)
START_WITHIN_S = 240  # make run may fill the jar cache and start a broker and two workers
RUN_WITHIN_S = 180


@dataclass
class Block:
    check: str
    body: str


def blocks(page: str) -> list[Block]:
    """The page's ``bash`` blocks with the check written before each."""
    return [Block((m["check"] or "run").strip(), m["body"]) for m in BLOCK.finditer(page)]


def test_the_page_has_blocks_of_every_kind():
    checks = [b.check for b in blocks(PAGE.read_text())]
    assert "run" in checks and "make -n" in checks
    assert {UNTIL.fullmatch(c)["then"] for c in checks if UNTIL.fullmatch(c)} == {"stop", "keep"}
    assert all(c in ("run", "make -n") or UNTIL.fullmatch(c) for c in checks), checks


def _start(body: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            ["bash", "-e", "-o", "pipefail", "-c", body],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal gives it
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Ctrl-C to the block's process group; killed if it is still there a minute later."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_for(proc: subprocess.Popen[bytes], log: Path, text: str) -> str:
    deadline = time.monotonic() + START_WITHIN_S
    while text not in (out := log.read_text(errors="replace")):
        assert proc.poll() is None, f"ended before printing {text!r}:\n{out[-3000:]}"
        assert time.monotonic() < deadline, f"no {text!r} after {START_WITHIN_S} s:\n{out[-3000:]}"
        time.sleep(0.5)
    return out


def _environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "STREAMSCORE_"))}
    env["PATH"] = f"{ROOT / '.venv/bin'}:{env['PATH']}"
    env["VIRTUAL_ENV"] = str(ROOT / ".venv")
    env["STREAMSCORE_METRICS_PORT"] = "0"  # other tests' workers may hold 9464 on this machine
    env["STREAMSCORE_DATA_DIR"] = str(tmp_path / "data")
    return env


def test_every_command_of_the_getting_started_page_runs(tmp_path):
    env = _environment(tmp_path)
    kept: list[subprocess.Popen[bytes]] = []
    try:
        for n, block in enumerate(blocks(PAGE.read_text())):
            log = tmp_path / f"block-{n}.log"
            until = UNTIL.fullmatch(block.check)
            if block.check == "make -n":
                for line in filter(None, (ln.strip() for ln in block.body.splitlines())):
                    assert line.startswith("make "), line
                    done = subprocess.run(
                        ["make", "-n", *line.split()[1:]],
                        cwd=ROOT,
                        env=env,
                        capture_output=True,
                        text=True,
                        timeout=60,
                    )
                    assert done.returncode == 0 and done.stdout.strip(), (line, done.stderr[-2000:])
            elif until:
                proc = _start(block.body, env, log)
                out = _wait_for(proc, log, until["text"])
                if until["then"] == "stop":
                    _stop(proc)
                else:
                    kept.append(proc)
                    env.update(EXPORTED.findall(out))
            else:
                proc = _start(block.body, env, log)
                try:
                    code = proc.wait(RUN_WITHIN_S)
                finally:
                    _stop(proc)
                assert code == 0, (
                    f"block {n} exited {code}:\n{block.body}\n{log.read_text(errors='replace')[-3000:]}"
                )
    finally:
        for proc in reversed(kept):
            _stop(proc)


@pytest.mark.parametrize(
    ("page", "checks"),
    [
        ("<!-- check: make -n -->\n```bash\nmake test\n```\n\n```bash\nls\n```\n", ["make -n", "run"]),
        (
            '```text\nnot a command\n```\n<!-- check: run until "x" and keep -->\n```bash\na\n```\n',
            ['run until "x" and keep'],
        ),
    ],
)
def test_blocks_are_read_with_their_checks(page, checks):
    assert [b.check for b in blocks(page)] == checks
