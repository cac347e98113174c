"""What the three-broker fault scenarios share: where Kafka places a coordinator, when the replicas
are back in sync, and a worker scoring steady load whose outputs are accounted for at the end.

Every scenario runs the same way: a worker on the cluster under :data:`RATE` events/s, a fault, the
load stopped, then an independent reader takes every output (``read_committed`` exactly once) and
checks that each input ended as one prediction with its provenance or one dead letter. Its row in
the fault table has the recovery from the fault: to the first output after it, and to the lag back
under a second (:func:`faults.recovery`).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka.admin import AdminClient
from faults import Ledger, Load, Result, account, collect, recovery, wait_written

from stream.kafka.topics import ensure_topics

ALO, EOS = "at_least_once", "exactly_once"
RATE = 1_000  # events/s of steady load


def java_hash(text: str) -> int:
    """Java's ``String.hashCode``, with which Kafka places a group's or transactional id's coordinator."""
    h = 0
    for unit in text.encode("utf-16-be").hex(" ", 2).split():
        h = (31 * h + int(unit, 16)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def coordinator(bootstrap: str, key: str, exactly_once: bool) -> int:
    """The broker coordinating ``key``: a transactional id's transactions (``exactly_once``) or a
    group's offsets, the leader of its partition ``abs(hashCode) % partitions`` of the internal topic."""
    topic = "__transaction_state" if exactly_once else "__consumer_offsets"
    partitions = _admin(bootstrap).list_topics(topic, timeout=10).topics[topic].partitions
    return partitions[abs(java_hash(key)) % len(partitions)].leader


def leaders(bootstrap: str, topic: str) -> Counter[int]:
    """How many of ``topic``'s partitions each broker leads."""
    partitions = _admin(bootstrap).list_topics(topic, timeout=10).topics[topic].partitions
    return Counter(p.leader for p in partitions.values())


def wait_in_sync(bootstrap: str, timeout: float = 90.0) -> float:
    """Wait until every partition of every topic (internal ones too) has all its replicas in sync;
    the seconds it took."""
    began = time.monotonic()
    admin = _admin(bootstrap)
    while time.monotonic() - began < timeout:
        try:
            topics = admin.list_topics(timeout=5).topics.values()
            if all(len(p.isrs) == len(p.replicas) for t in topics for p in t.partitions.values()):
                return time.monotonic() - began
        except Exception:  # a broker on its way back: ask again
            pass
        time.sleep(0.5)
    raise AssertionError(f"replicas not back in sync within {timeout:.0f} s")


def _admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})


@dataclass
class UnderLoad:
    """A worker on the cluster scoring :data:`RATE` events/s (start with :meth:`start`)."""

    bootstrap: str
    topics: Any  # conftest's WorkerTopics
    guarantee: str
    worker: Any = None  # conftest's WorkerProcess
    load: Load | None = None
    began: float = field(default_factory=time.monotonic)
    ended: list[tuple[int, str]] = field(default_factory=list)  # exit code and log tail of each exit
    _start: Any = None  # () -> a WorkerProcess like the first
    _earlier: list[Any] = field(default_factory=list)  # workers that ended

    @property
    def exactly_once(self) -> bool:
        return self.guarantee == EOS

    @property
    def transactional_id(self) -> str:
        return f"{self.worker.env['STREAMSCORE_APP_ID']}-{self.worker.env['STREAMSCORE_INSTANCE_ID']}"

    @property
    def coordinator(self) -> int:
        """The broker the worker commits through: its transaction coordinator exactly once, its group
        coordinator at least once."""
        key = self.transactional_id if self.exactly_once else self.worker.env["STREAMSCORE_APP_ID"]
        return coordinator(self.bootstrap, key, self.exactly_once)

    def start(self, start_worker: Any, seed: int, partitions: int = 1, **settings: str) -> UnderLoad:
        """Topics at replication factor 3 (one partition by default: the whole stream waits on one
        leader, so the recovery times measure it), the worker, the load; back once outputs flow."""
        t = self.topics
        names = [t.input, t.predictions, t.provenance, t.dlq]
        ensure_topics(self.bootstrap, dict.fromkeys(names, partitions), replication_factor=3)
        self._start = lambda: start_worker(
            bootstrap=self.bootstrap, processing_guarantee=self.guarantee, replication_factor="3", **settings
        )
        self.worker = self._start()
        # idempotent: a plain producer retrying a write a restarted broker had taken appends it twice
        self.load = Load(self.bootstrap, t.input, RATE, seed=seed, idempotent=True)
        wait_written(self.bootstrap, (t.predictions, t.dlq), 1, worker=self.worker, timeout=90)
        return self

    def hold(self, seconds: float) -> None:
        """Wait ``seconds`` as a supervisor would (Kubernetes, ``worker --processes``): a worker that
        ends is started again under the same name, fencing its predecessor."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.worker.proc.poll() is not None:
                self.ended.append((self.worker.proc.returncode, self.worker.output()[-3000:]))
                self._earlier.append(self.worker)
                self.worker = self._start()
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))

    def output(self) -> str:
        """The log of every worker of the run, in order."""
        return "".join(w.output() for w in [*self._earlier, self.worker])

    def finish(
        self, scenario: str, fault_at: float, healed_at: float, **details: object
    ) -> tuple[Result, Ledger]:
        """Stop the load, account for every input, check nothing was lost (nor, exactly once,
        duplicated) and that the worker lives; the scenario's row."""
        assert self.load is not None
        inputs = self.load.stop()
        outputs = collect(self.bootstrap, self.topics, inputs, read_committed=self.exactly_once, timeout=120)
        ledger = account(inputs, outputs)
        from_fault, from_heal = recovery(outputs, fault_at), recovery(outputs, healed_at)
        copies = Counter(o.ident for o in outputs if o.kind != "provenance")
        for ident in [i for i, n in copies.items() if n > 1][:5]:  # each copy's kind and Kafka timestamp
            print("duplicated", ident, [(o.kind, round(o.ts, 3)) for o in outputs if o.ident == ident])
        print(f"{scenario} ({self.guarantee}): {ledger}; from the fault {from_fault}, healed {from_heal}")
        self.hold(0)
        for code, tail in self.ended:  # the one exit allowed: the watchdog's, exactly once (#5511)
            assert self.exactly_once and code == 70 and "librdkafka#5511" in tail, tail
        assert not ledger.lost, f"{len(ledger.lost)} events lost, e.g. {ledger.lost[:5]}"
        assert not ledger.unexpected and not ledger.provenance_missing, ledger
        if self.exactly_once:
            assert ledger.duplicated == 0, f"{ledger.duplicated} events with more than one outcome"
        self.worker.stop()
        restarts = len(self.ended)
        details = {"from_fault": from_fault, "from_heal": from_heal, "worker_restarts": restarts, **details}
        row = Result(
            f"cluster: {scenario}",
            self.guarantee,
            ledger.events,
            len(ledger.lost),
            ledger.duplicated,
            from_fault["first_output_s"],
            round(time.monotonic() - self.began, 1),
            details,
            live_s=from_fault["live_s"],
        )
        return row, ledger
