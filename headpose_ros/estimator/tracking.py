"""Face tracking across frames: stable integer ids by box overlap (IoU) or centre distance.

A track is a face seen in consecutive frames. Each :meth:`FaceTracker.update` matches the frame's boxes to
the live tracks (an optimal one-to-one assignment, :func:`scipy.optimize.linear_sum_assignment`), gives
unmatched boxes new ids and forgets a track after ``max_missed`` consecutive frames without a match. Ids
are never reused within one tracker. Box coordinates are image pixels.
"""

from __future__ import annotations

import itertools
import math
import threading
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from .errors import ConfigError
from .types import FaceBox


@dataclass
class Track:
    """One tracked face: ``age`` counts frames since it was first seen (missed ones included), ``hits``
    the frames it was matched in, ``missed`` the consecutive frames without a match."""

    track_id: int
    box: FaceBox
    age: int = 1
    hits: int = 1
    missed: int = 0


@dataclass
class TrackUpdate:
    """The result of one update: ``ids[i]`` is the track id of the i-th box given; ``new`` the ids created
    and ``forgotten`` the ids dropped in this update."""

    ids: list[int]
    new: list[int] = field(default_factory=list)
    forgotten: list[int] = field(default_factory=list)


def centre_distance(a: FaceBox, b: FaceBox) -> float:
    """Distance between the boxes' centres divided by their mean size (mean of width and height of both)."""
    (ax, ay), (bx, by) = a.center, b.center
    size = 0.25 * (a.width + a.height + b.width + b.height)
    return math.hypot(ax - bx, ay - by) / size if size > 0 else math.inf


class FaceTracker:
    """Assigns stable integer ids (from ``first_id`` upward) to face boxes across frames; thread-safe.

    A box matches a track when their IoU reaches ``iou_threshold`` or their centres lie within
    ``max_centre_distance`` mean box sizes of each other (fast motion, a box that changed size). Among
    allowed pairs the assignment maximises the summed affinity ``IoU + (1 - distance / max_centre_distance)``.
    """

    def __init__(self, iou_threshold: float = 0.3, max_centre_distance: float = 0.5, max_missed: int = 5,
                 first_id: int = 1):
        self._lock = threading.Lock()
        self.configure(iou_threshold, max_centre_distance, max_missed)
        self._ids = itertools.count(int(first_id))
        self._tracks: dict[int, Track] = {}

    def configure(self, iou_threshold: float, max_centre_distance: float, max_missed: int) -> None:
        """Change the matching thresholds (takes effect at the next update); ConfigError on a bad value."""
        if not 0.0 <= float(iou_threshold) <= 1.0:
            raise ConfigError(f"tracking iou_threshold must lie in [0, 1], not {iou_threshold!r}")
        if not 0.0 <= float(max_centre_distance) <= 10.0:
            raise ConfigError(f"tracking max_centre_distance must lie in [0, 10], not {max_centre_distance!r}")
        if isinstance(max_missed, bool) or not isinstance(max_missed, int) or not 0 <= max_missed <= 100_000:
            raise ConfigError(f"tracking max_missed must be an integer in [0, 100000], not {max_missed!r}")
        with self._lock:
            self.iou_threshold = float(iou_threshold)
            self.max_centre_distance = float(max_centre_distance)
            self.max_missed = int(max_missed)

    @property
    def tracks(self) -> dict[int, Track]:
        """A snapshot of the live tracks by id (copies)."""
        with self._lock:
            return {k: Track(**vars(t)) for k, t in self._tracks.items()}

    def reset(self) -> list[int]:
        """Forget every track; returns the ids dropped. New ids keep counting up."""
        with self._lock:
            dropped = sorted(self._tracks)
            self._tracks.clear()
            return dropped

    def _affinity(self, boxes: Sequence[FaceBox], tracks: Sequence[Track]) -> np.ndarray:
        """(boxes, tracks) affinities; -inf where a pair may not match."""
        aff = np.full((len(boxes), len(tracks)), -np.inf)
        for i, box in enumerate(boxes):
            for j, track in enumerate(tracks):
                iou = box.iou(track.box)
                dist = centre_distance(box, track.box)
                near = self.max_centre_distance > 0 and dist <= self.max_centre_distance
                if iou >= self.iou_threshold and iou > 0 or near:
                    closeness = 1.0 - dist / self.max_centre_distance if near else 0.0
                    aff[i, j] = iou + closeness
        return aff

    def update(self, boxes: Sequence[FaceBox]) -> TrackUpdate:
        """Match one frame's boxes to the tracks; returns the id of each box and the ids created and forgotten."""
        with self._lock:
            tracks = list(self._tracks.values())
            ids: list[int] = [-1] * len(boxes)
            if boxes and tracks:
                aff = self._affinity(boxes, tracks)
                finite = np.where(np.isfinite(aff), aff, -1e6)
                rows, cols = linear_sum_assignment(finite, maximize=True)
                for i, j in zip(rows, cols):
                    if np.isfinite(aff[i, j]):
                        ids[i] = tracks[j].track_id
            matched = set(ids)
            forgotten: list[int] = []
            for track in tracks:
                track.age += 1
                if track.track_id in matched:
                    continue
                track.missed += 1
                if track.missed > self.max_missed:
                    forgotten.append(track.track_id)
                    del self._tracks[track.track_id]
            new: list[int] = []
            for i, box in enumerate(boxes):
                if ids[i] >= 0:
                    track = self._tracks[ids[i]]
                    track.box, track.hits, track.missed = box, track.hits + 1, 0
                else:
                    ids[i] = next(self._ids)
                    self._tracks[ids[i]] = Track(ids[i], box)
                    new.append(ids[i])
            return TrackUpdate(ids=ids, new=new, forgotten=sorted(forgotten))

    def age(self, track_id: int) -> int:
        """Frames since ``track_id`` was first seen (0 for an unknown id)."""
        with self._lock:
            track = self._tracks.get(track_id)
            return track.age if track else 0
