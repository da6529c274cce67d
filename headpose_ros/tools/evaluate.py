"""``headpose-ros eval``: accuracy of the full pipeline (or of the regressor alone on stored heatmaps).

Conventions, as in Hopenet / FSA-Net / 6DRepNet:

- only samples whose three ground-truth angles lie within +-99 deg are scored (``--max-angle``); the others
  are counted as excluded and not run;
- the error of an angle is the absolute wrapped difference (:func:`geometry.angle_abs_error`); MAE is over the
  faces found; ``mean`` is the mean of the yaw, pitch and roll MAEs;
- a sample whose labelled face is not found (no face, only other faces, or an unreadable image) counts in
  ``n`` and as not detected; it is listed, never dropped;
- subsets ``abs_yaw_le_45`` and ``abs_yaw_gt_45`` split by the ground-truth |yaw|;
- ``rotation_error_deg``: median and mean of the geodesic angle between predicted and true rotation
  (:func:`geometry.rotation_errors_deg`), over the faces found.

In-plane roll (``--turn DEG ...``): every image is also run turned clockwise by each DEG about its centre on a
canvas that holds the whole image (border in the image's mean colour); the label is the dataset's pose turned
about the line of sight (:func:`geometry.compose_line_of_sight_roll`), and the labelled face's location turns
with the image. The +-99 deg rule and the |yaw| subsets apply to the dataset's own (upright) label, so every
turn scores the same faces. One table per turn, then the turns side by side. Formats with camera intrinsics
(BIWI full frames) are refused: their pose is in the camera frame, which an image turn does not simply roll.

Which face is scored when the pipeline finds several: where the format locates the labelled face
(AFLW2000: centroid of its 68 landmarks; BIWI frames: the projected head centre), the face whose box,
enlarged 1.5 times about its centre, contains that point, nearest to its centre; else (BIWI crops, where the
crop is the face) the largest face.
"""

from __future__ import annotations

import argparse
import dataclasses
import csv
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..estimator import geometry
from ..estimator.errors import ConfigError, HeadPoseError
from ..estimator.types import FaceResult
from .common import add_config_arguments, config_from_args, progress, write_json
from .datasets import FORMATS, Dataset, heatmaps_to_float, load_dataset, within_range
from .scenes import turn_image

LOG = logging.getLogger(__name__)
#: A face's box is enlarged by this factor about its centre when testing whether it holds the labelled face.
MATCH_BOX_SCALE = 1.5
ANGLES = ("yaw", "pitch", "roll")
SUBSETS = {"abs_yaw_le_45": lambda gt: np.abs(gt[:, 0]) <= 45.0, "abs_yaw_gt_45": lambda gt: np.abs(gt[:, 0]) > 45.0}


@dataclass
class Prediction:
    """One scored sample: ground truth and prediction (yaw, pitch, roll degrees; None when not detected)."""

    name: str
    gt: np.ndarray
    pred: Optional[np.ndarray]
    sequence: Optional[str] = None
    faces_found: int = 0
    note: str = ""
    #: The dataset's own label when the image was turned (``gt`` is then that label turned with the image);
    #: the +-range rule and the |yaw| subsets apply to it. None: ``gt`` is the dataset's label.
    upright: Optional[np.ndarray] = None

    @property
    def detected(self) -> bool:
        return self.pred is not None

    @property
    def label(self) -> np.ndarray:
        """The label the range rule and the subsets read (degrees)."""
        return self.gt if self.upright is None else self.upright


def pick_face(faces: Sequence[FaceResult], face_xy: Optional[tuple[float, float]],
              box_scale: float = MATCH_BOX_SCALE) -> Optional[FaceResult]:
    """The face that the label describes (see the module docstring); None when none qualifies.

    ``faces`` are largest first (as the estimator returns them).
    """
    if not faces:
        return None
    if face_xy is None:
        return max(faces, key=lambda f: f.box.area)
    px, py = face_xy
    best, best_d = None, np.inf
    for face in faces:
        cx, cy = face.box.center
        half_w, half_h = 0.5 * box_scale * face.box.width, 0.5 * box_scale * face.box.height
        if abs(px - cx) <= half_w and abs(py - cy) <= half_h:
            d = float(np.hypot(px - cx, py - cy))
            if d < best_d:
                best, best_d = face, d
    return best


