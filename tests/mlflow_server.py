"""A real ``mlflow server`` on loopback for the tests: SQLite backend store, local artifact root."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from stream.tools.broker import free_port

START_TIMEOUT_S = 120.0


class MlflowServer:
    """``mlflow server`` in a process group of its own; :attr:`uri` is its tracking URI."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.log = folder / "mlflow-server.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> MlflowServer:
        mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    mlflow, "server",
                    "--host", "127.0.0.1", "--port", str(self.port),
                    "--backend-store-uri", f"sqlite:///{self.folder / 'mlflow.db'}",
                    "--artifacts-destination", str(self.folder / "artifacts"),
                    "--workers", "1",
                ],
                stdout=out,
                stderr=out,
                start_new_session=True,
                env={**os.environ, "MLFLOW_TRACKING_URI": ""},
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(
            f"mlflow server did not answer in {START_TIMEOUT_S:g} s:\n{self.log.read_text()[-3000:]}"
        )

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
