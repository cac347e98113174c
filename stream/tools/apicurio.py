"""Apicurio Registry (Apache-2.0) on loopback: a real registry with the Confluent API, from Maven Central.

``io.apicurio:apicurio-registry-app:<version>:tar.gz:all`` is fetched with ``mvn dependency:get``
(its parent POM is not served, so ``dependency:copy`` fails) and unpacked once into the per-user
cache beside Kafka's jars. It runs on Java 17 with in-memory storage and serves the Confluent API
under ``/apis/ccompat/v7``. Where it differs from Confluent's registry: the default compatibility is
``NONE`` (streamscore sets ``BACKWARD`` on the subjects it registers), ids can skip numbers, and a
lookup's reply omits ``schemaType``.

    with Apicurio() as registry:
        print(registry.url)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from stream.processes import die_with_parent
from stream.tools.broker import free_port
from stream.tools.maven import BrokerError, cache_root

APICURIO_VERSION = "3.0.9"
ARTIFACT = "io.apicurio:apicurio-registry-app:{version}:tar.gz:all"


def apicurio_home(version: str = APICURIO_VERSION) -> Path:
    """The unpacked registry (its runner jar and ``lib/``), fetched with Maven on first use."""
    home = cache_root() / "apicurio" / version
    if (home / ".complete").exists():
        return home
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("mvn not found: install Apache Maven to fetch Apicurio Registry from Maven Central")
    done = subprocess.run(
        [mvn, "-q", "-B", "dependency:get", f"-Dartifact={ARTIFACT.format(version=version)}",
         "-Dtransitive=false"],
        capture_output=True, text=True, check=False, timeout=1800,
    )  # fmt: skip
    repo = Path.home() / ".m2" / "repository"  # Maven's default local repository
    name = f"apicurio-registry-app-{version}-all.tar.gz"
    archive = repo / "io" / "apicurio" / "apicurio-registry-app" / version / name
    if done.returncode != 0 or not archive.exists():
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        raise BrokerError(
            f"could not fetch Apicurio Registry {version} from Maven Central: {' | '.join(tail)}"
        )
    home.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="apicurio-", dir=home.parent))
    with tarfile.open(archive) as tar:
        tar.extractall(staging, filter="data")
    (staging / ".complete").touch()
    shutil.rmtree(home, ignore_errors=True)
    staging.rename(home)
    return home


class Apicurio:
    """One Apicurio Registry process on 127.0.0.1 (in-memory: nothing is kept), stopped by its pid."""

    def __init__(self, port: int = 0, version: str = APICURIO_VERSION, start_timeout: float = 120.0) -> None:
        self.port, self.version, self.start_timeout = port, version, start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    @property
    def pid(self) -> int | None:
        """The registry's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    @property
    def url(self) -> str:
        """The Confluent-compatible API's base URL (``STREAMSCORE_SCHEMA_REGISTRY_URL``)."""
        return f"http://127.0.0.1:{self.port}/apis/ccompat/v7"

    def start(self) -> Apicurio:
        java = shutil.which("java")
        if java is None:
            raise BrokerError("java not found: install a Java 17+ runtime to run Apicurio Registry")
        home = apicurio_home(self.version)
        self.port = self.port or free_port()
        self._log = Path(tempfile.mkstemp(prefix="apicurio-", suffix=".log")[1])
        runner = home / f"apicurio-registry-app-{self.version}-runner.jar"
        with open(self._log, "ab") as log:
            self._proc = subprocess.Popen(
                [java, "-Xmx256m", "-XX:TieredStopAtLevel=1", "-Dquarkus.http.host=127.0.0.1",
                 f"-Dquarkus.http.port={self.port}", "-jar", str(runner)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=home,
                start_new_session=True, preexec_fn=die_with_parent,
            )  # fmt: skip
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise BrokerError(f"Apicurio Registry exited during start-up: {self._tail()}")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{self.url}/subjects", timeout=2) as r:
                if r.status == 200:
                    return
            time.sleep(0.3)
        self.stop()
        raise BrokerError(
            f"Apicurio Registry did not answer within {self.start_timeout:.0f} s: {self._tail()}"
        )

    def _tail(self) -> str:
        text = self._log.read_text(errors="replace") if self._log and self._log.exists() else ""
        return " | ".join(text.strip().splitlines()[-3:])

    def stop(self, timeout: float = 20.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.unlink(missing_ok=True)
            self._log = None

    def __enter__(self) -> Apicurio:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@contextlib.contextmanager
def demo_registry() -> Iterator[None]:
    """For the block, an Apicurio Registry as STREAMSCORE_SCHEMA_REGISTRY_URL when a registered format
    is asked for (STREAMSCORE_INPUT_FORMAT or STREAMSCORE_OUTPUT_FORMAT) and no registry is given."""
    formats = {os.environ.get(f"STREAMSCORE_{d}_FORMAT", "json").lower() for d in ("INPUT", "OUTPUT")}
    if formats == {"json"} or os.environ.get("STREAMSCORE_SCHEMA_REGISTRY_URL"):
        yield
        return
    print("STREAMSCORE_SCHEMA_REGISTRY_URL not set: starting Apicurio Registry", flush=True)
    with Apicurio() as registry:
        os.environ["STREAMSCORE_SCHEMA_REGISTRY_URL"] = registry.url
        print(f"Apicurio Registry {registry.version} ready on {registry.url}", flush=True)
        try:
            yield
        finally:
            del os.environ["STREAMSCORE_SCHEMA_REGISTRY_URL"]


if __name__ == "__main__":  # make registry: only fill the cache
    print(apicurio_home())
