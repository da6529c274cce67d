"""ament's docstring (PEP 257) check of the whole package (runs where ament_pep257 is installed)."""

from pathlib import Path

import pytest

pep257_main = pytest.importorskip("ament_pep257.main", reason="needs ament_pep257 (ROS 2 ament_lint); runs under "
                                  "colcon test on a ROS 2 machine")

ROOT = Path(__file__).resolve().parents[1]
PATHS = [str(ROOT / p) for p in ("headpose_ros", "test", "launch", "setup.py")]
#: The project's docstring style beyond ament's convention: the summary sits on the first line (D212 style, so
#: not D213), may wrap over several lines (D205, D209, D400, D415) and need not be imperative (D401-D403).
IGNORED = ["D205", "D209", "D213", "D400", "D401", "D402", "D403", "D415"]


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    rc = pep257_main.main(argv=[*PATHS, "--add-ignore", *IGNORED])
    assert rc == 0, "Found code style errors / warnings"
