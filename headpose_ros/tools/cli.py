"""The headpose-ros command line. Each subcommand lives in its own module with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
from typing import Optional, Sequence

from .. import __version__
from ..estimator.errors import HeadPoseError
from ..estimator.quiet import quiet_logs

#: subcommand module (in headpose_ros.tools) for each command; imported only when that command runs.
COMMANDS = {
    "image": "run", "video": "run", "eval": "evaluate", "bench": "bench", "train": "train", "bag": "bag",
    "soak": "soak",
    "fit-geometry": "fit_geometry",
}


DESCRIPTION = """\
Head pose (yaw, pitch, roll) of every face in images, videos, cameras and rosbag2 files, without ROS;
also evaluation, benchmarks and training of the regressor.

Without camera intrinsics the pose is the one relative to the line of sight (what the face crop shows; exact
for a face on the optical axis) and the position is the unit-depth ray through the point between the eyes
under a guessed focal length (the image width). With intrinsics (--intrinsics, or camera_info in a bag) the
pose is in the camera's optical frame and the position is in metres."""

EPILOG = "Run 'headpose-ros COMMAND --help' for a command's options."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="headpose-ros", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log debug messages and let TensorFlow, MediaPipe and CUDA print their own logs")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in dict.fromkeys(COMMANDS.values()):
        importlib.import_module(f".{module_name}", __package__).register(sub)
    return parser


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every finally block runs (video writer, bag writer, estimator)."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one command; returns its exit status (0 ok, 1 some inputs failed, 2 configuration or input error)."""
    args = build_parser().parse_args(argv)
    quiet_logs(verbose=args.verbose)  # before any command imports TensorFlow or MediaPipe
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    logging.getLogger("headpose_ros").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return int(args.func(args) or 0)
    except HeadPoseError as exc:
        print(f"headpose-ros {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Terminated:
        return 128 + signal.SIGTERM
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
