"""MP4 video from frames, through an ffmpeg executable where one is installed (none is a dependency).

`find_ffmpeg()` looks for `ffmpeg` on PATH, then for the binary the `imageio-ffmpeg` package ships.
`encode_mp4` pipes raw RGB frames to it and returns the bytes of an H.264 MP4 (yuv420p, the pixel
format every player decodes; frames padded to even sides, as that format needs). The MP4 is
fragmented (`frag_keyframe+empty_moov`) so that it can be written to a pipe: browsers and common
players read it like any MP4.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np


def find_ffmpeg() -> str | None:
    """The ffmpeg executable to use: `ffmpeg` on PATH, else imageio-ffmpeg's, else None."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:  # the package is installed without a usable binary
        return None


def encode_mp4(frames, fps: float = 10.0, ffmpeg: str | None = None) -> bytes:
    """uint8 frames [T, H, W, 3] -> an H.264 MP4 at `fps` frames per second, encoded by `ffmpeg`
    (default: `find_ffmpeg()`). RuntimeError if there is no ffmpeg or it fails (its message kept)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.dtype != np.uint8 or frames.shape[-1] != 3 or not len(frames):
        raise ValueError(f"encode_mp4 expects uint8 frames [T, H, W, 3] with T >= 1, got {frames.shape} {frames.dtype}")
    if not fps > 0:
        raise ValueError(f"encode_mp4: fps must be > 0, got {fps}")
    ffmpeg = ffmpeg or find_ffmpeg()
    if ffmpeg is None:
        raise RuntimeError("encode_mp4: no ffmpeg found (install ffmpeg, or the imageio-ffmpeg package)")
    t, h, w, _ = frames.shape
    command = [ffmpeg, "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", f"{fps:g}",
               "-i", "-", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
               "-movflags", "frag_keyframe+empty_moov", "-f", "mp4", "-"]
    result = subprocess.run(command, input=np.ascontiguousarray(frames).tobytes(), capture_output=True)
    if result.returncode != 0 or not result.stdout:
        raise RuntimeError(f"encode_mp4: {ffmpeg} failed (exit {result.returncode}): "
                           f"{result.stderr.decode(errors='replace').strip()[-500:]}")
    return result.stdout
