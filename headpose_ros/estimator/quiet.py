"""Keep TensorFlow, MediaPipe, absl, OpenCV and CUDA start-up chatter off the terminal.

Call :func:`quiet_logs` first thing in a program's ``main``, before TensorFlow or MediaPipe is imported: the
command line and the ROS node both do. It is cheap (no heavy import) and does nothing with ``verbose=True`` or
when the environment variable ``HEADPOSE_ROS_VERBOSE`` is set to a non-empty value other than ``0``.

What it does, in quiet mode:

- sets ``TF_CPP_MIN_LOG_LEVEL=2`` (TensorFlow's own info and warnings), ``GLOG_minloglevel=2`` (MediaPipe's
  glog), ``GRPC_VERBOSITY=ERROR`` and ``OPENCV_LOG_LEVEL=ERROR``, unless the variable is already set;
- sets the Python loggers of tensorflow, absl, h5py, matplotlib and PIL to ERROR and ignores their
  ``DeprecationWarning``/``FutureWarning``/``UserWarning`` (warnings raised by headpose_ros still show);
- routes the process's native standard error (file descriptor 2, where C++ libraries write) through a tiny
  filter process that drops the lines in :data:`NOISE` and passes everything else through unchanged, so a real
  error or a crash message from native code is still seen (the filter drains the pipe even when this process
  aborts, and stays until this process has exited, so what native code prints while Python shuts down is
  filtered too). Python's own ``sys.stderr`` (logging, progress bars, tracebacks) keeps writing to the terminal
  directly. Skipped when ``sys.stderr`` is not the process's standard error (e.g. captured by pytest).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from typing import Optional

#: Regular expressions of native log lines dropped in quiet mode: absl-format INFO/WARNING lines
#: ("I0000 00:00:... file.cc:12] ..."), the errors TensorFlow prints about CUDA when no GPU is present or
#: its plugins register twice, absl's note about logging before InitializeLog, TFLite's XNNPACK info line and
#: FFmpeg's messages through OpenCV ("[mov,mp4,... @ 0x...] moov atom not found": the command says it in its
#: own words).
NOISE: tuple[str, ...] = (
    r"^[IW]\d{4} [\d:.]+\s+\d+ \S+:\d+\] ",
    r"^E\d{4} [\d:.]+\s+\d+ \S+:\d+\] Unable to register cu(FFT|DNN|BLAS) factory",
    r"^[\d-]+ [\d:.]+: [IWE] \S+:\d+\] (Unable to register cu(FFT|DNN|BLAS) factory|failed call to cuInit|"
    r"Could not find cuda drivers|could not open file to read NUMA node|oneDNN custom operations are on)",
    r"^E\d{4} [\d:.]+\s+\d+ \S+:\d+\] failed call to cuInit",
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.",
    r"^To enable the following instructions: .* in other operations, rebuild TensorFlow",
    r"^\[[\w,]+ @ 0x[0-9a-f]+\] ",
)

#: Third-party Python loggers set to ERROR in quiet mode.
LOGGERS = ("tensorflow", "absl", "h5py", "matplotlib", "PIL", "jax")
#: Modules whose Python warnings are ignored in quiet mode (regular expressions on the warning's module).
WARNING_MODULES = r"(tensorflow|keras|tf_keras|absl|google\.protobuf|mediapipe|h5py|jax|numpy\.core)(\.|$)"

# The filter process: reads the pipe in chunks, drops whole lines that match NOISE, writes the rest at once.
_FILTER = r"""
import os, re, select, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
noise = re.compile("|".join("(?:%s)" % p for p in sys.argv[1:]))
out = sys.stdout.buffer
pending = b""
while True:
    # C's unbuffered stderr may write one line in pieces: a line is judged once whole, or after 0.2 s of quiet
    ready = select.select([0], [], [], 0.2 if pending else None)[0]
    chunk = os.read(0, 65536) if ready else b""
    if ready and not chunk:
        lines, pending, done = [pending], b"", True
    else:
        lines = (pending + chunk).splitlines(keepends=True)
        pending = lines.pop() if ready and lines and not lines[-1].endswith(b"\n") else b""
        done = False
    kept = b"".join(line for line in lines if not noise.match(line.decode("utf-8", "replace")))
    try:
        out.write(kept)
        out.flush()
    except OSError:
        break
    if done:
        break
"""

_filter_process: Optional[subprocess.Popen] = None


def verbose_from_environment() -> bool:
    """True when ``HEADPOSE_ROS_VERBOSE`` asks for the third-party logs (set, not empty, not ``0``)."""
    return os.environ.get("HEADPOSE_ROS_VERBOSE", "").strip() not in ("", "0")


def quiet_logs(verbose: bool = False) -> None:
    """Silence third-party start-up logs unless ``verbose`` (or ``HEADPOSE_ROS_VERBOSE``); call before importing
    TensorFlow or MediaPipe. Safe to call more than once."""
    if verbose or verbose_from_environment():
        return
    for name, value in (("TF_CPP_MIN_LOG_LEVEL", "2"), ("GLOG_minloglevel", "2"), ("GRPC_VERBOSITY", "ERROR"),
                        ("OPENCV_LOG_LEVEL", "ERROR")):
        os.environ.setdefault(name, value)
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for category in (DeprecationWarning, FutureWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category, module=WARNING_MODULES)
    _filter_native_stderr()


def _filter_native_stderr() -> None:
    """Route file descriptor 2 through the NOISE filter; ``sys.stderr`` keeps the original stream."""
    global _filter_process
    if _filter_process is not None or sys.stderr is None or sys.stderr is not sys.__stderr__:
        return
    fds: list[int] = []
    try:
        sys.stderr.flush()
        fds.append(os.dup(2))
        fds.extend(os.pipe())
        original, read_end, write_end = fds
        process = subprocess.Popen([sys.executable, "-S", "-c", _FILTER, *NOISE], stdin=read_end, stdout=original,
                                   stderr=subprocess.DEVNULL, close_fds=True)
    except (OSError, ValueError, subprocess.SubprocessError):
        for fd in fds:
            os.close(fd)
        return  # no filter: the logs stay as they are
    os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)
    stream = os.fdopen(original, "w", buffering=1, encoding=sys.stderr.encoding, errors=sys.stderr.errors)
    sys.stderr = stream
    _filter_process = process
    # Not undone at exit: native libraries also log while the interpreter shuts down (e.g. MediaPipe's graphs
    # when they are collected). The filter ends by itself when the last holder of the pipe has exited.


__all__ = ["quiet_logs", "verbose_from_environment", "NOISE"]
