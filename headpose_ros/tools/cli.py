"""The headpose-ros command line. Each subcommand lives in its own module with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import logging
import re
import signal
import sys
import threading
from typing import Optional, Sequence

from .. import __version__
from ..estimator.errors import HeadPoseError
from ..estimator.quiet import quiet_logs
from .common import ANGLES, POSE_MEANING, ParagraphHelpFormatter, paragraphs

#: subcommand module (in headpose_ros.tools) for each command; imported only when that command runs.
COMMANDS = {
    "image": "run", "video": "run", "eval": "evaluate", "bench": "bench", "train": "train", "bag": "bag",
    "soak": "soak", "bench-ros": "bench_ros",
    "fit-geometry": "fit_geometry",
}


DESCRIPTION = paragraphs(
    "Head pose (yaw, pitch, roll) of every face in images, videos, cameras and rosbag2 files, without ROS; also "
    "evaluation, benchmarks and training of the regressor. The ROS 2 node is headpose_node.", ANGLES, POSE_MEANING)

VERBOSE_HELP = "log debug messages and let TensorFlow, MediaPipe, OpenCV and CUDA print their own logs"
EPILOG = "Run 'headpose-ros COMMAND --help' for a command's options."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="headpose-ros", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=ParagraphHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in dict.fromkeys(COMMANDS.values()):
        importlib.import_module(f".{module_name}", __package__).register(sub)
    for command_parser in (parser, *sub.choices.values()):
        command_parser.formatter_class = _plain_formatter(command_parser.formatter_class)
        if command_parser is not parser:  # -v also after the command; SUPPRESS keeps the main parser's value
            try:
                command_parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                                            help=VERBOSE_HELP)
            except argparse.ArgumentError:  # the command has its own -v
                pass
    return parser


#: reST markup that may be left in a command's description (its module's docstring): roles and literals.
_REST = ((re.compile(r":(?:meth|func|class|mod|attr|data|exc|obj|ref|py:\w+):`~?([^`<]+?)(?:\s*<[^>]*>)?`"), r"\1"),
         (re.compile(r"``([^`]+)``"), r"\1"))


def plain_text(text: str) -> str:
    """``text`` without reST roles (:func:`x` -> x) and literals (``x`` -> x), for --help output."""
    for pattern, replacement in _REST:
        text = pattern.sub(replacement, text)
    return text


def _plain_formatter(base: type) -> type:
    """A subclass of the argparse formatter ``base`` whose help output is plain_text()."""
    return type(f"Plain{base.__name__}", (base,), {"format_help": lambda self: plain_text(base.format_help(self))})


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
    except OSError as exc:  # a file the command needed: one line, the traceback only with --verbose
        if args.verbose:
            raise
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"headpose-ros {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
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
