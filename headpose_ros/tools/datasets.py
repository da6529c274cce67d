"""Loaders of labelled head-pose data, by format, yielding plain samples with ground truth in degrees.

Formats (see ``shared/data/README.md``):

- ``aflw2000``: a folder of ``imageXXXXX.jpg`` + ``imageXXXXX.mat``; ``Pose_Para[0][:3]`` = pitch, yaw, roll
  radians, converted by :func:`geometry.ypr_from_aflw_pose_para`. The face's location (to pick the labelled face
  among several) is the centroid of ``pt3d_68``'s x, y.
- ``biwi-crops``: a folder with ``labels.csv`` (image, yaw_deg, pitch_deg, roll_deg; image relative to
  ``crops/``) and ``crops/SS/*.png``. Empty (0-byte) and missing crop files are skipped and counted.
- ``biwi-frames``: BIWI's own ``frame_XXXXX_rgb.png`` + ``frame_XXXXX_pose.txt`` (+ ``rgb.cal`` in the same
  folder or its parent), in one folder or in per-sequence folders ``SS/``. Ground truth by
  :func:`geometry.ypr_from_biwi_rotation`; the head centre (pose.txt translation, mm, depth camera) is
  projected with ``rgb.cal`` to locate the labelled face.
- ``openpose-npz``: ``heatmaps`` uint8 (N, 96, 96, 5), ``images`` (N,) names ``SS/frame_XXXXX_rgb.png``,
  ``ypr_deg`` (N, 3).

Every loader takes ``limit`` (N samples spread evenly over the sorted set, so that a quick run sees every
sequence) and ``sequences`` (BIWI only: keep these sequence folders, e.g. ``["09", "10"]``; models trained on
BIWI must be evaluated on held-out sequences).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np

from ..estimator import geometry
from ..estimator.errors import HeadPoseError
from ..estimator.types import CameraIntrinsics
from .common import read_image

LOG = logging.getLogger(__name__)
FORMATS = ("aflw2000", "biwi-crops", "biwi-frames", "openpose-npz")


class DatasetError(HeadPoseError):
    """A dataset folder or file is missing or not in the format asked for; the message names the path."""


@dataclass
class Sample:
    """One labelled face.

    ``ypr`` is the ground truth (yaw, pitch, roll) in degrees, package convention. Exactly one of
    ``image_path`` and ``heatmaps`` is set. ``face_xy`` is where the labelled face lies in the image (pixels),
    when the format says; ``intrinsics`` the camera's, when known; ``sequence`` the BIWI sequence folder name.
    """

    name: str
    ypr: np.ndarray
    image_path: Optional[Path] = None
    heatmaps: Optional[np.ndarray] = field(default=None, repr=False)
    sequence: Optional[str] = None
    face_xy: Optional[tuple[float, float]] = None
    intrinsics: Optional[CameraIntrinsics] = None

    def load_image(self) -> np.ndarray:
        """The sample's image (BGR); raises ImageError when it cannot be read."""
        if self.image_path is None:
            raise DatasetError(f"sample {self.name} has no image (heatmap-only format)")
        return read_image(self.image_path)


@dataclass
class Dataset:
    """Samples of one dataset and the files that were skipped, with the reason for each.

    ``total_found`` counts the labelled entries found before skipping and filtering. For a heatmap format,
    ``heatmaps`` holds every sample's stored heatmaps stacked, (N, 96, 96, 5) uint8 (the samples' own
    ``heatmaps`` are views of it).
    """

    format: str
    path: Path
    samples: list[Sample]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    total_found: int = 0
    heatmaps: Optional[np.ndarray] = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def skipped_counts(self) -> dict[str, int]:
        """Number of skipped files per reason."""
        counts: dict[str, int] = {}
        for _, reason in self.skipped:
            counts[reason] = counts.get(reason, 0) + 1
        return counts

    @property
    def ypr(self) -> np.ndarray:
        """(N, 3) ground-truth yaw, pitch, roll in degrees."""
        return np.stack([s.ypr for s in self.samples]) if self.samples else np.zeros((0, 3))

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.samples]

    def subset(self, keep: Sequence[bool]) -> "Dataset":
        """The samples where ``keep`` is true (same skipped list and count)."""
        mask = np.asarray(keep, dtype=bool).reshape(-1)
        samples = [s for s, k in zip(self.samples, mask) if k]
        maps = self.heatmaps[mask] if self.heatmaps is not None else None
        out = Dataset(self.format, self.path, samples, self.skipped, self.total_found, maps)
        if maps is not None:
            for sample, m in zip(out.samples, maps):
                sample.heatmaps = m
        return out


