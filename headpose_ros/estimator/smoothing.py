"""Temporal smoothing of tracked heads: the one-euro filter (Casiez et al., CHI 2012) on orientation and position.

The one-euro filter is a low-pass filter whose cutoff frequency rises with speed: at rest it removes jitter
(cutoff ``min_cutoff`` Hz), when the head moves it follows with little lag (cutoff ``min_cutoff + beta *
speed``). Orientation is filtered on the rotation group (slerp toward each new measurement, speed in rad/s);
position per axis (speed in position units per second: metres, or unit-depth ray units without calibration).
Times are seconds; a time that does not increase resets the filter (a replayed bag, a clock jump).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import geometry
from .errors import ConfigError
from .types import HeadPose


@dataclass(frozen=True)
class OneEuroParams:
    """``min_cutoff`` (Hz) at rest, ``beta`` (Hz per unit/s of speed), ``d_cutoff`` (Hz) of the speed estimate."""

    min_cutoff: float = 1.0
    beta: float = 0.3
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        for name, low, high in (("min_cutoff", 1e-3, 1e3), ("beta", 0.0, 1e3), ("d_cutoff", 1e-3, 1e3)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise ConfigError(f"one-euro {name} must be a number in [{low:g}, {high:g}], not {value!r}")


def smoothing_factor(dt: float, cutoff_hz: float) -> float:
    """The exponential smoothing factor in (0, 1] of a first-order low-pass at ``cutoff_hz`` sampled every ``dt`` s."""
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt)


class OneEuroVector:
    """One-euro filter of a vector (any length); ``__call__(t, x)`` returns the filtered vector."""

    def __init__(self, params: OneEuroParams):
        self.params = params
        self._t: Optional[float] = None
        self._x: Optional[np.ndarray] = None
        self._dx: Optional[np.ndarray] = None

    def __call__(self, t: float, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self._t is None or self._x is None or t <= self._t or self._x.shape != x.shape or not np.all(np.isfinite(x)):
            self._t, self._x, self._dx = t, x.copy(), np.zeros_like(x)
            return x.copy()
        p, dt = self.params, t - self._t
        a_d = smoothing_factor(dt, p.d_cutoff)
        dx = a_d * (x - self._x) / dt + (1.0 - a_d) * self._dx
        a = smoothing_factor(dt, p.min_cutoff + p.beta * float(np.linalg.norm(dx)))
        self._x = a * x + (1.0 - a) * self._x
        self._t, self._dx = t, dx
        return self._x.copy()


class OneEuroRotation:
    """One-euro filter of an orientation given as a quaternion (x, y, z, w); speed in rad/s."""

    def __init__(self, params: OneEuroParams):
        self.params = params
        self._t: Optional[float] = None
        self._q: Optional[np.ndarray] = None
        self._speed = 0.0

    def __call__(self, t: float, q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64)
        if self._t is None or self._q is None or t <= self._t or not np.all(np.isfinite(q)):
            self._t, self._q, self._speed = t, q.copy(), 0.0
            return q.copy()
        p, dt = self.params, t - self._t
        speed = math.radians(geometry.quaternion_angle_deg(self._q, q)) / dt
        a_d = smoothing_factor(dt, p.d_cutoff)
        self._speed = a_d * speed + (1.0 - a_d) * self._speed
        a = smoothing_factor(dt, p.min_cutoff + p.beta * self._speed)
        self._q = geometry.slerp_quaternions(self._q, q, a)
        self._t = t
        return self._q.copy()


class PoseSmoother:
    """One orientation and one position filter per track id; thread-safe.

    :meth:`smooth` takes and returns the head pose in degrees (dataset convention) and the position in the
    optical frame; the filters run on the rotation and vector, so angle wrap-around never shows.
    """

    def __init__(self, params: Optional[OneEuroParams] = None):
        self._lock = threading.Lock()
        self.params = params or OneEuroParams()
        self._filters: dict[int, tuple[OneEuroRotation, OneEuroVector, bool]] = {}

    def set_params(self, params: OneEuroParams) -> None:
        """New filter settings; filters restart from the next measurement."""
        with self._lock:
            self.params = params
            self._filters.clear()

    def smooth(self, track_id: int, t: float, pose: HeadPose, position: np.ndarray,
               position_is_ray: bool = False) -> tuple[HeadPose, np.ndarray]:
        """The filtered pose and position of ``track_id`` at time ``t`` (seconds)."""
        with self._lock:
            entry = self._filters.get(track_id)
            if entry is None or entry[2] != position_is_ray:  # ray <-> metric switches restart the position filter
                rot = entry[0] if entry else OneEuroRotation(self.params)
                entry = (rot, OneEuroVector(self.params), position_is_ray)
                self._filters[track_id] = entry
            rot, pos, _ = entry
            q = rot(t, geometry.quaternion_from_ypr(pose, frame="head"))
            return geometry.ypr_from_quaternion(q, frame="head"), pos(t, position)

    def forget(self, track_ids: "list[int] | set[int]") -> None:
        """Drop the filters of tracks that ended."""
        with self._lock:
            for track_id in track_ids:
                self._filters.pop(track_id, None)

    def clear(self) -> None:
        with self._lock:
            self._filters.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._filters)
