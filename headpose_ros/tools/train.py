"""``headpose-ros train``: train the regressor on synthetic keypoints, and optionally fine-tune on real data.

Synthetic data needs nothing but this package (see :mod:`headpose_ros.tools.synth`). Real labelled data is
given as ``--data FORMAT:PATH`` in the formats of ``headpose-ros eval``; image formats are run through the
configured detector and keypoint source to make heatmaps, ``openpose-npz`` heatmaps are used as they are (a
model trained on them is an ``openpose``-kind model). Seeds are fixed and TensorFlow runs deterministically,
so the same command reproduces the same weights on the same machine and library versions.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

import numpy as np

from ..estimator import geometry
from ..estimator.regressor import (LABEL_SCALE_DEG, MODELS_DIR, ModelCard, build_model, card_path, encode_labels,
                                   export_tflite, file_sha256, resolve_model_path, tflite_path)
from ..estimator.types import HEATMAP_SIZE, NUM_KEYPOINTS
from .synth import POSE_RANGE_DEG, PROFILES, SyntheticSet, generate

LOG = logging.getLogger(__name__)


@dataclass
class ArrayData:
    """Real samples: heatmaps (N, 96, 96, 5) uint8 (0..255) or float32 (0..1) and labels (N, 3) degrees."""

    maps: np.ndarray
    ypr: np.ndarray

    def __len__(self) -> int:
        return len(self.ypr)

    def heatmaps(self, index: np.ndarray, threshold: float) -> np.ndarray:
        maps = self.maps[index]
        return maps.astype(np.float32) / 255.0 if maps.dtype == np.uint8 else maps.astype(np.float32)


#: Either kind of training data: both give ``heatmaps(index, threshold)`` and ``ypr``.
TrainingSet = Union[SyntheticSet, ArrayData]


def _batches(data: TrainingSet, index: np.ndarray, batch_size: int, threshold: float,
             rng: Optional[np.random.Generator]) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(heatmaps, encoded labels, indices) batches of ``data[index]``, shuffled by ``rng`` when given."""
    order = index if rng is None else rng.permutation(index)
    for start in range(0, len(order), batch_size):
        chunk = np.sort(order[start:start + batch_size])
        yield data.heatmaps(chunk, threshold), encode_labels(data.ypr[chunk]), chunk


def evaluate_model(model, data: TrainingSet, index: np.ndarray, threshold: float,
                   batch_size: int = 256) -> dict[str, float]:
    """Mean absolute error (degrees) of yaw, pitch, roll and their mean on ``data[index]``."""
    preds, truth = [], []
    for x, _, chunk in _batches(data, index, batch_size, threshold, None):
        preds.append(np.asarray(model(x, training=False)) * LABEL_SCALE_DEG)
        truth.append(data.ypr[chunk])
    if not preds:
        return {"yaw": math.nan, "pitch": math.nan, "roll": math.nan, "mean": math.nan}
    err = geometry.angle_abs_error(np.concatenate(preds), np.concatenate(truth)).mean(axis=0)
    return {"yaw": float(err[0]), "pitch": float(err[1]), "roll": float(err[2]), "mean": float(err.mean())}


def fit(model, data: TrainingSet, train_idx: np.ndarray, val_idx: np.ndarray, *, epochs: int, batch_size: int,
        lr: float, seed: int, threshold: float) -> list[dict]:
    """Adam with cosine-decayed learning rate on MSE of the encoded labels; returns per-epoch history."""
    import tensorflow as tf
    from tqdm import tqdm

    steps = epochs * math.ceil(len(train_idx) / batch_size)
    opt = tf.keras.optimizers.Adam(tf.keras.optimizers.schedules.CosineDecay(lr, max(steps, 1), alpha=0.02))

    @tf.function(reduce_retracing=True)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    rng = np.random.default_rng(seed + 1)
    history = []
    for epoch in range(epochs):
        losses, t0 = [], time.time()
        bar = tqdm(_batches(data, train_idx, batch_size, threshold, rng), total=math.ceil(len(train_idx) / batch_size),
                   desc=f"epoch {epoch + 1}/{epochs}", unit="batch", leave=False)
        for x, y, _ in bar:
            losses.append(float(step(tf.constant(x), tf.constant(y))))
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.5f}")
        val = evaluate_model(model, data, val_idx, threshold) if len(val_idx) else {}
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_mae": val,
                        "seconds": round(time.time() - t0, 1)})
        LOG.info("epoch %d/%d loss %.5f val MAE %s (%.0f s)", epoch + 1, epochs, history[-1]["loss"],
                 {k: round(v, 2) for k, v in val.items()}, history[-1]["seconds"])
    return history


