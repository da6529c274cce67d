"""Process-wide malloc settings for processes that receive camera images (no ROS import).

glibc's malloc serves a request above its mmap threshold (128 KiB at start, raised on the fly by some frees) with
a fresh ``mmap`` and gives it back to the kernel on ``free``. A raw 640x480 ``bgr8`` image is 921,600 bytes, so
every image the middleware hands over can land in freshly mapped pages: about 225 page faults, each zeroing a
page, before a single byte is used. :func:`keep_image_buffers` fixes both thresholds instead, so that freed image
buffers stay in the process and the next image reuses them. Measured with ``headpose-ros bench-ros``'s echo node
(docs/speed.md): half of the receiving process's samples were in the kernel, most of them handling page faults of
copies into fresh pages, and the time from an image's stamp to its callback fell from 3.2-3.4 to 1.6-1.7 ms (p50)
with these settings.

The cost: up to ``max_block`` bytes of freed memory per malloc arena stay in the process instead of going
back to the kernel. Only the node's own process entry point and the benchmark's processes call this; a node
embedded in another program leaves that program's allocator alone.
"""

from __future__ import annotations

import ctypes
import sys

#: glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Blocks up to this size are kept: above any raw image up to 3840x2160 bgr8 (24.9 MB).
MAX_BLOCK = 32 * 1024 * 1024


def keep_image_buffers(max_block: int = MAX_BLOCK) -> bool:
    """Make glibc's malloc keep freed blocks of up to ``max_block`` bytes (images) for reuse; True when set.

    False (and nothing changed) off Linux, without glibc (``mallopt`` missing, e.g. musl) or when glibc refuses a
    value. Call it early, before the process allocates its image buffers.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # The trim threshold first: a refused mmap threshold then leaves only a larger trim threshold behind.
    return mallopt(M_TRIM_THRESHOLD, max_block) == 1 and mallopt(M_MMAP_THRESHOLD, max_block) == 1
