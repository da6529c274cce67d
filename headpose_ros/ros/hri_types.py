"""The ``hri_msgs`` (ROS4HRI, REP-155) message definitions for ``rosbags``, so bags can carry REP-155 topics.

The offline bag tool and the tests register these in a ``rosbags`` typestore (:func:`register`) to write and
read ``/humans/faces/...`` without ROS. The ``.msg`` texts ship with the package in ``msg/hri_msgs/`` (copied
verbatim from hri_msgs 2.0.0, BSD 3-clause licence, see the ``LICENSE`` file there); the node uses the
installed ``hri_msgs`` package instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Where the shipped definitions live.
MSG_DIR = Path(__file__).resolve().parent / "msg" / "hri_msgs"
#: The hri_msgs types this package writes (dependencies first).
TYPES = ("NormalizedPointOfInterest2D", "NormalizedRegionOfInterest2D", "FacialLandmarks", "IdsList")


def definitions() -> dict[str, str]:
    """``hri_msgs/msg/Name`` -> its .msg text."""
    return {f"hri_msgs/msg/{name}": (MSG_DIR / f"{name}.msg").read_text(encoding="utf-8") for name in TYPES}


def register(typestore: Any) -> Any:
    """Add the definitions to a ``rosbags`` typestore (types it already has with the same fields are kept);
    returns the typestore."""
    from rosbags.typesys import get_types_from_msg

    parsed: dict[str, Any] = {}
    for name, text in definitions().items():
        parsed.update(get_types_from_msg(text, name))
    typestore.register(parsed)
    return typestore
