"""``headpose-ros image`` and ``headpose-ros video``: head poses of image files, a video, an image folder or a
camera, as annotated output and one JSON line per face on stdout.

Each JSON line is :meth:`FaceResult.to_json` (box [x0, y0, x1, y1] px, keypoints name -> [x, y, confidence],
yaw, pitch, roll in degrees, score, position, position_is_ray) plus ``image`` (the file) and ``face`` (its
index in the frame, largest first); the video command adds ``frame`` (0-based index) and, for image folders,
``image``. Progress and messages go to stderr, so stdout stays pure JSON lines.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from ..estimator.errors import ConfigError, ImageError
from ..estimator.types import CameraIntrinsics, FrameResult
from .common import (IMAGE_SUFFIXES, add_config_arguments, config_from_args, json_default, parse_intrinsics,
                     progress, read_image, write_image, write_json)

LOG = logging.getLogger(__name__)
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v")
_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


def build_estimator(args: argparse.Namespace):
    """The HeadPoseEstimator configured by the command's flags / YAML."""
    from ..estimator.pipeline import HeadPoseEstimator

    return HeadPoseEstimator(config_from_args(args))


def face_records(result: FrameResult, **extra: Any) -> list[dict[str, Any]]:
    """One JSON-ready dict per face: ``extra`` fields first, then ``face`` index, then FaceResult.to_json()."""
    return [{**extra, "face": i, **face.to_json()} for i, face in enumerate(result.faces)]


def emit(records: list[dict[str, Any]]) -> None:
    for record in records:
        sys.stdout.write(json.dumps(record, default=json_default) + "\n")
    sys.stdout.flush()


def expand_image_paths(paths: list[str]) -> list[Path]:
    """Files as given, and the image files (sorted) of any folder given; raises ImageError for a missing path."""
    out: list[Path] = []
    for text in paths:
        path = Path(text).expanduser()
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        elif path.exists():
            out.append(path)
        else:
            raise ImageError(f"{path} does not exist")
    return out


def _annotate(image: np.ndarray, result: FrameResult, intrinsics: Optional[CameraIntrinsics], args) -> np.ndarray:
    from ..estimator.draw import draw_result

    return draw_result(image, result, intrinsics=intrinsics, keypoint_threshold=args.keypoint_threshold_draw,
                       axes=None if args.axes == "none" else args.axes)


def run_image(args: argparse.Namespace) -> int:
    """The ``image`` command: returns 1 when any image could not be read, else 0."""
    files = expand_image_paths(args.paths)
    if not files:
        raise ImageError("no image files given (folders are searched for " + ", ".join(IMAGE_SUFFIXES) + ")")
    intrinsics = parse_intrinsics(args.intrinsics)
    out_dir = Path(args.out).expanduser() if args.out else None
    if out_dir is not None:
        for file in files:
            if (out_dir / file.name).resolve() == file.resolve():
                raise ConfigError(f"--out {out_dir} would overwrite the input {file}; choose another folder")
    estimator = build_estimator(args)
    args.keypoint_threshold_draw = estimator.config.keypoint_threshold
    failures = 0
    report: list[dict[str, Any]] = []
    try:
        for file in progress(files, desc="image", unit="img", disable=len(files) < 2):
            try:
                image = read_image(file)
                result = estimator.process(image, intrinsics=intrinsics)
            except ImageError as exc:
                print(f"headpose-ros image: {exc}", file=sys.stderr)
                failures += 1
                report.append({"image": str(file), "error": str(exc)})
                continue
            emit(face_records(result, image=str(file)))
            if not result.faces:
                LOG.info("%s: no face found", file)
            report.append({"image": str(file), "width": result.image_size[0], "height": result.image_size[1],
                           "stages_ms": result.stages_ms, "faces": [f.to_json() for f in result.faces]})
            if out_dir is not None:
                write_image(out_dir / file.name, _annotate(image, result, intrinsics, args))
    finally:
        estimator.close()
    if args.json:
        write_json(args.json, {"config": estimator.config.to_dict(), "pipeline": estimator.describe(),
                               "images": report})
    return 1 if failures else 0


def _is_camera(source: str) -> bool:
    return source.isdigit()


Frames = Iterator[tuple[int, Optional[str], np.ndarray]]


def iterate_frames(source: str, max_frames: Optional[int]) -> tuple[Frames, Optional[int], float]:
    """(frames as (index, image name or None, BGR image), frame count if known, frames per second)."""
    import cv2

    path = Path(source).expanduser()
    if not _is_camera(source) and path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ImageError(f"image folder {path} holds no images")
        files = files[:max_frames] if max_frames is not None else files

        def from_folder():
            for i, file in enumerate(files):
                try:
                    yield i, str(file), read_image(file)
                except ImageError as exc:
                    print(f"headpose-ros video: {exc}", file=sys.stderr)

        return from_folder(), len(files), 0.0
    if not _is_camera(source) and not path.is_file():
        raise ImageError(f"video source {source} is neither a file, an image folder nor a camera index")
    capture = cv2.VideoCapture(int(source) if _is_camera(source) else str(path))
    if not capture.isOpened():
        raise ImageError(f"cannot open video source {source}" + (" (no such camera?)" if _is_camera(source) else
                                                                 " (not a video OpenCV can decode?)"))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if not _is_camera(source) else 0
    total = count if count > 0 else None
    if max_frames is not None:
        total = min(total, max_frames) if total is not None else max_frames
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)

    def from_capture():
        i = 0
        try:
            while max_frames is None or i < max_frames:
                ok, frame = capture.read()
                if not ok or frame is None:
                    break
                yield i, None, frame
                i += 1
        finally:
            capture.release()

    return from_capture(), total, fps if np.isfinite(fps) else 0.0


