"""The tiled detector (estimator/detectors/tiled.py): small faces pasted into HD frames are found."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from headpose_ros.estimator.detectors.tiled import (merge_boxes, stream_cycle, stream_subset, tile_grid,
                                                    tile_origins)
from headpose_ros.estimator.errors import ConfigError
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


@given(st.sampled_from([(1920, 1080), (1280, 720), (640, 480), (3840, 2160)]), st.integers(1, 100),
       st.integers(0, 10_000))
def test_stream_steps_search_every_tile_once_per_cycle(size: tuple[int, int], per_step: int, start: int) -> None:
    tiles = tile_grid(*size, 256, 0.35, 0.9)
    cycle = stream_cycle(len(tiles), per_step)
    steps = [stream_subset(tiles, step, per_step) for step in range(start, start + cycle)]
    assert all(len(s) <= per_step for s in steps)
    searched = [t for s in steps for t in s]
    assert sorted(searched) == sorted(tiles)  # each tile exactly once within any `cycle` consecutive steps
    assert stream_subset(tiles, start + cycle, per_step) == steps[0]  # and then again


def test_stream_cycles_of_the_default_tiles() -> None:
    assert [stream_cycle(len(tile_grid(w, h, 256, 0.35, 0.9)), 12) for w, h in ((1920, 1080), (1280, 720))] == [7, 4]


def test_merge_drops_duplicates_and_cut_faces_inside_better_ones() -> None:
    whole = FaceBox(100, 100, 160, 160, 0.9)
    duplicate = FaceBox(102, 101, 161, 162, 0.7)
    part = FaceBox(100, 100, 130, 160, 0.8)  # half of the face, from a tile's edge
    other = FaceBox(400, 100, 450, 150, 0.6)
    assert merge_boxes([duplicate, part, other, whole], 0.3, 0.6) == [whole, other]
    assert merge_boxes([duplicate, part, other, whole], 0.3, 0.6, nested_ratio=3.0) == [whole, other]  # 2x apart


def test_a_small_box_inside_a_much_wider_better_one_is_left_for_the_check() -> None:
    false_frame = FaceBox(0, 0, 600, 600, 0.9)  # e.g. a false whole-frame box around a small face
    face = FaceBox(300, 300, 340, 340, 0.6)  # 15x narrower, wholly inside it
    part = FaceBox(10, 10, 250, 250, 0.7)  # 2.5x narrower: a part of the big box's face, merged as before
    assert merge_boxes([face, false_frame, part], 0.3, 0.6) == [false_frame]  # nested_ratio 0: whatever the widths
    assert merge_boxes([face, false_frame, part], 0.3, 0.6, nested_ratio=3.0) == [false_frame, face]
    assert merge_boxes([face, false_frame], 0.3, 0.6, nested_ratio=20.0) == [false_frame]


@pytest.fixture(scope="module")
def detectors():
    pytest.importorskip("mediapipe")
    pytest.importorskip("skimage.data")
    from headpose_ros.estimator.detectors import DETECTORS

    plain, tiled = DETECTORS.create("mediapipe"), DETECTORS.create("tiled")  # tiled: min_width 1280
    yield plain, tiled
    plain.close()
    tiled.close()


def test_options_are_checked() -> None:
    pytest.importorskip("mediapipe")
    from headpose_ros.estimator.detectors.tiled import TiledFaceDetector

    for bad in ({"stream_tiles": 0}, {"stream_tiles": 2.5}, {"min_width": -1}, {"min_width": True},
                {"tile_options": {"graph_floor": "no"}}):
        with pytest.raises(ConfigError):
            TiledFaceDetector(**bad)
    with pytest.raises(ConfigError, match="base detector 'mediapipe'"):
        TiledFaceDetector(bogus=1)
    with pytest.raises(ConfigError, match="turns"):
        TiledFaceDetector(base_options={"turns": 4}, turns=1)


def _boxes(boxes: list[FaceBox]) -> list[tuple[float, ...]]:
    return [(b.x0, b.y0, b.x1, b.y1, b.score) for b in boxes]


def test_frames_narrower_than_min_width_get_exactly_the_base_detector(detectors) -> None:
    from headpose_ros.estimator.detectors import DETECTORS
    from headpose_ros.tools.bench import make_frames

    plain, narrow = detectors  # the tiled detector's default min_width is 1280
    full, narrow_full = DETECTORS.create("mediapipe", models="full"), DETECTORS.create("tiled", models="full")
    try:
        assert narrow.min_width == 1280
        assert narrow.tile_count(640, 480) == 0 and narrow.tile_count(1024, 768) == 0
        assert narrow.tile_count(1280, 720) == 40 and narrow.tile_count(1920, 1080) == 84
        frame = make_frames(4, 1, seed=3)[0]
        assert frame.shape[:2] == (480, 640)
        assert len(plain.detect(frame)) == 4
        assert _boxes(narrow.detect(frame)) == _boxes(plain.detect(frame))
        assert not any(b.unsure for b in narrow.detect(frame))
        for step in range(3):
            assert _boxes(narrow.detect_stream(frame, step)) == _boxes(plain.detect_stream(frame, step))
        assert narrow.detect_idle(frame, 0) is None  # video mode then searches the frame in full, as with plain
        # options that are not the tiled detector's own are its whole-frame (base) detector's
        assert narrow_full.base._turn_models == full._turn_models and len(narrow_full.base._detectors) == 1
        assert _boxes(narrow_full.detect(frame)) == _boxes(full.detect(frame))
    finally:
        full.close()
        narrow_full.close()


def test_the_default_estimator_tiles_hd_frames_only_and_matches_mediapipe_below_1280_px() -> None:
    pytest.importorskip("mediapipe")
    pytest.importorskip("skimage.data")
    from headpose_ros.estimator.config import EstimatorConfig
    from headpose_ros.estimator.pipeline import HeadPoseEstimator
    from headpose_ros.tools import scenes

    assert EstimatorConfig().detector == "tiled" and EstimatorConfig().detector_options == {}
    default = HeadPoseEstimator(EstimatorConfig(device="cpu"))
    plain = HeadPoseEstimator(EstimatorConfig(device="cpu", detector="mediapipe"), regressor=default.regressor)
    try:
        astronaut = scenes.face_sources()[0]
        for size, width in (((640, 480), 60.0), ((1024, 768), 90.0), ((640, 480), 200.0)):
            img, truth = scenes.face_scene(astronaut, width, size, np.random.default_rng([11, size[0]]))
            ours, theirs = default.process(img).faces, plain.process(img).faces
            assert len(ours) == len(theirs) == 1 and ours[0].box.iou(truth) > 0.3
            assert _boxes([f.box for f in ours]) == _boxes([f.box for f in theirs])
            np.testing.assert_array_equal(ours[0].pose.as_array(), theirs[0].pose.as_array())
        assert default.detector.tile_count(1024, 768) == 0 and default.detector.tile_count(1280, 720) == 40
    finally:
        default.close()
        plain.close()


class _Fixed:
    """A detector that finds the same boxes in any image."""

    def __init__(self, boxes: list[FaceBox]):
        self.boxes = boxes

    def detect(self, image_bgr: np.ndarray) -> list[FaceBox]:
        return list(self.boxes)


def test_what_only_the_tiles_find_is_unsure(monkeypatch) -> None:
    pytest.importorskip("mediapipe")
    from headpose_ros.estimator.detectors.tiled import TILE_OPTIONS, TiledFaceDetector

    detector = TiledFaceDetector()
    assert TILE_OPTIONS["min_score"] == 0.25 and not TILE_OPTIONS["graph_floor"] and detector.tile_min_score == 0.5
    assert detector.tiles._detectors[0].logit_threshold < 0.0  # the full-range model keeps detections from 0.25
    monkeypatch.setattr(detector, "grid", lambda width, height: [(0, 0, 256), (512, 256, 256)])
    detector.tiles = _Fixed([FaceBox(10, 10, 50, 50, 0.55), FaceBox(100, 100, 150, 150, 0.65)])
    detector.base = _Fixed([FaceBox(521, 265, 561, 305, 0.52)])  # the whole frame's pass: the second tile's 0.55
    found = detector.detect(np.zeros((720, 1280, 3), np.uint8))
    assert [(b.x0, b.y0, b.score, b.unsure) for b in found] == [
        (100, 100, 0.65, True), (612, 356, 0.65, True), (10, 10, 0.55, True), (522, 266, 0.55, False)]
    assert found[0].clipped(1280, 720).unsure  # kept through the pipeline's selection
    # a whole-frame box that is itself unsure (the short-range model in a turned image) makes nothing sure
    detector.base = _Fixed([FaceBox(521, 265, 561, 305, 0.52, unsure=True)])
    assert [b.unsure for b in detector.detect(np.zeros((720, 1280, 3), np.uint8))] == [True] * 4


class _Crops:
    """A look detector that finds one box at a fixed place of each crop and records the crops' shapes."""

    def __init__(self, box: FaceBox):
        self.box, self.shapes = box, []

    def detect(self, image_bgr: np.ndarray) -> list[FaceBox]:
        self.shapes.append(image_bgr.shape[:2])
        return [self.box]


