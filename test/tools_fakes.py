"""Small stand-in backends and a throw-away model file for the tools' tests (no trained weights needed).

The fakes follow the backend protocols of headpose_ros.estimator.detectors / keypoints exactly, so the real
HeadPoseEstimator pipeline runs around them.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from headpose_ros.estimator import heatmaps as hm
from headpose_ros.estimator.types import FaceBox, FaceKeypoints, Keypoints

#: Keypoints of a frontal face as fractions of its box: nose, right eye (image left), left eye, right ear, left ear.
FRONTAL_LAYOUT = np.array([[0.5, 0.62], [0.33, 0.42], [0.67, 0.42], [0.05, 0.5], [0.95, 0.5]])


class CentreDetector:
    """Finds one 'face' in the middle of every image: a box over the central half, score 0.9."""

    def __init__(self, fraction: float = 0.5, score: float = 0.9):
        self.fraction = fraction
        self.score = score
        self.calls = 0

    def detect(self, image_bgr: np.ndarray) -> list[FaceBox]:
        self.calls += 1
        assert image_bgr.dtype == np.uint8 and image_bgr.ndim == 3 and image_bgr.shape[2] == 3
        h, w = image_bgr.shape[:2]
        f = self.fraction
        return [FaceBox(w * (1 - f) / 2, h * (1 - f) / 2, w * (1 + f) / 2, h * (1 + f) / 2, self.score)]


class BrightBlobDetector:
    """Finds 'faces' only where the image is bright: the bounding box of pixels > 200 (none: no face)."""

    def detect(self, image_bgr: np.ndarray) -> list[FaceBox]:
        mask = image_bgr.max(axis=2) > 200
        if not mask.any():
            return []
        ys, xs = np.nonzero(mask)
        return [FaceBox(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1), 0.95)]


class LayoutKeypoints:
    """Places the five keypoints at ``layout`` (fractions of each box; default FRONTAL_LAYOUT) in each box, with
    confidences ``confidence``."""

    heatmap_kind = "rendered"

    def __init__(self, confidence: Sequence[float] = (0.9, 0.9, 0.9, 0.8, 0.8), threshold: float = 0.3,
                 layout: np.ndarray = FRONTAL_LAYOUT):
        self.confidence = np.asarray(confidence, dtype=np.float64)
        self.threshold = threshold
        self.layout = np.asarray(layout, dtype=np.float64)

    def locate(self, image_bgr: np.ndarray, boxes: Sequence[FaceBox]) -> list[Optional[FaceKeypoints]]:
        out: list[Optional[FaceKeypoints]] = []
        for box in boxes:
            xy = np.stack([box.x0 + self.layout[:, 0] * box.width, box.y0 + self.layout[:, 1] * box.height], 1)
            out.append(hm.face_keypoints(Keypoints(xy, self.confidence), self.threshold))
        return out


class ConstantRegressor:
    """Duck-typed HeadPoseRegressor returning the same (yaw, pitch, roll) for every face; no TensorFlow."""

    heatmap_kind = "rendered"
    device = "/CPU:0"
    weights_path = Path("constant.weights.h5")

    def __init__(self, ypr: Sequence[float] = (10.0, -5.0, 3.0)):
        self.ypr = np.asarray(ypr, dtype=np.float64)
        self.batches: list[int] = []

    def predict(self, heatmaps: np.ndarray) -> np.ndarray:
        heatmaps = np.asarray(heatmaps)
        assert heatmaps.ndim == 4 and heatmaps.shape[1:] == (96, 96, 5)
        assert np.all(np.isfinite(heatmaps))
        self.batches.append(len(heatmaps))
        return np.tile(self.ypr, (len(heatmaps), 1))


def make_model_file(folder: Path, name: str = "tiny", heatmap_kind: str = "rendered",
                    keypoint_source: str = "face_mesh", seed: int = 0) -> Path:
    """An untrained regressor's weights (paper architecture) and its card in ``folder``; the weights path."""
    from headpose_ros.estimator.regressor import ModelCard, build_model, card_path

    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / f"{name}.weights.h5"
    build_model(seed=seed).save_weights(str(weights))
    ModelCard(name, heatmap_kind=heatmap_kind, keypoint_source=keypoint_source).save(card_path(weights))
    return weights


def copy_default_model(folder: Path, turned: Optional[dict] = None) -> Path:
    """The shipped ``default`` model copied into ``folder`` as ``m`` (weights, card, both exports), its card
    naming the copies and, as its turned-face companion, ``turned`` (None: no companion; a companion is named
    among the shipped models); ``folder``."""
    import json
    import shutil

    from headpose_ros.estimator.regressor import MODELS_DIR

    for suffix in (".weights.h5", ".json", ".tflite", ".int8.tflite"):
        shutil.copy(MODELS_DIR / f"default{suffix}", folder / f"m{suffix}")
    card = json.loads((folder / "m.json").read_text())
    card["tflite"]["file"], card["tflite_int8"]["file"] = "m.tflite", "m.int8.tflite"
    card.pop("turned", None)
    if turned is not None:
        card["turned"] = turned
    (folder / "m.json").write_text(json.dumps(card))
    return folder


def register_fake_backends(monkeypatch) -> None:
    """Make the fakes selectable by name (``--detector centre``, ``--keypoints layout``) for CLI tests."""
    from headpose_ros.estimator.detectors import DETECTORS
    from headpose_ros.estimator.keypoints import KEYPOINT_SOURCES

    monkeypatch.setitem(DETECTORS._entries, "centre", "tools_fakes:CentreDetector")
    monkeypatch.setitem(DETECTORS._entries, "bright", "tools_fakes:BrightBlobDetector")
    monkeypatch.setitem(KEYPOINT_SOURCES._entries, "layout", "tools_fakes:LayoutKeypoints")


def sigint_default() -> None:
    """``preexec_fn`` of a child that a test interrupts with SIGINT: SIGINT back to its default there, so that
    Python installs its handler even when the suite runs where SIGINT is ignored (a background job of a shell
    without job control, ``nohup``)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
