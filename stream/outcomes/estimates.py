"""Estimated performance beside the realised figure: each estimated drift window checked on its outcomes.

A scoring worker whose card has a calibration adds to each ``window`` drift report its estimated
accuracy, precision, recall, F1 and ROC AUC with 95% intervals, and the window's input offsets
per ``topic[partition]``. The outcome worker reads those reports (:mod:`stream.outcomes.windows`)
and pairs, in memory, each live prediction (its input position and score) with its outcome, as
:mod:`stream.outcomes.pairing` does. A report's pairs are those of its model whose input offset
falls in its ranges: joined before the report arrived (a bounded buffer of recent pairs) or after.

A check is published (drift topic, kind ``estimate_check``, :class:`~stream.contracts.EstimateCheckReport`)
once every event of the window has its outcome, or else once ``outcome_retention_s`` has passed
since the report: by then every prediction of the window has left the join, so no further outcome
can be judged against it. It sets ``streamscore_estimate_realised{model,metric}`` and
``streamscore_estimate_error{model,metric}`` (estimate minus realised) and logs one line.

In memory only, and bounded: at most ``capacity`` predictions waiting for their outcome and as many
outcomes for their prediction (a tenth as many before the first estimated report is read), as many
recent pairs, and :data:`MAX_CHECKS` windows waiting (the oldest is published early, as it stands).
A restart checks the windows reported from then on; an outcome whose prediction was dropped from
memory is not counted. The windows and their figures: :mod:`stream.outcomes.checks`.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge
from pydantic import ValidationError

from stream.outcomes.checks import METRICS, Check, Pair, WindowEstimate, check_report, log_check, realised
from stream.outcomes.decode import Halves, ProvenanceScore
from stream.reports import EstimateCheckReport

__all__ = ["MAX_CHECKS", "METRICS", "Estimates", "Pair", "WindowEstimate", "realised"]

log = logging.getLogger("streamscore.outcomes")
MAX_CHECKS = 64
Key = tuple[str, str, str]  # a window: model, scoring worker, window_end
LIVE = frozenset({"champion", "canary"})  # the answers acted on; shadow and replay ones are not judged


class Estimates:
    """Pairs live predictions with outcomes and checks each estimated window on its pairs."""

    def __init__(
        self,
        registry: CollectorRegistry,
        worker_id: str,
        send: Callable[[bytes], None],
        wait_s: float,
        capacity: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.worker_id, self.send, self.wait_s, self.capacity, self.clock = (
            worker_id, send, wait_s, capacity, clock,
        )  # fmt: skip
        by = ["model", "metric"]
        self.realised = Gauge(
            "streamscore_estimate_realised",
            "A checked window's figure on its outcomes (the estimate's window).",
            by,
            registry=registry,
        )
        self.error = Gauge(
            "streamscore_estimate_error",
            "A checked window's estimated figure minus the realised one.",
            by,
            registry=registry,
        )
        self.active = False  # from the first estimated report on
        self.pairs: deque[Pair] = deque(maxlen=capacity)
        self.checks: OrderedDict[Key, Check] = OrderedDict()
        self._spans: dict[str, list[tuple[int, int, Key]]] = {}  # topic[p] -> the checks' offset ranges
        self._done: deque[Key] = deque(maxlen=1_024)  # windows checked: a report read again is not
        self._predicted: OrderedDict[str, tuple[str, str, int, float]] = OrderedDict()  # waiting
        self._observed: OrderedDict[str, bool] = OrderedDict()  # outcomes waiting for their prediction
        self._names: dict[tuple[str, str, str, int], tuple[str, str]] = {}  # -> name/version, topic[p]
        self.dropped = self.refused = 0

    # -- pairs ---------------------------------------------------------------------------------

    def add(self, halves: Halves) -> None:
        """A batch the outcome worker read: its live predictions and its outcomes."""
        halves.hand_to(self)

    def predicted(self, record: ProvenanceScore) -> None:
        """A provenance record (a live answer with its input position; others are not judged)."""
        at = record.input
        if at is None or record.role not in LIVE:
            return
        model = record.model
        key = (model.name, model.version, at.topic, at.partition)
        names = self._names.get(key)
        if names is None:
            if len(self._names) >= 4_096:  # names come from the records: the cache stays bounded
                self._names.clear()
            names = self._names[key] = (f"{model.name}/{model.version}", f"{at.topic}[{at.partition}]")
        positive = self._observed.pop(record.event_id, None)
        if positive is None:
            self._wait(self._predicted, record.event_id, (*names, at.offset, record.score))
        else:
            self._pair(Pair(*names, at.offset, record.score, positive))

    def observed(self, event_id: str, positive: bool) -> None:
        """An outcome (one read twice pairs once: the first reading takes the prediction)."""
        prediction = self._predicted.pop(event_id, None)
        if prediction is not None:
            self._pair(Pair(*prediction, positive))
        elif event_id not in self._observed:
            self._wait(self._observed, event_id, positive)

    def _wait(self, waiting: OrderedDict, event_id: str, value: object) -> None:
        waiting[event_id] = value
        if len(waiting) > (self.capacity if self.active else self.capacity // 10):
            waiting.popitem(last=False)
            self.dropped += 1

    def _pair(self, pair: Pair) -> None:
        self.pairs.append(pair)
        spans = self._spans.get(pair.where)
        if not spans:
            return
        offset, done = pair.offset, []
        for first, last, key in spans:
            if first <= offset <= last:
                check = self.checks[key]
                if check.take(pair) and check.complete:
                    done.append(key)
        for key in done:
            self._publish(self._drop(key), True)

    # -- windows -------------------------------------------------------------------------------

    def window(self, value: bytes) -> WindowEstimate | None:
        """A drift topic record: an estimated window report starts a check; anything else is ignored."""
        if b'"estimated"' not in value or b'"kind":"window"' not in value.replace(b" ", b""):
            return None
        try:
            report = WindowEstimate.model_validate_json(value)
        except ValidationError as exc:
            self.refused += 1
            if self.refused & (self.refused - 1) == 0:  # the 1st, 2nd, 4th...: the log is not flooded
                log.warning("drift report not checked (%d so far): %s", self.refused, exc.errors()[0]["msg"])
            return None
        if not self.active:
            log.info("estimated windows read: checking each one on its outcomes from now on")
            self.active = True
        model = f"{report.model_name}/{report.model_version}"
        key = (model, report.worker_id, report.window_end.isoformat())
        if key in self.checks or key in self._done:
            return None  # sent again (a scoring worker's restart): checked once
        check = Check(report, model, self.clock() + self.wait_s)
        for pair in self.pairs:
            check.take(pair)
        if check.complete:
            self._publish(check, True)
            return report
        self.checks[key] = check
        for where, span in report.offsets.items():
            self._spans.setdefault(where, []).append((span.first, span.last, key))
        if len(self.checks) > MAX_CHECKS:
            self._publish(self._drop(next(iter(self.checks))), False)
        return report

    def tick(self) -> None:
        """Publish the checks whose outcome retention has passed, as they stand."""
        if not self.checks:
            return
        now = self.clock()
        for key in [k for k, c in self.checks.items() if c.due <= now]:
            self._publish(self._drop(key), False)

    def _drop(self, key: Key) -> Check:
        """Take a check out of the waiting ones (and their offset ranges)."""
        check = self.checks.pop(key)
        for where in check.window.offsets:
            left = [s for s in self._spans.get(where, ()) if s[2] != key]
            if left:
                self._spans[where] = left
            else:
                self._spans.pop(where, None)
        return check

    def _publish(self, check: Check, complete: bool) -> EstimateCheckReport:
        w = check.window
        self._done.append((check.model, w.worker_id, w.window_end.isoformat()))
        report = check_report(check, self.worker_id, complete)
        for metric, m in report.metrics.items():
            if m.realised is not None and m.error is not None:
                self.realised.labels(check.model, metric).set(m.realised)
                self.error.labels(check.model, metric).set(m.error)
        self.send(report.model_dump_json().encode())
        log_check(check.model, report)
        return report
