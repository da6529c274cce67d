"""Which reading of a face wins when BlazeFace sees it both upright and upside down.

The detector: the short-range model looks upside down too (``turn_models: both``), but outside ``turn_replace``
(default ``full``) its upside-down detection only adds a face that no upright detection overlaps; where one does,
its score is noted on that box (``FaceBox.upside_down_score``), and in the wider search (``detect_more``) it may
replace it. The pipeline: a face read better upside down is doubted and takes the wider search's reading where its
keypoints show no profile or the face mesh believes that reading more; a profile otherwise keeps its upright
reading (BlazeFace reads some upright profiles upside down with a higher score). A face whose eye line is tilted
20-40 deg is doubted the same way; beyond 40 deg the wider search's reading wins. Stand-in passes and keypoints;
the real images are in test_roll.py and test_video_mode.py.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from headpose_ros.estimator.pipeline import HeadPoseEstimator
from headpose_ros.estimator.quality import profile_of
from headpose_ros.estimator.types import FaceBox
from tools_fakes import FRONTAL_LAYOUT, ConstantRegressor, LayoutKeypoints

pytest.importorskip("mediapipe", reason="the BlazeFace models ship in the mediapipe wheel")

#: A profile's five keypoints as fractions of its box: the nose beyond the near ear along the eye line.
PROFILE_LAYOUT = np.array([[0.1, 0.62], [0.3, 0.42], [0.45, 0.42], [0.2, 0.5], [0.9, 0.5]])
IMAGE = np.zeros((200, 200, 3), np.uint8)


def _box(x0: float, score: float, tilt_deg: float = 0.0) -> FaceBox:
    """A 60-px box at (x0, 50) with BlazeFace-like keypoints whose eye line is tilted by ``tilt_deg``."""
    kps = np.zeros((6, 2))
    c, s = np.cos(np.radians(tilt_deg)), np.sin(np.radians(tilt_deg))
    kps[0], kps[1] = np.array([x0 + 30, 70]) - 12 * np.array([c, s]), np.array([x0 + 30, 70]) + 12 * np.array([c, s])
    return FaceBox(x0, 50.0, x0 + 60.0, 110.0, score, kps)


@pytest.fixture
def make_detector(monkeypatch):
    """Real mediapipe detectors (with the given options) whose model passes return prescribed boxes:
    ``passes[(turn, model)]``."""
    from headpose_ros.estimator.detectors.mediapipe_face import MediaPipeFaceDetector

    made = []

    def make(**options):
        det = MediaPipeFaceDetector(**options)
        det.passes = {}

        def turned(image_bgr, turn, models=None):
            names = [n for n in ("short", "full") if turn == 0 or models is None or n in models]
            return {n: [dataclasses.replace(b) for b in det.passes.get((turn, n), [])] for n in names}  # fresh

        monkeypatch.setattr(det, "_turned", turned)
        made.append(det)
        return det

    yield make
    for det in made:
        det.close()


@pytest.fixture
def detector(make_detector):
    return make_detector()


def test_short_range_upside_down_is_noted_not_a_replacement(detector):
    upright = _box(20.0, 0.72)
    detector.passes = {(0, "short"): [upright], (2, "short"): [_box(22.0, 0.87, 180.0)]}
    (found,) = detector.detect(IMAGE)
    assert found == upright and found.upside_down_score == pytest.approx(0.87)


def test_short_range_upside_down_adds_a_face_nothing_upright_overlaps(detector):
    detector.passes = {(0, "short"): [_box(0.0, 0.8)], (2, "short"): [_box(120.0, 0.75, 180.0)]}
    found = detector.detect(IMAGE)
    assert sorted(b.x0 for b in found) == [0.0, 120.0] and all(b.upside_down_score == 0.0 for b in found)


def test_full_range_upside_down_still_replaces_by_any_margin(detector):
    flipped = _box(22.0, 0.73, 180.0)
    detector.passes = {(0, "short"): [_box(20.0, 0.72)], (2, "full"): [flipped]}
    assert detector.detect(IMAGE) == [flipped]


def test_the_wider_search_lets_the_short_range_upside_down_reading_replace(detector):
    flipped = _box(22.0, 0.87, 180.0)
    detector.passes = {(0, "short"): [_box(20.0, 0.72)], (2, "short"): [flipped]}
    found = detector.detect(IMAGE)
    assert detector.detect_more(IMAGE, found) == [flipped]
    # ... but not a weaker one
    detector.passes[(2, "short")] = [_box(22.0, 0.6, 180.0)]
    assert detector.detect_more(IMAGE, detector.detect(IMAGE))[0].x0 == 20.0


def test_the_wider_search_takes_a_quarter_turn_reading_that_outscores_by_any_margin(make_detector):
    """In the first search (``turns: 4`` searches the quarter turns there) a quarter-turn reading must outscore the
    upright one by ``turn_margin``; in the wider search, which runs only when the face mesh doubts, by any amount."""
    sideways = _box(22.0, 0.79, 90.0)  # eyes a quarter turn clockwise: what the pass turned by three quarters sees
    passes = {(0, "short"): [_box(20.0, 0.75)], (3, "short"): [sideways]}
    always = make_detector(turns=4)
    always.passes = passes
    assert [b.x0 for b in always.detect(IMAGE)] == [20.0]  # 0.79 < 0.75 + 0.1
    on_doubt = make_detector()
    on_doubt.passes = passes
    found = on_doubt.detect(IMAGE)
    assert [b.x0 for b in found] == [20.0] and on_doubt.detect_more(IMAGE, found) == [sideways]


def test_turn_replace_both_restores_the_replacement_in_the_first_search():
    from headpose_ros.estimator.detectors.mediapipe_face import MediaPipeFaceDetector
    from headpose_ros.estimator.errors import ConfigError

    det = MediaPipeFaceDetector(turn_replace="both")
    try:
        assert det.turn_replace == {"short", "full"}
    finally:
        det.close()
    with pytest.raises(ConfigError, match="turn_replace"):
        MediaPipeFaceDetector(turn_replace="sideways")


class Readings:
    """A detector whose first search reads one face upright with a better upside-down score noted, and whose wider
    search reads it upside down (a box shifted by 4 px, to tell them apart)."""

    def __init__(self, upside_down_score: float = 0.87):
        self.upright = dataclasses.replace(_box(40.0, 0.72), upside_down_score=upside_down_score)
        self.flipped = _box(44.0, 0.87, 180.0)
        self.more_calls = 0

    def detect(self, image_bgr):
        return [self.upright]

    def detect_more(self, image_bgr, found):
        self.more_calls += 1
        return [self.flipped]


class Presence(LayoutKeypoints):
    """The face mesh's presence: ``kept`` on the first search's box (x0 = 40), ``turned`` on the wider one's."""

    def __init__(self, layout: np.ndarray, kept: float, turned: float):
        super().__init__(layout=layout)
        self.values = {40.0: kept, 44.0: turned}

    def locate(self, image_bgr, boxes):
        located = super().locate(image_bgr, boxes)
        return [dataclasses.replace(k, presence=self.values[b.x0]) for b, k in zip(boxes, located)]


