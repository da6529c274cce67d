"""bench-ros's own arithmetic (the ROS part runs in the tool itself: `headpose-ros bench-ros`)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from headpose_ros.ros import messages
from headpose_ros.tools.bench_ros import cpu_seconds, format_report, latency_breakdown, peak_rss_mib


def test_cpu_seconds_counts_this_process_work():
    before = cpu_seconds(os.getpid())
    end = time.process_time() + 0.2
    while time.process_time() < end:  # burn 0.2 s of CPU
        pass
    assert cpu_seconds(os.getpid()) - before >= 0.15


def test_report_compares_the_node_with_the_estimator_and_the_transport_floor():
    est = {"fps": 20.0, "ms_mean": 50.0, "ms_p50": 48.0, "ms_p95": 60.0, "faces_found_mean": 1.0}
    node = {"published": 300, "publish_rate_hz": 30.0, "pose_rate_hz": 18.0,
            "latency_ms": {"p50": 60.0, "p95": 80.0, "p99": 90.0, "mean": 62.0},
            "node_diagnostics": {"frames_received": "300", "frames_processed": "180", "frames_skipped": "120",
                                 "frames_failed": "0"},
            "node_cpu_idle_pct": 0.4, "node_cpu_loaded_pct": 95.0, "node_startup_s": 2.31,
            "node_peak_rss_mib": 250.5}
    floor = {"latency_ms": {"p50": 4.0, "p95": 6.0, "p99": 7.0, "mean": 4.2}}
    text = format_report(est, node, floor, rate=30.0)
    assert "90% of min(rate, estimator) = 20.0" in text  # 18 Hz of the 20 the estimator reaches
    assert "p50 / estimator p50 = 1.25x" in text  # 60 ms against 48 ms
    assert "mean / estimator mean = 1.24x" in text  # 62 ms against 50 ms
    assert "node p50 minus floor = 56.0 ms" in text
    assert "skipped 120" in text and "idle 0.4 %" in text
    assert "start to subscribed 2.3 s, peak RSS 250.5 MiB" in text


def test_peak_rss_of_this_process_and_of_no_process():
    assert 10.0 < peak_rss_mib(os.getpid()) < 64 * 1024
    assert peak_rss_mib(2 ** 22 + 12345) is None  # above the kernel's pid limit: no such process


def test_breakdown_matches_trace_and_peer_frames_by_stamp():
    frames = [{"sec": 10, "nanosec": i, "stamp": 100.0 + i, "published": 100.001 + i, "arrived": 100.020 + i}
              for i in range(3)]
    frames.append({"sec": 10, "nanosec": 3, "stamp": 103.0, "published": 103.001, "arrived": None})  # no pose
    trace = [{"sec": 10, "nanosec": i, "received": 100.003 + i, "started": 100.004 + i, "processed": 100.016 + i,
              "estimator_ms": 11.0, "head_pose": 100.017 + i} for i in (0, 1, 3)]  # frame 2 was skipped
    parts = latency_breakdown(frames, trace)
    assert parts["frames"] == 2
    assert parts["stamp -> image callback"] == 3.0 and parts["callback -> worker"] == 1.0
    assert parts["decode + estimator + tracking"] == 12.0 and parts["published -> peer"] == 3.0
    assert parts["stamp -> peer (latency)"] == 20.0 and parts["latency - estimator in the node"] == 9.0
    assert parts["latency / estimator in the node, per frame"] == 1.82  # 20 ms over 11 ms


def test_the_camera_peer_writes_the_stamp_into_a_serialized_image():
    from headpose_ros.ros.bench_peer import stamped_cdr
    from headpose_ros.ros.messages import HeaderData, RosbagsTypes

    types = RosbagsTypes()
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    msg = messages.image_msg(types, HeaderData(1, 2, "cam_optical_frame"), pixels)
    serialized = bytearray(types.serialize(msg))
    back = types.deserialize(stamped_cdr(serialized, 1764633600, 999_999_999), "sensor_msgs/msg/Image")
    assert (back.header.stamp.sec, back.header.stamp.nanosec) == (1764633600, 999_999_999)
    assert back.header.frame_id == "cam_optical_frame" and bytes(back.data) == pixels.tobytes()
    serialized[1] = 0  # big-endian encapsulation: the stamp would be written wrongly
    with pytest.raises(ValueError, match="little-endian"):
        stamped_cdr(serialized, 1, 2)
