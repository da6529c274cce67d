"""MediaPipe's BlazeFace detectors (bundled in the mediapipe wheel): the CPU default.

Two models: ``short`` (faces within about 2 m, fills most of the frame) and ``full`` (the full-range model,
small and far faces, more tolerant of turned heads). ``models="both"`` (the default) runs both and merges
their boxes by non-maximum suppression, which measured best on the development sets: short-range alone finds
near faces, full-range alone misses faces that fill the frame.

Two runtimes give the same detections (a test compares them): ``tflite`` (the default) runs the bundled
``.tflite`` models through ``tf.lite.Interpreter`` (XNNPACK) and decodes them here exactly as MediaPipe's face-
detection graph does (letterboxed input in [-1, 1], SSD anchors, sigmoid scores, weighted non-maximum suppression,
letterbox removal); ``graph`` calls ``mediapipe.solutions.face_detection``, whose graph overhead cost more than
the models themselves. As in the graph, each model keeps no detection below its own floor (0.5 short-range, 0.6
full-range) whatever ``min_score`` says (``graph_floor: false``, tflite runtime only, drops the floors: the tiled
detector's tiles keep full-range detections from 0.5 and hold what they alone find to a stricter check). Every box
carries BlazeFace's six keypoints (right eye, left eye, nose tip, mouth, right ear tragion, left ear tragion;
:data:`~headpose_ros.estimator.types.DETECTOR_KEYPOINT_NAMES`) in image pixels, which the face mesh uses to align
its crop with the face's roll.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Mapping, Optional, Sequence

import cv2
import numpy as np

from ..errors import BackendUnavailableError, ConfigError
from ..geometry import eye_angle
from ..images import rgb_float
from ..tflite import load_interpreter
from ..types import FaceBox

_MODEL_SELECTION = {"short": 0, "full": 1}


@dataclass(frozen=True)
class BlazeFaceSpec:
    """One BlazeFace model as MediaPipe's graph runs it (``face_detection_*_range.pbtxt``)."""

    filename: str
    size: int  # square input side, pixels
    strides: tuple[int, ...]
    interpolated_scale: bool  # one extra anchor per cell and layer (SsdAnchorsCalculator)
    graph_min_score: float  # the graph's own score floor (TensorsToDetectionsCalculator min_score_thresh)


SPECS = {
    "short": BlazeFaceSpec("face_detection_short_range.tflite", 128, (8, 16, 16, 16), True, 0.5),
    "full": BlazeFaceSpec("face_detection_full_range_sparse.tflite", 192, (4,), False, 0.6),
}
NUM_DETECTOR_KEYPOINTS = 6
#: Weighted non-maximum suppression overlap of MediaPipe's face-detection graph.
GRAPH_NMS_IOU = 0.3