def _estimator(readings: Readings, layout: np.ndarray) -> HeadPoseEstimator:
    return HeadPoseEstimator(detector=readings, keypoint_source=LayoutKeypoints(layout=layout),
                             regressor=ConstantRegressor())


def test_layouts_are_a_frontal_face_and_a_profile():
    assert profile_of(FRONTAL_LAYOUT) < 0.1 and profile_of(PROFILE_LAYOUT) >= 0.95


def test_a_frontal_face_read_better_upside_down_takes_that_reading():
    readings = Readings()
    faces = _estimator(readings, FRONTAL_LAYOUT).process(IMAGE).faces
    assert readings.more_calls == 1 and [f.box.x0 for f in faces] == [44.0]


def test_a_profile_read_better_upside_down_keeps_its_upright_reading():
    readings = Readings()
    faces = _estimator(readings, PROFILE_LAYOUT).process(IMAGE).faces
    assert [f.box.x0 for f in faces] == [40.0]  # whatever the wider search says


def test_a_profile_takes_the_upside_down_reading_that_the_face_mesh_believes_more():
    """Some upside-down faces read upright look like profiles to the face mesh, which believes their upside-down
    reading (presence) more: that one replaces the upright reading."""
    readings = Readings()
    est = HeadPoseEstimator(detector=readings, keypoint_source=Presence(PROFILE_LAYOUT, 0.6, 1.0),
                            regressor=ConstantRegressor())
    assert [f.box.x0 for f in est.process(IMAGE).faces] == [44.0]


def test_no_better_upside_down_reading_no_wider_search():
    readings = Readings(upside_down_score=0.6)
    faces = _estimator(readings, FRONTAL_LAYOUT).process(IMAGE).faces
    assert readings.more_calls == 0 and [f.box.x0 for f in faces] == [40.0]


