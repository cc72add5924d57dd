"""bench.stop: the first stop signal asks, the second abandons; waits notice the second."""

from __future__ import annotations

import threading
import time

import pytest

from bench.stop import Interrupted, StopToken


def test_the_first_signal_asks_to_stop_and_the_second_abandons() -> None:
    stop = StopToken()
    assert not stop.requested and not stop.abandoned
    stop.check()  # nothing to abandon yet
    assert stop.signal() == 1 and stop.requested and not stop.abandoned
    stop.check()
    assert stop.signal() == 2 and stop.abandoned
    with pytest.raises(Interrupted):
        stop.check()


def test_a_wait_ends_as_soon_as_the_run_is_abandoned() -> None:
    stop = StopToken()
    stop.signal()
    threading.Timer(0.05, stop.signal).start()
    started = time.monotonic()
    with pytest.raises(Interrupted):
        stop.sleep(10)
    assert time.monotonic() - started < 5


def test_interrupted_is_not_a_failure_a_handler_of_failures_could_swallow() -> None:
    from bench.errors import BenchError

    assert not issubclass(Interrupted, BenchError)
