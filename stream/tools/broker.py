"""A real single-node Apache Kafka broker (KRaft, combined broker and controller) on loopback.

The broker's jars are resolved from Maven Central by :mod:`stream.tools.maven` into a per-user
cache, so nothing is fetched outside the package registries; its ``server.properties`` is written
from :mod:`stream.tools.broker_config`. The data directory holds the log, the generated
``server.properties``, the broker's own log file and the ports it was given: started again on the
same directory, the broker keeps its address, its topics and their data.

    with EmbeddedKafka(data_dir=path) as broker:
        print(broker.bootstrap_servers)

Given :class:`SaslSsl`, the client listener speaks SASL_SSL instead of PLAINTEXT: TLS with the
given PEM certificate and key, and SASL users for PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 (SCRAM
credentials are written into the metadata log when the storage is formatted). The controller
listener stays plaintext on loopback. With ``acls=True`` as well, Kafka's ``StandardAuthorizer``
checks every request: only the broker's own user (and the loopback controller listener, whose
principal is ANONYMOUS) is a super user, and nothing is allowed without an ACL;
:meth:`EmbeddedKafka.superuser_config` connects as the broker's user to create ACLs.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import TracebackType

from confluent_kafka.admin import AdminClient

from stream.processes import die_with_parent
from stream.tools.broker_config import (
    BrokerAddress,
    SaslSsl,
    scram_format_args,
    server_config,
    superuser_client_config,
)
from stream.tools.maven import KAFKA_VERSION, BrokerError, kafka_classpath

_STATE_FILE = "streamscore-broker.json"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _require_free(port: int, what: str) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise BrokerError(
                f"{what} port {port} on 127.0.0.1 is in use: choose another with --port, "
                "or stop what listens there"
            ) from None


@dataclass
class EmbeddedKafka:
    """One Kafka process in KRaft mode, broker and controller in one, on 127.0.0.1.

    ``port`` is the client port (a free one when 0; the one used before when the data directory
    was started earlier); the controller listens on its own free port. ``data_dir`` persists
    across starts; a temporary one is made and removed again when not given. The JVM compiles with
    C1 only (quick to start, as ``make run`` and the tests want) unless ``full_jit``: a broker
    under a long steady load (the benchmarks) answers each request in far less CPU once C2 has
    compiled its hot paths.
    """

    port: int = 0
    data_dir: Path | None = None
    version: str = KAFKA_VERSION
    heap: str = "512m"
    start_timeout: float = 60.0
    extra_config: dict[str, str] = field(default_factory=dict)
    sasl_ssl: SaslSsl | None = None
    acls: bool = False
    full_jit: bool = False
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _own_dir: bool = field(default=False, init=False, repr=False)
    controller_port: int = field(default=0, init=False)
    _broker_password: str = field(default="", init=False, repr=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        assert self.data_dir is not None
        return self.data_dir / "broker.log"

    def start(self) -> EmbeddedKafka:
        """Format storage if new, start the JVM and wait until it answers a metadata request."""
        java = java_path()
        libs = kafka_classpath(self.version)
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="streamscore-kafka-"))
            self._own_dir = True
        self.data_dir = self.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._choose_ports()
        props = self._write_config()
        classpath = f"{libs}/*"
        if not (self.data_dir / "log" / "meta.properties").exists():
            format_storage(java, classpath, props, cluster_id(), scram_format_args(self.sasl_ssl))
        self._proc = launch(java, classpath, props, self.heap, self.full_jit, self.log_file)
        self._wait_ready()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the broker (a clean shutdown that keeps its data) and wait; SIGKILL past ``timeout``.

        A broker on a temporary folder is killed at once: its data is removed next, so a clean
        shutdown (about 2 s) would keep nothing.
        """
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill() if self._own_dir else proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._own_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None
            self._own_dir = False

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would; the data directory is kept."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> EmbeddedKafka:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _choose_ports(self) -> None:
        assert self.data_dir is not None
        state_file = self.data_dir / _STATE_FILE
        saved = json.loads(state_file.read_text()) if state_file.exists() else {}
        self.port = self.port or saved.get("port") or free_port()
        self.controller_port = saved.get("controller_port") or free_port()
        self._broker_password = saved.get("broker_password") or secrets.token_urlsafe(18)
        _require_free(self.port, "client")
        _require_free(self.controller_port, "controller")
        state = {"port": self.port, "controller_port": self.controller_port}
        state_file.write_text(json.dumps(state | {"broker_password": self._broker_password}))
        state_file.chmod(0o600)

    def _write_config(self) -> Path:
        assert self.data_dir is not None
        where = BrokerAddress(self.data_dir, self.port, self.controller_port, self._broker_password)
        config = server_config(where, self.sasl_ssl, self.acls, self.extra_config)
        props = self.data_dir / "server.properties"
        props.write_text("".join(f"{k}={v}\n" for k, v in config.items()))
        props.chmod(0o600)  # with SASL it holds the users' passwords
        return props

    def superuser_config(self) -> dict[str, object]:
        """librdkafka settings that reach the broker as its own (super) user, e.g. to create ACLs."""
        return superuser_client_config(self.bootstrap_servers, self.sasl_ssl, self._broker_password)

    def _wait_ready(self) -> None:
        admin = AdminClient(self.superuser_config())
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                tail = self.log_file.read_text(errors="replace").strip().splitlines()[-5:]
                self._proc = None
                raise BrokerError(f"Kafka exited during start-up (see {self.log_file}): {' | '.join(tail)}")
            with contextlib.suppress(Exception):
                metadata = admin.list_topics(timeout=1.0)
                if metadata.brokers:
                    return
            time.sleep(0.2)
        tail = self.log_file.read_text(errors="replace").strip().splitlines()[-3:]
        self.stop()
        raise BrokerError(
            f"Kafka did not answer on {self.bootstrap_servers} within {self.start_timeout:.0f} s: "
            f"raise --timeout or check that java can run; last log lines: {' | '.join(tail)}"
        )


def cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding.

    Drawn again while it begins with ``-`` (one draw in 64), which ``kafka-storage format`` would
    read as an option, as Kafka's own ``Uuid.randomUuid`` does.
    """
    while (drawn := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"):
        pass
    return drawn


def java_path() -> str:
    """The ``java`` to run Kafka with, or a :class:`BrokerError` saying what to install."""
    java = shutil.which("java")
    if java is None:
        raise BrokerError(
            "java not found: install a Java 17+ runtime (e.g. `apt-get install "
            "openjdk-17-jre-headless`), or set KAFKA_BOOTSTRAP_SERVERS to use another broker"
        )
    return java


def format_storage(java: str, classpath: str, props: Path, cluster: str, extra: list[str]) -> None:
    """``kafka-storage format`` the log directory of ``props`` as a member of ``cluster``."""
    cmd = [
        java, "-cp", classpath, "kafka.tools.StorageTool", "format",
        f"--cluster-id={cluster}", "-c", str(props), "--ignore-formatted", *extra,
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BrokerError(f"formatting Kafka storage failed: {done.stdout}{done.stderr}")


def launch(
    java: str, classpath: str, props: Path, heap: str, full_jit: bool, log_file: Path
) -> subprocess.Popen[bytes]:
    """Start one Kafka process on ``props``, its output appended to ``log_file``.

    The JVM compiles with C1 only unless ``full_jit`` (see :class:`EmbeddedKafka`); it is a session
    of its own (a terminal's Ctrl-C reaches its clients, not the broker) and dies with its parent.
    """
    log4j = resources.files("stream.tools") / "log4j2.properties"
    with resources.as_file(log4j) as log4j_path, open(log_file, "ab") as log:
        return subprocess.Popen(
            [
                java,
                f"-Xmx{heap}",
                f"-Xms{heap}",
                "-XX:+UseG1GC",
                *([] if full_jit else ["-XX:TieredStopAtLevel=1"]),
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={log4j_path}",
                "-cp",
                classpath,
                "kafka.Kafka",
                str(props),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