class _Output:
    """Annotated frames to a video file (by suffix) or to numbered images in a folder."""

    def __init__(self, target: Optional[str], fps: float):
        self.path = Path(target).expanduser() if target else None
        self.fps = fps if fps > 0 else 30.0
        self.writer = None
        self.is_video = self.path is not None and self.path.suffix.lower() in VIDEO_SUFFIXES
        if self.path is not None and not self.is_video:
            self.path.mkdir(parents=True, exist_ok=True)

    def write(self, index: int, name: Optional[str], image: np.ndarray) -> None:
        import cv2

        if self.path is None:
            return
        if not self.is_video:
            write_image(self.path / (Path(name).name if name else f"frame_{index:06d}.png"), image)
            return
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fourcc = cv2.VideoWriter_fourcc(*_FOURCC.get(self.path.suffix.lower(), "mp4v"))
            self.size = (image.shape[1], image.shape[0])
            self.writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, self.size)
            if not self.writer.isOpened():
                raise ImageError(f"cannot write video {self.path} (codec for {self.path.suffix} unavailable?)")
        if (image.shape[1], image.shape[0]) != self.size:  # frames of an image folder may differ in size
            image = cv2.resize(image, self.size)
        self.writer.write(image)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None


def run_video(args: argparse.Namespace) -> int:
    """The ``video`` command."""
    from ..estimator.images import to_bgr8

    if args.max_frames is not None and args.max_frames < 0:
        raise ConfigError("--max-frames must be >= 0")
    intrinsics = parse_intrinsics(args.intrinsics)
    estimator = build_estimator(args)  # before opening the source: a failed build must not hold a camera
    frames, total, fps = iterate_frames(args.source, args.max_frames)
    args.keypoint_threshold_draw = estimator.config.keypoint_threshold
    output = _Output(args.out, args.fps or fps)
    stats = {"frames": 0, "frames_with_faces": 0, "faces": 0}
    timings: list[float] = []
    try:
        for index, name, image in progress(frames, total=total, desc="video", unit="frame"):
            result = estimator.process(image, intrinsics=intrinsics)
            extra: dict[str, Any] = {"frame": index}
            if name:
                extra["image"] = name
            emit(face_records(result, **extra))
            stats["frames"] += 1
            stats["frames_with_faces"] += bool(result.faces)
            stats["faces"] += len(result.faces)
            timings.append(result.stages_ms.get("total", float("nan")))
            if output.path is not None:
                output.write(index, name, _annotate(to_bgr8(image), result, intrinsics, args))
    finally:
        output.close()
        estimator.close()
    if timings:
        stats["median_total_ms"] = round(float(np.nanmedian(timings)), 2)
    print(f"headpose-ros video: {stats['frames']} frames, {stats['frames_with_faces']} with faces, "
          f"{stats['faces']} faces" + (f", median {stats['median_total_ms']} ms per frame" if timings else ""),
          file=sys.stderr)
    if args.json:
        write_json(args.json, {"source": args.source, **stats, "config": estimator.config.to_dict(),
                               "pipeline": estimator.describe()})
    return 0


def _common_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--intrinsics", metavar="FX,FY,CX,CY",
                        help="camera intrinsics in pixels: positions become metres in the optical frame "
                        "(without: unit-depth rays under a guessed focal length = image width)")
    parser.add_argument("--axes", choices=("face", "head", "none"), default="face",
                        help="axes drawn on each head: REP-155 face frame (x out of the face red, y subject's left "
                        "green, z up blue), the head frame (x subject's left, y chin, z back), or none")
    add_config_arguments(parser)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``image`` and ``video`` commands."""
    image = subparsers.add_parser(
        "image", help="head poses of image files: annotated images and one JSON line per face",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    image.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders of images")
    image.add_argument("--out", metavar="DIR", help="write annotated images (same file names) into DIR")
    image.add_argument("--json", metavar="FILE", help="also write all results, per image, as one JSON document")
    _common_output_arguments(image)
    image.set_defaults(func=run_image)

    video = subparsers.add_parser(
        "video", help="head poses of a video file, an image folder or a camera: annotated video and JSON lines",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    video.add_argument("source", metavar="SOURCE", help="video file, folder of images, or camera index (0, 1, ...)")
    video.add_argument("--out", metavar="FILE",
                       help="annotated output: a video if FILE ends in " + "/".join(VIDEO_SUFFIXES)
                       + ", else a folder of annotated frames")
    video.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    video.add_argument("--fps", type=float, help="frame rate of the output video (default: the source's, or 30)")
    video.add_argument("--json", metavar="FILE", help="write a summary (frames, faces, timing, config) as JSON")
    _common_output_arguments(video)
    video.set_defaults(func=run_video)
