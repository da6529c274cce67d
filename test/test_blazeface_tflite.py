"""BlazeFace through tf.lite, decoded here, against MediaPipe's own face-detection graph; quarter turns."""

from __future__ import annotations

import numpy as np
import pytest

from headpose_ros.estimator.detectors.mediapipe_face import (SPECS, quarter_turn, ssd_anchor_centres,
                                                             weighted_nms)

pytest.importorskip("mediapipe", reason="the BlazeFace models ship in the mediapipe wheel")
cv2 = pytest.importorskip("cv2")


def test_anchor_counts_are_the_models_outputs():
    assert len(ssd_anchor_centres(128, SPECS["short"].strides, True)) == 896
    assert len(ssd_anchor_centres(192, SPECS["full"].strides, False)) == 2304
    centres = ssd_anchor_centres(128, SPECS["short"].strides, True)
    np.testing.assert_allclose(centres[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(centres[1], centres[0])  # two anchors per cell at stride 8
    np.testing.assert_allclose(centres[512], [0.5 / 8, 0.5 / 8])  # then six per cell at stride 16


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_quarter_turns_map_corners_onto_the_turned_image(turns):
    w, h = 64, 48
    m = quarter_turn(w, h, turns)
    img = np.zeros((h, w), np.uint8)
    img[2, 3] = 255
    tw, th = (h, w) if turns % 2 else (w, h)
    turned = np.rot90(img, -turns)  # numpy turns counter-clockwise; -k is clockwise
    assert turned.shape == (th, tw)
    y, x = np.argwhere(turned == 255)[0]
    centre = m @ np.array([3.5, 2.5, 1.0])  # the pixel's centre, continuous coordinates
    np.testing.assert_allclose(centre, [x + 0.5, y + 0.5])


def test_weighted_nms_averages_overlaps_and_keeps_the_best_score():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60.0]])
    kps = np.zeros((3, 6, 2))
    kps[1] += 1.0
    b, k, s = weighted_nms(boxes, kps, np.array([0.9, 0.3, 0.8]), 0.3)
    assert list(s) == [0.9, 0.8]
    np.testing.assert_allclose(b[0], [0.25, 0.25, 10.25, 10.25])
    np.testing.assert_allclose(k[0], 0.25)


def _images():
    from headpose_ros.tools.bench import make_frames

    examples = __import__("pathlib").Path(__file__).resolve().parents[1] / "examples"
    return [cv2.imread(str(p)) for p in sorted(examples.glob("*.jpg"))] + make_frames(1, 2) + make_frames(16, 2)


@pytest.mark.parametrize("models", ["short", "full"])
def test_tflite_runtime_finds_what_mediapipes_graph_finds(models):
    from headpose_ros.estimator.detectors.mediapipe_face import MediaPipeFaceDetector

    ours = MediaPipeFaceDetector(models=models, runtime="tflite", turns=1)
    graph = MediaPipeFaceDetector(models=models, runtime="graph")
    try:
        for image in _images():
            a, b = ours.detect(image), graph.detect(image)
            assert len(a) == len(b)
            for box in b:
                mine = max(a, key=box.iou)
                assert box.iou(mine) > 0.9 and abs(mine.score - box.score) < 0.01
                assert np.abs(mine.keypoints - box.keypoints).max() < 0.03 * box.width
    finally:
        ours.close()
        graph.close()