def ssd_anchor_centres(size: int, strides: Sequence[int], interpolated_scale: bool) -> np.ndarray:
    """Anchor centres (A, 2) in [0, 1] of MediaPipe's SsdAnchorsCalculator with fixed anchor sizes.

    Consecutive layers of equal stride share cells; each layer adds one anchor per cell (two with the
    interpolated scale), in the calculator's order (row-major cells, anchors of a cell together).
    """
    centres = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        per_cell = (j - i) * (2 if interpolated_scale else 1)
        cells = int(math.ceil(size / strides[i]))
        ys, xs = np.mgrid[0:cells, 0:cells]
        grid = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 1, 2)
        centres.append(np.repeat(grid, per_cell, axis=1).reshape(-1, 2))
        i = j
    return np.concatenate(centres).astype(np.float64)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                 iou_threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's weighted non-maximum suppression: each best remaining detection absorbs those overlapping
    it by more than ``iou_threshold``; box and keypoints become their score-weighted means, the score the best's.

    ``boxes`` (N, 4) x0, y0, x1, y1; ``keypoints`` (N, K, 2); ``scores`` (N,). Returns the kept ones, best first.
    """
    order = np.argsort(-scores, kind="stable")
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    areas = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    alive = np.ones(len(scores), dtype=bool)
    out_b, out_k, out_s = [], [], []
    for i in range(len(scores)):
        if not alive[i]:
            continue
        ix = np.clip(np.minimum(boxes[i, 2], boxes[:, 2]) - np.maximum(boxes[i, 0], boxes[:, 0]), 0, None)
        iy = np.clip(np.minimum(boxes[i, 3], boxes[:, 3]) - np.maximum(boxes[i, 1], boxes[:, 1]), 0, None)
        inter = ix * iy
        union = areas[i] + areas - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
        group = alive & (iou > iou_threshold)
        group[i] = True
        w = scores[group] / scores[group].sum()
        out_b.append(w @ boxes[group])
        out_k.append(np.einsum("n,nkc->kc", w, keypoints[group]))
        out_s.append(scores[i])
        alive &= ~group
    if not out_s:
        return np.zeros((0, 4)), np.zeros((0,) + keypoints.shape[1:]), np.zeros(0)
    return np.stack(out_b), np.stack(out_k), np.asarray(out_s)


def non_max_suppression(boxes: Sequence[FaceBox], iou_threshold: float) -> list[FaceBox]:
    """Boxes sorted by score with every box overlapping a better one by more than ``iou_threshold`` removed."""
    kept: list[FaceBox] = []
    for box in sorted(boxes, key=lambda b: b.score, reverse=True):
        if all(box.iou(k) <= iou_threshold for k in kept):
            kept.append(box)
    return kept


def eye_tilt_deg(keypoints: np.ndarray) -> float:
    """Tilt (degrees, clockwise on screen, in (-180, 180]) of the line from a detection's right eye to its left."""
    return math.degrees(float(eye_angle(keypoints[0], keypoints[1])))


def quarter_turn(width: int, height: int, turns: int) -> np.ndarray:
    """2x3 affine taking continuous pixel coordinates of a ``width`` x ``height`` image to those of the image
    turned ``turns`` x 90 deg clockwise."""
    turns %= 4
    return [np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), np.array([[0.0, -1.0, height], [1.0, 0.0, 0.0]]),
            np.array([[-1.0, 0.0, width], [0.0, -1.0, height]]), np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, width]])][turns]


def _bundled(filename: str) -> Path:
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailableError(
            "the mediapipe face detector needs mediapipe==0.10.21 (pip install mediapipe==0.10.21)")
    path = Path(list(spec.submodule_search_locations)[0]) / "modules" / "face_detection" / filename
    if not path.is_file():
        raise BackendUnavailableError(f"mediapipe is installed but {path} is missing; install mediapipe==0.10.21")
    return path


