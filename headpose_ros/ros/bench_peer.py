"""The camera side of ``headpose-ros bench-ros``: a separate ROS 2 process that publishes frames at a fixed rate
and measures what comes back from headpose_node.

It publishes ``sensor_msgs/Image`` (bgr8) frames loaded from a ``.npy`` file (N, H, W, 3) for ``--seconds`` at
``--rate`` Hz, as a camera driver would: the stamp is the wall clock when the frame is due (the frame exists),
then the frame's message, serialized once per frame before the run, gets that stamp and is published, so the
latency includes handing 921,600 bytes to the middleware but not Python's cost of building the message (about
0.3 ms per frame in bench-ros, where a C++ driver fills a buffer). It receives ``/head_pose`` and the node's
``/diagnostics`` and writes one JSON object:
frames published, poses received, each pose's latency from image stamp to arrival (seconds; bench-ros summarises
them), per frame its stamp, when ``publish`` returned and when its pose arrived, and the node's last diagnostic
values. Both processes run on one machine, so the stamps and the arrival times come from the same clock. With
``--echo`` it is instead a node that answers each image with a ``PoseStamped`` carrying the image's header at
once: the transport floor of the latency (image out, pose back, through rclpy and DDS) without any processing;
with ``--out`` it writes when each image arrived and when its answer was published. Both roles apply the node's
malloc settings (:mod:`headpose_ros.ros.memory`), so that the floor is measured the way the node receives.
Started by :mod:`headpose_ros.tools.bench_ros`; not a user tool.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import time
from typing import Any, Optional

import numpy as np

from .memory import keep_image_buffers


def _image_qos(reliability: str) -> Any:
    """The image QoS both roles use: depth 5, ``reliable`` or ``best_effort``."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    policy = ReliabilityPolicy.RELIABLE if reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(depth=5, reliability=policy)


#: CDR encapsulation of a little-endian message (the first 4 bytes of ROS 2's serialized messages on x86/ARM).
CDR_LE = b"\x00\x01\x00\x00"


def stamped_cdr(message: bytearray, sec: int, nanosec: int) -> bytes:
    """A serialized message whose first field is a ``std_msgs/Header`` (CDR, little-endian) with its stamp set
    to ``sec``/``nanosec``: the stamp is the Header's first field, right after the 4-byte encapsulation."""
    if bytes(message[:4]) != CDR_LE:
        raise ValueError("not a little-endian CDR message")
    struct.pack_into("<iI", message, 4, sec, nanosec)
    return bytes(message)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseStamped
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image

    frames = np.load(args.frames)
    keep_image_buffers()
    rclpy.init()
    node = rclpy.create_node("headpose_bench_peer")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    pub = node.create_publisher(Image, args.image_topic, _image_qos(args.reliability))
    latencies: list[float] = []
    arrivals: dict[tuple[int, int], float] = {}
    diagnostics: dict[str, str] = {}

    def on_pose(msg: Any) -> None:
        now = time.time()
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        latencies.append(now - stamp)
        arrivals[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = now

    def on_diagnostics(msg: Any) -> None:
        for status in msg.status:
            if "headpose_node" in status.name:
                diagnostics.clear()
                diagnostics.update({kv.key: kv.value for kv in status.values})

    node.create_subscription(PoseStamped, args.pose_topic, on_pose, 50)
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    # Each frame's message is serialized once; per frame only its stamp is written in before publishing the
    # bytes. Building a 921,600-byte Image in Python each frame cost about 0.3 ms more from stamp to publish (a
    # camera driver in C++ fills its buffer in far less): the latency measured is the middleware's and the node's.
    messages = []
    for frame in frames:
        msg = Image(height=frame.shape[0], width=frame.shape[1], encoding="bgr8", is_bigendian=0,
                    step=frame.shape[1] * 3, data=np.ascontiguousarray(frame).tobytes())
        msg.header.frame_id = "bench_optical_frame"
        messages.append(bytearray(serialize_message(msg)))
    deadline = time.monotonic() + args.wait
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.1)
    if pub.get_subscription_count() == 0:
        raise SystemExit("headpose_node did not subscribe to the image topic in time")
    period = 1.0 / args.rate
    published = 0
    sent: list[tuple[int, int, float, float]] = []  # stamp (sec, nanosec), stamp and publish return in seconds
    start = time.monotonic()
    next_time = start
    while time.monotonic() - start < args.seconds:
        now = time.monotonic()
        if now >= next_time:
            wall = time.time()  # the frame exists: stamp it, then publish its message, as a driver does
            sec, nanosec = int(wall), int((wall % 1) * 1e9)
            pub.publish(stamped_cdr(messages[published % len(messages)], sec, nanosec))
            sent.append((sec, nanosec, wall, time.time()))
            published += 1
            next_time += period
        executor.spin_once(timeout_sec=max(0.0, min(next_time - time.monotonic(), 0.01)))
    drain = time.monotonic() + 1.5  # the last poses and one more diagnostics message
    while time.monotonic() < drain:
        executor.spin_once(timeout_sec=0.05)
    elapsed = time.monotonic() - start
    node.destroy_node()
    rclpy.try_shutdown()
    return {"published": published, "publish_rate_hz": round(published / args.seconds, 2),
            "poses": len(latencies), "pose_rate_hz": round(len(latencies) / args.seconds, 2),
            "elapsed_s": round(elapsed, 2), "latencies_s": latencies, "node_diagnostics": diagnostics,
            "frames": [{"sec": sec, "nanosec": nsec, "stamp": stamp, "published": done,
                        "arrived": arrivals.get((sec, nsec))} for sec, nsec, stamp, done in sent]}


