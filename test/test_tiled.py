"""The tiled detector (estimator/detectors/tiled.py): small faces pasted into HD frames are found."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from headpose_ros.estimator.detectors.tiled import merge_boxes, tile_grid, tile_origins
from headpose_ros.estimator.types import FaceBox


@given(st.integers(64, 4000), st.integers(64, 2000), st.floats(0.0, 0.6))
def test_tiles_cover_the_frame_with_the_overlap_asked(length: int, tile: int, overlap: float) -> None:
    starts = tile_origins(length, tile, overlap)
    assert starts[0] == 0
    if tile >= length:
        assert starts == [0]
        return
    assert starts[-1] + tile == length
    gaps = np.diff(starts)
    assert np.all(gaps > 0)
    assert np.all(tile - gaps >= overlap * tile - 1)  # neighbours overlap by at least `overlap` of a tile


def test_tile_pyramid_levels_double_and_stop_below_the_frame() -> None:
    sides = sorted({side for _, _, side in tile_grid(1920, 1080, 320, 0.35, 0.9)})
    assert sides == [320, 640]  # tiles of 320 and 640 px; 1280 is wider than 0.9 x 1080
    assert tile_grid(320, 240, 320, 0.35, 0.9) == []


def test_merge_drops_duplicates_and_cut_faces_inside_better_ones() -> None:
    whole = FaceBox(100, 100, 160, 160, 0.9)
    duplicate = FaceBox(102, 101, 161, 162, 0.7)
    part = FaceBox(100, 100, 130, 160, 0.8)  # half of the face, from a tile's edge
    other = FaceBox(400, 100, 450, 150, 0.6)
    assert merge_boxes([duplicate, part, other, whole], 0.3, 0.6) == [whole, other]


@pytest.fixture(scope="module")
def detectors():
    pytest.importorskip("mediapipe")
    pytest.importorskip("skimage.data")
    from headpose_ros.estimator.detectors import DETECTORS

    plain, tiled = DETECTORS.create("mediapipe"), DETECTORS.create("tiled")
    yield plain, tiled
    plain.close()
    tiled.close()


@pytest.mark.parametrize("size", [(1920, 1080), (1280, 720)])
def test_small_faces_in_hd_frames_are_found(detectors, size: tuple[int, int]) -> None:
    from headpose_ros.tools import scenes

    plain, tiled = detectors
    found = {"plain": 0, "tiled": 0}
    n = 0
    for i, source in enumerate(scenes.face_sources()):
        for width in (40, 60, 90, 120):
            img, truth = scenes.face_scene(source, float(width), size, np.random.default_rng([7, i, width]))
            n += 1
            for name, det in (("plain", plain), ("tiled", tiled)):
                found[name] += any(b.iou(truth) > 0.3 and b.score >= 0.5 for b in det.detect(img))
    assert found["tiled"] >= 0.9 * n
    assert found["plain"] <= 0.75 * n  # these faces are too small for the plain detector
