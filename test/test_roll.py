"""Faces at any in-plane roll: the shipped astronaut portrait turned every 15 deg around the circle, and mirrored.

The default pipeline (BlazeFace searched in quarter turns, a face-mesh crop aligned on the detector's eyes,
heatmaps levelled beyond 30 deg of tilt and the pose turned back about the line of sight) must find the face
at every turn, upside down included, and report the upright pose turned by the known angle: the roll moves by
that angle and the rotation error against the upright prediction composed with the turn stays small. No
development data is used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from headpose_ros.estimator import geometry as g
from headpose_ros.tools.scenes import turn_image

pytest.importorskip("mediapipe", reason="the default pipeline needs mediapipe")
cv2 = pytest.importorskip("cv2")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"
PAD = 110  # grey border, so that the turned portrait keeps its whole face in the frame
#: Where the face is in the padded portrait (pixels): the face box's centre of the upright image.
FACE = np.array([225.0 + PAD, 127.0 + PAD])
#: The largest rotation error (deg) against the upright prediction turned by the known angle. Measured at most
#: 6.2 deg over the circle (both portraits; the largest where a tilt of 30-60 deg is only partly levelled); the
#: bound leaves room for other CPUs' arithmetic.
MAX_ERROR_DEG = 8.0


@pytest.fixture(scope="module")
def estimator():
    from headpose_ros.estimator.config import EstimatorConfig
    from headpose_ros.estimator.pipeline import HeadPoseEstimator

    est = HeadPoseEstimator(EstimatorConfig(device="cpu"))
    yield est
    est.close()


def _padded(mirrored: bool) -> np.ndarray:
    img = cv2.imread(str(EXAMPLE))
    img = img[:, ::-1] if mirrored else img
    return cv2.copyMakeBorder(np.ascontiguousarray(img), PAD, PAD, PAD, PAD, cv2.BORDER_CONSTANT,
                              value=(128, 128, 128))


def _face_near(result, point: np.ndarray):
    """The found face whose box centre is nearest ``point`` (within 60 px), or None."""
    faces = [f for f in result.faces if np.hypot(*(np.array(f.box.center) - point)) < 60]
    return min(faces, key=lambda f: np.hypot(*(np.array(f.box.center) - point)), default=None)


def _turned(img: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """The image turned clockwise on screen by ``angle`` about its centre (same size), and the 2x3 map of that turn."""
    return turn_image(img, angle, expand=False)


def _rotation_error_deg(a: np.ndarray, b: np.ndarray) -> float:
    return float(g.rotation_errors_deg(a[None], b[None])[0])


UPSIDE_DOWN = (165, 180, -165)


def _upright(estimator, mirrored: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    img = _padded(mirrored)
    centre = FACE.copy()
    if mirrored:
        centre[0] = img.shape[1] - centre[0]
    upright = _face_near(estimator.process(img), centre)
    assert upright is not None
    return img, centre, upright.pose.as_array()


@pytest.mark.parametrize("mirrored", [False, True], ids=["portrait", "mirrored"])
def test_found_with_the_right_roll_all_around_the_circle(estimator, mirrored):
    img, centre, up = _upright(estimator, mirrored)
    assert abs(up[2]) < 10.0 and abs(up[0]) < 15.0  # near frontal, near level
    errors = {}
    for angle in range(-150, 151, 15):  # upside down: see the test below
        turned, m = _turned(img, angle)
        face = _face_near(estimator.process(turned), m @ np.append(centre, 1.0))
        assert face is not None, f"no face at {angle} deg"
        expected = g.compose_line_of_sight_roll(up[None], np.array([angle]))[0]
        pose = face.pose.as_array()
        # sign and size of the roll: the upright roll moved by the turn (yaw and pitch stay near zero here)
        assert abs(g.wrap_deg(pose[2] - up[2] - angle)) < MAX_ERROR_DEG, (angle, pose, up)
        errors[angle] = _rotation_error_deg(pose, expected)
    assert max(errors.values()) < MAX_ERROR_DEG, errors
    # the goal: at +-60 and +-90 deg the rotation error stays within 2 deg of the upright one (the
    # difference is at most the error against the upright prediction turned by the known angle)
    assert np.median([errors[a] for a in (-90, -60, 60, 90)]) < 2.0, errors


@pytest.mark.parametrize("mirrored,angle", [
    (False, 165), (False, 180), (False, -165), (True, 180), (True, -165), (True, 165)])
def test_upside_down_gives_the_right_pose_or_no_face(estimator, mirrored, angle):
    """(The mirrored portrait at 165 deg was a known failure until the short-range model also looked upside down:
    its upright reading, 0.72, beat the full-range model's upside-down one, 0.68, and the face mesh fitted an upright
    face to it, roll 124 deg.)"""
    img, centre, up = _upright(estimator, mirrored)
    turned, m = _turned(img, angle)
    face = _face_near(estimator.process(turned), m @ np.append(centre, 1.0))
    if face is None:
        return  # no face is an allowed answer
    expected = g.compose_line_of_sight_roll(up[None], np.array([angle]))[0]
    assert _rotation_error_deg(face.pose.as_array(), expected) < MAX_ERROR_DEG, (face.pose, expected)
    assert abs(face.pose.roll) > 90.0  # upside down, not upright


def test_mirroring_flips_yaw_and_roll(estimator):
    pose = _face_near(estimator.process(_padded(False)), FACE).pose
    img = _padded(True)
    mirrored = _face_near(estimator.process(img), np.array([img.shape[1] - FACE[0], FACE[1]])).pose
    assert abs(mirrored.yaw + pose.yaw) < 4.0 and abs(mirrored.roll + pose.roll) < 4.0
    assert abs(mirrored.pitch - pose.pitch) < 4.0


def test_quarter_turns_are_searched_only_when_the_face_mesh_doubts(estimator, monkeypatch):
    """``turns: on_doubt`` (the default): an upright face costs no quarter-turn passes; a face rolled 90 deg, which
    the upright models misread, makes the pipeline ask the detector for them, and its roll comes out right."""
    calls = []
    detector = estimator.detector
    monkeypatch.setattr(detector, "detect_more",
                        lambda img, found, _m=detector.detect_more: calls.append(len(found)) or _m(img, found))
    img, centre, up = _upright(estimator, False)
    assert calls == []
    turned, m = _turned(img, 90)
    face = _face_near(estimator.process(turned), m @ np.append(centre, 1.0))
    assert len(calls) == 1 and face is not None
    assert abs(g.wrap_deg(face.pose.roll - up[2] - 90)) < MAX_ERROR_DEG
