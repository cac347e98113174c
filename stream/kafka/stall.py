"""Why writes wait on the cluster, in one line, and when to say it.

With ``acks=all`` a write waits while a partition has no leader, or fewer in-sync replicas than its
``min.insync.replicas`` (the leader refuses it with NOT_ENOUGH_REPLICAS), or while no broker answers;
librdkafka retries such writes without a word. :class:`StallExplainer` reads the output topics'
metadata and names the first cause it finds; :class:`StallReporter` logs that line once a loop has
waited long enough, again only when the cause changes, and once more when writes flow again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

__all__ = ["NO_CAUSE", "StallExplainer", "StallReporter"]

log = logging.getLogger("streamscore.worker")
MIN_ISR = "min.insync.replicas"
NO_CAUSE = "writes wait, yet every output partition has a leader and enough in-sync replicas"
"""What :class:`StallReporter` logs when the explainer finds nothing short (stale metadata, or a
cause the metadata does not show)."""


class Admin(Protocol):
    """What :class:`StallExplainer` uses of confluent-kafka's ``AdminClient``."""

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any: ...

    def describe_configs(self, resources: list[ConfigResource], request_timeout: float = -1) -> Any: ...


def _brokers(ids: Iterable[int]) -> str:
    """``broker 1`` or ``brokers 2, 3``."""
    ids = sorted(ids)
    return ("broker " if len(ids) == 1 else "brokers ") + ", ".join(map(str, ids))


def _count(n: int, noun: str) -> str:
    return f"{n} more {noun}" + ("" if n == 1 else "s")


def _shortfall(partition: Any, min_isr: int | None, live: Iterable[int]) -> str | None:
    """Why writes to ``partition`` (a PartitionMetadata) wait, or None; ``live``: the brokers in the
    metadata."""
    replicas, isrs = list(partition.replicas), list(partition.isrs)
    if partition.leader < 0:
        return f"the partition has no leader (replicas {', '.join(map(str, replicas))})"
    if min_isr is not None and len(isrs) >= min_isr:
        return None
    if min_isr is None and len(isrs) >= len(replicas):
        return None  # the required count is unknown, and nothing is out of sync
    line = f"{len(isrs)} in-sync replica{'' if len(isrs) == 1 else 's'}"
    line += f" ({_brokers(isrs)})" if isrs else ""
    line += f" of {len(replicas)}, "
    line += f"{MIN_ISR} is {min_isr}" if min_isr is not None else f"{MIN_ISR} unknown"
    behind = [r for r in replicas if r not in isrs]
    if behind:
        alive = set(live)
        down = [r for r in behind if r not in alive]
        verb = "is" if len(behind) == 1 else "are"
        line += f"; {_brokers(behind)} {verb} out of sync"
        if down:
            line += " (down)" if len(down) == len(behind) else f" ({', '.join(map(str, down))} down)"
    return line