def test_weak_tile_detections_get_a_second_look(monkeypatch) -> None:
    pytest.importorskip("mediapipe")
    from headpose_ros.estimator.detectors.tiled import TiledFaceDetector

    detector = TiledFaceDetector(looks=2)
    monkeypatch.setattr(detector, "grid", lambda width, height: [(0, 0, 256)])
    detector.base = _Fixed([FaceBox(600, 300, 700, 400, 0.9)])
    # a box from 0.5, and three hints: one under the whole frame's face, two free
    detector.tiles = _Fixed([FaceBox(10, 10, 50, 50, 0.6), FaceBox(100, 100, 140, 140, 0.4),
                             FaceBox(150, 20, 190, 60, 0.3), FaceBox(610, 310, 690, 390, 0.45)])
    detector.looker = _Crops(FaceBox(30, 31, 70, 71, 0.8))  # a face in the middle of a 100-px crop
    found = detector.detect(np.zeros((720, 1280, 3), np.uint8))
    # crops of 2.5 x 40 px around the free hints (best first; the second cut by the frame's top edge); the hint under
    # the whole frame's face is not looked at
    assert detector.looker.shapes == [(100, 100), (90, 100)]
    assert [(b.x0, b.y0, b.score, b.unsure) for b in found] == [
        (600, 300, 0.9, False), (100, 101, 0.8, True), (150, 31, 0.8, True), (10, 10, 0.6, True)]
    detector.looks = 1
    detector.looker.shapes.clear()
    assert (100, 101, 0.8) in [(b.x0, b.y0, b.score) for b in detector.detect(np.zeros((720, 1280, 3), np.uint8))]
    assert detector.looker.shapes == [(100, 100)]
    # a look that finds nothing overlapping the hint adds nothing
    detector.looker = _Crops(FaceBox(0, 0, 10, 10, 0.9))
    assert len(detector.detect(np.zeros((720, 1280, 3), np.uint8))) == 2
    assert TiledFaceDetector(looks=0).looker is None
    with pytest.raises(ConfigError, match="look_context"):
        TiledFaceDetector(look_context=0.5)
    with pytest.raises(ConfigError, match="nested_ratio"):
        TiledFaceDetector(nested_ratio=0.5)


