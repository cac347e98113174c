"""Runs the shell blocks of a docs page as a reader would (see ``test_getting_started.py``).

A comment just before a block says how it is checked (none: it must exit 0):

- ``<!-- check: run until "TEXT" and stop -->``: a command that runs until stopped (``make run``);
  it must print TEXT, then it is interrupted like Ctrl-C in its terminal;
- ``<!-- check: run until "TEXT" and keep -->``: the same, kept running for the blocks after it (a
  broker, a worker), each in a terminal of its own; a ``NAME=value`` line it prints is exported to
  the later blocks, as the page tells the reader to do;
- ``<!-- check: make -n -->``: make targets that cannot run inside the suite (``make test`` itself,
  ``make up`` without a Docker engine): ``make -n`` must resolve them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).parents[1]
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


def _start(body: str, env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            ["bash", "-e", "-o", "pipefail", "-c", body],
            cwd=cwd,
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


def environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "STREAMSCORE_"))}
    env["PATH"] = f"{ROOT / '.venv/bin'}:{env['PATH']}"
    env["VIRTUAL_ENV"] = str(ROOT / ".venv")
    env["STREAMSCORE_METRICS_PORT"] = "0"  # other tests' workers may hold 9464 on this machine
    env["STREAMSCORE_DATA_DIR"] = str(tmp_path / "data")
    return env


def run_page(page: str, env: dict[str, str], tmp_path: Path, cwd: Path = ROOT) -> None:
    """Run every block of ``page`` in order from ``cwd``, as its checks say; stop the kept ones."""
    kept: list[subprocess.Popen[bytes]] = []
    try:
        for n, block in enumerate(blocks(page)):
            log = tmp_path / f"block-{n}.log"
            until = UNTIL.fullmatch(block.check)
            if block.check == "make -n":
                _make_n(block.body, env)
            elif until:
                proc = _start(block.body, env, log, cwd)
                out = _wait_for(proc, log, until["text"])
                if until["then"] == "stop":
                    _stop(proc)
                else:
                    kept.append(proc)
                    env.update(EXPORTED.findall(out))
            else:
                proc = _start(block.body, env, log, cwd)
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


def _make_n(body: str, env: dict[str, str]) -> None:
    for line in filter(None, (ln.strip() for ln in body.splitlines())):
        assert line.startswith("make "), line
        done = subprocess.run(
            ["make", "-n", *line.split()[1:]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0 and done.stdout.strip(), (line, done.stderr[-2000:])