class BlazeFaceTflite:
    """One BlazeFace model through ``tf.lite.Interpreter``, decoded like MediaPipe's face-detection graph."""

    def __init__(self, spec: BlazeFaceSpec, min_score: float, num_threads: int = 1):
        self._interp = load_interpreter(_bundled(spec.filename), "face detection model", num_threads)
        self._interp.allocate_tensors()
        self._input = self._interp.get_input_details()[0]["index"]
        outs = sorted(self._interp.get_output_details(), key=lambda d: -int(d["shape"][-1]))
        self._regressors, self._scores = outs[0]["index"], outs[1]["index"]
        self.spec = spec
        self.anchors = ssd_anchor_centres(spec.size, spec.strides, spec.interpolated_scale)
        self.logit_threshold = math.log(min_score / (1.0 - min_score)) if 0.0 < min_score < 1.0 else (
            -math.inf if min_score <= 0.0 else math.inf)

    def detect(self, image_bgr: np.ndarray, quarter_turns: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes (N, 4) x0, y0, x1, y1 and keypoints (N, 6, 2) in image pixels, scores (N,), best first.

        With ``quarter_turns`` = k the model looks at the image turned k x 90 deg clockwise (the turn is part of
        the input's affine warp, no copy); boxes are then the axis-aligned bounds of the turned-back boxes.
        """
        height, width = image_bgr.shape[:2]
        turn = quarter_turn(width, height, quarter_turns)  # image -> turned image, continuous pixel coordinates
        tw, th = (height, width) if quarter_turns % 2 else (width, height)
        size = self.spec.size
        scale = min(size / tw, size / th)  # letterbox: keep the aspect ratio, pad with zeros
        pad_x, pad_y = (size - tw * scale) / 2.0, (size - th * scale) / 2.0
        m = np.array([[scale, 0.0, pad_x], [0.0, scale, pad_y]]) @ np.vstack([turn, [0.0, 0.0, 1.0]])
        # (MediaPipe maps the corners of the region of interest onto the tensor's: no half-pixel offset)
        tensor = cv2.warpAffine(image_bgr, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        self._interp.set_tensor(self._input, rgb_float(tensor, 2.0 / 255.0, -1.0)[None])
        self._interp.invoke()
        logits = self._interp.get_tensor(self._scores).reshape(-1)
        keep = np.flatnonzero(np.clip(logits, -100.0, 100.0) >= self.logit_threshold)
        if keep.size == 0:
            return np.zeros((0, 4)), np.zeros((0, NUM_DETECTOR_KEYPOINTS, 2)), np.zeros(0)
        raw = self._interp.get_tensor(self._regressors).reshape(len(logits), -1)[keep].astype(np.float64) / size
        anchors = self.anchors[keep]
        centre = raw[:, 0:2] + anchors
        half = 0.5 * raw[:, 2:4]
        boxes = np.concatenate([centre - half, centre + half], axis=1)  # tensor units [0, 1]
        kps = raw[:, 4:4 + 2 * NUM_DETECTOR_KEYPOINTS].reshape(-1, NUM_DETECTOR_KEYPOINTS, 2) + anchors[:, None, :]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[keep].astype(np.float64), -100.0, 100.0)))
        boxes, kps, scores = weighted_nms(boxes, kps, scores, GRAPH_NMS_IOU)
        back = cv2.invertAffineTransform(m)  # tensor pixels -> image pixels
        corners = boxes.reshape(-1, 2, 2)[:, [0, 1, 0, 1], :] * size
        corners[:, 1, 0], corners[:, 2, 0] = corners[:, 2, 0].copy(), corners[:, 1, 0].copy()  # all four corners
        corners = corners @ back[:, :2].T + back[:, 2]
        boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)
        return boxes, (kps * size) @ back[:, :2].T + back[:, 2], scores

    def close(self) -> None:
        self._interp = None


class MediaPipeFaceDetector:
    """BlazeFace short- and/or full-range; boxes in image pixels, scores are the detector's, in [0, 1].

    BlazeFace finds faces rolled up to about +-45 deg (weakly, with misplaced keypoints, beyond). ``turns`` says
    when the ``turn_models`` (default ``both``) also look at the image turned by a quarter, a half and three
    quarters of a turn (tflite runtime only): ``1`` never, ``4`` always, ``on_doubt`` (the default) upside down
    always and at a quarter turn either way when the face mesh doubts the result (:meth:`detect_more`, which the
    pipeline calls when no face passed, a found box held no face, a face's eye line is tilted beyond 20 deg or its
    upside-down reading is the better one: the same poses as ``4`` on the development sets, the roll tests and the
    non-face scenes, at one turned pass per model instead of three for upright faces; but a confident upright face
    then hides a rolled one in the same single image: video mode still searches every turn, one per periodic
    detection), ``auto`` only when the upright pass found no face, a face scoring below ``turn_below`` or one
    whose eye line is tilted beyond 30 deg (it misses faces rolled 90 deg that the upright model misreads). A
    face found in a turned image counts only if it scores at least ``turn_min_score`` (the turned passes are a
    search for what the upright one cannot see: they are held to a higher score, so as not to multiply false
    faces), is at least ``turn_min_px`` wide (image pixels; most of their false faces on the non-face scenes of
    :mod:`headpose_ros.tools.false_faces` were 30-60 px wide: coins, a flag, a rocket, and the face mesh takes
    some of them for faces; an upright face that small is still found by the upright pass) and its eyes
    say it is rolled within 60 deg of that turn (a detection at the edge of a turn's range has misplaced
    keypoints). It replaces the upright detections of the same face only when it outscores them: by
    ``turn_margin`` for a quarter turn (turned detections of profile faces otherwise won and cost accuracy on the
    development sets; in :meth:`detect_more` by any amount), by any amount upside down (the upright models
    half-see many upside-down faces, and the face mesh then fits a face to them), and in the first search only if
    its model is in ``turn_replace`` (default ``full``). The short-range model finds the turned faces that fill the
    frame, which the full-range one scores below ``turn_min_score``, but it also reads some upright profiles upside
    down with a higher score than upright: so its upside-down score is noted on the upright box
    (:attr:`FaceBox.upside_down_score`), and the pipeline weighs the two readings through :meth:`detect_more`
    (docs/reliability.md, "Faces turned in the image plane"). An upright detection of a face rolled beyond about
    50 deg, whose eyes are then misplaced, is put right by the face mesh (see its ``retry_below`` and
    ``max_passes``). The winner's keypoints
    set the face mesh's crop, so faces at any roll, upside down included, get an upright crop.
    """

    def __init__(self, models: str = "both", min_score: float = 0.3, nms_iou: float = 0.3, runtime: str = "tflite",
                 num_threads: int = 1, turns: "int | str" = "on_doubt", turn_below: float = 0.7,
                 turn_models: str = "both", turn_replace: str = "full", turn_min_score: float = 0.7,
                 turn_margin: float = 0.1, turn_min_px: float = 48.0, graph_floor: bool = True):
        names = ["short", "full"] if models == "both" else [models]
        if any(n not in _MODEL_SELECTION for n in names):
            raise ConfigError(f"mediapipe detector models must be short, full or both, not {models!r}")
        if not 0.0 <= float(min_score) <= 1.0 or not 0.0 <= float(nms_iou) <= 1.0:
            raise ConfigError("mediapipe detector min_score and nms_iou must lie in [0, 1]")
        if runtime not in ("tflite", "graph"):
            raise ConfigError(f"mediapipe detector runtime must be tflite or graph, not {runtime!r}")
        if not isinstance(graph_floor, bool) or (runtime == "graph" and not graph_floor):
            raise ConfigError(f"mediapipe detector graph_floor must be true or false (true with the graph runtime), "
                              f"not {graph_floor!r}")
        if turns not in (1, 4, "auto", "on_doubt"):
            raise ConfigError(f"mediapipe detector turns must be 1, 4, auto or on_doubt, not {turns!r}")
        self.nms_iou, self.runtime, self.turn_below = float(nms_iou), runtime, float(turn_below)
        self.turn_min_score, self.turn_margin = float(turn_min_score), float(turn_margin)
        if not 0.0 <= float(turn_min_px) <= 4096.0:
            raise ConfigError(f"mediapipe detector turn_min_px must lie in [0, 4096], not {turn_min_px!r}")
        self.turn_min_px = float(turn_min_px)
        self.turns = 1 if runtime == "graph" else turns
        turned = ["short", "full"] if turn_models == "both" else [turn_models]
        if any(n not in _MODEL_SELECTION for n in turned):
            raise ConfigError(f"mediapipe detector turn_models must be short, full or both, not {turn_models!r}")
        self._names = names
        self._turn_models = [i for i, n in enumerate(names) if n in turned] or list(range(len(names)))
        replace = {"both": ("short", "full"), "none": ()}.get(turn_replace, (turn_replace,))
        if any(n not in _MODEL_SELECTION for n in replace):
            raise ConfigError(f"mediapipe detector turn_replace must be short, full, both or none, not "
                              f"{turn_replace!r}")
        self.turn_replace = frozenset(replace)
        if runtime == "tflite":
            self._detectors = [BlazeFaceTflite(SPECS[n], max(float(min_score), SPECS[n].graph_min_score if graph_floor
                                                             else 0.0), num_threads) for n in names]
            return
        try:
            from mediapipe.python.solutions import face_detection
        except ImportError as exc:
            raise BackendUnavailableError(
                "the mediapipe face detector needs mediapipe==0.10.21 (pip install mediapipe==0.10.21)") from exc
        self._detectors = [
            face_detection.FaceDetection(model_selection=_MODEL_SELECTION[n], min_detection_confidence=float(min_score))
            for n in names
        ]

    def _graph_detect(self, detector, rgb: np.ndarray) -> list[FaceBox]:
        height, width = rgb.shape[:2]
        boxes = []
        for det in detector.process(rgb).detections or []:
            rel = det.location_data.relative_bounding_box
            x0, y0 = rel.xmin * width, rel.ymin * height
            kps = np.array([[k.x * width, k.y * height] for k in det.location_data.relative_keypoints])
            boxes.append(FaceBox(x0, y0, x0 + rel.width * width, y0 + rel.height * height, float(det.score[0]),
                                 kps if kps.shape == (NUM_DETECTOR_KEYPOINTS, 2) else None))
        return boxes

    def _turned(self, image_bgr: np.ndarray, turn: int, models: Optional[Collection[str]] = None
                ) -> dict[str, list[FaceBox]]:
        """Each model's detections in the image turned ``turn`` quarters clockwise (when turned, the ``turn_models``
        that are in ``models``, default all), kept when they score at least ``turn_min_score``, are at least
        ``turn_min_px`` wide and their eyes say the face's roll lies within 60 deg of the turn's (-90 deg x turn);
        a turned detection of a model outside ``turn_replace`` is ``unsure`` (the face-quality check then wants the
        face mesh to be sure of it) unless it replaces an upright detection (:meth:`_merge_turns`)."""
        per_model = {}
        for index, (name, detector) in enumerate(zip(self._names, self._detectors)):
            if turn and (index not in self._turn_models or (models is not None and name not in models)):
                continue
            b, k, s = detector.detect(image_bgr, turn)
            unsure = bool(turn) and name not in self.turn_replace
            per_model[name] = [FaceBox(*map(float, b[i]), float(s[i]), k[i], unsure) for i in range(len(s))
                               if turn == 0 or (s[i] >= self.turn_min_score and b[i, 2] - b[i, 0] >= self.turn_min_px
                                                and abs((eye_tilt_deg(k[i]) + 90.0 * turn + 180.0) % 360.0 - 180.0)
                                                <= 60)]
        return per_model

    def _doubtful(self, boxes: Sequence[FaceBox]) -> bool:
        """Whether the upright pass may have missed or misread a rolled face."""
        if not boxes:
            return True
        for b in boxes:
            k = b.keypoints
            if b.score < self.turn_below or abs(eye_tilt_deg(k)) > 30:
                return True
        return False

    def detect(self, image_bgr: np.ndarray) -> list[FaceBox]:
        """Faces in an 8-bit BGR image, best score first, each with BlazeFace's six keypoints."""
        if self.runtime == "graph":
            rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
            boxes = [b for detector in self._detectors for b in self._graph_detect(detector, rgb)]
            return non_max_suppression(boxes, self.nms_iou)
        return self._search(image_bgr)

    def detect_stream(self, image_bgr: np.ndarray, step: int) -> list[FaceBox]:
        """A stream's periodic search while its faces are followed (video mode): as :meth:`detect`, but with
        ``turns: 4`` or ``on_doubt`` only one turn is searched besides the upright image, turn ``step % 3 + 1``
        (quarter turns), so that three consecutive steps search all of them."""
        if self.runtime == "graph" or self.turns not in (4, "on_doubt"):
            return self.detect(image_bgr)
        return self._merge_turns(image_bgr, self._upright(image_bgr), {step % 3 + 1: None})

    def detect_more(self, image_bgr: np.ndarray, found: Sequence[FaceBox]) -> Optional[list[FaceBox]]:
        """With ``turns: on_doubt``, the search :meth:`detect` left out: ``found`` (its result) merged with the
        passes on the image turned by a quarter and three quarters of a turn, and upside down once more for the
        models outside ``turn_replace``; the pipeline asks for it when the face mesh doubts what ``detect`` found,
        so here every model's turned detection replaces an upright one of the same face that it outscores by any
        amount (no ``turn_margin``: the pipeline keeps the faces that passed level and were not read better upside
        down). None otherwise (nothing more to search)."""
        if self.runtime == "graph" or self.turns != "on_doubt":
            return None
        blocked = [n for i, n in enumerate(self._names) if i in self._turn_models and n not in self.turn_replace]
        passes: dict[int, Optional[list[str]]] = {1: None, 3: None, **({2: blocked} if blocked else {})}
        return self._merge_turns(image_bgr, list(found), passes, replace=self._names, margin=0.0)

    def _upright(self, image_bgr: np.ndarray) -> list[FaceBox]:
        """Every model's detections in the image as it is, merged by non-maximum suppression."""
        return non_max_suppression([b for boxes in self._turned(image_bgr, 0).values() for b in boxes], self.nms_iou)

    def _search(self, image_bgr: np.ndarray) -> list[FaceBox]:
        """The upright pass, then as ``turns`` says the passes on the image turned by quarter turns."""
        upright = self._upright(image_bgr)
        if self.turns == "on_doubt":  # upright and upside down; the quarter turns in detect_more
            return self._merge_turns(image_bgr, upright, {2: None})
        if not (self.turns == 4 or (self.turns == "auto" and self._doubtful(upright))):
            return upright
        return self._merge_turns(image_bgr, upright, {1: None, 2: None, 3: None})

    def _merge_turns(self, image_bgr: np.ndarray, upright: list[FaceBox],
                     passes: Mapping[int, Optional[Collection[str]]], replace: Optional[Collection[str]] = None,
                     margin: Optional[float] = None) -> list[FaceBox]:
        """``upright`` detections merged with those of the image turned by each quarter turn of ``passes`` (by the
        models it names, None: every turn model). A detection of a model outside ``replace`` (default
        ``turn_replace``) only adds a face that no upright detection overlaps; upside down, its score is noted on
        the upright ones it overlaps (:attr:`FaceBox.upside_down_score`)."""
        replace = self.turn_replace if replace is None else replace
        found = {turn: self._turned(image_bgr, turn, models) for turn, models in passes.items()}
        upside_down = {id(b) for boxes in found.get(2, {}).values() for b in boxes}
        candidates, contest = [], {}  # contest: upright box index -> best upside-down score it was not replaced by
        for turn, per_model in found.items():
            for name, boxes in per_model.items():
                for box in boxes:
                    rivals = [i for i, u in enumerate(upright) if u.iou(box) > self.nms_iou]
                    if name in replace or not rivals:
                        candidates.append(box)
                    elif turn == 2:
                        contest.update({i: max(contest.get(i, 0.0), box.score) for i in rivals})
        upright = [dataclasses.replace(u, upside_down_score=max(u.upside_down_score, contest[i])) if i in contest
                   else u for i, u in enumerate(upright)]
        turned = non_max_suppression(candidates, self.nms_iou)
        kept = list(upright)
        for box in turned:  # a turned detection replaces upright ones of the same face: see the class docstring
            rivals = [u for u in upright if u.iou(box) > self.nms_iou]
            need = 0.0 if id(box) in upside_down else self.turn_margin if margin is None else margin
            if not rivals or box.score >= max(u.score for u in rivals) + need:
                if box.unsure and any(not u.unsure for u in rivals):  # a new reading of a face the upright
                    box = dataclasses.replace(box, unsure=False)  # pass found too, not a new face
                kept = [k for k in kept if k not in rivals or k is box] + [box]
        return sorted(kept, key=lambda b: b.score, reverse=True)

    def close(self) -> None:
        for detector in self._detectors:
            detector.close()
        self._detectors = []