def test_the_wider_search_never_replaces_a_face_that_passed_level():
    """Another box's doubt runs the wider search; its turned reading of a face that passed with level eyes (here
    a box shifted by 4 px) does not replace that face, and a face it finds anew is added."""

    class Doubt(Readings):
        """A level face, and a box that holds none; the wider search reads the first one turned."""

        def detect(self, image_bgr):
            return [_box(40.0, 0.9), _box(150.0, 0.8)]  # the second holds no face (see NoFaceRight)

        def detect_more(self, image_bgr, found):
            self.more_calls += 1
            return [_box(44.0, 0.95, 90.0), _box(100.0, 0.9)]

    class NoFaceRight(LayoutKeypoints):
        """No face in boxes right of x = 150."""

        def locate(self, image_bgr, boxes):
            return [None if b.x0 >= 150 else k for b, k in zip(boxes, super().locate(image_bgr, boxes))]

    readings = Doubt()
    est = HeadPoseEstimator(detector=readings, keypoint_source=NoFaceRight(),
                            regressor=ConstantRegressor())
    faces = est.process(IMAGE).faces
    assert readings.more_calls == 1 and sorted(f.box.x0 for f in faces) == [40.0, 100.0]


def test_turned_detections_of_a_model_outside_turn_replace_are_unsure():
    """The quality check wants the face mesh sure of a face that the short-range model found turned (on the mirrored
    astronaut, such a detection of her suit, 244 px, scored 0.74 and passed the check before: test_e2e.py)."""
    from pathlib import Path

    import cv2

    from headpose_ros.estimator.detectors.mediapipe_face import MediaPipeFaceDetector

    img = cv2.imread(str(Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"))
    upside_down = np.ascontiguousarray(img[::-1, ::-1])
    det = MediaPipeFaceDetector()
    try:
        found = det._turned(upside_down, 2)
        assert found["short"] and found["full"]  # both models see her face upside down
        assert all(b.unsure for b in found["short"]) and not any(b.unsure for b in found["full"])
        assert not any(b.unsure for boxes in det._turned(img, 0).values() for b in boxes)
    finally:
        det.close()


def test_a_turned_reading_replacing_a_sure_upright_detection_is_sure(make_detector):
    """An unsure turned detection (the short-range model's) that replaces a sure upright one of the same face is a
    new reading of that face, not a new face: it is sure; one that replaces nothing, or only an unsure box (its own
    addition in the first search, found again by the wider one), stays unsure."""
    det = make_detector()
    sideways = dataclasses.replace(_box(22.0, 0.79, 90.0), unsure=True)
    alone = dataclasses.replace(_box(120.0, 0.8, 90.0), unsure=True)
    det.passes = {(0, "short"): [_box(20.0, 0.75)], (3, "short"): [sideways, alone]}
    more = {b.x0: b.unsure for b in det.detect_more(IMAGE, det.detect(IMAGE))}
    assert more == {22.0: False, 120.0: True}
    added = dataclasses.replace(_box(120.0, 0.74, 180.0), unsure=True)
    det.passes = {(2, "short"): [added]}
    found = det.detect(IMAGE)
    assert [b.unsure for b in found] == [True] and [b.unsure for b in det.detect_more(IMAGE, found)] == [True]


def _tilted_layout(layout: np.ndarray, degrees: float) -> np.ndarray:
    """``layout`` (fractions of a box) turned ``degrees`` clockwise on screen about the box's centre."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return (layout - 0.5) @ np.array([[c, s], [-s, c]]) + 0.5


class Sideways(Readings):
    """A first search whose face is not contested, and a wider search reading it a quarter turn off."""

    def __init__(self):
        super().__init__(upside_down_score=0.0)
        self.flipped = _box(44.0, 0.87, 90.0)


@pytest.mark.parametrize("tilt, layout, presence, expected", [
    (10.0, FRONTAL_LAYOUT, (0.6, 1.0), [40.0, 0]),  # level: no wider search
    (30.0, FRONTAL_LAYOUT, (0.6, 1.0), [44.0, 1]),  # tilted 20-40 deg: the reading the mesh believes more
    (30.0, FRONTAL_LAYOUT, (1.0, 1.0), [40.0, 1]),  # ... and no other (the profile rule is for upside down only)
    (50.0, PROFILE_LAYOUT, (1.0, 0.6), [44.0, 1]),  # tilted beyond 40 deg: the wider reading in any case
])
def test_a_tilted_face_is_doubted_mildly_from_20_deg(tilt, layout, presence, expected):
    readings = Sideways()
    est = HeadPoseEstimator(detector=readings, keypoint_source=Presence(_tilted_layout(layout, tilt), *presence),
                            regressor=ConstantRegressor())
    faces = est.process(IMAGE).faces
    assert [f.box.x0 for f in faces] + [readings.more_calls] == expected
