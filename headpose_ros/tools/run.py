"""The headpose-ros image and video commands: head poses of image files, a video, an image folder or a camera,
as annotated output and one JSON line per face on stdout.

Each JSON line is FaceResult.to_json() (box [x0, y0, x1, y1] px, keypoints name -> [x, y, confidence], yaw, pitch,
roll in degrees, score, position, position_is_ray) plus "image" (the file) and "face" (its index in the frame,
largest first); the video command adds "frame" (0-based index) and, for image folders, "image". Progress and
messages go to stderr, so stdout stays pure JSON lines.
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
from .common import (ANGLES, IMAGE_SUFFIXES, POSE_MEANING, ParagraphHelpFormatter, add_config_arguments,
                     check_output_dir, check_output_file, config_from_args, json_default, paragraphs,
                     parse_intrinsics, progress, read_image, write_image, write_json)

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


def images_in_folder(folder: Path) -> list[Path]:
    """The image files of ``folder`` (by suffix, sorted); raises ImageError when it cannot be listed."""
    try:
        return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    except OSError as exc:
        raise ImageError(f"folder {folder} cannot be read ({exc.strerror or exc})") from None


def expand_image_paths(paths: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """(the files as given and the image files of any folder given, in order; (path, message) per path that gave
    no image).

    A missing path, an unreadable folder or a folder without images is a message, not an exception, so that
    the other paths are still processed.
    """
    out: list[Path] = []
    problems: list[tuple[str, str]] = []
    for text in paths:
        path = Path(text).expanduser()
        if path.is_dir():
            try:
                found = images_in_folder(path)
            except ImageError as exc:
                problems.append((text, str(exc)))
                continue
            if not found:
                problems.append((text, f"folder {path} holds no image files (" + ", ".join(IMAGE_SUFFIXES) + ")"))
            out.extend(found)
        elif path.exists():
            out.append(path)
        else:
            problems.append((text, f"{path} does not exist"))
    return out, problems


def _annotate(image: np.ndarray, result: FrameResult, intrinsics: Optional[CameraIntrinsics], args) -> np.ndarray:
    from ..estimator.draw import draw_result

    return draw_result(image, result, intrinsics=intrinsics, keypoint_threshold=args.keypoint_threshold_draw,
                       axes=None if args.axes == "none" else args.axes)


def run_image(args: argparse.Namespace) -> int:
    """The image command: 1 when any path or image could not be read (the others are processed), else 0."""
    files, problems = expand_image_paths(args.paths)
    for _, problem in problems:
        print(f"headpose-ros image: {problem}", file=sys.stderr)
    if not files:
        raise ImageError("no image file to process" + (" (see above)" if problems else ""))
    intrinsics = parse_intrinsics(args.intrinsics)
    out_dir = Path(args.out).expanduser() if args.out else None
    if out_dir is not None:
        check_output_dir(out_dir, "--out")
        for file in files:
            if (out_dir / file.name).resolve() == file.resolve():
                raise ConfigError(f"--out {out_dir} would overwrite the input {file}; choose another folder")
    if args.json:
        check_output_file(args.json, "--json")
    estimator = build_estimator(args)
    args.keypoint_threshold_draw = estimator.config.keypoint_threshold
    failures = len(problems)
    report: list[dict[str, Any]] = [{"image": path, "error": problem} for path, problem in problems]
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
    processed = len(report) - failures
    faces = sum(len(entry.get("faces", ())) for entry in report)
    print(f"headpose-ros image: {processed} image{'s' * (processed != 1)}, {faces} face{'s' * (faces != 1)}"
          + (f"; {failures} input{'s' * (failures != 1)} could not be read (exit status 1)" if failures else ""),
          file=sys.stderr)
    if args.json:
        write_json(args.json, {"config": estimator.config.to_dict(), "pipeline": estimator.describe(),
                               "images": report})
    return 1 if failures else 0


def _is_camera(source: str) -> bool:
    return source.isdigit()


Frames = Iterator[tuple[int, Optional[str], np.ndarray]]


class FrameSource:
    """Frames of a video file, an image folder (in name order) or a camera, as (index, image name or None, BGR).

    Opening checks what it can before any frame is processed: a missing path, an empty or unreadable folder, or
    a file or camera OpenCV cannot open raises ImageError. ``failures`` counts the folder's unreadable images
    (reported on stderr and skipped) once iterated.
    """

    def __init__(self, source: str, max_frames: Optional[int]):
        import cv2

        self.source = source
        self.failures = 0
        self.is_camera = _is_camera(source)
        self.files: Optional[list[Path]] = None
        self.capture = None
        path = Path(source).expanduser()
        if not self.is_camera and path.is_dir():
            files = images_in_folder(path)
            if not files:
                raise ImageError(f"image folder {path} holds no image files (" + ", ".join(IMAGE_SUFFIXES) + ")")
            self.files = files[:max_frames] if max_frames is not None else files
            self.total: Optional[int] = len(self.files)
            self.fps = 0.0
            return
        if not self.is_camera and not path.exists():
            raise ImageError(f"video source {source} does not exist (give a video file, an image folder or a "
                             "camera index)")
        if not self.is_camera and not path.is_file():
            raise ImageError(f"video source {source} is neither a file, an image folder nor a camera index")
        self.capture = cv2.VideoCapture(int(source) if self.is_camera else str(path))
        if not self.capture.isOpened():
            self.capture.release()
            raise ImageError(f"cannot open video source {source}" + (
                " (no such camera?)" if self.is_camera else
                ": not a video OpenCV can decode (--verbose shows the decoder's messages)"))
        count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT)) if not self.is_camera else 0
        total = count if count > 0 else None
        if max_frames is not None:
            total = min(total, max_frames) if total is not None else max_frames
        self.total = total
        fps = float(self.capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if np.isfinite(fps) and fps > 0 else 0.0
        self.max_frames = max_frames

    def __iter__(self) -> Frames:
        if self.files is not None:
            for i, file in enumerate(self.files):
                try:
                    yield i, str(file), read_image(file)
                except ImageError as exc:
                    print(f"headpose-ros video: {exc}", file=sys.stderr)
                    self.failures += 1
            return
        i = 0
        try:
            while self.max_frames is None or i < self.max_frames:
                ok, frame = self.capture.read()
                if not ok or frame is None:
                    break
                yield i, None, frame
                i += 1
        finally:
            self.close()

    def close(self) -> None:
        if self.capture is not None:
            self.capture.release()


class _Output:
    """Annotated frames to a video file (by suffix) or to numbered images in a folder; nothing is created on disk
    before the first frame."""

    def __init__(self, target: Optional[str], fps: float):
        self.path = Path(target).expanduser() if target else None
        self.fps = fps if fps > 0 else 30.0
        self.writer = None
        self.is_video = self.path is not None and self.path.suffix.lower() in VIDEO_SUFFIXES
        if self.path is not None:
            if self.is_video:
                check_output_file(self.path, "--out")
            else:
                check_output_dir(self.path, "--out")

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
    """The video command: 0 when every frame was read, 1 when some images of a folder could not be, 2 when the
    source gave no frame at all (not a video, a corrupt file, a camera that sends nothing)."""
    from ..estimator.images import to_bgr8

    if args.max_frames is not None and args.max_frames < 0:
        raise ConfigError("--max-frames must be >= 0")
    intrinsics = parse_intrinsics(args.intrinsics)
    output = _Output(args.out, args.fps or 0.0)  # checks --out before anything is loaded
    if args.json:
        check_output_file(args.json, "--json")
    estimator = build_estimator(args)  # before opening the source: a failed build must not hold a camera
    stats = {"frames": 0, "frames_with_faces": 0, "faces": 0}
    timings: list[float] = []
    source: Optional[FrameSource] = None
    try:
        source = FrameSource(args.source, args.max_frames)
        if not args.fps:
            output.fps = source.fps or 30.0
        args.keypoint_threshold_draw = estimator.config.keypoint_threshold
        for index, name, image in progress(iter(source), total=source.total, desc="video", unit="frame"):
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
        if source is not None:
            source.close()
        estimator.close()
    if stats["frames"] == 0 and not (args.max_frames == 0):
        raise ImageError(f"video source {args.source} gave no frame" + (
            "" if source.files is not None else " (not a video, a corrupt or empty file, or a camera sending "
            "nothing)") + "; nothing was written")
    if timings:
        stats["median_total_ms"] = round(float(np.nanmedian(timings)), 2)
    failures = source.failures
    print(f"headpose-ros video: {stats['frames']} frames, {stats['frames_with_faces']} with faces, "
          f"{stats['faces']} faces" + (f", median {stats['median_total_ms']} ms per frame" if timings else "")
          + (f"; {failures} image{'s' * (failures != 1)} could not be read (exit status 1)" if failures else ""),
          file=sys.stderr)
    if args.json:
        write_json(args.json, {"source": args.source, **stats, "unreadable_images": failures,
                               "config": estimator.config.to_dict(), "pipeline": estimator.describe()})
    return 1 if failures else 0


def _common_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--intrinsics", metavar="FX,FY,CX,CY",
                        help="calibrated camera intrinsics in pixels: the pose is then in the camera's optical frame "
                        "and the position in metres (without: pose relative to the line of sight, position a "
                        "unit-depth ray)")
    parser.add_argument("--axes", choices=("face", "head", "none"), default="face",
                        help="axes drawn on each head: the REP-155 face frame (x out of the face red, y to the "
                        "subject's left green, z to the top of the head blue; default), the head frame (x to the "
                        "subject's left, y to the chin, z to the back of the head), or none")
    add_config_arguments(parser)


JSON_LINE = ("Each face is one JSON line on stdout: box [x0, y0, x1, y1] and keypoints {name: [x, y, confidence]} "
             "in pixels, yaw, pitch, roll, detector score, position [x, y, z] and position_is_ray; faces largest "
             'first, numbered by "face". Progress and messages go to stderr.')
DRAWING = ("Annotated output: the face box, the five keypoints (nose yellow, right eye orange, left eye cyan, right "
           "ear red, left ear blue; a faded ring when below --keypoint-threshold), the head's axes, the angles, and "
           "a legend saying whether they are in the camera frame or relative to the line of sight.")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the image and video commands."""
    image = subparsers.add_parser(
        "image", help="head poses of image files: annotated images and one JSON line per face",
        formatter_class=ParagraphHelpFormatter,
        description=paragraphs(
            "Head poses of image files and of the images in folders. A path that does not exist, a folder that "
            "holds no image and an image that cannot be read are reported on stderr and skipped; the others are "
            "processed and the exit status is then 1. Exit status 2: nothing could be processed, or a "
            "configuration error.", JSON_LINE, ANGLES, POSE_MEANING, DRAWING))
    image.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders of images")
    image.add_argument("--out", metavar="DIR", help="write annotated images (same file names) into DIR")
    image.add_argument("--json", metavar="FILE", help="also write all results, per image, as one JSON document")
    _common_output_arguments(image)
    image.set_defaults(func=run_image)

    video = subparsers.add_parser(
        "video", help="head poses of a video file, an image folder or a camera: annotated video and JSON lines",
        formatter_class=ParagraphHelpFormatter,
        description=paragraphs(
            "Head poses of every frame of a video file, of a folder of images (in name order) or of a camera "
            "(index 0, 1, ...). Exit status 2, with nothing written, when the source gives no frame (not a video, "
            "a corrupt or empty file, an empty folder, a camera that sends nothing); 1 when some images of a "
            "folder could not be read (they are skipped).",
            JSON_LINE + ' Video lines also carry "frame" (0-based) and, for folders, "image".',
            ANGLES, POSE_MEANING, DRAWING))
    video.add_argument("source", metavar="SOURCE", help="video file, folder of images, or camera index (0, 1, ...)")
    video.add_argument("--out", metavar="FILE",
                       help="annotated output: a video if FILE ends in " + "/".join(VIDEO_SUFFIXES)
                       + ", else a folder of annotated frames")
    video.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    video.add_argument("--fps", type=float, help="frame rate of the output video (default: the source's, or 30)")
    video.add_argument("--json", metavar="FILE", help="write a summary (frames, faces, timing, config) as JSON")
    _common_output_arguments(video)
    video.set_defaults(func=run_video)