def test_a_false_whole_frame_box_no_longer_hides_a_small_face(tiled_estimator, monkeypatch) -> None:
    from headpose_ros.tools import scenes

    img, truth = scenes.face_scene(scenes.face_sources()[0], 45.0, SIZE, np.random.default_rng(5))
    detector = tiled_estimator.detector
    real_base = detector.base.detect
    assert not any(b.iou(truth) > 0.3 for b in real_base(img))  # only the tiles find the face
    cx, cy = truth.center
    wall = FaceBox(max(0.0, cx - 250), max(0.0, cy - 250), min(SIZE[0], cx + 250), min(SIZE[1], cy + 250), 0.95)
    assert wall.intersection(truth) == pytest.approx(truth.area)  # a false 500-px box around it, scored higher
    monkeypatch.setattr(detector.base, "detect", lambda image: real_base(image) + [wall])
    tiled_estimator.video.reset()
    assert detector.nested_ratio == 3.0
    assert any(b.iou(truth) > 0.3 for b in detector.detect(img)) and any(b.score == 0.95 for b in detector.detect(img))
    result = tiled_estimator.process(img)
    assert _found(result, truth) and not any(f.box.score == 0.95 for f in result.faces)  # the false box fails the check
    monkeypatch.setattr(detector, "nested_ratio", 0.0)  # the containment merge whatever the widths: the face is lost
    assert not any(b.iou(truth) > 0.3 for b in detector.detect(img))
    assert not _found(tiled_estimator.process(img), truth)


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