def _mae(errors: np.ndarray) -> Optional[dict[str, float]]:
    if len(errors) == 0:
        return None
    per = errors.mean(axis=0)
    out = {name: round(float(v), 3) for name, v in zip(ANGLES, per)}
    out["mean"] = round(float(per.mean()), 3)
    return out


def _group(preds: Sequence[Prediction]) -> dict[str, Any]:
    found = [p for p in preds if p.detected]
    pred = np.array([p.pred for p in found]).reshape(-1, 3)
    gt = np.array([p.gt for p in found]).reshape(-1, 3)
    rotation = geometry.rotation_errors_deg(pred, gt)
    return {"n": len(preds), "detected": len(found),
            "detection_rate": round(len(found) / len(preds), 4) if preds else None,
            "mae": _mae(geometry.angle_abs_error(pred, gt)),
            "rotation_error_deg": {"median": round(float(np.median(rotation)), 3),
                                   "mean": round(float(rotation.mean()), 3)} if len(found) else None}


def summarize(preds: Sequence[Prediction], max_abs_deg: float = 99.0) -> dict[str, Any]:
    """Metrics of scored samples: n, detected, MAE (yaw, pitch, roll, mean) and subsets, over the +-range subset.

    MAE values are None when no face of the group was found. Samples outside the range are counted in
    ``excluded_out_of_range`` and otherwise ignored.
    """
    preds = list(preds)
    gt = np.array([p.label for p in preds], dtype=np.float64).reshape(-1, 3)
    keep = within_range(gt, max_abs_deg) if len(preds) else np.zeros(0, bool)
    kept = [p for p, k in zip(preds, keep) if k]
    summary = _group(kept)
    summary["excluded_out_of_range"] = int(len(preds) - len(kept))
    summary["not_detected"] = [p.name for p in kept if not p.detected]
    summary["wrong_face_only"] = sum(1 for p in kept if not p.detected and p.faces_found > 0)
    gt_kept = gt[keep]
    summary["subsets"] = {name: _group([p for p, m in zip(kept, rule(gt_kept)) if m])
                          for name, rule in SUBSETS.items()} if kept else {name: _group([]) for name in SUBSETS}
    sequences = sorted({p.sequence for p in kept if p.sequence is not None})
    if sequences:
        summary["per_sequence"] = {s: _group([p for p in kept if p.sequence == s]) for s in sequences}
    return summary


def _fmt(value: Optional[float]) -> str:
    return f"{value:7.2f}" if value is not None else "      -"


def format_summary(summary: dict[str, Any]) -> str:
    """A human-readable table of :func:`summarize`'s result."""
    lines = []
    head = (f"{'':16s}{'n':>6s}{'found':>7s}{'found%':>8s}{'yaw':>7s}{'pitch':>7s}{'roll':>7s}{'mean':>7s}"
            f"{'rot p50':>9s}")
    lines.append(head)

    def row(label: str, group: dict[str, Any]) -> str:
        mae = group["mae"] or {}
        rate = f"{100 * group['detection_rate']:7.1f}%" if group["detection_rate"] is not None else "       -"
        rotation = (group.get("rotation_error_deg") or {}).get("median")
        return (f"{label:16s}{group['n']:6d}{group['detected']:7d}{rate}"
                + "".join(_fmt(mae.get(k)) for k in (*ANGLES, "mean")) + "  " + _fmt(rotation))

    lines.append(row(f"all (+-{summary.get('max_abs_deg', 99):g} deg)", summary))
    labels = {"abs_yaw_le_45": "|yaw| <= 45", "abs_yaw_gt_45": "|yaw| > 45"}
    for name, group in summary["subsets"].items():
        lines.append(row(labels.get(name, name), group))
    for seq, group in (summary.get("per_sequence") or {}).items():
        lines.append(row(f"  sequence {seq}", group))
    return "\n".join(lines)


