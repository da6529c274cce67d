"""ament's copyright-header check (runs where ament_copyright is installed)."""

from pathlib import Path

import pytest

copyright_main = pytest.importorskip("ament_copyright.main", reason="needs ament_copyright (ROS 2 ament_lint); runs "
                                     "under colcon test on a ROS 2 machine")

ROOT = Path(__file__).resolve().parents[1]


# As in the ament_python package template: remove the skip once the source files carry copyright headers
# (the MIT license and copyright notice live in LICENSE, not in each file).
@pytest.mark.skip(reason="No copyright header has been placed in the source files (the license is in LICENSE).")
@pytest.mark.copyright
@pytest.mark.linter
def test_copyright():
    rc = copyright_main.main(argv=[str(ROOT / "headpose_ros"), str(ROOT / "test")])
    assert rc == 0, "Found errors"
