"""A real single-node Apache Kafka broker (KRaft, combined broker and controller) on loopback.

The broker's jars are resolved from Maven Central with ``mvn dependency:copy-dependencies`` on the
pom shipped in ``stream/tools/`` into a per-user cache keyed by the Kafka version (and the pom), so nothing is
fetched outside the package registries. The data directory holds the log, the generated
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
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import TracebackType

from confluent_kafka.admin import AdminClient

from stream.processes import die_with_parent

#: Apache Kafka version run by default: the newest release whose broker both aiokafka (under
#: faust-streaming) and confluent-kafka were checked against, including transactions.
KAFKA_VERSION = "4.4.0"

_STATE_FILE = "streamscore-broker.json"
_BROKER_USER = "streamscore-broker"  # the broker's own SASL user, for its inter-broker listener
_SIMPLE = re.compile(r"[A-Za-z0-9_.-]+")
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")


class BrokerError(RuntimeError):
    """The embedded broker could not be prepared, started or reached; the message says what to do."""


def cache_root() -> Path:
    """Per-user cache for Kafka's jars (``$XDG_CACHE_HOME/streamscore`` or ``~/.cache``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "streamscore"


def kafka_classpath(version: str = KAFKA_VERSION) -> Path:
    """Return the folder of Kafka's runtime jars, resolving them with Maven on first use."""
    pom = resources.files("stream.tools") / "pom.xml"
    libs = cache_root() / "kafka" / f"{version}-{hashlib.sha256(pom.read_bytes()).hexdigest()[:8]}" / "libs"
    if (libs / ".complete").exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(
            "mvn not found: install Apache Maven (e.g. `apt-get install maven`) so the broker's "
            "jars can be fetched from Maven Central, or set KAFKA_BOOTSTRAP_SERVERS"
        )
    libs.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="libs-", dir=libs.parent))
    with resources.as_file(pom) as pom_path:
        cmd = [
            mvn, "-q", "-B", "-f", str(pom_path), "dependency:copy-dependencies",
            f"-Dkafka.version={version}", "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not any(staging.glob(f"kafka_2.13-{version}.jar")):
        shutil.rmtree(staging, ignore_errors=True)
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        raise BrokerError(f"could not fetch Apache Kafka {version} from Maven Central: {' | '.join(tail)}")
    (staging / ".complete").touch()
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    return libs


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


@dataclass(frozen=True)
class SaslSsl:
    """A SASL_SSL client listener: the broker's PEM certificate and unencrypted PKCS#8 key, the CA
    that signed it, and ``users`` (name -> password) accepted with PLAIN and both SCRAM mechanisms.
    SCRAM users are written when the storage is formatted: a restart on the same data keeps the first.
    """

    certfile: Path
    keyfile: Path
    cafile: Path
    users: Mapping[str, str]

    def __post_init__(self) -> None:
        for text in (*self.users, *self.users.values()):
            if not _SIMPLE.fullmatch(text):
                raise BrokerError(f"SASL user names and passwords are [A-Za-z0-9_.-]+ here, not {text!r}")


@dataclass
class EmbeddedKafka:
    """One Kafka process in KRaft mode, broker and controller in one, on 127.0.0.1.

    ``port`` is the client port (a free one when 0; the one used before when the data directory
    was started earlier); the controller listens on its own free port. ``data_dir`` persists
    across starts; a temporary one is made and removed again when not given.
    """

    port: int = 0
    data_dir: Path | None = None
    version: str = KAFKA_VERSION
    heap: str = "512m"
    start_timeout: float = 60.0
    extra_config: dict[str, str] = field(default_factory=dict)
    sasl_ssl: SaslSsl | None = None
    acls: bool = False
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
        java = shutil.which("java")
        if java is None:
            raise BrokerError(
                "java not found: install a Java 17+ runtime (e.g. `apt-get install "
                "openjdk-17-jre-headless`), or set KAFKA_BOOTSTRAP_SERVERS to use another broker"
            )
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
            self._format(java, classpath, props)
        log4j = resources.files("stream.tools") / "log4j2.properties"
        with resources.as_file(log4j) as log4j_path, open(self.log_file, "ab") as log:
            self._proc = subprocess.Popen(
                [
                    java,
                    f"-Xmx{self.heap}",
                    f"-Xms{self.heap}",
                    "-XX:+UseG1GC",
                    "-XX:TieredStopAtLevel=1",
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
                start_new_session=True,  # a terminal's Ctrl-C reaches its clients, not the broker
                preexec_fn=die_with_parent,
            )
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
        config = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir / "log"),
            "num.partitions": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "log.flush.interval.messages": "9223372036854775807",
            "log.retention.hours": "168",
            "num.io.threads": "4",
            "num.network.threads": "2",
        }
        if self.sasl_ssl is not None:
            config.update(self._sasl_ssl_config(self.sasl_ssl))
        if self.acls:
            if self.sasl_ssl is None:
                raise BrokerError("ACLs need SASL users: give sasl_ssl as well")
            config.update(
                {
                    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                    "super.users": f"User:{_BROKER_USER};User:ANONYMOUS",
                    "allow.everyone.if.no.acl.found": "false",
                }
            )
        config.update(self.extra_config)
        props = self.data_dir / "server.properties"
        props.write_text("".join(f"{k}={v}\n" for k, v in config.items()))
        props.chmod(0o600)  # with SASL it holds the users' passwords
        return props

    def _sasl_ssl_config(self, security: SaslSsl) -> dict[str, str]:
        """The SASL_SSL client listener, which the broker also uses to reach itself (as its own user)."""
        assert self.data_dir is not None
        keystore = self.data_dir / "keystore.pem"  # Kafka's PEM keystore: the key, then the chain
        keystore.write_bytes(security.keyfile.read_bytes() + b"\n" + security.certfile.read_bytes())
        keystore.chmod(0o600)
        users = {_BROKER_USER: self._broker_password, **security.users}
        plain = " ".join(
            [f'username="{_BROKER_USER}" password="{self._broker_password}"']
            + [f'user_{name}="{password}"' for name, password in users.items()]
        )
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        return {
            "listeners": f"SASL_SSL://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"SASL_SSL://127.0.0.1:{self.port}",
            "inter.broker.listener.name": "SASL_SSL",
            "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
            "sasl.enabled.mechanisms": ",".join(("PLAIN", *SCRAM_MECHANISMS)),
            "sasl.mechanism.inter.broker.protocol": "PLAIN",
            "listener.name.sasl_ssl.plain.sasl.jaas.config": (
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain};"
            ),
            **{f"listener.name.sasl_ssl.{m.lower()}.sasl.jaas.config": scram for m in SCRAM_MECHANISMS},
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(security.cafile.resolve()),
        }

    def superuser_config(self) -> dict[str, object]:
        """librdkafka settings that reach the broker as its own (super) user, e.g. to create ACLs."""
        return self._client_config()

    def _client_config(self) -> dict[str, object]:
        """librdkafka settings with which the broker is reached (as its own user over SASL_SSL)."""
        config: dict[str, object] = {"bootstrap.servers": self.bootstrap_servers, "log_level": 0}
        if self.sasl_ssl is not None:
            config |= {
                "security.protocol": "SASL_SSL",
                "sasl.mechanism": "PLAIN",
                "sasl.username": _BROKER_USER,
                "sasl.password": self._broker_password,
                "ssl.ca.location": str(self.sasl_ssl.cafile),
            }
        return config

    def _format(self, java: str, classpath: str, props: Path) -> None:
        cmd = [
            java, "-cp", classpath, "kafka.tools.StorageTool", "format",
            f"--cluster-id={_cluster_id()}", "-c", str(props), "--ignore-formatted",
        ]  # fmt: skip
        for name, password in (self.sasl_ssl.users if self.sasl_ssl is not None else {}).items():
            cmd += [
                arg
                for m in SCRAM_MECHANISMS
                for arg in ("--add-scram", f"{m}=[name={name},password={password}]")
            ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BrokerError(f"formatting Kafka storage failed: {done.stdout}{done.stderr}")

    def _wait_ready(self) -> None:
        admin = AdminClient(self._client_config())
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


def _cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding.

    Drawn again while it begins with ``-`` (one draw in 64), which ``kafka-storage format`` would
    read as an option, as Kafka's own ``Uuid.randomUuid`` does.
    """
    while (cluster_id := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"):
        pass
    return cluster_id
