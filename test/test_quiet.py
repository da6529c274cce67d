"""Quiet by default: third-party start-up logs are dropped, everything else on stderr still reaches the user."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

NOISE_LINES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "W0000 00:00:1796140265.455036    4367 computation_placer.cc:177] computation placer already registered.",
    "E0000 00:00:1796140265.412018    4367 cuda_dnn.cc:8579] Unable to register cuDNN factory: Attempting to "
    "register factory for plugin cuDNN when one has already been registered",
    "2026-12-01 15:51:08.695641: E external/local_xla/xla/stream_executor/cuda/cuda_platform.cc:51] failed call to "
    "cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    "W0000 00:00:1796140269.172222    4501 inference_feedback_manager.cc:114] Feedback manager requires a model "
    "with a single signature inference. Disabling support for feedback tensors.",
    "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x556e094b9800] moov atom not found",
]
KEPT_LINES = [
    "E0000 00:00:1796140265.412018    4367 some_op.cc:12] a real native error",
    "F0000 00:00:1796140265.412018    4367 check.cc:1] Check failed: x == y",
    "headpose-ros: something from native code that is not known noise",
]

SCRIPT = r"""
import os, sys, time
from headpose_ros.estimator.quiet import quiet_logs
quiet_logs()
lines = sys.argv[1].split("\n")
for line in lines:
    os.write(2, (line + "\n").encode())  # native code writes to file descriptor 2
os.write(2, b"INFO: Created TensorFlow")  # a noise line written in two pieces
time.sleep(0.05)
os.write(2, b" Lite XNNPACK delegate for CPU.\n")
print("from python", file=sys.stderr)
sys.stdout.write("stdout untouched\n")
sys.stdout.flush()
if sys.argv[2] == "abort":
    os.write(2, b"last words before abort\n")
    os.abort()
"""


def run_script(mode: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "HEADPOSE_ROS_VERBOSE"}
    environment.update(env)
    environment["PYTHONPATH"] = str(ROOT) + os.pathsep + environment.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", SCRIPT, "\n".join(NOISE_LINES + KEPT_LINES), mode],
                          capture_output=True, text=True, timeout=60, env=environment, cwd=str(ROOT))


def test_native_noise_dropped_everything_else_kept():
    result = run_script("exit")
    assert result.returncode == 0
    assert result.stdout == "stdout untouched\n"
    for line in NOISE_LINES:
        assert line not in result.stderr
    assert "XNNPACK" not in result.stderr  # also when written in pieces
    for line in KEPT_LINES:
        assert line in result.stderr
    assert "from python" in result.stderr


def test_verbose_keeps_everything():
    result = run_script("exit", HEADPOSE_ROS_VERBOSE="1")
    for line in NOISE_LINES + KEPT_LINES + ["from python"]:
        assert line in result.stderr
    assert "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." in result.stderr


def test_a_crash_message_survives_the_filter():
    """The filter is a separate process: what native code wrote just before abort() still reaches the user."""
    result = run_script("abort")
    assert result.returncode != 0
    assert "last words before abort" in result.stderr and KEPT_LINES[0] in result.stderr


def test_cli_image_prints_only_its_own_output():
    """The real TensorFlow and MediaPipe, as a user runs them: stderr carries no third-party log line."""
    pytest.importorskip("mediapipe", reason="the default backends need mediapipe")
    pytest.importorskip("tensorflow", reason="the regressor needs TensorFlow")
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("TF_CPP_MIN_LOG_LEVEL", "GLOG_minloglevel", "HEADPOSE_ROS_VERBOSE")}
    environment["PYTHONPATH"] = str(ROOT) + os.pathsep + environment.get("PYTHONPATH", "")
    result = subprocess.run([sys.executable, "-m", "headpose_ros.tools.cli", "image", "examples/astronaut.jpg",
                             "--device", "cpu"], capture_output=True, text=True, timeout=280, env=environment,
                            cwd=str(ROOT))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1 and '"image": "examples/astronaut.jpg"' in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["headpose-ros image: 1 image, 1 face"], result.stderr
