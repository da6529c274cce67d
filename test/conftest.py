"""Test-session set-up, before any test module imports rclpy.

- ROS 2 discovery never leaves this machine (:func:`headpose_ros.ros.environment.restrict_discovery`: range OFF or
  LOCALHOST, ``ROS_LOCALHOST_ONLY=1`` on Humble, no static peers), in a random domain unless one is set, with ROS
  logs in a temporary folder unless ``ROS_LOG_DIR`` is set; every process the tests start inherits it.
- ROS tests are the files named ``*_ros.py``. Outside CI they skip where ROS 2 is missing, with the reason; when
  ``HEADPOSE_REQUIRE_ROS=1`` (``.ci/run`` sets it) a skipped ROS test or module is a failure.
"""

from __future__ import annotations

import os

import pytest

from headpose_ros.ros.environment import restrict_discovery

restrict_discovery(os.environ)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REQUIRE_ROS = os.environ.get("HEADPOSE_REQUIRE_ROS") == "1"


def _is_ros_test(path: object) -> bool:
    return str(path).endswith("_ros.py")


def _fail_skip(report: pytest.BaseReport, what: str) -> None:
    if REQUIRE_ROS and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"a ROS {what} was skipped but HEADPOSE_REQUIRE_ROS=1 requires it to run: {report.longrepr}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    if _is_ros_test(item.path):
        _fail_skip(outcome.get_result(), "test")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> object:
    outcome = yield
    if _is_ros_test(getattr(collector, "path", "")):
        _fail_skip(outcome.get_result(), "test module")
