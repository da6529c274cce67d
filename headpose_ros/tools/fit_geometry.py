"""``headpose-ros fit-geometry``: fit where a keypoint source puts the five keypoints on a head, in 3D.

Runs the detector and keypoint source on labelled images, then fits one 3D model (head frame, millimetres,
origin between the eyes, eyes 63 mm apart) to the ground-truth rotations under weak perspective by
alternating least squares: per face a scale and an image offset, for all faces the five 3D points. It also
reports the residual for a range of pitch gains (how strongly the source's keypoints follow pitch). The
synthetic generator (:mod:`headpose_ros.tools.synth`) and :data:`headpose_ros.estimator.geometry.HEAD_MODEL_MM`
use what this prints; fit on development data only, never on the data you report accuracy on.
"""

from __future__ import annotations

import argparse
import json
from typing import Optional

import numpy as np

from ..estimator import geometry
from ..estimator.types import LEFT_EYE, NUM_KEYPOINTS, RIGHT_EYE

IOD_MM = 63.0


def fit_model(xy: np.ndarray, ypr: np.ndarray, pitch_gain: float = 1.0, iterations: int = 20,
              init: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """The 3D keypoint model (5, 3) mm and per-keypoint residuals (N, 5) in inter-ocular distances.

    ``xy`` (N, 5, 2) image pixels, ``ypr`` (N, 3) ground truth in degrees; keypoints rendered as if pitch were
    ``pitch_gain`` times the labelled one.
    """
    shown = np.asarray(ypr, dtype=np.float64).copy()
    shown[:, 1] *= pitch_gain
    proj_rows = geometry.rotations_from_ypr(shown)[:, :2, :]  # (N, 2, 3) orthographic projection of R
    model = (geometry.HEAD_MODEL_MM if init is None else init).astype(np.float64).copy()

    def similarity(model: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        proj = np.einsum("nij,kj->nki", proj_rows, model)
        pc, qc = proj - proj.mean(1, keepdims=True), xy - xy.mean(1, keepdims=True)
        scale = (pc * qc).sum((1, 2)) / np.maximum((pc * pc).sum((1, 2)), 1e-12)
        return proj, scale, xy.mean(1) - scale[:, None] * proj.mean(1)

    for _ in range(iterations):
        _, scale, shift = similarity(model)
        a = scale[:, None, None] * proj_rows
        lhs = np.einsum("nij,nik->jk", a, a)
        rhs = np.einsum("nij,nki->kj", a, xy - shift[:, None, :])
        model = np.linalg.solve(lhs, rhs.T).T
        model -= 0.5 * (model[RIGHT_EYE] + model[LEFT_EYE])
        model *= IOD_MM / np.linalg.norm(model[LEFT_EYE] - model[RIGHT_EYE])
    proj, scale, shift = similarity(model)
    fitted = scale[:, None, None] * proj + shift[:, None, :]
    residual = np.linalg.norm(xy - fitted, axis=2) / (np.abs(scale)[:, None] * IOD_MM)
    return model, residual


def apparent_poses(xy: np.ndarray, model_mm: np.ndarray) -> np.ndarray:
    """The pose (N, 3) degrees under which the rigid ``model_mm`` best explains each face's keypoints (weak
    perspective, least squares from several starting yaws): what the keypoints "look like"."""
    from scipy.optimize import least_squares
    from scipy.spatial.transform import Rotation

    out = np.empty((len(xy), 3))
    for i, q in enumerate(xy):
        best = None
        for yaw0 in (-70.0, -30.0, 0.0, 30.0, 70.0):
            def residual(p: np.ndarray) -> np.ndarray:
                r = Rotation.from_rotvec(p[:3]).as_matrix()
                return ((model_mm @ r.T)[:, :2] * p[3] + p[4:6] - q).ravel()

            start = Rotation.from_matrix(geometry.rotation_from_ypr(yaw0, 0.0, 0.0)).as_rotvec()
            scale = np.linalg.norm(q[LEFT_EYE] - q[RIGHT_EYE]) / IOD_MM + 1e-3
            fit = least_squares(residual, np.r_[start, scale, q.mean(axis=0)])
            if best is None or fit.cost < best.cost:
                best = fit
        out[i] = geometry.ypr_from_rotation(Rotation.from_rotvec(best.x[:3]).as_matrix()).as_array()
    return out


def collect(fmt: str, path: str, limit: Optional[int], sequences: Optional[list[str]],
            args: argparse.Namespace, part: Optional[tuple[int, int]] = None) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints (N, 5, 2) and labels (N, 3) of the faces found in a labelled image dataset (the I-th of N
    contiguous parts of its sorted samples when ``part`` is (I, N), as ``headpose-ros eval --part``)."""
    from tqdm import tqdm

    from ..estimator.images import to_bgr8
    from . import datasets
    from ..estimator.pipeline import build_stages
    from .common import config_from_args
    from .evaluate import part_mask

    cfg = config_from_args(args)
    detector, source = build_stages(cfg)
    dataset = datasets.load_dataset(fmt, path, limit=limit, sequences=sequences)
    dataset = dataset.subset(part_mask(len(dataset), part))
    xy, labels = [], []
    for sample in tqdm(dataset.samples, desc=fmt, unit="img"):
        image = to_bgr8(sample.load_image())
        boxes = [b for b in detector.detect(image) if b.score >= cfg.min_face_score]
        if not boxes:
            continue
        found = source.locate(image, [max(boxes, key=lambda b: b.area)])[0]
        if found is not None and np.all(found.keypoints.confidence >= cfg.keypoint_threshold):
            xy.append(found.keypoints.xy)
            labels.append(sample.ypr)
    return np.asarray(xy).reshape(-1, NUM_KEYPOINTS, 2), np.asarray(labels).reshape(-1, 3)


def register(sub: "argparse._SubParsersAction") -> None:
    from .common import add_config_arguments

    p = sub.add_parser("fit-geometry", help="fit the 3D keypoint model of a keypoint source on labelled images",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", action="append", nargs="+", required=True, metavar="FORMAT:PATH [SELECT]",
                   help="labelled images (aflw2000, biwi-crops, biwi-frames), optionally followed by what to keep of "
                   "them: part=I/N (the I-th of N contiguous parts of the sorted samples, as `eval --part`) and/or "
                   "sequences=SS (BIWI, e.g. 01-09); repeatable: fit on tuning parts, keep the rest for validation")
    p.add_argument("--limit", type=int, help="at most N samples per dataset")
    p.add_argument("--sequences", help="BIWI sequences of every BIWI --data without its own, comma-separated")
    p.add_argument("--json", help="write the fit to this file")
    add_config_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..estimator.errors import ConfigError
    from .evaluate import parse_part

    xy, ypr = [], []
    for spec, *select in args.data:
        fmt, _, path = spec.partition(":")
        chosen = dict(item.partition("=")[::2] for item in select)
        unknown = set(chosen) - {"part", "sequences"}
        if unknown:
            raise ConfigError(f"--data {spec}: unknown selection {sorted(unknown)}; use part=I/N or sequences=SS")
        part = parse_part(chosen.get("part"))
        sequences = chosen.get("sequences", args.sequences if fmt.startswith("biwi") else None)
        a, b = collect(fmt, path, args.limit, sequences.split(",") if sequences else None, args, part)
        xy.append(a)
        ypr.append(b)
    xy_all, ypr_all = np.concatenate(xy), np.concatenate(ypr)
    keep = np.all(np.abs(ypr_all) <= 99.0, axis=1)
    xy_all, ypr_all = xy_all[keep], ypr_all[keep]
    gains = {}
    for gain in (0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2):
        gains[gain] = float(np.median(fit_model(xy_all, ypr_all, gain)[1]))
    model, residual = fit_model(xy_all, ypr_all, 1.0)
    apparent = apparent_poses(xy_all, model)
    true_yaw, sign = np.abs(ypr_all[:, 0]), np.sign(ypr_all[:, 0])
    yaw_bins = {}
    for lo, hi in ((0, 15), (15, 30), (30, 45), (45, 55), (55, 65), (65, 75), (75, 99)):
        k = (true_yaw >= lo) & (true_yaw < hi)
        if k.any():
            yaw_bins[f"{lo}-{hi}"] = {"n": int(k.sum()), "true": round(float(true_yaw[k].mean()), 1),
                                      "apparent": round(float((apparent[k, 0] * sign[k]).mean()), 1)}
    near = true_yaw < 45  # pitch gain: slope of apparent on true pitch where yaw does not saturate
    slope = np.polyfit(ypr_all[near, 1], apparent[near, 1], 1)[0] if near.sum() > 2 else float("nan")
    out = {
        "faces": int(len(xy_all)),
        "model_mm": np.round(model, 1).tolist(),
        "median_residual_iod_per_keypoint": np.round(np.median(residual, axis=0), 4).tolist(),
        "median_residual_iod_by_pitch_gain": {k: round(v, 4) for k, v in gains.items()},
        "apparent_yaw_by_true_abs_yaw_deg": yaw_bins,
        "pitch_gain_apparent_vs_true": round(float(slope), 3),
    }
    for key, value in out.items():
        print(f"{key}: {json.dumps(value)}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return 0
