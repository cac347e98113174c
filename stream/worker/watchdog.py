"""A bound on blocking client calls that may never return.

librdkafka 2.16's ``send_offsets_to_transaction`` can wait forever, past its own timeout, for a
group coordinator it has forgotten: after a broker restart whose first metadata reply left the
broker out, the coordinator cached for the group is a broker handle already torn down
(confluentinc/librdkafka#5456 and #5511, open). The scoring loop's thread is then stuck inside C,
so nothing in it can notice. A :class:`Watchdog` thread can: when a call it bounds is still
running past its deadline, it ends the process with a message that says why. Nothing is lost: the
transaction is open, so the next instance of the worker (same transactional id) aborts it and reads
again from the committed offsets.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["Watchdog"]


class Watchdog:
    """Calls ``on_expired(reason)`` when a :meth:`bound` block outlives its time."""

    def __init__(
        self,
        on_expired: Callable[[str], object],
        tick_s: float = 1.0,
        on_wait: Callable[[float], object] | None = None,
    ) -> None:
        self._on_expired = on_expired
        self._on_wait = on_wait  # called each tick while a bounded block runs, with when it began
        self._tick = tick_s
        self._call: tuple[str, float, float] | None = None  # what, seconds, deadline (monotonic)
        self._thread: threading.Thread | None = None

    @contextmanager
    def bound(self, what: str, seconds: float) -> Iterator[None]:
        """Run the block under a deadline ``seconds`` from now; one block at a time."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="streamscore-watchdog", daemon=True)
            self._thread.start()
        self._call = (what, seconds, time.monotonic() + seconds)
        try:
            yield
        finally:
            self._call = None

    def _watch(self) -> None:
        while True:
            time.sleep(self._tick)
            call = self._call
            if call is None:
                continue
            if time.monotonic() > call[2]:
                self._call = None
                self._on_expired(f"{call[0]} has not returned after {call[1]:g} s")
            elif self._on_wait is not None:
                self._on_wait(call[2] - call[1])