def _parse_sequences(text: Optional[str]) -> Optional[set[str]]:
    if not text:
        return None
    out: set[str] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.update(f"{i:02d}" for i in range(int(lo), int(hi or lo) + 1))
    return out


def load_real(spec: str, sequences: Optional[set[str]], args: argparse.Namespace) -> tuple[ArrayData, list[str]]:
    """Heatmaps and labels of ``FORMAT:PATH`` (only the BIWI sequences given); names of the samples."""
    from . import datasets

    fmt, _, path = spec.partition(":")
    if fmt == "openpose-npz":
        arrays = datasets.load_openpose_npz(Path(path), sequences=sequences)
        return ArrayData(arrays.heatmaps, arrays.ypr), list(arrays.names)
    from tqdm import tqdm

    from ..estimator.config import EstimatorConfig
    from ..estimator.images import to_bgr8
    from ..estimator.pipeline import build_stages

    cfg = EstimatorConfig(keypoints=args.keypoints)
    detector, source = build_stages(cfg)
    maps, labels, names = [], [], []
    for sample in tqdm(datasets.iter_samples(fmt, Path(path), sequences=sequences), desc=f"heatmaps of {fmt}"):
        image = to_bgr8(sample.load_image())
        boxes = [b for b in detector.detect(image) if b.score >= cfg.min_face_score]
        if not boxes:
            continue
        found = source.locate(image, [max(boxes, key=lambda b: b.area)])[0]
        if found is None:
            continue
        maps.append(np.round(found.heatmaps * 255).astype(np.uint8))
        labels.append(sample.ypr)
        names.append(sample.name)
    return ArrayData(np.stack(maps), np.asarray(labels, dtype=np.float64)), names


