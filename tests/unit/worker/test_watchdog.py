import threading
import time

import pytest

from stream.worker.watchdog import Watchdog

pytestmark = pytest.mark.unit


def test_a_call_past_its_bound_is_reported_once_with_what_it_was():
    reasons: list[str] = []
    fired = threading.Event()
    dog = Watchdog(lambda reason: (reasons.append(reason), fired.set()), tick_s=0.01)
    with dog.bound("send_offsets_to_transaction", 0.05):
        assert fired.wait(5.0)
        time.sleep(0.1)  # still inside: no second report
    assert reasons == ["send_offsets_to_transaction has not returned after 0.05 s"]


def test_calls_that_return_in_time_are_not_reported():
    reasons: list[str] = []
    dog = Watchdog(reasons.append, tick_s=0.01)
    for _ in range(20):
        with dog.bound("commit_transaction", 0.5):
            time.sleep(0.005)
    time.sleep(0.6)  # past every deadline, with no call running
    assert reasons == []


def test_a_call_that_raises_leaves_no_deadline_behind():
    reasons: list[str] = []
    dog = Watchdog(reasons.append, tick_s=0.01)
    with pytest.raises(RuntimeError), dog.bound("abort_transaction", 0.05):
        raise RuntimeError("broker away")
    time.sleep(0.2)
    assert reasons == []


def test_a_blocked_call_is_told_each_tick_when_it_began_and_no_more_once_it_returns():
    began: list[float] = []
    dog = Watchdog(lambda reason: None, tick_s=0.01, on_wait=began.append)
    before = time.monotonic()
    with dog.bound("commit_transaction", 5.0):
        time.sleep(0.2)  # blocked in C, as far as the loop is concerned
    after = len(began)
    time.sleep(0.1)
    assert after >= 5 and len(began) == after, "told while the call runs, not after"
    assert all(before <= b <= before + 0.05 for b in began), "the same start each time"
