"""The node process's malloc settings (headpose_ros.ros.memory)."""

from __future__ import annotations

import platform
import resource
import sys

import numpy as np
import pytest

from headpose_ros.ros.memory import keep_image_buffers

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="mallopt thresholds are glibc's")
def test_freed_image_buffers_are_reused_without_page_faults():
    assert keep_image_buffers() is True
    np.ones(921_600, np.uint8)  # the first image maps its pages once
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(50):  # 50 more 640x480 bgr8 images, each written in full, then freed
        np.ones(921_600, np.uint8)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert faults < 50 * 225 // 10  # fresh pages would fault about 225 times per image


def test_off_linux_nothing_is_changed(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert keep_image_buffers() is False