def register(sub: "argparse._SubParsersAction") -> None:
    p = sub.add_parser("train", help="train the regressor (synthetic keypoints, optional real fine-tuning)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", default="default", help="model name: writes NAME.weights.h5 and NAME.json")
    p.add_argument("--out", type=Path, default=MODELS_DIR, help="output folder (default: the package's models)")
    p.add_argument("--keypoints", default="face_mesh", choices=sorted(PROFILES),
                   help="keypoint source the model serves: synthetic profile and real-data heatmaps")
    p.add_argument("--synthetic", type=int, default=32000, help="synthetic samples (0: none)")
    p.add_argument("--data", action="append", default=[], metavar="FORMAT:PATH",
                   help="real labelled data (formats of `eval`); repeatable")
    p.add_argument("--sequences", help="BIWI sequences to train on, e.g. 01-08")
    p.add_argument("--val-sequences", help="BIWI sequences to validate on, e.g. 09-12 (held out from training)")
    p.add_argument("--init", help="start from this model's weights (name or path): fine-tuning")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threshold", type=float, default=0.3, help="keypoint confidence threshold of the renderer")
    p.add_argument("--pitch-gain", type=float, nargs=2, metavar=("LO", "HI"), default=None,
                   help="range of the factor by which synthetic keypoints follow pitch (default: the keypoint "
                        "source's profile, face_mesh 0.7 0.9)")
    p.add_argument("--tilt", type=float, default=0.0, metavar="DEG",
                   help="turn each synthetic head about its line of sight by up to +-DEG degrees times 1 - cos(yaw), "
                        "so that turned faces tilt in the image as frontal ones do by their roll (default 0: poses "
                        "drawn in yaw, pitch and roll alone)")
    p.add_argument("--level", type=float, default=None, metavar="DEG",
                   help="level the synthetic keypoints (and turn the labels with them) as the face_mesh source "
                        "does with level_beyond_deg DEG: the `turned` model (default: keypoints as the camera sees "
                        "them)")
    p.add_argument("--min-yaw", type=float, default=0.0, metavar="DEG",
                   help="draw only synthetic heads turned by DEG degrees of yaw or more (a companion for turned "
                        "faces; default 0: every yaw)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    parts, sources = [], []
    if args.synthetic > 0:
        profile = PROFILES[args.keypoints]
        if args.pitch_gain is not None:
            lo, hi = args.pitch_gain
            if not 0.0 < lo <= hi <= 2.0:
                raise SystemExit(f"train: --pitch-gain needs 0 < LO <= HI <= 2, not {lo} {hi}")
            profile = dataclasses.replace(profile, pitch_gain=(lo, hi))
        if not 0.0 <= args.tilt <= 90.0:
            raise SystemExit(f"train: --tilt needs 0 <= DEG <= 90, not {args.tilt}")
        if args.level is not None and not 0.0 <= args.level <= 90.0:
            raise SystemExit(f"train: --level needs 0 <= DEG <= 90, not {args.level}")
        if not 0.0 <= args.min_yaw < POSE_RANGE_DEG[0]:
            raise SystemExit(f"train: --min-yaw needs 0 <= DEG < {POSE_RANGE_DEG[0]:g}, not {args.min_yaw}")
        parts.append(generate(args.synthetic, args.seed, profile, tilt_deg=args.tilt, level_deg=args.level,
                              min_yaw_deg=args.min_yaw))
        gain = "" if args.pitch_gain is None else f", pitch gain {profile.pitch_gain[0]:g}-{profile.pitch_gain[1]:g}"
        gain += f", tilt +-{args.tilt:g} deg x (1 - cos yaw)" if args.tilt else ""
        gain += f", levelled beyond {args.level:g} deg" if args.level is not None else ""
        gain += f", |yaw| from {args.min_yaw:g} deg" if args.min_yaw else ""
        sources.append(f"synthetic:{args.synthetic} ({args.keypoints} profile{gain}, seed {args.seed})")
    train_seq, val_seq = _parse_sequences(args.sequences), _parse_sequences(args.val_sequences)
    val_parts = []
    for spec in args.data:
        data, _ = load_real(spec, train_seq, args)
        parts.append(data)
        sources.append(f"{spec} sequences {args.sequences or 'all'} ({len(data)} samples)")
        if val_seq:
            val_parts.append(load_real(spec, val_seq, args)[0])
    if not parts:
        raise SystemExit("train: nothing to train on (give --synthetic N and/or --data FORMAT:PATH)")
    kind = "openpose" if any(s.startswith("openpose-npz:") for s in args.data) else "rendered"
    sets = parts + val_parts
    if len(sets) == 1 and isinstance(sets[0], SyntheticSet):
        data: TrainingSet = sets[0]  # rendered batch by batch
    else:  # everything rendered once into one array (float16 to halve its memory)
        data = ArrayData(np.concatenate([p.heatmaps(np.arange(len(p)), args.threshold).astype(np.float16)
                                         for p in sets]), np.concatenate([p.ypr for p in sets]))
    n_train = sum(len(p) for p in parts)
    rng = np.random.default_rng(args.seed)
    if val_parts:
        train_idx, val_idx = np.arange(n_train), np.arange(n_train, len(data))
    else:  # hold out 5% of the (synthetic) samples
        perm = rng.permutation(n_train)
        val_idx, train_idx = np.sort(perm[: n_train // 20]), np.sort(perm[n_train // 20:])
    model = build_model(seed=args.seed)
    if args.init:
        model.load_weights(str(resolve_model_path(args.init)))
    LOG.info("training %s on %d samples, validating on %d: %s", args.name, len(train_idx), len(val_idx),
             "; ".join(sources))
    history = fit(model, data, train_idx, val_idx, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                  seed=args.seed, threshold=args.threshold)
    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / f"{args.name}.weights.h5"
    model.save_weights(str(weights))
    weights_sha = file_sha256(weights)
    tflite = {**export_tflite(model, tflite_path(weights)), "weights_sha256": weights_sha}  # the CPU runtimes
    tflite_int8 = {**export_tflite(model, tflite_path(weights, True), int8=True), "weights_sha256": weights_sha}
    ModelCard(
        name=args.name, heatmap_kind=kind, keypoint_source="openpose" if kind == "openpose" else args.keypoints,
        extra={"sha256": weights_sha, "tflite": tflite, "tflite_int8": tflite_int8, "training": {
            "data": sources, "validation": f"sequences {args.val_sequences}" if val_parts else "5% of training samples",
            "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
            "init": args.init, "threshold": args.threshold, "final_val_mae_deg": history[-1]["val_mae"],
            "tensorflow": tf.__version__, "machine": platform.machine(),
        }},
    ).save(card_path(weights))
    print(json.dumps({"weights": str(weights), "tflite": str(tflite_path(weights)), "card": str(card_path(weights)),
                      "history": history}, indent=1))
    return 0


__all__ = ["register", "run", "fit", "evaluate_model", "ArrayData", "HEATMAP_SIZE", "NUM_KEYPOINTS"]
