"""What is wrong with a consumer group: a status per partition over a sliding window of offset snapshots.

The rules are Burrow's (``core/internal/evaluator/caching.go`` of linkedin/Burrow), evaluated over
snapshots of the committed offset and the lag taken at intervals (each ``streamscore lag`` sample or
Prometheus scrape) rather than over every commit, with the group's membership standing in for the
commits Kafka's offset API does not show:

1. the lag is zero now or in any snapshot of the window: ``OK`` (the consumer caught up);
2. the committed offset went back between two snapshots: ``ERR`` (a rewind; Burrow's REWIND);
3. the committed offset did not move over the whole window while lag stayed above zero:
   ``STALL`` when a member of the group still holds the partition (alive, but not progressing:
   stuck, paused, frozen within its session timeout), ``STOP`` when none does (no commits for a
   while: the consumers are gone);
4. the offset moves but the lag never went down between snapshots: ``WARN`` (the consumer commits
   but falls behind);
5. otherwise ``OK``.

A window of fewer than ``MIN_SNAPSHOTS`` snapshots is ``OK`` (not enough evidence). A group's status
is its worst partition's; ``ERR`` too when its offsets cannot be read. The numeric codes (the value
of ``streamscore_consumer_status``) rise with severity.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from itertools import pairwise

MIN_SNAPSHOTS = 3


class Status(IntEnum):
    """A partition's or group's status; the value is the gauge's code."""

    OK = 0
    WARN = 1
    STALL = 2
    STOP = 3
    ERR = 4


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One partition seen at ``at`` (seconds): committed offset (None: never), lag, held by a member."""

    at: float
    offset: int | None
    lag: int
    owned: bool


def partition_status(snapshots: Sequence[Snapshot]) -> Status:
    """Burrow's rules (see the module's docstring) over one partition's snapshots, oldest first."""
    if len(snapshots) < MIN_SNAPSHOTS or any(s.lag == 0 for s in snapshots):
        return Status.OK
    offsets = [-1 if s.offset is None else s.offset for s in snapshots]
    if any(b < a for a, b in pairwise(offsets)):
        return Status.ERR
    if offsets[0] == offsets[-1]:
        return Status.STALL if snapshots[-1].owned else Status.STOP
    if all(b.lag >= a.lag for a, b in pairwise(snapshots)):
        return Status.WARN
    return Status.OK


def group_status(statuses: Iterable[Status]) -> Status:
    """The worst of a group's partition statuses (``OK`` without partitions)."""
    return max(statuses, default=Status.OK)


class Window:
    """The snapshots of the last ``seconds`` for each key (e.g. group, topic, partition)."""

    def __init__(self, seconds: float, most: int = 1_000) -> None:
        self.seconds = seconds
        self._snapshots: dict[Hashable, deque[Snapshot]] = {}
        self._most = most

    def add(self, key: Hashable, snapshot: Snapshot) -> Status:
        """Record ``snapshot`` of ``key``, forget those older than the window; the status now."""
        kept = self._snapshots.setdefault(key, deque(maxlen=self._most))
        kept.append(snapshot)
        while kept[0].at < snapshot.at - self.seconds:
            kept.popleft()
        return partition_status(kept)

    def forget(self, keep: set[Hashable], among: Callable[[Hashable], bool]) -> None:
        """Drop the keys ``among`` selects that are not in ``keep`` (partitions no longer reported)."""
        for key in [k for k in self._snapshots if among(k) and k not in keep]:
            del self._snapshots[key]