def evaluate_images(dataset: Dataset, estimator, pad: float = 0.0, turn: float = 0.0) -> list[Prediction]:
    """Run the estimator on every sample's image and pick the labelled face.

    ``pad``: a border of this fraction of the image size first; ``turn``: then the image turned clockwise by this
    many degrees (module docstring; samples with intrinsics are refused with ``ConfigError``).
    """
    import cv2

    preds: list[Prediction] = []
    desc = f"eval {dataset.format}" + (f" turned {turn:g} deg" if turn else "")
    for sample in progress(dataset.samples, desc=desc, unit="img"):
        try:
            image = sample.load_image()
        except HeadPoseError as exc:
            LOG.warning("%s", exc)
            preds.append(Prediction(sample.name, sample.ypr, None, sample.sequence, 0, "unreadable image"))
            continue
        face_xy, intrinsics = sample.face_xy, sample.intrinsics
        if pad > 0:
            border = int(round(pad * max(image.shape[:2])))
            image = cv2.copyMakeBorder(image, border, border, border, border, cv2.BORDER_CONSTANT,
                                       value=_mean_colour(image))
            face_xy = None if face_xy is None else (face_xy[0] + border, face_xy[1] + border)
            if intrinsics is not None:  # the principal point moves with the image
                intrinsics = dataclasses.replace(intrinsics, cx=intrinsics.cx + border, cy=intrinsics.cy + border)
        gt, upright = sample.ypr, None
        if turn:
            if intrinsics is not None:
                raise ConfigError(f"{sample.name}: --turn needs images without camera intrinsics (the pose of a "
                                  "face relative to its line of sight)")
            image, m = turn_image(image, turn, _mean_colour(image))
            face_xy = None if face_xy is None else tuple(float(v) for v in m @ np.array([*face_xy, 1.0]))
            gt, upright = geometry.compose_line_of_sight_roll(sample.ypr[None], np.array([turn]))[0], sample.ypr
        try:
            result = estimator.process(image, intrinsics=intrinsics)
        except HeadPoseError as exc:
            LOG.warning("%s: %s", sample.name, exc)
            preds.append(Prediction(sample.name, gt, None, sample.sequence, 0, f"error: {exc}", upright))
            continue
        face = pick_face(result.faces, face_xy)
        if face is None:
            note = "no face" if not result.faces else "only other faces"
            preds.append(Prediction(sample.name, gt, None, sample.sequence, len(result.faces), note, upright))
        else:
            preds.append(Prediction(sample.name, gt, face.pose.as_array(), sample.sequence, len(result.faces),
                                    upright=upright))
    return preds


def _mean_colour(image: np.ndarray) -> list[float]:
    """The image's mean colour, one value per channel (the fill of its padding and turned corners)."""
    return [float(v) for v in image.reshape(-1, image.shape[2] if image.ndim == 3 else 1).mean(axis=0)]


def evaluate_heatmaps(dataset: Dataset, regressor, batch_size: int = 256) -> list[Prediction]:
    """Run the regressor alone on a heatmap format's stored heatmaps (no detection: every sample is 'found')."""
    preds: list[Prediction] = []
    samples = dataset.samples
    bar = progress(total=len(samples), desc=f"eval {dataset.format}", unit="map")
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        maps = dataset.heatmaps[start:start + batch_size] if dataset.heatmaps is not None else \
            np.stack([s.heatmaps for s in chunk])
        angles = regressor.predict(heatmaps_to_float(maps))
        preds.extend(Prediction(s.name, s.ypr, a, s.sequence, 1) for s, a in zip(chunk, angles))
        bar.update(len(chunk))
    bar.close()
    return preds


def write_per_sample(path: str, runs: Sequence[tuple[float, Sequence[Prediction]]]) -> None:
    """CSV of every scored sample of each ``(turn_deg, predictions)`` run: name, sequence, the image's turn,
    ground truth (turned with the image), prediction (empty when not found), note."""
    file = Path(path).expanduser()
    file.parent.mkdir(parents=True, exist_ok=True)
    with file.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "sequence", "turn_deg", "gt_yaw", "gt_pitch", "gt_roll", "yaw", "pitch", "roll",
                         "faces_found", "note"])
        for turn, preds in runs:
            for p in preds:
                pred = [f"{v:.3f}" for v in p.pred] if p.pred is not None else ["", "", ""]
                writer.writerow([p.name, p.sequence or "", f"{turn:g}", *(f"{v:.3f}" for v in p.gt), *pred,
                                 p.faces_found, p.note])


