"""Kafka's jars from Maven Central, resolved once into a per-user cache.

``mvn dependency:copy-dependencies`` runs on the pom shipped in ``stream/tools/``; the jars land in a
cache folder keyed by the Kafka version and the pom, so nothing is fetched outside the package
registries. :class:`BrokerError` is what the tools raise when such a set-up step fails.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

#: Apache Kafka version run by default: the newest release whose broker both aiokafka (under
#: faust-streaming) and confluent-kafka were checked against, including transactions.
KAFKA_VERSION = "4.4.0"


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
