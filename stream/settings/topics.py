"""The topics the workers read and write, and the layouts that would loop or mix their records.

Two settings naming one topic are refused at start-up: a worker would read its own output again (dead
letters as events: one bad event becomes thousands of copies), or two kinds of records would share a
topic. Topics a worker reads come first here, so that a clash says which records would be read again.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["clash", "worker_topics"]


class Settings(Protocol):
    """What a layout reads of :class:`stream.settings.Settings`: the app id, and each topic setting of
    :data:`_TOPICS` by its name."""

    @property
    def app_id(self) -> str: ...


# (setting, role, its records, what would become of other records in its topic)
_TOPICS = (
    ("input_topic", "input", "events", "read again as events"),
    ("outcome_topic", "outcome", "outcomes", "read as outcomes by the outcome worker"),
    ("provenance_topic", "provenance", "provenance records", "read as provenance by the outcome worker"),
    ("prediction_topic", "prediction", "predictions", "mixed with the predictions"),
    ("challenger_topic", "challenger", "shadow predictions", "mixed with the shadow predictions"),
    ("dlq_topic", "dead-letter", "dead letters", "mixed with the dead letters"),
    ("drift_topic", "drift", "drift reports", "mixed with the drift reports"),
    ("model_changes_topic", "model-changes", "model-change records", "mixed with the model changes"),
)
# <app_id>-<suffix>: the drift state (stream.worker.drift), the outcome worker's (stream.outcomes.kafka)
_INTERNAL = (
    ("drift-state", "drift state", "read as the worker's drift state"),
    ("outcomes-repartition", "outcome repartition", "read as outcomes by the outcome worker"),
    ("outcomes-pending-changelog", "outcome changelog", "read as the outcome worker's state"),
)


def _layout(settings: Settings) -> list[tuple[str, str, str, str, str]]:
    """(topic, where its name comes from, role, records, fate) of each topic in use; internal ones first."""
    app = settings.app_id
    rows = [
        (f"{app}-{suffix}", "named after STREAMSCORE_APP_ID", role, role, fate)
        for suffix, role, fate in _INTERNAL
    ]
    rows += [(getattr(settings, f), f"STREAMSCORE_{f.upper()}", *rest) for f, *rest in _TOPICS]
    return [row for row in rows if row[0]]  # an empty outcome or model-changes topic: not used


def clash(settings: Settings) -> str | None:
    """The first two settings naming one topic, as one line saying what would happen; None if none."""
    seen: dict[str, tuple[str, str, str]] = {}
    for name, source, role, records, fate in _layout(settings):
        if name in seen:
            other, other_role, other_fate = seen[name]
            return (
                f"{source} is the {other_role} topic {name!r} ({other}): {records} would be "
                f"{other_fate}; give it its own topic"
            )
        seen[name] = (source, role, fate)
    return None


def worker_topics(settings: Settings) -> dict[str, str]:
    """Each topic the workers read or write, described as ``the <role> topic (<its setting>)``."""
    return {name: f"the {role} topic ({source})" for name, source, role, _, _ in _layout(settings)}
