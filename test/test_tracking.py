"""FaceTracker: stable ids across frames, new ids for new faces, forgetting after missed frames."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headpose_ros.estimator.errors import ConfigError
from headpose_ros.estimator.tracking import FaceTracker, centre_distance
from headpose_ros.estimator.types import FaceBox


def box(x: float, y: float, size: float = 100.0) -> FaceBox:
    return FaceBox(x, y, x + size, y + size, 0.9)


def test_ids_stay_stable_while_faces_move_and_swap_order():
    tracker = FaceTracker()
    first = tracker.update([box(0, 0), box(300, 0)])
    assert first.ids == [1, 2] and first.new == [1, 2]
    second = tracker.update([box(310, 5), box(8, 4)])  # same faces, listed in the other order
    assert second.ids == [2, 1] and second.new == [] and second.forgotten == []
    assert tracker.age(1) == 2 and tracker.tracks[1].hits == 2


def test_a_box_that_changes_size_matches_by_centre_then_a_jump_makes_a_new_id():
    tracker = FaceTracker(iou_threshold=0.3, max_centre_distance=0.5)
    tracker.update([box(0, 0)])
    assert tracker.update([box(20, 20, 50)]).ids == [1]  # IoU 0.25 < 0.3, centre 0.09 box sizes away
    strict = FaceTracker(iou_threshold=0.3, max_centre_distance=0.0)
    strict.update([box(0, 0)])
    assert strict.update([box(20, 20, 50)]).ids == [2]  # without the centre rule: a new face
    jump = tracker.update([box(400, 0)])
    assert jump.ids == [2] and jump.new == [2]


def test_missed_frames_keep_the_id_until_max_missed_then_forget():
    tracker = FaceTracker(max_missed=2)
    tracker.update([box(0, 0)])
    assert tracker.update([]).forgotten == []
    assert tracker.update([]).forgotten == []
    assert tracker.update([box(2, 2)]).ids == [1]  # back within max_missed: same id
    tracker.update([])
    tracker.update([])
    gone = tracker.update([])
    assert gone.forgotten == [1] and 1 not in tracker.tracks
    assert tracker.update([box(0, 0)]).ids == [2]  # ids are never reused


def test_one_box_never_takes_two_tracks():
    tracker = FaceTracker()
    tracker.update([box(0, 0), box(60, 0)])
    update = tracker.update([box(30, 0)])
    assert len(update.ids) == 1 and update.ids[0] in (1, 2)


def test_reset_and_configure():
    tracker = FaceTracker()
    tracker.update([box(0, 0)])
    assert tracker.reset() == [1]
    assert tracker.update([box(0, 0)]).ids == [2]
    with pytest.raises(ConfigError):
        tracker.configure(1.5, 0.5, 5)
    with pytest.raises(ConfigError):
        tracker.configure(0.3, 0.5, -1)


def test_centre_distance_is_in_box_sizes():
    assert centre_distance(box(0, 0), box(50, 0)) == pytest.approx(0.5)
    assert centre_distance(FaceBox(0, 0, 0, 0), FaceBox(0, 0, 0, 0)) == float("inf")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.tuples(st.floats(0, 1000), st.floats(0, 1000), st.floats(5, 200)), max_size=6),
                min_size=1, max_size=8))
def test_ids_within_a_frame_are_unique_and_new_ids_are_fresh(frames):
    tracker = FaceTracker(max_missed=1)
    seen: set[int] = set()
    for frame in frames:
        update = tracker.update([box(x, y, s) for x, y, s in frame])
        assert len(update.ids) == len(frame)
        assert len(set(update.ids)) == len(update.ids)
        assert not set(update.new) & seen
        seen |= set(update.ids)
        assert set(update.ids) <= set(tracker.tracks)


def test_concurrent_updates_do_not_corrupt_state():
    tracker = FaceTracker()
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(200):
                tracker.update([box(offset + i % 3, 0), box(offset + 500, 0)])
                _ = tracker.tracks
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(t.missed <= tracker.max_missed for t in tracker.tracks.values())