def heatmaps_to_float(heatmaps_u8: np.ndarray) -> np.ndarray:
    """Stored uint8 heatmaps (OpenPose's [0, 1] maps times 255) -> float32 in [0, 1], the regressor's input."""
    return np.asarray(heatmaps_u8, dtype=np.float32) / np.float32(255.0)


def spread_limit(n: int, limit: Optional[int]) -> np.ndarray:
    """Indices of ``limit`` items spread evenly over ``n`` (all of them when limit is None or >= n)."""
    if limit is None or limit >= n:
        return np.arange(n)
    if limit <= 0:
        return np.zeros(0, dtype=int)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(int))


def _file_problem(path: Path) -> Optional[str]:
    """Why an image file cannot be used ("missing file", "empty file"), or None."""
    if not path.is_file():
        return "missing file"
    return "empty file" if path.stat().st_size == 0 else None


def _normalise_sequences(sequences: Optional[Sequence[str]]) -> Optional[set[str]]:
    """``["9", "10,11"]`` -> ``{"09", "10", "11"}`` (BIWI folder names are two digits)."""
    if not sequences:
        return None
    out: set[str] = set()
    for item in sequences:
        for part in str(item).replace(" ", "").split(","):
            if not part:
                continue
            if "-" in part and all(p.isdigit() for p in part.split("-", 1)):  # a range 13-24
                lo, hi = (int(p) for p in part.split("-", 1))
                out.update(f"{i:02d}" for i in range(lo, hi + 1))
            else:
                out.add(part.zfill(2) if part.isdigit() else part)
    return out


def _finish(fmt: str, path: Path, samples: list[Sample], skipped: list[tuple[str, str]], total: int,
            sequences: Optional[Sequence[str]], limit: Optional[int]) -> Dataset:
    wanted = _normalise_sequences(sequences)
    if wanted is not None:
        no_seq = sum(1 for s in samples if s.sequence is None)
        if no_seq:
            LOG.warning("%d samples of %s have no sequence folder and are left out by --sequences", no_seq, path)
        samples = [s for s in samples if s.sequence in wanted]
    samples = [samples[i] for i in spread_limit(len(samples), limit)]
    return Dataset(fmt, path, samples, skipped, total)


# --- AFLW2000-3D ---------------------------------------------------------------------------------------------