@pytest.mark.parametrize("size, width, seed", [((1280, 720), 120, 1), ((1920, 1080), 40, 1)])
def test_the_tiles_find_the_cameraman_below_the_full_range_floor_and_the_mesh_confirms_him(
        tiled_estimator, size: tuple[int, int], width: int, seed: int) -> None:
    from headpose_ros.estimator.config import EstimatorConfig
    from headpose_ros.estimator.pipeline import HeadPoseEstimator
    from headpose_ros.tools import scenes

    # scenes of `python -m headpose_ros.tools.small_faces --pipeline --seeds 1` that the tiles missed while they
    # kept the full-range model's floor of 0.6: the model scores him 0.56 and 0.54 in his best tile
    rng = np.random.default_rng([seed, 2, width, size[0]])
    img, truth = scenes.face_scene(scenes.face_sources()[2], float(width), size, rng)
    assert not any(b.iou(truth) > 0.3 for b in tiled_estimator.detector.base.detect(img))
    floor = HeadPoseEstimator(EstimatorConfig(device="cpu", detector="tiled",
                                              detector_options={"tile_options": {"models": "full", "turns": 1}}),
                              regressor=tiled_estimator.regressor)
    try:
        assert not _found(floor.process(img), truth)
    finally:
        floor.close()
    faces = [f for f in tiled_estimator.process(img).faces if f.box.iou(truth) > 0.3]
    assert len(faces) == 1 and faces[0].box.unsure and 0.52 <= faces[0].box.score <= 0.58


@pytest.fixture(scope="module")
def tiled_estimator():
    pytest.importorskip("mediapipe")
    pytest.importorskip("skimage.data")
    from headpose_ros.estimator.config import EstimatorConfig
    from headpose_ros.estimator.pipeline import HeadPoseEstimator

    est = HeadPoseEstimator(EstimatorConfig(device="cpu", detector="tiled"), video_redetect_every=3)
    yield est
    est.close()


def _count_tiles(monkeypatch, detector) -> list[int]:
    """Tiles searched per frame: append 0 before each frame; the tile detector's calls add to the last entry."""
    counts = [0]

    def counted(img, _d=detector.tiles.detect):
        counts[-1] += 1
        return _d(img)

    monkeypatch.setattr(detector.tiles, "detect", counted)
    return counts


def _found(result, truth: FaceBox) -> bool:
    return any(f.box.iou(truth) > 0.3 for f in result.faces)


SIZE = (1280, 720)


