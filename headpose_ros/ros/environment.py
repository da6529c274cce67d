"""Keeping ROS 2 discovery on this machine, for every process the tests and benchmarks start (no ROS import).

Jazzy and newer read ``ROS_AUTOMATIC_DISCOVERY_RANGE`` (OFF: this process alone; LOCALHOST: processes on this
machine); Humble reads ``ROS_LOCALHOST_ONLY=1``. The node itself never changes these: on a robot, discovery is
the integrator's choice.
"""

from __future__ import annotations

import os
import random
import tempfile
from typing import MutableMapping


def restrict_discovery(env: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Make ``env`` (e.g. ``os.environ`` or a copy for a subprocess) keep ROS 2 traffic on this machine.

    ``ROS_AUTOMATIC_DISCOVERY_RANGE`` stays OFF or LOCALHOST and becomes LOCALHOST otherwise; static peers and
    discovery servers are cleared; on Humble ``ROS_LOCALHOST_ONLY=1``. A random ``ROS_DOMAIN_ID`` (10-99) and a
    temporary ``ROS_LOG_DIR`` are set unless given. Returns ``env``.
    """
    if env.get("ROS_AUTOMATIC_DISCOVERY_RANGE") not in ("OFF", "LOCALHOST"):
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    for name in ("ROS_STATIC_PEERS", "ROS_DISCOVERY_SERVER"):
        env.pop(name, None)
    if env.get("ROS_DISTRO") == "humble":
        env["ROS_LOCALHOST_ONLY"] = "1"
    else:
        env.pop("ROS_LOCALHOST_ONLY", None)  # deprecated beside the range on Jazzy
    env.setdefault("ROS_DOMAIN_ID", str(random.randint(10, 99)))
    env.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="headpose_ros_log_"))
    return env


def subprocess_environment(**extra: str) -> dict[str, str]:
    """A copy of this process's environment with :func:`restrict_discovery` applied and ``extra`` added."""
    env = dict(os.environ)
    restrict_discovery(env)
    env.update(extra)
    return env
