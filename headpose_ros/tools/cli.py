"""``headpose-ros``: the command line. Each subcommand lives in its own module with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
from typing import Optional, Sequence

from ..estimator.errors import HeadPoseError

#: subcommand module (in headpose_ros.tools) for each command; imported only when that command runs.
COMMANDS = {
    "image": "run", "video": "run", "eval": "evaluate", "bench": "bench", "train": "train", "bag": "bag",
    "soak": "soak", "bench-ros": "bench_ros",
    "fit-geometry": "fit_geometry",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="headpose-ros", description=__doc__.split(":")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in dict.fromkeys(COMMANDS.values()):
        importlib.import_module(f".{module_name}", __package__).register(sub)
    return parser


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every ``finally`` runs (video writer, bag writer, estimator)."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


def main(argv: Optional[Sequence[str]] = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("GLOG_minloglevel", "2")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
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
