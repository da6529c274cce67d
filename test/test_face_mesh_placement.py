"""The face mesh's keypoint placement: nose and ears raised along the face's vertical (no model, no data)."""

from __future__ import annotations

import numpy as np
import pytest

from headpose_ros.estimator.errors import ConfigError
from headpose_ros.estimator.keypoints import face_mesh
from headpose_ros.estimator.types import LEFT_EAR, LEFT_EYE, NOSE, RIGHT_EAR, RIGHT_EYE


def _face(angle_deg: float, length: float = 200.0) -> tuple[np.ndarray, np.ndarray]:
    """An upright face's five keypoints and a mesh holding only forehead and chin, turned by ``angle_deg``
    (clockwise on screen) about (300, 200)."""
    xy = np.array([[0.0, 40.0], [-30.0, 0.0], [30.0, 0.0], [-70.0, 20.0], [70.0, 20.0]])
    mesh = np.zeros((468, 2))
    mesh[face_mesh.FOREHEAD], mesh[face_mesh.CHIN] = (0.0, -length / 2), (0.0, length / 2)
    a = np.radians(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (xy @ rot.T + (300.0, 200.0))[None], (mesh @ rot.T + (300.0, 200.0))[None]


def test_raise_moves_nose_and_ears_toward_the_forehead_by_a_fraction_of_the_face_length():
    xy, mesh = _face(0.0)
    out = face_mesh.raised(xy, mesh, 0.01, 0.02)
    np.testing.assert_allclose(out[0, NOSE] - xy[0, NOSE], [0.0, -2.0], atol=1e-9)  # up is -y on screen
    np.testing.assert_allclose(out[0, [RIGHT_EAR, LEFT_EAR]] - xy[0, [RIGHT_EAR, LEFT_EAR]], [[0, -4.0]] * 2,
                               atol=1e-9)
    np.testing.assert_array_equal(out[0, [RIGHT_EYE, LEFT_EYE]], xy[0, [RIGHT_EYE, LEFT_EYE]])
    assert face_mesh.raised(xy, mesh, 0.0, 0.0) is xy
    np.testing.assert_allclose(face_mesh.raised(out, mesh, -0.01, -0.02), xy, atol=1e-9)


@pytest.mark.parametrize("angle", [-170.0, -90.0, -35.0, 20.0, 90.0, 135.0])
def test_raise_turns_with_the_face(angle):
    """A turned face gets the upright face's raise, turned with it (the eye line sets the face's vertical)."""
    xy0, mesh0 = _face(0.0)
    xy, mesh = _face(angle)
    a = np.radians(angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    expected = (face_mesh.raised(xy0, mesh0, 0.01, 0.02)[0] - (300.0, 200.0)) @ rot.T + (300.0, 200.0)
    np.testing.assert_allclose(face_mesh.raised(xy, mesh, 0.01, 0.02)[0], expected, atol=1e-9)


def test_raise_out_of_range_is_a_configuration_error(monkeypatch):
    monkeypatch.setattr(face_mesh, "load_interpreter", lambda *a, **k: pytest.fail("must fail before loading"))
    with pytest.raises(ConfigError):
        face_mesh.FaceMeshKeypoints(ear_raise=0.5, model_path=__file__)