def echo(args: argparse.Namespace) -> None:
    """The transport floor: a node that answers each image with a PoseStamped carrying its header, at once."""
    import rclpy
    from geometry_msgs.msg import PoseStamped
    from rclpy.executors import ExternalShutdownException
    from sensor_msgs.msg import Image

    from .node import make_executor

    keep_image_buffers()
    rclpy.init()
    node = rclpy.create_node("headpose_bench_echo")
    pub = node.create_publisher(PoseStamped, args.pose_topic, 10)
    trace: list[dict[str, float]] = []

    def on_image(msg: Any) -> None:
        received = time.time()
        pose = PoseStamped()
        pose.header = msg.header
        pub.publish(pose)
        trace.append({"sec": msg.header.stamp.sec, "nanosec": msg.header.stamp.nanosec, "received": received,
                      "head_pose": time.time()})

    node.create_subscription(Image, args.image_topic, on_image, _image_qos(args.reliability))
    executor = make_executor(args.executor)
    executor.add_node(node)
    deadline = time.monotonic() + args.seconds
    try:
        while time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):  # bench-ros stops it with SIGINT
        pass
    node.destroy_node()
    rclpy.try_shutdown()
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(trace, f)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Camera-side peer of headpose-ros bench-ros (internal).")
    parser.add_argument("--frames", required=True, help=".npy file of (N, H, W, 3) uint8 BGR frames")
    parser.add_argument("--rate", type=float, default=30.0, help="frames per second to publish")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to publish")
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait for the node's subscription")
    parser.add_argument("--image-topic", default="/bench/image_raw")
    parser.add_argument("--pose-topic", default="/head_pose")
    parser.add_argument("--reliability", choices=("best_effort", "reliable"), default="best_effort")
    parser.add_argument("--out", help="where to write the JSON result (camera role) or the trace (echo role)")
    parser.add_argument("--executor", choices=("auto", "events", "single_threaded"), default="auto",
                        help="the echo node's executor, as the node's executor parameter (echo role)")
    parser.add_argument("--echo", action="store_true",
                        help="be the echo node for --seconds instead: answer each image with its header at once")
    args = parser.parse_args(argv)
    if args.echo:
        echo(args)
        return 0
    if not args.out:
        parser.error("--out is required")
    result = run(args)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
