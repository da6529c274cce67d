"""LatestFrameProcessor: newest frame only, never blocking submit, throttle, errors, clean stop.

No timing assertions: the tests hold the worker with events and an injected clock, and wait with generous
timeouts only so that a bug fails instead of hanging.
"""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headpose_ros.estimator.stream import LatestFrameProcessor, RateLimiter

WAIT = 30.0


class Gate:
    """A processing function that records its items and waits until the test lets it go."""

    def __init__(self):
        self.started = threading.Semaphore(0)
        self.release = threading.Semaphore(0)
        self.items: list[int] = []

    def __call__(self, item: int) -> int:
        self.items.append(item)
        self.started.release()
        assert self.release.acquire(timeout=WAIT)
        if item < 0:
            raise RuntimeError(f"bad frame {item}")
        return item * 10


def test_only_the_newest_pending_frame_is_processed():
    gate, results = Gate(), []
    with LatestFrameProcessor(gate, on_result=lambda i, r: results.append(r)) as proc:
        assert proc.submit(1)
        assert gate.started.acquire(timeout=WAIT)  # worker busy with frame 1
        assert proc.submit(2)
        assert not proc.submit(3)  # replaces 2
        assert not proc.submit(4)  # replaces 3
        gate.release.release()
        assert gate.started.acquire(timeout=WAIT)
        gate.release.release()
        assert proc.wait_idle(WAIT)
        stats = proc.stats()
    assert gate.items == [1, 4]
    assert results == [10, 40]
    assert (stats.submitted, stats.processed, stats.skipped, stats.failed) == (4, 2, 2, 0)


def test_an_exception_is_counted_reported_and_the_stream_continues():
    gate, errors, results = Gate(), [], []
    with LatestFrameProcessor(gate, on_result=lambda i, r: results.append(r),
                              on_error=lambda i, e: errors.append((i, str(e)))) as proc:
        proc.submit(-1)
        assert gate.started.acquire(timeout=WAIT)
        gate.release.release()
        assert proc.wait_idle(WAIT)
        proc.submit(5)
        assert gate.started.acquire(timeout=WAIT)
        gate.release.release()
        assert proc.wait_idle(WAIT)
        stats = proc.stats()
    assert errors == [(-1, "bad frame -1")]
    assert results == [50]
    assert stats.failed == 1 and stats.processed == 1 and "RuntimeError: bad frame -1" in stats.last_error


def test_a_failing_result_callback_counts_as_failed():
    def boom(item, result):
        raise ValueError("publish failed")

    with LatestFrameProcessor(lambda x: x, on_result=boom, on_error=lambda i, e: None) as proc:
        proc.submit(1)
        assert proc.wait_idle(WAIT)
        assert proc.stats().failed == 1


class FakeClock:
    """A clock the test sets by hand (seconds)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_throttle_holds_the_next_frame_until_the_clock_allows_it():
    clock, done = FakeClock(), []
    event = threading.Event()

    def on_result(item, result):
        done.append(item)
        event.set()

    with LatestFrameProcessor(lambda x: x, on_result=on_result, max_rate=2.0, clock=clock) as proc:
        proc.submit(1)
        assert event.wait(WAIT)
        event.clear()
        proc.submit(2)  # 0.5 s must pass on the injected clock: frame 2 stays pending
        proc.submit(3)  # ... and is replaced
        stats = proc.stats()
        assert stats.pending and stats.skipped == 1 and done == [1]
        clock.now = 0.5
        proc.poke()
        assert event.wait(WAIT)
        assert proc.wait_idle(WAIT)
    assert done == [1, 3]


def test_rate_limiter():
    limiter = RateLimiter(4.0)
    assert limiter.delay(10.0) == 0.0
    limiter.mark(10.0)
    assert limiter.delay(10.1) == pytest.approx(0.15)
    assert limiter.delay(10.3) == 0.0
    limiter.max_rate = 0.0
    assert limiter.delay(10.0) == 0.0


def test_stop_joins_drops_pending_and_refuses_new_frames():
    gate = Gate()
    proc = LatestFrameProcessor(gate).start()
    proc.submit(1)
    assert gate.started.acquire(timeout=WAIT)
    proc.submit(2)
    stopper = threading.Thread(target=lambda: proc.stop(WAIT))
    stopper.start()
    gate.release.release()  # let frame 1 finish; frame 2 is dropped
    stopper.join(WAIT)
    assert not stopper.is_alive()
    assert not proc.submit(3)
    stats = proc.stats()
    assert gate.items == [1]
    assert (stats.submitted, stats.processed, stats.skipped) == (3, 1, 2)
    assert proc.stop(WAIT)  # idempotent


def test_set_max_rate_at_run_time():
    proc = LatestFrameProcessor(lambda x: x, max_rate=5.0)
    proc.set_max_rate(0.0)
    assert proc.max_rate == 0.0


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=60))
def test_counters_always_add_up_and_the_last_frame_is_processed(bursts):
    seen: list[int] = []
    with LatestFrameProcessor(lambda x: x, on_result=lambda i, r: seen.append(i)) as proc:
        n = 0
        for burst in bursts:
            for _ in range(burst + 1):
                proc.submit(n)
                n += 1
        assert proc.wait_idle(WAIT)
        stats = proc.stats()
    assert stats.submitted == n == stats.processed + stats.skipped + stats.failed
    assert seen == sorted(seen) and seen[-1] == n - 1  # in order, and the newest frame always gets done