class StallExplainer:
    """Names the first reason writes to ``topics`` wait, from the cluster's metadata (see :meth:`explain`).

    ``config`` is a librdkafka client configuration (address and security settings); ``admin`` an
    admin client to use instead of the one made from it on the first call.
    """

    def __init__(self, config: Mapping[str, Any], topics: Sequence[str], admin: Admin | None = None) -> None:
        self._config = {**config, "allow.auto.create.topics": False}
        self.topics = list(topics)
        self._admin = admin
        self._min_isr: dict[str, int] = {}

    @property
    def admin(self) -> Admin:
        """The admin client, made on first use and kept."""
        if self._admin is None:
            self._admin = AdminClient(self._config)
        return self._admin

    def explain(self, timeout: float = 2.0) -> str | None:
        """One line naming the first partition (or topic) whose writes wait and why, with how many more
        do; ``the cluster does not answer ...`` when no metadata comes within ``timeout`` seconds; None
        when nothing is short. Never raises."""
        deadline = time.monotonic() + timeout
        try:
            admin = self.admin
            try:
                metadata = {t: admin.list_topics(t, _left(deadline)) for t in self.topics}
            except KafkaException:
                return f"the cluster does not answer (no metadata in {timeout:g} s)"
            return self._first_cause(metadata, deadline)
        except Exception as exc:  # a diagnosis must not stop the loop that asks for it
            log.debug("the stall cannot be explained", exc_info=True)
            return f"the cluster's state cannot be read ({exc})"

    def _first_cause(self, metadata: Mapping[str, Any], deadline: float) -> str | None:
        """The line of :meth:`explain` from each topic's ClusterMetadata."""
        causes: list[tuple[str, str]] = []  # (topic or partition, line), in the order met
        for topic, cluster in metadata.items():
            described = cluster.topics.get(topic)
            error = described.error if described is not None else None
            if described is None or error is not None:
                causes.append(("topic", f"writes to {topic} wait: {_topic_error(error)}"))
                continue
            min_isr = self._topic_min_isr(topic, cluster, deadline)
            for pid in sorted(described.partitions):
                why = _shortfall(described.partitions[pid], min_isr, cluster.brokers)
                if why is not None:
                    causes.append(("partition", f"writes to {topic}[{pid}] wait: {why}"))
        if not causes:
            return None
        rest = [kind for kind, _ in causes[1:]]
        more = [_count(rest.count(kind), kind) for kind in ("topic", "partition") if kind in rest]
        return causes[0][1] + (f"; and {' and '.join(more)}" if more else "")

    def _topic_min_isr(self, topic: str, cluster: Any, deadline: float) -> int | None:
        """The topic's ``min.insync.replicas`` (kept once read); else a broker's; None if neither reads."""
        if topic in self._min_isr:
            return self._min_isr[topic]
        value = self._read_min_isr(ConfigResource(ResourceType.TOPIC, topic), deadline)
        if value is not None:
            self._min_isr[topic] = value
            return value
        if not cluster.brokers:
            return None
        broker = ConfigResource(ResourceType.BROKER, str(min(cluster.brokers)))
        return self._read_min_isr(broker, deadline)

    def _read_min_isr(self, resource: ConfigResource, deadline: float) -> int | None:
        """``min.insync.replicas`` of one topic or broker, or None when it cannot be read in time."""
        try:
            futures = self.admin.describe_configs([resource], request_timeout=_left(deadline))
            entries = next(iter(futures.values())).result(timeout=_left(deadline) + 1.0)
            entry = entries.get(MIN_ISR)
            return int(entry.value) if entry is not None and entry.value else None
        except (KafkaException, TimeoutError, ValueError, StopIteration) as exc:
            log.debug("%s of %s is not known: %s", MIN_ISR, resource, exc)
            return None


def _left(deadline: float) -> float:
    """Seconds to ``deadline``, at least 0.1 (librdkafka takes no zero timeout for a request)."""
    return max(0.1, deadline - time.monotonic())


def _topic_error(error: KafkaError | None) -> str:
    if error is None or error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
        return "the topic does not exist"
    return f"its metadata reads {error.str()}"


class StallReporter:
    """Says, once, why a loop's writes have waited ``after_s`` seconds; says it again only when the
    cause changes (looked at every ``recheck_s`` once said), and says when writes flow again.

    ``explain`` (e.g. :meth:`StallExplainer.explain`) returns the cause, or None when it sees none.
    While it sees none, it is asked again every ``after_s`` (a broker that died leaves the in-sync
    replicas only once the controller fences it, seconds later), and :data:`NO_CAUSE` is said once
    the wait reaches ``recheck_s``. Times are monotonic seconds, passed in.
    """

    def __init__(
        self,
        explain: Callable[[], str | None],
        after_s: float = 5.0,
        recheck_s: float = 30.0,
        logger: logging.Logger = log,
    ) -> None:
        self._explain = explain
        self.after_s = after_s
        self.recheck_s = recheck_s
        self._log = logger
        self._since: float | None = None  # when the current wait began
        self._checked: float | None = None  # when the cause was last looked at
        self._said: str | None = None  # the line last logged for this wait
        self._lock = threading.Lock()  # a loop, and a watchdog thread while the loop is blocked

    @property
    def stalled(self) -> bool:
        """Whether the current wait has been reported."""
        return self._said is not None

    @property
    def said(self) -> str | None:
        """The cause last logged for the current wait, if any."""
        return self._said

    def waiting(self, now: float) -> None:
        """The loop still waits on the cluster (records left after a flush, a transactional call retried)."""
        with self._lock:
            self._waiting(now)

    def _waiting(self, now: float) -> None:
        if self._since is None:
            self._since = now
        waited = now - self._since
        every = self.after_s if self._said is None else self.recheck_s
        if waited < self.after_s or (self._checked is not None and now - self._checked < every):
            return
        self._checked = now
        try:
            line = self._explain()
        except Exception as exc:  # an injected explainer that fails must not stop the loop
            line = f"the cause cannot be told ({exc})"
        if line is None and self._said is None and waited < self.recheck_s:
            return  # not yet in the metadata, perhaps
        line = line or NO_CAUSE
        if line != self._said:
            self._log.warning("%s", line, extra={"stalled_because": line})
            self._said = line

    def flowing(self, now: float) -> None:
        """A write or commit went through: the wait, if any, is over."""
        with self._lock:
            self._flowing(now)

    def _flowing(self, now: float) -> None:
        if self._said is not None and self._since is not None:
            self._log.info("writes flow again after %.1f s", now - self._since)
        self._since = self._checked = self._said = None
