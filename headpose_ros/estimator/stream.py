"""Newest-frame-only processing in a worker thread, for live streams (the ROS node, the soak benchmark).

:class:`LatestFrameProcessor` holds at most one pending frame. ``submit`` never blocks: it replaces the
pending frame (the replaced one counts as skipped) and wakes the worker, which processes whatever is newest
when it becomes free. A ``max_rate`` throttle (Hz, 0 = unlimited) delays the next processing start; frames
arriving meanwhile replace each other. An exception from the processing function is caught, counted and
reported through ``on_error``; the stream goes on with the next frame.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Generic, Optional, TypeVar

LOG = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class StreamStats:
    """Counters since start: frames submitted, processed (successfully), skipped (replaced before processing)
    and failed (the processing or result callback raised); ``last_error`` describes the latest failure."""

    submitted: int = 0
    processed: int = 0
    skipped: int = 0
    failed: int = 0
    pending: bool = False
    busy: bool = False
    last_error: Optional[str] = None


class RateLimiter:
    """Minimum spacing of processing starts for ``max_rate`` Hz (0 or less: no limit); times in seconds."""

    def __init__(self, max_rate: float = 0.0):
        self.max_rate = float(max_rate)
        self._last: Optional[float] = None

    def delay(self, now: float) -> float:
        """Seconds to wait from ``now`` before the next start may happen (0 when it may start now)."""
        if self.max_rate <= 0 or self._last is None:
            return 0.0
        return max(0.0, self._last + 1.0 / self.max_rate - now)

    def mark(self, now: float) -> None:
        """Record a start at ``now``."""
        self._last = now


class LatestFrameProcessor(Generic[T, R]):
    """Runs ``process(item)`` in one worker thread on the newest submitted item only.

    ``on_result(item, result)`` and ``on_error(item, exc)`` run in the worker thread. ``clock`` is a
    monotonic time source in seconds (injectable for tests). Use as a context manager or call
    :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        process: Callable[[T], R],
        on_result: Optional[Callable[[T, R], None]] = None,
        on_error: Optional[Callable[[T, BaseException], None]] = None,
        max_rate: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        name: str = "headpose-worker",
    ):
        self._process, self._on_result, self._on_error = process, on_result, on_error
        self._clock, self._name = clock, name
        self._cond = threading.Condition()
        self._limiter = RateLimiter(max_rate)
        self._pending: Optional[tuple[T]] = None
        self._stop = False
        self._busy = False
        self._thread: Optional[threading.Thread] = None
        self._counts = {"submitted": 0, "processed": 0, "skipped": 0, "failed": 0}
        self._last_error: Optional[str] = None

    # --- control -------------------------------------------------------------------------------------
    def start(self) -> "LatestFrameProcessor[T, R]":
        with self._cond:
            if self._thread is not None:
                return self
            self._stop = False
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: Optional[float] = 5.0) -> bool:
        """Stop the worker after its current item; the pending item is dropped. True when the thread ended
        within ``timeout`` seconds (None waits for ever)."""
        with self._cond:
            self._stop = True
            if self._pending is not None:
                self._pending = None
                self._counts["skipped"] += 1
            self._cond.notify_all()
            thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        alive = thread.is_alive()
        if not alive:
            with self._cond:
                self._thread = None
        return not alive

    def __enter__(self) -> "LatestFrameProcessor[T, R]":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_max_rate(self, max_rate: float) -> None:
        """Change the throttle (Hz, 0 = unlimited) at run time."""
        with self._cond:
            self._limiter.max_rate = float(max_rate)
            self._cond.notify_all()

    @property
    def max_rate(self) -> float:
        return self._limiter.max_rate

    def submit(self, item: T) -> bool:
        """Offer the newest item; never blocks. Returns False when it replaced a pending item (now skipped)."""
        with self._cond:
            self._counts["submitted"] += 1
            if self._stop:  # stopping: the item is dropped
                self._counts["skipped"] += 1
                return False
            replaced = self._pending is not None
            if replaced:
                self._counts["skipped"] += 1
            self._pending = (item,)
            self._cond.notify_all()
            return not replaced

    def poke(self) -> None:
        """Wake the worker to re-check the throttle (after an injected clock moved)."""
        with self._cond:
            self._cond.notify_all()

    def stats(self) -> StreamStats:
        with self._cond:
            return StreamStats(**self._counts, pending=self._pending is not None, busy=self._busy,
                               last_error=self._last_error)

    def wait_idle(self, timeout: Optional[float] = None) -> bool:
        """Block until nothing is pending or running (for tests and batch use); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending is not None or self._busy:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining if remaining is None else min(remaining, 0.1))
            return True

    # --- worker --------------------------------------------------------------------------------------
    def _next_item(self) -> Optional[tuple[T]]:
        """Wait for an item the throttle lets through; None when stopping."""
        with self._cond:
            while True:
                if self._stop:
                    return None
                if self._pending is None:
                    self._cond.wait()
                    continue
                delay = self._limiter.delay(self._clock())
                if delay > 0:
                    self._cond.wait(min(delay, 0.05))
                    continue
                item, self._pending = self._pending, None
                self._limiter.mark(self._clock())
                self._busy = True
                return item

    def _run(self) -> None:
        while True:
            boxed = self._next_item()
            if boxed is None:
                return
            item = boxed[0]
            try:
                result = self._process(item)
                if self._on_result is not None:
                    self._on_result(item, result)
                ok, error = True, None
            except Exception as exc:  # noqa: BLE001 - one bad frame must never end the stream
                ok, error = False, exc
            with self._cond:
                self._busy = False
                self._counts["processed" if ok else "failed"] += 1
                if error is not None:
                    self._last_error = f"{type(error).__name__}: {error}"
                self._cond.notify_all()
            if error is not None:
                self._report(item, error)

    def _report(self, item: T, error: Exception) -> None:
        if self._on_error is None:
            LOG.warning("frame skipped: %s: %s", type(error).__name__, error)
            return
        try:
            self._on_error(item, error)
        except Exception:  # noqa: BLE001
            LOG.exception("error callback failed")
