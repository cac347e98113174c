"""The supervisor keeps its children running, restarts the dead with back-off, stops them all cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from stream.worker.supervisor import Supervisor, child_env, process_count

# A stand-in worker: notes its name and pid on start, and "stopped" when SIGTERM ends it cleanly.
CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    out = Path(os.environ["OUT"]) / os.environ["STREAMSCORE_INSTANCE_ID"]
    with out.open("a") as f:
        f.write(f"started {os.getpid()} {os.environ['STREAMSCORE_METRICS_PORT']}\\n")
    def stop(*_):
        with out.open("a") as f:
            f.write("stopped\\n")
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    code = int(os.environ.get("EXIT_AT_ONCE", "-1"))
    if code >= 0:
        sys.exit(code)
    for _ in range(600):
        time.sleep(0.1)
    """
)


def _envs(tmp_path: Path, count: int, **extra: str) -> list[dict[str, str]]:
    base = {**os.environ, "OUT": str(tmp_path), **extra}
    return [child_env(base, "host", 9500, i) for i in range(count)]


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _wait(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_children_get_stable_names_and_ports_of_their_own():
    envs = [child_env({"STREAMSCORE_METRICS_PORT": "9464"}, "node-a", 9464, i) for i in range(3)]
    assert [e["STREAMSCORE_INSTANCE_ID"] for e in envs] == ["node-a-0", "node-a-1", "node-a-2"]
    assert [e["STREAMSCORE_METRICS_PORT"] for e in envs] == ["9464", "9465", "9466"]
    assert child_env({}, "n", 0, 2)["STREAMSCORE_METRICS_PORT"] == "0"  # off stays off


def test_process_count():
    assert process_count("auto") == len(os.sched_getaffinity(0))
    assert process_count("3") == 3
    for bad in ("0", "-1", "two", ""):
        with pytest.raises(ValueError, match="auto or a whole number"):
            process_count(bad)


def _run(supervisor: Supervisor) -> threading.Thread:
    thread = threading.Thread(target=lambda: setattr(supervisor, "code", supervisor.run(poll=0.05)))
    thread.start()
    return thread


def test_a_killed_child_is_restarted_under_its_name_and_all_stop_cleanly(tmp_path):
    supervisor = Supervisor(_envs(tmp_path, 2), command=[sys.executable, "-c", CHILD], backoff=0.2)
    thread = _run(supervisor)
    first, second = tmp_path / "host-0", tmp_path / "host-1"
    _wait(lambda: _lines(first) and _lines(second))
    assert _lines(second)[0].endswith(" 9501")
    victim = int(_lines(first)[0].split()[1])
    os.kill(victim, signal.SIGKILL)
    _wait(lambda: len(_lines(first)) == 2)
    restarted = int(_lines(first)[1].split()[1])
    assert restarted != victim
    assert (
        supervisor.registry.get_sample_value("streamscore_worker_restarts_total", {"instance": "host-0"}) == 1
    )
    assert (
        supervisor.registry.get_sample_value("streamscore_worker_restarts_total", {"instance": "host-1"})
        is None
    )

    supervisor.stop()
    thread.join(15)
    assert not thread.is_alive()
    assert supervisor.code == 0
    assert _lines(first)[-1] == "stopped" and _lines(second)[-1] == "stopped"
    assert supervisor.registry.get_sample_value("streamscore_worker_processes") == 0


def test_back_off_doubles_up_to_its_bound(tmp_path):
    supervisor = Supervisor(
        _envs(tmp_path, 1, EXIT_AT_ONCE="1"),
        command=[sys.executable, "-c", CHILD],
        backoff=0.1,
        max_backoff=0.4,
    )
    thread = _run(supervisor)
    time.sleep(2.5)
    supervisor.stop()
    thread.join(15)
    starts = len(_lines(tmp_path / "host-0"))
    # delays 0.1, 0.2, 0.4, 0.4, ...: at most ~7 starts in 2.5 s (a restart a poll would make ~40)
    assert 3 <= starts <= 8, starts
    assert supervisor.children[0].delay == 0.4
    assert supervisor.code == 0


def test_a_child_refusing_its_configuration_stops_them_all(tmp_path):
    envs = _envs(tmp_path, 2)
    envs[1]["EXIT_AT_ONCE"] = "2"
    supervisor = Supervisor(envs, command=[sys.executable, "-c", CHILD], backoff=0.1)
    thread = _run(supervisor)
    thread.join(15)
    assert not thread.is_alive()
    assert supervisor.code == 2
    assert _lines(tmp_path / "host-1") == [_lines(tmp_path / "host-1")[0]]  # not started again
    assert _lines(tmp_path / "host-0")[-1] == "stopped"


SUPERVISOR = textwrap.dedent(
    """
    import os, sys
    from stream.worker.supervisor import Supervisor, child_env
    envs = [child_env(os.environ, "host", 0, i) for i in range(2)]
    supervisor = Supervisor(envs, command=[sys.executable, "-c", os.environ["CHILD"]])
    supervisor.handle_signals()
    sys.exit(supervisor.run(poll=0.05))
    """
)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_on_the_process_group_or_sigterm_stops_every_child_cleanly(tmp_path, sig):
    """A terminal's Ctrl-C signals the whole foreground group: the supervisor alone gets it, and
    passes a SIGTERM to each child."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR],
        env={**os.environ, "OUT": str(tmp_path), "CHILD": CHILD},
        start_new_session=True,
    )
    try:
        _wait(lambda: _lines(tmp_path / "host-0") and _lines(tmp_path / "host-1"))
        started = time.monotonic()
        os.killpg(proc.pid, sig)
        assert proc.wait(10) == 0
        assert time.monotonic() - started < 5
    finally:
        proc.kill()
    for name in ("host-0", "host-1"):
        assert _lines(tmp_path / name)[-1] == "stopped", name
        assert len(_lines(tmp_path / name)) == 2, name  # started once, stopped once
