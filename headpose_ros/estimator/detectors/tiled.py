"""Small faces in large frames: a detector run on the whole frame and on overlapping tiles of it.

BlazeFace sees a frame at 128 (short-range) or 192 (full-range) pixels, so a 60-100 px face in a 1920x1080
frame shrinks to 6-10 model pixels and is missed. This wrapper runs a base detector (any registered one,
``mediapipe`` by default) on the whole frame, then a tile detector on a pyramid of overlapping square tiles:
level k has tiles of ``tile_px * 2**k`` pixels, as long as a tile is smaller than ``max_tile_fraction`` of
the frame's shorter side, spaced so that neighbours overlap by ``overlap`` of their side (a face narrower
than that lies whole inside some tile). A tile's boxes touching one of its inner edges are cut faces and
dropped; all boxes are then merged: a box overlapping a better-scored one by more than ``nms_iou``
(intersection over union) or lying mostly inside it (intersection over the smaller box above
``containment``) is removed, except a box inside one more than ``nested_ratio`` (3) times wider: the estimator
then keeps whichever of the two passes its face-quality check (the better-scored where both do), so that a false
whole-frame box (BlazeFace's full-range model gives some of 500-1200 px) no longer hides a small face in it.

The estimator's default detector: a frame narrower than ``min_width`` pixels (default 1280) gets no tiles, i.e.
exactly the base detector's search, boxes and cost (640x480 frames match the ``mediapipe`` detector box for box);
options that are not the tiled detector's own go to its base detector, so ``detector_options`` written for
``mediapipe`` (``models``, ``turns``, ``min_score``, ...) keep their meaning. ``num_threads`` goes to both.

The cost grows with the number of tiles (``tile_count`` tells it for a frame size; with the defaults 84 at
1920x1080, 40 at 1280x720). The tile detector (``TILE_OPTIONS``) is BlazeFace full-range, upright only (``turns:
1``: the upside-down pass doubled the tiles' cost and found no more small faces), keeping detections from a score
of 0.5 (``tile_min_score``; ``graph_floor: false``) instead of the model's floor of 0.6: with the floor the tiles
missed the cameraman at 50 and 120 px in 1280x720 frames, whom the model mostly scores 0.5-0.6. Weaker tile
detections (from 0.25, the tile detector's ``min_score``) that overlap nothing found are hints: the ``looks`` (8)
best of them get a **second look**, BlazeFace short-range (``LOOK_OPTIONS``) on a square crop of ``look_context``
(2.5) times the hint's size around it, and its best box overlapping the hint is added (``unsure``). Small profiles
are what the full-range model scores 0.3-0.5 in every tile, and the short-range model 0.5-0.9 once the face fills
a third of its input (docs/reliability.md, "A second look at weak tile detections"). Short- and full-range on the tiles
(``tile_options: {models: both, turns: 1}``) found him too, but cost more (17.4x the default's time per frame
against 12.9x in one earlier run) and let a false face through. A box that only the tiles find (no whole-frame box
overlaps it) is ``unsure`` (:attr:`~headpose_ros.estimator.types.FaceBox.unsure`): the face-quality check passes
it only when the face mesh's presence reaches 0.99 (:data:`~headpose_ros.estimator.quality.UNSURE_PRESENCE`). The
tiles search a frame 40-84 times and meet that many more face-like things (helmets, a rocket, a space suit at
24-82 px, presence 0.56-0.985); the faces that only the tiles found in the generated scenes below (seeds 0-5) had
presence 0.9967 or more (an ad-hoc analysis, not shipped). Keep the face-quality check on (the default): with
``min_face_quality: 0`` nothing holds the tiles' boxes back.

Measured through the whole pipeline with ``python -m headpose_ros.tools.small_faces --pipeline`` (four public
portraits pasted at 40-160 px, 56 faces per frame size and seed pair; 82 frames without faces per negatives
seed), interleaved frame by frame with the ``mediapipe`` detector: seeds 0 1, negatives seed 3 (tuned on): found
98.2 % (1920x1080) and 98.2 % (1280x720) against 37.5 % and 60.7 %, 0 false faces, at 10.3x the ``mediapipe``
pipeline's time per HD frame; seeds 2 3, negatives seed 6 (not tuned on): 100 % and 98.2 % against 32.1 % and
55.4 %, 0 false faces, at 10.5x. Before (floor 0.6, no ``unsure`` rule): 96.4 / 92.9 % and 98.2 / 96.4 %, 1 false
face (docs/reliability.md, "Small faces").

Video mode (:mod:`headpose_ros.estimator.video`) spreads the tiles over frames: :meth:`detect_stream` (a
periodic detection while faces are followed) and :meth:`detect_idle` (each frame while none is in view, after
a full first search) search the whole frame and ``stream_tiles`` of the tiles (default 12), a different
subset each step, so that any ``stream_cycle`` consecutive steps (7 at 1920x1080, 4 at 1280x720) search every
tile once; a face found is then followed by the face mesh without tiles. Figures: docs/reliability.md
("Small faces"), ``python -m headpose_ros.tools.small_faces --video``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional

import numpy as np

from ..errors import ConfigError
from ..types import FaceBox

#: The tile detector's options unless ``tile_options`` says otherwise: BlazeFace full-range, upright only, keeping
#: detections from 0.25 (below the model's own floor of 0.6): those from ``tile_min_score`` (0.5; what only the tiles
#: find is ``unsure`` anyway) are boxes, the weaker ones hints for a second look.
TILE_OPTIONS: dict[str, Any] = {"models": "full", "turns": 1, "graph_floor": False, "min_score": 0.25}
#: The second look's detector unless ``look_options`` says otherwise: BlazeFace short-range, upright only, from 0.5.
LOOK_OPTIONS: dict[str, Any] = {"models": "short", "turns": 1, "graph_floor": False, "min_score": 0.5}


def tile_origins(length: int, tile: int, overlap: float) -> list[int]:
    """Start offsets of tiles of ``tile`` px covering ``length`` px, neighbours overlapping >= ``overlap``."""
    if tile >= length:
        return [0]
    stride = max(1.0, tile * (1.0 - overlap))
    count = math.ceil((length - tile) / stride) + 1
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def tile_grid(width: int, height: int, tile_px: int, overlap: float, max_tile_fraction: float
              ) -> list[tuple[int, int, int]]:
    """Tiles ``(x0, y0, side)`` of every pyramid level for a ``width`` x ``height`` frame."""
    tiles = []
    side = int(tile_px)
    while side > 0 and side < max_tile_fraction * min(width, height):
        for y0 in tile_origins(height, side, overlap):
            for x0 in tile_origins(width, side, overlap):
                tiles.append((x0, y0, side))
        side *= 2
    return tiles


def stream_cycle(count: int, per_step: int) -> int:
    """How many consecutive steps of at most ``per_step`` tiles search all ``count`` tiles once (at least 1)."""
    return max(1, math.ceil(count / max(per_step, 1)))


def stream_subset(tiles: list[tuple[int, int, int]], step: int, per_step: int) -> list[tuple[int, int, int]]:
    """The tiles that stream step ``step`` searches: every ``stream_cycle``-th tile from ``step`` modulo the cycle,
    at most ``per_step`` of them; any ``stream_cycle`` consecutive steps search each tile exactly once."""
    cycle = stream_cycle(len(tiles), per_step)
    return tiles[step % cycle::cycle]


def overlaps(box: FaceBox, other: FaceBox, iou: float, containment: float, nested_ratio: float = 0.0) -> bool:
    """Whether ``box`` overlaps ``other`` by more than ``iou`` or either lies more than ``containment`` inside the
    other (intersection over the smaller area), the latter only while the wider of the two is at most
    ``nested_ratio`` times as wide as the other (0: whatever their widths)."""
    if box.iou(other) > iou:
        return True
    if box.containment(other) <= containment:
        return False
    return nested_ratio <= 0 or max(box.width, other.width) <= nested_ratio * min(box.width, other.width)


def merge_boxes(boxes: list[FaceBox], iou: float, containment: float, nested_ratio: float = 0.0) -> list[FaceBox]:
    """Boxes best score first, each dropped when it :func:`overlaps` a kept one."""
    kept: list[FaceBox] = []
    for box in sorted(boxes, key=lambda b: b.score, reverse=True):
        if not any(overlaps(box, k, iou, containment, nested_ratio) for k in kept):
            kept.append(box)
    return kept


def _detect_in(detector: Any, image_bgr: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> list[FaceBox]:
    """``detector``'s faces in the window ``[x0, x1) x [y0, y1)`` of ``image_bgr``, in image pixels, ``unsure``."""
    window = np.ascontiguousarray(image_bgr[y0:y1, x0:x1])
    return [FaceBox(b.x0 + x0, b.y0 + y0, b.x1 + x0, b.y1 + y0, b.score, unsure=True) for b in detector.detect(window)]


