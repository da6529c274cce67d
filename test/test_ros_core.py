"""The node's ROS-free core (tracking, smoothing, primary head, runtime parameters) and its diagnostics."""

from __future__ import annotations

import re

import numpy as np
import pytest

from headpose_ros.estimator.config import EstimatorConfig
from headpose_ros.estimator.stream import StreamStats
from headpose_ros.estimator.types import CameraIntrinsics, FaceBox, FrameResult
from headpose_ros.ros import messages
from headpose_ros.ros.core import HeadPoseCore, select_primary
from headpose_ros.ros.diagnostics import DiagnosticsWindow, Thresholds
from headpose_ros.ros.image_codec import ImageDecodeError
from headpose_ros.ros.messages import HeaderData, RosbagsTypes

from ros_test_helpers import sample_face

BIG, SMALL = FaceBox(0, 0, 200, 200, 0.9), FaceBox(400, 0, 450, 50, 0.9)


class ScriptedEstimator:
    """Returns the faces of a script, one list per call; records the intrinsics it was given."""

    def __init__(self, script):
        self.config = EstimatorConfig()
        self.script = list(script)
        self.intrinsics = []
        self.video = []
        self.closed = False

    def process(self, image, intrinsics=None, video=False):
        self.intrinsics.append(intrinsics)
        self.video.append(video)
        faces = self.script.pop(0)
        return FrameResult(faces=faces, image_size=(640, 480), stages_ms={"detect": 1.0, "total": 2.0})

    def close(self):
        self.closed = True


IMG = np.zeros((480, 640, 3), np.uint8)


def header(t: float) -> HeaderData:
    return HeaderData.from_ns(int(t * 1e9), "cam")


def test_ids_gone_heads_and_primary_rules():
    a, b = sample_face(yaw=10, box=BIG), sample_face(yaw=-10, box=SMALL)
    est = ScriptedEstimator([[b], [a, b], [a, b], [a]])
    core = HeadPoseCore(est)
    r1 = core.process(IMG, header(0.0))
    assert r1.ids == [1] and r1.primary_id == 1
    r2 = core.process(IMG, header(0.1))
    assert r2.ids == [2, 1] and r2.primary_id == 2  # largest
    core.apply({"primary_face": "longest_tracked"})
    r3 = core.process(IMG, header(0.2))
    assert r3.primary_id == 1 and r3.ages == [2, 3]
    r4 = core.process(IMG, header(0.3))
    assert r4.ids == [2] and r4.gone_ids == [1] and r4.primary_id == 2
    core.close()
    assert est.closed


def test_face_ids_are_rep155_tokens_stable_while_tracked_and_live_until_forgotten():
    a, b = sample_face(yaw=10, box=BIG), sample_face(yaw=-10, box=SMALL)
    est = ScriptedEstimator([[b], [a, b], [a], [a], [a, b]])
    core = HeadPoseCore(est, {"tracking.max_missed": 1}, id_seed=7)
    r1 = core.process(IMG, header(0.0))
    (tb,) = r1.face_ids
    assert re.fullmatch(r"[a-z]{5}", tb) and r1.live_face_ids == [tb] and r1.primary_face_id == tb
    r2 = core.process(IMG, header(0.1))
    ta = r2.face_ids[0]
    assert r2.face_ids == [ta, tb] and ta != tb and r2.ids == [2, 1]  # parallel to the track ids
    r3 = core.process(IMG, header(0.2))  # b missed once: not seen, still tracked
    assert r3.face_ids == [ta] and sorted(r3.live_face_ids) == sorted([ta, tb])
    r4 = core.process(IMG, header(0.3))  # b missed twice > max_missed: forgotten
    assert r4.face_ids == [ta] and r4.live_face_ids == [ta]
    r5 = core.process(IMG, header(0.4))  # b is back: a new track, a new token
    assert r5.face_ids[0] == ta and r5.face_ids[1] not in (ta, tb)
    again = HeadPoseCore(ScriptedEstimator([[b]]), id_seed=7)
    assert again.process(IMG, header(0.0)).face_ids == [tb]  # a seed makes the tokens reproducible


def test_select_primary_edge_cases():
    assert select_primary([], [], "largest") is None
    with pytest.raises(ValueError):
        select_primary([sample_face()], [1], "nearest")