def test_video_mode_finds_a_small_newcomer_within_a_cycle_of_idle_steps(tiled_estimator, monkeypatch) -> None:
    from headpose_ros.tools import scenes

    astronaut = scenes.face_sources()[0]
    face, truth = scenes.face_scene(astronaut, 45.0, SIZE, np.random.default_rng(5))
    empty = scenes.background(SIZE, np.random.default_rng(5))  # the same frame without the face
    detector = tiled_estimator.detector
    assert not any(b.iou(truth) > 0.3 for b in detector.base.detect(face))  # too small for the whole-frame pass
    cycle = detector.stream_cycle(*SIZE)
    assert cycle == 4
    counts = _count_tiles(monkeypatch, detector)
    for lead in range(1, cycle + 1):  # the face appears at every phase of the tile cycle
        tiled_estimator.video.reset()
        counts[:] = []
        frames_to_find = None
        for t in range(lead + cycle):
            counts.append(0)
            result = tiled_estimator.process(empty if t < lead else face, video=True)
            if t >= lead and _found(result, truth):
                frames_to_find = t - lead + 1
                break
        assert counts[0] == detector.tile_count(*SIZE)  # a stream's first frame: every tile
        assert all(0 < c <= detector.stream_tiles for c in counts[1:])  # then a step of the cycle per frame
        assert frames_to_find is not None and frames_to_find <= cycle, (lead, frames_to_find)
        counts.append(0)
        assert _found(tiled_estimator.process(face, video=True), truth)  # then followed by the mesh, no tiles
        assert tiled_estimator.video.last_mode == "track" and counts[-1] == 0
    modes = []
    for _ in range(cycle * tiled_estimator.video.redetect_every):  # periodic searches leave its tile out: kept
        assert _found(tiled_estimator.process(face, video=True), truth)
        modes.append(tiled_estimator.video.last_mode)
    assert modes.count("detect") >= cycle - 1


def test_video_mode_finds_a_small_newcomer_beside_a_followed_face(tiled_estimator, monkeypatch) -> None:
    from headpose_ros.tools import scenes

    sources = scenes.face_sources()
    big, big_truth = scenes.face_scene(sources[-1], 200.0, SIZE, np.random.default_rng(1))
    small, truth = scenes.face_scene(sources[0], 45.0, SIZE, np.random.default_rng(2))
    assert big_truth.iou(truth) == 0.0
    both = big.copy()
    x0, y0, x1, y1 = (int(v) for v in (truth.x0 - 30, truth.y0 - 30, truth.x1 + 30, truth.y1 + 30))
    both[max(y0, 0):y1, max(x0, 0):x1] = small[max(y0, 0):y1, max(x0, 0):x1]
    detector = tiled_estimator.detector
    cycle, every = detector.stream_cycle(*SIZE), tiled_estimator.video.redetect_every
    counts = _count_tiles(monkeypatch, detector)
    tiled_estimator.video.reset()
    first = tiled_estimator.process(big, video=True)
    assert _found(first, big_truth) and len(first.faces) == 1
    frames_to_find = None
    for t in range(1, 1 + cycle * every + 1):
        counts.append(0)
        result = tiled_estimator.process(both, video=True)
        assert _found(result, big_truth)
        if _found(result, truth):
            frames_to_find = t
            break
    assert frames_to_find is not None and frames_to_find <= cycle * every  # within a cycle of periodic detections
    assert max(counts[1:]) <= detector.stream_tiles and counts.count(0) >= len(counts[1:]) // 2  # tracked frames


