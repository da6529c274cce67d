"""ament's flake8 check of the whole package (runs where ament_flake8 is installed, i.e. under colcon test)."""

from pathlib import Path

import pytest

flake8_main = pytest.importorskip("ament_flake8.main", reason="needs ament_flake8 (ROS 2 ament_lint); runs under "
                                  "colcon test on a ROS 2 machine")

ROOT = Path(__file__).resolve().parents[1]
CONFIG = Path(__file__).with_name("ament_flake8.ini")
PATHS = [str(ROOT / p) for p in ("headpose_ros", "test", "launch", "setup.py")]


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    rc, errors = flake8_main.main_with_errors(argv=["--config", str(CONFIG), *PATHS])
    assert rc == 0, "Found %d code style errors / warnings:\n" % len(errors) + "\n".join(errors)