def test_smoothing_on_and_runtime_thresholds():
    raw = [sample_face(yaw=0, box=BIG), sample_face(yaw=30, box=BIG)]
    est = ScriptedEstimator([[raw[0]], [raw[1]], [raw[0]], [raw[1]]])
    core = HeadPoseCore(est, {"smoothing.enabled": True, "smoothing.min_cutoff": 1.0, "smoothing.beta": 0.0})
    core.process(IMG, header(0.0))
    smoothed = core.process(IMG, header(1 / 30))
    assert 0 < smoothed.faces[0].pose.yaw < 30  # filtered toward the previous measurement
    core.apply({"smoothing.enabled": False, "min_face_score": 0.7, "max_faces": 3})
    assert est.config.min_face_score == 0.7 and est.config.max_faces == 3
    core.process(IMG, header(2 / 30))
    assert core.process(IMG, header(3 / 30)).faces[0].pose.yaw == pytest.approx(30)


def test_camera_info_switch_and_message_decoding():
    est = ScriptedEstimator([[], [], []])
    core = HeadPoseCore(est)
    cam = CameraIntrinsics(500, 500, 320, 240)
    types = RosbagsTypes()
    msg = messages.image_msg(types, HeaderData(7, 8, "cam"), IMG)
    result = core.process_msg(msg, cam)
    assert result.header == HeaderData(7, 8, "cam") and result.primary is None and result.faces == []
    core.apply({"use_camera_info": False})
    core.process_msg(msg, cam)
    assert est.intrinsics == [cam, None]
    bad = types.make("sensor_msgs/msg/Image", header=messages.header_msg(types, HeaderData(7, 8, "cam")), height=2,
                     width=2, encoding="bgr8", is_bigendian=0, step=6, data=np.zeros(3, np.uint8))
    with pytest.raises(ImageDecodeError):
        core.process_msg(bad)


class Clock:
    """A clock the test sets by hand (seconds)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def stats(**kw) -> StreamStats:
    return StreamStats(**kw)


def test_diagnostics_ok_warn_error_and_timeout():
    clock = Clock()
    win = DiagnosticsWindow(clock)
    th = Thresholds(latency_warn_ms=100, latency_error_ms=1000, input_timeout_s=5, failure_ratio_error=0.5)
    for _ in range(10):
        win.input()
        win.result({"detect": 10, "keypoints": 5, "regress": 5, "total": 20}, faces=2)
    clock.now = 1.0
    ok = win.report(stats(submitted=10, processed=10), th, "n", "/CPU:0", {"device": "/CPU:0"})
    assert ok.level == "OK" and ok.values["input_rate_hz"] == pytest.approx(10)
    assert ok.values["total_ms_mean"] == pytest.approx(20) and ok.values["faces"] == 2
    win.input()
    win.result({"total": 300}, faces=1)
    clock.now = 2.0
    assert win.report(stats(), th, "n").level == "WARN"
    win.input()
    win.result({"total": 3000}, faces=1)
    clock.now = 3.0
    assert win.report(stats(), th, "n").level == "ERROR"
    win.failure(True, "ImageDecodeError: truncated")
    win.result({"total": 10}, faces=0)
    clock.now = 4.0
    err = win.report(stats(failed=1), th, "n")
    assert err.level == "ERROR" and "1 of 2 frames failed" in err.message and err.values["bad_images"] == 1
    clock.now = 10.0
    stale = win.report(stats(), th, "n")
    assert stale.level == "WARN" and "no image for" in stale.message
    msg = messages.diagnostic_array(RosbagsTypes(), HeaderData(1, 2, ""), [ok, stale])
    assert len(msg.status) == 2


def test_debug_drawing_leaves_the_input_alone_and_marks_each_face():
    from headpose_ros.ros.draw import draw_debug

    img = np.zeros((480, 640, 3), np.uint8)
    faces = [sample_face(yaw=20, box=BIG, position=(0.0, 0.0, 1.0), is_ray=True)]
    out = draw_debug(img, faces, ["abcde"], primary_face_id="abcde")
    assert out.shape == img.shape and out.dtype == np.uint8
    assert not img.any() and out.any()
    assert out[205:230, 0:200].any()  # the id label below the box
    assert draw_debug(img, [], []).sum() == 0


def test_video_mode_parameter_reaches_the_estimator():
    est = ScriptedEstimator([[], [], []])
    core = HeadPoseCore(est)
    core.process(IMG, header(0.0))
    core.apply({"video_mode": False})
    core.process(IMG, header(0.1))
    core.apply({"video_mode": True})
    core.process(IMG, header(0.2))
    assert est.video == [True, False, True]  # on by default: the node and the bag tool process streams