def test_video_measurement_counts_frames_to_find_and_kept_frames(monkeypatch) -> None:
    from types import SimpleNamespace

    from headpose_ros.tools import small_faces

    truth = FaceBox(10, 10, 50, 50, 1.0)
    empty, face = np.zeros((240, 320, 3), np.uint8), np.ones((240, 320, 3), np.uint8)
    monkeypatch.setattr(small_faces, "clips", lambda *a: iter([("320x240@40", empty, face, truth, lead)
                                                               for lead in (1, 5, 12)]))

    class Fake:
        """Reports the face from its 3rd frame with the face on, except on every 4th such frame."""

        def __init__(self):
            self.video = SimpleNamespace(reset=self.reset)

        def reset(self):
            self.seen = 0

        def process(self, img, video=False):
            self.seen += img is face
            found = img is face and self.seen >= 3 and self.seen % 4 != 0
            return SimpleNamespace(faces=[SimpleNamespace(box=truth)] if found else [])

    out = small_faces.measure_video({"fake": Fake()}, [(320, 240)], [40], [0], frames=11, within=(2, 3))
    fig = out["fake"]["320x240"]
    assert fig["clips"] == 3 and fig["found_within_2"] == 0.0 and fig["found_within_3"] == 1.0
    assert fig["frames_to_find_max"] == 3 and fig["found"] == 1.0
    assert fig["kept"] == pytest.approx(6 / 8)  # frames 4-11 after the first find: 4 and 8 are missed


def test_found_rate_per_yaw_band_of_labelled_sources(monkeypatch) -> None:
    from headpose_ros.tools import scenes, small_faces

    truth = FaceBox(10, 10, 50, 50, 1.0)
    sources = [scenes.FaceSource(f"s{i}", np.full((8, 8, 3), i, np.uint8), truth, (yaw, 0.0, 0.0))
               for i, yaw in enumerate((10.0, -50.0, 70.0, -85.0))]
    monkeypatch.setattr(scenes, "face_scene", lambda source, width, size, rng: (source.image, truth))

    class Fake:
        """Finds the faces of the first two sources (|yaw| below 60 deg) only."""

        def detect(self, img):
            return [FaceBox(11, 11, 49, 49, 0.9)] if img[0, 0, 0] < 2 else []

    out = small_faces.measure({"fake": Fake()}, [(320, 240)], [40], [0, 1], sources=sources)
    bands = out["fake"]["found_by_abs_yaw"]
    assert list(bands) == ["0-45", "45-60", "60-75", "75-180"]
    assert [bands[b]["found"] for b in bands] == [1.0, 1.0, 0.0, 0.0]
    assert all(bands[b]["faces"] == 2 for b in bands) and out["fake"]["found"]["320x240"] == 0.5
    assert "mean_error_deg" not in bands["0-45"]  # boxes carry no pose

    def faces(label, img):
        """The estimator's faces: each found face's pose is off by 3 deg of yaw and 6 of roll."""
        from types import SimpleNamespace

        ypr = np.array(sources[int(img[0, 0, 0])].ypr) + [3.0, 0.0, 6.0]
        return [SimpleNamespace(box=b, pose=SimpleNamespace(as_array=lambda: ypr)) for b in Fake().detect(img)]

    bands = small_faces.measure({"fake": Fake()}, [(320, 240)], [40], [0], sources=sources,
                                runner=faces)["fake"]["found_by_abs_yaw"]
    assert bands["0-45"]["mean_error_deg"] == pytest.approx(3.0) and "mean_error_deg" not in bands["60-75"]


def test_of_two_nested_faces_that_pass_the_check_the_better_scored_stays() -> None:
    from headpose_ros.estimator.pipeline import _unnested

    big, small, beside = FaceBox(0, 0, 600, 600, 0.9), FaceBox(300, 300, 340, 340, 0.6), FaceBox(700, 0, 740, 40, 0.5)
    keypoints = object()
    pairs = [(big, keypoints), (small, keypoints), (beside, keypoints)]
    assert _unnested(pairs) == [pairs[0], pairs[2]]
    better_small = FaceBox(300, 300, 340, 340, 0.95)  # the merge's rule: the better score stays, whatever the size
    assert _unnested([(big, keypoints), (better_small, keypoints)]) == [(better_small, keypoints)]
    edge = FaceBox(590, 300, 630, 340, 0.6)  # a quarter of it inside the big box: not nested
    assert small.containment(big) == big.containment(small) == 1.0 and edge.containment(big) == 0.25
    assert _unnested([(big, keypoints), (edge, keypoints)]) == [(big, keypoints), (edge, keypoints)]
