"""Rendering keypoints as the regressor's (96, 96, 5) heatmap tensor; one function for inference and training.

The heatmap frame of a face is set by its keypoints, not by the detector's box, so that the regressor never
learns one detector's habits: the frame is a square, axis-aligned (roll stays visible), centred on the
bounding box of the visible keypoints, whose longer side covers ``SPAN`` of the heatmap.
"""

from __future__ import annotations

import numpy as np

from .types import HEATMAP_SIZE, NUM_KEYPOINTS, FaceKeypoints, Keypoints

#: Fraction of the heatmap's side that the visible keypoints' bounding box spans (its longer side).
SPAN = 0.6
#: Gaussian standard deviation of each keypoint's blob, heatmap pixels.
SIGMA = 3.0
#: Smallest keypoint extent (image pixels) that sets a frame; below it the frame would be degenerate.
MIN_EXTENT_PX = 2.0


def heatmap_frames(xy: np.ndarray, confidence: np.ndarray, threshold: float) -> np.ndarray:
    """Affine maps (N, 2, 3) from image pixels to heatmap pixels for N faces' keypoints.

    ``xy`` is (N, 5, 2) image pixels, ``confidence`` (N, 5). Keypoints below ``threshold`` do not shape the
    frame; a face with no visible keypoint gets a frame around the mean of all of them.
    """
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 2)
    conf = np.asarray(confidence, dtype=np.float64).reshape(-1, NUM_KEYPOINTS)
    vis = conf >= threshold
    vis[~vis.any(axis=1)] = True
    big = np.where(vis[..., None], xy, np.nan)
    lo, hi = np.nanmin(big, axis=1), np.nanmax(big, axis=1)
    centre = 0.5 * (lo + hi)
    extent = np.maximum(np.max(hi - lo, axis=1), MIN_EXTENT_PX)
    scale = SPAN * HEATMAP_SIZE / extent  # heatmap px per image px
    frames = np.zeros((xy.shape[0], 2, 3))
    frames[:, 0, 0] = frames[:, 1, 1] = scale
    frames[:, :, 2] = HEATMAP_SIZE / 2.0 - scale[:, None] * centre
    return frames


def render_heatmaps(xy_hm: np.ndarray, confidence: np.ndarray, threshold: float, sigma: float = SIGMA) -> np.ndarray:
    """Gaussian heatmaps (N, 96, 96, 5) float32 of keypoints given in heatmap pixels.

    Each blob's peak equals its keypoint's confidence; keypoints below ``threshold`` leave their channel empty.
    Pixel (i, j) samples the point (j + 0.5, i + 0.5).
    """
    xy_hm = np.asarray(xy_hm, dtype=np.float32).reshape(-1, NUM_KEYPOINTS, 2)
    conf = np.asarray(confidence, dtype=np.float32).reshape(-1, NUM_KEYPOINTS)
    amp = np.where(conf >= threshold, conf, 0.0).astype(np.float32)
    xy_hm = np.where((amp > 0)[..., None], xy_hm, 0.0)  # a missing keypoint's position may be NaN
    grid = np.arange(HEATMAP_SIZE, dtype=np.float32) + 0.5
    inv = np.float32(-0.5 / sigma**2)
    gx = np.exp(inv * (grid[None, None, :] - xy_hm[..., 0:1]) ** 2)  # (N, 5, W)
    gy = np.exp(inv * (grid[None, None, :] - xy_hm[..., 1:2]) ** 2) * amp[..., None]  # (N, 5, H)
    return np.einsum("nki,nkj->nijk", gy, gx, optimize=True).astype(np.float32, copy=False)


def apply_frames(frames: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Map (N, 5, 2) image-pixel keypoints through (N, 2, 3) affine frames."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 2)
    return np.einsum("nab,nkb->nka", frames[:, :, :2], xy) + frames[:, None, :, 2]


def keypoints_to_heatmaps(
    xy: np.ndarray, confidence: np.ndarray, threshold: float, sigma: float = SIGMA
) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps (N, 96, 96, 5) and their frames (N, 2, 3) for N faces' image-pixel keypoints."""
    frames = heatmap_frames(xy, confidence, threshold)
    return render_heatmaps(apply_frames(frames, xy), confidence, threshold, sigma), frames


def face_keypoints(keypoints: Keypoints, threshold: float, sigma: float = SIGMA) -> FaceKeypoints:
    """One face's keypoints with heatmaps rendered in its keypoint-normalised frame."""
    maps, frames = keypoints_to_heatmaps(keypoints.xy[None], keypoints.confidence[None], threshold, sigma)
    return FaceKeypoints(keypoints=keypoints, heatmaps=maps[0], to_heatmap=frames[0])