class TiledFaceDetector:
    """The whole frame through ``base``, plus a pyramid of tiles through ``tile_detector``; image pixels. Boxes that
    only the tiles found are ``unsure``; options not named here go to ``base`` (``num_threads`` to both)."""

    def __init__(self, base: str = "mediapipe", base_options: Optional[dict[str, Any]] = None,
                 tile_detector: str = "mediapipe", tile_options: Optional[dict[str, Any]] = None,
                 tile_px: int = 256, overlap: float = 0.35, max_tile_fraction: float = 0.9,
                 nms_iou: float = 0.3, containment: float = 0.6, edge_margin: float = 0.02, stream_tiles: int = 12,
                 min_width: int = 1280, tile_min_score: float = 0.5, looks: int = 8, look_context: float = 2.5,
                 look_detector: str = "mediapipe", look_options: Optional[dict[str, Any]] = None,
                 nested_ratio: float = 3.0, num_threads: Optional[int] = None, **more_base_options: Any):
        if base == "tiled" or tile_detector == "tiled":
            raise ConfigError("the tiled detector cannot wrap itself")
        if not 64 <= int(tile_px) <= 4096:
            raise ConfigError(f"tiled detector tile_px must lie in [64, 4096], not {tile_px!r}")
        if not 0.0 <= float(overlap) < 0.9 or not 0.0 < float(max_tile_fraction) <= 4.0:
            raise ConfigError("tiled detector overlap must lie in [0, 0.9) and max_tile_fraction in (0, 4]")
        if not 0.0 <= float(tile_min_score) <= 1.0 or not 1.0 <= float(look_context) <= 8.0:
            raise ConfigError("tiled detector tile_min_score must lie in [0, 1] and look_context in [1, 8]")
        if not (float(nested_ratio) == 0.0 or 1.0 <= float(nested_ratio) <= 100.0):
            raise ConfigError(f"tiled detector nested_ratio must be 0 (off) or lie in [1, 100], not {nested_ratio!r}")
        for name, value, low in (("stream_tiles", stream_tiles, 1), ("min_width", min_width, 0), ("looks", looks, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"tiled detector {name} must be an integer >= {low}, not {value!r}")
        clash = sorted(set(more_base_options) & set(base_options or {}))
        if clash:
            raise ConfigError(f"tiled detector options {', '.join(clash)} given both in base_options and beside them")
        from . import DETECTORS

        def options(name: str, given: dict[str, Any]) -> dict[str, Any]:
            return DETECTORS.with_threads(name, given, num_threads) if num_threads is not None else given

        try:
            self.base = DETECTORS.create(base, **options(base, {**(base_options or {}), **more_base_options}))
        except ConfigError as exc:
            raise ConfigError(f"tiled detector: an option that is not its own goes to its base detector {base!r}, "
                              f"which refused it: {exc}") from exc
        self.tiles = DETECTORS.create(tile_detector, **options(tile_detector, dict(
            TILE_OPTIONS if tile_options is None else tile_options)))
        self.looker = DETECTORS.create(look_detector, **options(look_detector, dict(
            LOOK_OPTIONS if look_options is None else look_options))) if looks else None
        self.tile_min_score, self.looks, self.look_context = float(tile_min_score), looks, float(look_context)
        self.tile_px, self.overlap = int(tile_px), float(overlap)
        self.max_tile_fraction = float(max_tile_fraction)
        self.nms_iou, self.containment, self.edge_margin = float(nms_iou), float(containment), float(edge_margin)
        self.stream_tiles, self.min_width, self.nested_ratio = stream_tiles, min_width, float(nested_ratio)

    def tile_count(self, width: int, height: int) -> int:
        """How many tiles a ``width`` x ``height`` frame is cut into (besides the whole-frame pass)."""
        return len(self.grid(width, height))

    def grid(self, width: int, height: int) -> list[tuple[int, int, int]]:
        """Every tile ``(x0, y0, side)`` of a ``width`` x ``height`` frame, image pixels; none for a frame narrower
        than ``min_width``."""
        if width < self.min_width:
            return []
        return tile_grid(width, height, self.tile_px, self.overlap, self.max_tile_fraction)

    def stream_cycle(self, width: int, height: int) -> int:
        """How many consecutive stream steps (:meth:`detect_stream`) search every tile of a frame once."""
        return stream_cycle(self.tile_count(width, height), self.stream_tiles)

    def _tile_boxes(self, image_bgr: np.ndarray, tiles: list[tuple[int, int, int]]
                    ) -> tuple[list[FaceBox], list[FaceBox]]:
        """The tile detector's faces in each of ``tiles``, image pixels, without those cut by an inner tile edge:
        those from ``tile_min_score`` and the weaker ones (hints for :meth:`_look_again`), all ``unsure``."""
        height, width = image_bgr.shape[:2]
        boxes, hints = [], []
        for x0, y0, side in tiles:
            x1, y1 = min(width, x0 + side), min(height, y0 + side)
            margin = self.edge_margin * side
            for box in _detect_in(self.tiles, image_bgr, x0, y0, x1, y1):
                cut = ((x0 > 0 and box.x0 - x0 < margin) or (y0 > 0 and box.y0 - y0 < margin)
                       or (x1 < width and box.x1 - x0 > (x1 - x0) - margin)
                       or (y1 < height and box.y1 - y0 > (y1 - y0) - margin))
                if not cut:
                    (boxes if box.score >= self.tile_min_score else hints).append(box)
        return boxes, hints

    def _look_again(self, image_bgr: np.ndarray, found: list[FaceBox], hints: list[FaceBox]) -> list[FaceBox]:
        """``found`` merged (:func:`merge_boxes`) with, for each of the ``looks`` best ``hints`` that overlaps
        nothing found (lying inside a box more than ``nested_ratio`` times wider is no overlap), the look
        detector's best box overlapping it (IoU above ``nms_iou``) in a square crop of ``look_context`` times its
        size around it: a small profile that the full-range model scores 0.3-0.5 in its tiles, the short-range
        model scores 0.5-0.9 where it fills a third of the crop. Looked-at boxes are ``unsure``; best score first."""
        if not self.looks or not hints:
            return found
        height, width = image_bgr.shape[:2]
        looked = []
        free = [h for h in merge_boxes(hints, self.nms_iou, self.containment)
                if not any(overlaps(h, f, self.nms_iou, self.containment, self.nested_ratio) for f in found)]
        for hint in free[: self.looks]:
            (cx, cy), half = hint.center, 0.5 * self.look_context * max(hint.width, hint.height)
            x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
            x1, y1 = min(width, int(math.ceil(cx + half))), min(height, int(math.ceil(cy + half)))
            seen = _detect_in(self.looker, image_bgr, x0, y0, x1, y1)
            best = max((b for b in seen if b.iou(hint) > self.nms_iou), key=lambda b: b.score, default=None)
            if best is not None:
                looked.append(best)
        return merge_boxes(found + looked, self.nms_iou, self.containment, self.nested_ratio)

    def _merged(self, image_bgr: np.ndarray, whole: list[FaceBox], tiles: list[tuple[int, int, int]]
                ) -> list[FaceBox]:
        """The whole frame's boxes and those of ``tiles`` (``unsure``) merged (:func:`merge_boxes`), a tile box that
        a whole-frame box that is sure overlaps (IoU above ``nms_iou``) made sure, then :meth:`_look_again`."""
        tiled, hints = self._tile_boxes(image_bgr, tiles)
        out = []
        for box in merge_boxes(whole + tiled, self.nms_iou, self.containment, self.nested_ratio):
            if box.unsure and any(box.iou(w) > self.nms_iou and not w.unsure for w in whole):
                box = dataclasses.replace(box, unsure=False)
            out.append(box)
        return self._look_again(image_bgr, out, hints)

    def detect(self, image_bgr: np.ndarray) -> list[FaceBox]:
        """Faces of the whole frame and of every tile, merged, best score first (a frame without tiles: exactly
        the base detector's)."""
        tiles = self.grid(image_bgr.shape[1], image_bgr.shape[0])
        whole = list(self.base.detect(image_bgr))
        return self._merged(image_bgr, whole, tiles) if tiles else whole

    def detect_stream(self, image_bgr: np.ndarray, step: int) -> list[FaceBox]:
        """A stream's search in steps (video mode): the whole frame as the base detector searches it in a
        stream (its own ``detect_stream`` where it has one) and the tiles of :func:`stream_subset`, merged. Any
        ``stream_cycle`` consecutive steps search every tile."""
        tiles = self.grid(image_bgr.shape[1], image_bgr.shape[0])
        base_stream = getattr(self.base, "detect_stream", None)
        whole = list(base_stream(image_bgr, step) if callable(base_stream) else self.base.detect(image_bgr))
        if not tiles:
            return whole
        return self._merged(image_bgr, whole, stream_subset(tiles, step, self.stream_tiles))

    def detect_idle(self, image_bgr: np.ndarray, step: int) -> Optional[list[FaceBox]]:
        """Video mode's search while no face is in view: :meth:`detect_stream`, so that a small newcomer is found
        within ``stream_cycle`` frames at a fraction of :meth:`detect`'s cost; None for a frame without tiles
        (the pipeline then searches it in full, as it does with the base detector)."""
        if not self.grid(image_bgr.shape[1], image_bgr.shape[0]):
            return None
        return self.detect_stream(image_bgr, step)

    def detect_more(self, image_bgr: np.ndarray, found: list[FaceBox]) -> Optional[list[FaceBox]]:
        """The base detector's wider search of the whole frame (e.g. BlazeFace's quarter turns) merged with
        ``found``, when the pipeline doubts what :meth:`detect` found; None when the base has none."""
        more = getattr(self.base, "detect_more", None)
        return more(image_bgr, found) if callable(more) else None

    def close(self) -> None:
        for stage in (self.base, self.tiles, self.looker):
            closer = getattr(stage, "close", None)
            if callable(closer):
                closer()