def parse_part(text: Optional[str]) -> Optional[tuple[int, int]]:
    """``"I/N"`` -> (I, N) with 1 <= I <= N; None for None. Raises ConfigError (a ValueError) otherwise."""
    if text is None:
        return None
    index, sep, count = str(text).partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        raise ConfigError(f"--part takes I/N (e.g. 1/2), not {text!r}") from None
    if not sep or n < 1 or not 1 <= i <= n:
        raise ConfigError(f"--part takes I/N with 1 <= I <= N, not {text!r}")
    return i, n


def part_mask(count: int, part: Optional[tuple[int, int]]) -> np.ndarray:
    """Which of ``count`` sorted samples fall in the I-th of N contiguous, near-equal parts (all when None)."""
    if part is None:
        return np.ones(count, dtype=bool)
    i, n = part
    edges = np.linspace(0, count, n + 1).round().astype(int)
    mask = np.zeros(count, dtype=bool)
    mask[edges[i - 1]:edges[i]] = True
    return mask


def run(args: argparse.Namespace) -> int:
    """The ``eval`` command."""
    part = parse_part(getattr(args, "part", None))
    turned = bool(getattr(args, "turn", None))
    turns = [float(t) for t in args.turn] if turned else [0.0]
    if args.format == "openpose-npz" and turns != [0.0]:
        raise ConfigError("--turn turns images; openpose-npz holds heatmaps")
    dataset = load_dataset(args.format, args.path, limit=args.limit, sequences=args.sequences)
    if part is not None:
        dataset = dataset.subset(part_mask(len(dataset), part))
    base = {"model": "openpose", "keypoints": "openpose"} if args.format == "openpose-npz" else {}
    config = config_from_args(args, base)
    in_range = within_range(dataset.ypr, args.max_angle) if len(dataset) else np.zeros(0, bool)
    to_run = dataset.subset(in_range)
    excluded = [s for s, k in zip(dataset.samples, in_range) if not k]
    skipped = dataset.skipped_counts()
    print(f"eval {args.format} {dataset.path}: {dataset.total_found} labelled, {len(dataset)} loaded"
          + (f" (limit {args.limit})" if args.limit is not None else "")
          + (f" (part {part[0]}/{part[1]}: {len(dataset)})" if part is not None else "")
          + (f", skipped {sum(skipped.values())} ({', '.join(f'{v} {k}' for k, v in skipped.items())})"
             if skipped else "")
          + f", {len(excluded)} outside +-{args.max_angle:g} deg not run", file=sys.stderr)
    described: dict[str, Any]
    if args.format == "openpose-npz":
        from ..estimator.regressor import HeadPoseRegressor

        regressor = HeadPoseRegressor(config.model, config.device)
        if regressor.heatmap_kind != "openpose":
            LOG.warning("model %s was trained on %r heatmaps, not OpenPose's", regressor.weights_path,
                        regressor.heatmap_kind)
        described = {"model": str(regressor.weights_path), "device": regressor.device, "detector": None,
                     "keypoints": "stored OpenPose heatmaps"}
        runs = [(0.0, evaluate_heatmaps(to_run, regressor))]
    else:
        from ..estimator.pipeline import HeadPoseEstimator

        estimator = HeadPoseEstimator(config)
        try:
            described = estimator.describe()
            runs = [(turn, evaluate_images(to_run, estimator, pad=args.pad, turn=turn)) for turn in turns]
        finally:
            estimator.close()
    # Excluded samples take part only in the count, as the convention says.
    out_of_range = [Prediction(s.name, s.ypr, None, s.sequence, 0, "out of range") for s in excluded]
    summaries = [summarize(preds + out_of_range, args.max_angle) for _, preds in runs]
    common = {"format": args.format, "path": str(dataset.path), "max_abs_deg": args.max_angle,
              "labelled": dataset.total_found, "loaded": len(dataset), "limit": args.limit,
              "part": f"{part[0]}/{part[1]}" if part is not None else None,
              "sequences": sorted({s.sequence for s in dataset.samples if s.sequence}) or None,
              "skipped_files": skipped}
    for (turn, _), summary in zip(runs, summaries):
        if turned:
            print(f"\nturned {turn:g} deg clockwise:")
        print(format_summary({**common, **summary}))
        if summary["not_detected"]:
            shown = summary["not_detected"][:20]
            more = len(summary["not_detected"]) - len(shown)
            print(f"not detected ({len(summary['not_detected'])}, of which {summary['wrong_face_only']} with only "
                  f"other faces): {', '.join(shown)}" + (f" ... and {more} more" if more > 0 else ""))
    if turned:
        print("\n" + format_turns([turn for turn, _ in runs], summaries))
        report = {**common, "turns": [{"turn_deg": turn, **summary} for (turn, _), summary in zip(runs, summaries)]}
    else:
        report = {**common, **summaries[0]}
    report.update({"config": config.to_dict(), "pipeline": described})
    if args.json:
        write_json(args.json, report)
    if args.per_sample:
        write_per_sample(args.per_sample, runs)
    return 0


