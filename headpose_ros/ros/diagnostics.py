"""What the node reports on ``/diagnostics``, computed without ROS: rates, stage times, skipped and failed frames.

:class:`DiagnosticsWindow` collects events between two reports (thread-safe: the image callback, the worker
and the timer call it) and :meth:`DiagnosticsWindow.report` turns them into one status whose level follows
the thresholds (parameters ``diagnostics.*``). Times are seconds, durations milliseconds.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Optional

from ..estimator.stream import StreamStats
from .messages import DiagnosticData

STAGES = ("detect", "keypoints", "regress", "total")


@dataclass(frozen=True)
class Thresholds:
    """Mean processing time (ms) above which the status is WARN / ERROR (0 disables), seconds without an
    image before WARN (0 disables), and the failed-frame fraction of a period that makes it ERROR (0 disables)."""

    latency_warn_ms: float = 500.0
    latency_error_ms: float = 2000.0
    input_timeout_s: float = 5.0
    failure_ratio_error: float = 0.5

    @classmethod
    def from_values(cls, values: Mapping[str, float]) -> "Thresholds":
        return cls(float(values["diagnostics.latency_warn_ms"]), float(values["diagnostics.latency_error_ms"]),
                   float(values["diagnostics.input_timeout_s"]), float(values["diagnostics.failure_ratio_error"]))


class DiagnosticsWindow:
    """Counts inputs, results and failures since the last report."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._start = self._last_report = clock()
        self._last_input: Optional[float] = None
        self._inputs = self._results = self._failures = 0
        self._stage_sum = dict.fromkeys(STAGES, 0.0)
        self._total_max = 0.0
        self._faces = 0
        self._bad_images = self._backend_errors = 0
        self._last_error = ""

    def input(self) -> None:
        """An image arrived."""
        with self._lock:
            self._inputs += 1
            self._last_input = self._clock()

    def result(self, stages_ms: Mapping[str, float], faces: int) -> None:
        """A frame was processed in ``stages_ms`` (the estimator's per-stage times) with ``faces`` heads."""
        with self._lock:
            self._results += 1
            for stage in STAGES:
                self._stage_sum[stage] += float(stages_ms.get(stage, 0.0))
            self._total_max = max(self._total_max, float(stages_ms.get("total", 0.0)))
            self._faces = int(faces)

    def failure(self, bad_image: bool, message: str) -> None:
        """A frame failed: a bad image (decode error) or a backend error."""
        with self._lock:
            self._failures += 1
            if bad_image:
                self._bad_images += 1
            else:
                self._backend_errors += 1
            self._last_error = message

    def report(self, stream: StreamStats, thresholds: Thresholds, name: str, hardware_id: str = "",
               info: Optional[Mapping[str, str]] = None) -> DiagnosticData:
        """The status of the period since the previous report; starts a new period."""
        with self._lock:
            now = self._clock()
            period = max(now - self._last_report, 1e-9)
            done = self._results + self._failures
            means = {s: (self._stage_sum[s] / self._results if self._results else 0.0) for s in STAGES}
            values: dict[str, object] = {
                "input_rate_hz": self._inputs / period,
                "processed_rate_hz": self._results / period,
                **{f"{s}_ms_mean": means[s] for s in STAGES},
                "total_ms_max": self._total_max,
                "faces": self._faces,
                "frames_received": stream.submitted,
                "frames_processed": stream.processed,
                "frames_skipped": stream.skipped,
                "frames_failed": stream.failed,
                "bad_images": self._bad_images,
                "backend_errors": self._backend_errors,
                **dict(info or {}),
            }
            if self._last_error:
                values["last_error"] = self._last_error
            problems: list[tuple[str, str]] = []
            ratio = self._failures / done if done else 0.0
            if thresholds.failure_ratio_error > 0 and done and ratio >= thresholds.failure_ratio_error:
                problems.append(("ERROR", f"{self._failures} of {done} frames failed ({self._last_error})"))
            total = means["total"]
            if self._results and thresholds.latency_error_ms > 0 and total > thresholds.latency_error_ms:
                problems.append(("ERROR", f"processing takes {total:.0f} ms per frame "
                                          f"(> {thresholds.latency_error_ms:g} ms)"))
            elif self._results and thresholds.latency_warn_ms > 0 and total > thresholds.latency_warn_ms:
                problems.append(("WARN", f"processing takes {total:.0f} ms per frame "
                                         f"(> {thresholds.latency_warn_ms:g} ms)"))
            since = now - (self._last_input if self._last_input is not None else self._start)
            if thresholds.input_timeout_s > 0 and since > thresholds.input_timeout_s:
                problems.append(("WARN", f"no image for {since:.1f} s"))
            self._inputs = self._results = self._failures = 0
            self._stage_sum = dict.fromkeys(STAGES, 0.0)
            self._total_max = 0.0
            self._last_report = now
        if problems:
            level = "ERROR" if any(p[0] == "ERROR" for p in problems) else "WARN"
            message = "; ".join(p[1] for p in problems)
        else:
            level = "OK"
            message = f"{values['processed_rate_hz']:.1f} frames/s, {values['faces']} face(s)"
        return DiagnosticData(level=level, name=name, message=message, hardware_id=hardware_id, values=values)