def load_aflw2000(path: "str | Path", limit: Optional[int] = None,
                  sequences: Optional[Sequence[str]] = None) -> Dataset:
    """AFLW2000-3D: ``imageXXXXX.jpg`` with ``imageXXXXX.mat`` (Pose_Para = pitch, yaw, roll radians)."""
    import scipy.io

    root = Path(path).expanduser()
    if not root.is_dir():
        raise DatasetError(f"aflw2000 folder {root} does not exist")
    if sequences:
        raise DatasetError("--sequences applies to BIWI formats only")
    images = sorted(p for p in root.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    samples: list[Sample] = []
    skipped: list[tuple[str, str]] = []
    for image in images:
        mat = image.with_suffix(".mat")
        if not mat.is_file():
            skipped.append((image.name, "no .mat label"))
            continue
        if image.stat().st_size == 0:
            skipped.append((image.name, "empty file"))
            continue
        try:
            data = scipy.io.loadmat(str(mat))
            pose = geometry.ypr_from_aflw_pose_para(np.asarray(data["Pose_Para"]).ravel()[:3])
        except Exception as exc:  # noqa: BLE001 - scipy raises many types (IndexError, ValueError...) on junk
            LOG.warning("%s: unreadable: %s: %s", mat, type(exc).__name__, exc)
            skipped.append((image.name, "unreadable .mat"))
            continue
        face_xy = None
        pts = data.get("pt3d_68")
        if pts is not None and np.asarray(pts).ndim == 2 and np.asarray(pts).shape[0] >= 2:
            centre = np.asarray(pts, dtype=np.float64)[:2].mean(axis=1)
            if np.all(np.isfinite(centre)):
                face_xy = (float(centre[0]), float(centre[1]))
        samples.append(Sample(image.name, pose.as_array(), image_path=image, face_xy=face_xy))
    if not images:
        raise DatasetError(f"aflw2000 folder {root} holds no images (imageXXXXX.jpg + .mat)")
    return _finish("aflw2000", root, samples, skipped, len(images), sequences, limit)


# --- BIWI crops --------------------------------------------------------------------------------------------

def _find_labels(root: Path) -> tuple[Path, Path]:
    """(labels.csv, crops folder) for a path that is the dataset folder, its crops folder or labels.csv."""
    if root.is_file() and root.suffix == ".csv":
        labels = root
        crops = root.parent / "crops" if (root.parent / "crops").is_dir() else root.parent
        return labels, crops
    for labels, crops in ((root / "labels.csv", root / "crops"), (root / "crops" / "labels.csv", root / "crops"),
                          (root.parent / "labels.csv", root)):
        if labels.is_file() and crops.is_dir():
            return labels, crops
    raise DatasetError(f"biwi-crops: no labels.csv with a crops/ folder at {root}")


def load_biwi_crops(path: "str | Path", limit: Optional[int] = None,
                    sequences: Optional[Sequence[str]] = None) -> Dataset:
    """BIWI face crops listed in ``labels.csv`` (image, yaw_deg, pitch_deg, roll_deg); empty files are skipped."""
    root = Path(path).expanduser()
    if not root.exists():
        raise DatasetError(f"biwi-crops path {root} does not exist")
    labels, crops = _find_labels(root)
    samples: list[Sample] = []
    skipped: list[tuple[str, str]] = []
    with labels.open(newline="") as handle:
        reader = csv.DictReader(handle)
        need = {"image", "yaw_deg", "pitch_deg", "roll_deg"}
        if not reader.fieldnames or not need <= set(reader.fieldnames):
            raise DatasetError(f"{labels} must have the columns {', '.join(sorted(need))}, not {reader.fieldnames}")
        rows = list(reader)
    for row in rows:
        name = row["image"].strip()
        try:
            ypr = np.array([float(row["yaw_deg"]), float(row["pitch_deg"]), float(row["roll_deg"])])
        except (TypeError, ValueError):
            skipped.append((name, "bad label"))
            continue
        if not np.all(np.isfinite(ypr)):
            skipped.append((name, "bad label"))
            continue
        file = crops / name
        problem = _file_problem(file)
        if problem:
            skipped.append((name, problem))
            continue
        parts = Path(name).parts
        samples.append(Sample(name, ypr, image_path=file, sequence=parts[0] if len(parts) > 1 else None))
    samples.sort(key=lambda s: s.name)
    return _finish("biwi-crops", root, samples, skipped, len(rows), sequences, limit)


# --- BIWI raw frames ---------------------------------------------------------------------------------------

@dataclass
class BiwiCalibration:
    """A BIWI ``rgb.cal``: intrinsics, and the depth->RGB extrinsics (p_rgb = R p_depth + t, millimetres)."""

    intrinsics: CameraIntrinsics
    rotation: np.ndarray
    translation_mm: np.ndarray


def read_biwi_calibration(path: "str | Path") -> BiwiCalibration:
    """Parse a BIWI ``rgb.cal``: 3x3 K, distortion (4), 3x3 R, t (3) in mm, image size."""
    file = Path(path)
    try:
        numbers = [float(v) for v in file.read_text().split()]
    except (OSError, ValueError) as exc:
        raise DatasetError(f"calibration file {file} cannot be read: {exc}") from None
    if len(numbers) < 9:
        raise DatasetError(f"calibration file {file} holds no 3x3 camera matrix")
    k = np.array(numbers[:9]).reshape(3, 3)
    intr = CameraIntrinsics.from_k(k)
    if not intr.is_valid():
        raise DatasetError(f"calibration file {file} has an invalid camera matrix {k.tolist()}")
    if len(numbers) >= 9 + 4 + 9 + 3:
        rot = np.array(numbers[13:22]).reshape(3, 3)
        trans = np.array(numbers[22:25])
    else:
        rot, trans = np.eye(3), np.zeros(3)
    return BiwiCalibration(intr, rot, trans)


def read_biwi_pose(path: "str | Path") -> tuple[np.ndarray, np.ndarray]:
    """A BIWI ``frame_XXXXX_pose.txt``: (3x3 rotation block as stored, head centre in mm, depth camera)."""
    file = Path(path)
    try:
        values = np.array([float(v) for v in file.read_text().split()])
    except (OSError, ValueError) as exc:
        raise DatasetError(f"pose file {file} cannot be read: {exc}") from None
    if values.size < 12 or not np.all(np.isfinite(values[:12])):
        raise DatasetError(f"pose file {file} must hold a 3x3 rotation and a 3-vector, found {values.size} numbers")
    return values[:9].reshape(3, 3), values[9:12]


def load_biwi_frames(path: "str | Path", limit: Optional[int] = None,
                     sequences: Optional[Sequence[str]] = None) -> Dataset:
    """BIWI raw frames with their pose files; intrinsics from the nearest ``rgb.cal``."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DatasetError(f"biwi-frames folder {root} does not exist")
    poses = sorted(root.rglob("frame_*_pose.txt"))
    samples: list[Sample] = []
    skipped: list[tuple[str, str]] = []
    calibrations: dict[Path, Optional[BiwiCalibration]] = {}
    for pose_file in poses:
        folder = pose_file.parent
        name = str(pose_file.relative_to(root)).replace("_pose.txt", "_rgb.png")
        image = pose_file.with_name(pose_file.name.replace("_pose.txt", "_rgb.png"))
        problem = _file_problem(image)
        if problem:
            skipped.append((name, problem))
            continue
        try:
            rot, centre = read_biwi_pose(pose_file)
        except DatasetError as exc:
            LOG.warning("%s", exc)
            skipped.append((name, "bad pose file"))
            continue
        if folder not in calibrations:
            cal_file = next((c for c in (folder / "rgb.cal", folder.parent / "rgb.cal") if c.is_file()), None)
            calibrations[folder] = read_biwi_calibration(cal_file) if cal_file else None
        cal = calibrations[folder]
        face_xy = None
        if cal is not None:
            centre_rgb = cal.rotation @ centre + cal.translation_mm
            if centre_rgb[2] > 0:
                uv = geometry.project_points(centre_rgb[None], cal.intrinsics)[0]
                face_xy = (float(uv[0]), float(uv[1]))
        pose = geometry.ypr_from_biwi_rotation(rot)
        seq = folder.name if folder != root and folder.name.isdigit() else None
        samples.append(Sample(name, pose.as_array(), image_path=image, sequence=seq, face_xy=face_xy,
                              intrinsics=cal.intrinsics if cal else None))
    if not poses:
        raise DatasetError(f"biwi-frames folder {root} holds no frame_XXXXX_pose.txt files")
    return _finish("biwi-frames", root, samples, skipped, len(poses), sequences, limit)


# --- OpenPose heatmaps -------------------------------------------------------------------------------------

def load_openpose_npz(path: "str | Path", limit: Optional[int] = None,
                      sequences: Optional[Sequence[str]] = None) -> Dataset:
    """An OpenPose heatmap array file (``heatmaps`` uint8 (N, 96, 96, 5), ``images``, ``ypr_deg``).

    ``path`` is the .npz file or a folder holding ``openpose_heatmaps.npz``.
    """
    file = Path(path).expanduser()
    if file.is_dir():
        file = file / "openpose_heatmaps.npz"
    if not file.is_file():
        raise DatasetError(f"openpose-npz file {file} does not exist")
    try:
        with np.load(str(file), allow_pickle=False) as data:
            missing = {"heatmaps", "ypr_deg"} - set(data.files)
            if missing:
                raise DatasetError(f"{file} lacks the array(s) {', '.join(sorted(missing))}")
            heatmaps = data["heatmaps"]
            ypr = np.asarray(data["ypr_deg"], dtype=np.float64)
            names = [str(n) for n in data["images"]] if "images" in data.files else \
                [f"{i:06d}" for i in range(len(heatmaps))]
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{file} is not a readable .npz file: {exc}") from None
    if heatmaps.ndim != 4 or heatmaps.shape[1:] != (96, 96, 5):
        raise DatasetError(f"{file}: heatmaps must be (N, 96, 96, 5), not {heatmaps.shape}")
    if ypr.shape != (len(heatmaps), 3) or len(names) != len(heatmaps):
        raise DatasetError(f"{file}: heatmaps {heatmaps.shape}, ypr_deg {ypr.shape} and images ({len(names)}) "
                           "disagree in length")
    samples: list[Sample] = []
    skipped: list[tuple[str, str]] = []
    for i, (name, angles) in enumerate(zip(names, ypr)):
        if not np.all(np.isfinite(angles)):
            skipped.append((name, "bad label"))
            continue
        parts = Path(name).parts
        samples.append(Sample(name, angles, heatmaps=heatmaps[i], sequence=parts[0] if len(parts) > 1 else None))
    dataset = _finish("openpose-npz", file, samples, skipped, len(names), sequences, limit)
    dataset.heatmaps = np.stack([s.heatmaps for s in dataset.samples]) if dataset.samples else \
        np.zeros((0, *heatmaps.shape[1:]), heatmaps.dtype)
    for sample, maps in zip(dataset.samples, dataset.heatmaps):
        sample.heatmaps = maps  # views of the stacked copy, so that the whole file's array can be freed
    return dataset


LOADERS = {
    "aflw2000": load_aflw2000,
    "biwi-crops": load_biwi_crops,
    "biwi-frames": load_biwi_frames,
    "openpose-npz": load_openpose_npz,
}


def load_dataset(fmt: str, path: "str | Path", limit: Optional[int] = None,
                 sequences: Optional[Sequence[str]] = None) -> Dataset:
    """The samples of dataset ``path`` in format ``fmt`` (one of :data:`FORMATS`)."""
    if fmt not in LOADERS:
        raise DatasetError(f"unknown dataset format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if limit is not None and limit < 0:
        raise DatasetError(f"limit must be >= 0, not {limit}")
    return LOADERS[fmt](path, limit=limit, sequences=sequences)


def iter_samples(fmt: str, path: "str | Path", limit: Optional[int] = None,
                 sequences: Optional[Sequence[str]] = None) -> Iterator[Sample]:
    """The samples of :func:`load_dataset`, one by one."""
    yield from load_dataset(fmt, path, limit=limit, sequences=sequences).samples


def within_range(ypr: np.ndarray, max_abs_deg: float = 99.0) -> np.ndarray:
    """Mask of rows of (N, 3) angles whose three angles lie within +-``max_abs_deg`` (benchmark convention)."""
    ypr = np.asarray(ypr, dtype=np.float64).reshape(-1, 3)
    return np.all(np.abs(ypr) <= max_abs_deg, axis=1)


def every_within_range(dataset: Dataset, every: int = 1, offset: int = 0) -> Iterator[Sample]:
    """Every ``every``-th sample of ``dataset`` from the ``offset``-th (counted over all its samples) whose angles
    lie within the benchmarks' +-99 deg (:func:`within_range`): offsets 0 to ``every - 1`` split it into parts."""
    for i, (sample, ok) in enumerate(zip(dataset, within_range(dataset.ypr))):
        if ok and not (i - offset) % every:
            yield sample


__all__ = ["FORMATS", "Sample", "Dataset", "DatasetError", "load_dataset", "iter_samples", "load_openpose_npz",
           "heatmaps_to_float", "within_range", "every_within_range", "read_biwi_calibration", "read_biwi_pose",
           "spread_limit"]