def format_turns(turns: Sequence[float], summaries: Sequence[dict[str, Any]]) -> str:
    """The turns side by side: faces found, mean MAE and median rotation error, and how far that median is from
    the unturned run's (when turn 0 is among them)."""
    ref = next((s for t, s in zip(turns, summaries) if t == 0.0), None)
    ref_rot = (ref.get("rotation_error_deg") or {}).get("median") if ref else None
    lines = [f"{'turn':>8s}{'n':>6s}{'found%':>8s}{'mean':>7s}{'rot p50':>9s}{'- turn 0':>10s}"]
    for turn, s in zip(turns, summaries):
        rate = f"{100 * s['detection_rate']:7.1f}%" if s["detection_rate"] is not None else "       -"
        rot = (s.get("rotation_error_deg") or {}).get("median")
        delta = rot - ref_rot if rot is not None and ref_rot is not None else None
        lines.append(f"{turn:8g}{s['n']:6d}{rate}{_fmt((s['mae'] or {}).get('mean'))}  {_fmt(rot)}   {_fmt(delta)}")
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``eval`` command."""
    parser = subparsers.add_parser(
        "eval", help="accuracy on a labelled dataset (MAE of yaw, pitch, roll; faces found)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--format", required=True, choices=FORMATS, help="dataset format")
    parser.add_argument("path", help="dataset folder (or labels.csv / .npz file)")
    parser.add_argument("--json", metavar="FILE", help="write the metrics as JSON")
    parser.add_argument("--per-sample", metavar="FILE", help="write every sample's ground truth and prediction (CSV)")
    parser.add_argument("--limit", type=int, metavar="N", help="evaluate N samples spread evenly over the set")
    parser.add_argument("--sequences", nargs="+", metavar="SS",
                        help="BIWI only: keep these sequences (e.g. 09 10 11 12, 09,10 or 13-24)")
    parser.add_argument("--part", metavar="I/N",
                        help="keep the I-th of N contiguous parts of the sorted samples (after --sequences and "
                        "--limit), e.g. 1/2 for the first half of AFLW2000's images by index: a tuning part and "
                        "a validation part")
    parser.add_argument("--max-angle", type=float, default=99.0,
                        help="score samples whose three angles are within +-this many degrees (default 99)")
    parser.add_argument("--turn", type=float, nargs="+", metavar="DEG",
                        help="run every image turned clockwise by each DEG (e.g. 0 60 -60 90 -90 180): the label "
                        "turns about the line of sight; one table per turn, then the turns side by side")
    parser.add_argument("--pad", type=float, default=0.0,
                        help="add a border of this fraction of the image size before detection (default 0: "
                        "the image, e.g. a BIWI crop, is the input as is)")
    add_config_arguments(parser, defaults_note="openpose-npz defaults to --model openpose")
    parser.set_defaults(func=run)
