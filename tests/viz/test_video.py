"""MP4 through an installed ffmpeg: the frames and settings it is given (a stand-in executable that
records them), the errors, and a real encode where an ffmpeg is installed."""

import json
import subprocess

import numpy as np
import pytest

from support import fake_ffmpeg
from latentjax.viz import video


def test_frames_are_piped_as_raw_rgb_with_their_size_and_rate(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (5, 9, 14, 3), dtype=np.uint8)
    data = video.encode_mp4(frames, fps=12.5, ffmpeg=fake_ffmpeg(tmp_path))
    call = json.loads((tmp_path / "call.json").read_text())
    assert data == b"MP4:" + str(frames.size).encode() and call["bytes"] == frames.size
    argv = call["argv"]
    assert argv[argv.index("-s") + 1] == "14x9" and argv[argv.index("-r") + 1] == "12.5"
    assert argv[argv.index("-pix_fmt") + 1] == "rgb24" and "yuv420p" in argv and argv[-1] == "-"


def test_bad_frames_and_failing_or_missing_ffmpeg_are_named(tmp_path, monkeypatch):
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match=r"uint8 frames \[T, H, W, 3\]"):
        video.encode_mp4(frames.astype(np.float32), ffmpeg="unused")
    with pytest.raises(ValueError, match="fps must be > 0"):
        video.encode_mp4(frames, fps=0, ffmpeg="unused")
    with pytest.raises(RuntimeError, match="exit 3.*unknown encoder 'libx264'"):
        video.encode_mp4(frames, ffmpeg=fake_ffmpeg(tmp_path, exit_code=3))
    monkeypatch.setattr(video, "find_ffmpeg", lambda: None)
    with pytest.raises(RuntimeError, match="no ffmpeg found"):
        video.encode_mp4(frames)


def test_a_real_ffmpeg_writes_an_mp4_it_decodes_again(tmp_path):
    ffmpeg = video.find_ffmpeg()
    if ffmpeg is None:
        pytest.skip("no ffmpeg installed here (the stand-in tests above still run)")
    frames = np.random.default_rng(1).integers(0, 256, (6, 33, 65, 3), dtype=np.uint8)  # odd sides: padded
    path = tmp_path / "out.mp4"
    path.write_bytes(video.encode_mp4(frames, fps=8, ffmpeg=ffmpeg))
    decoded = subprocess.run([ffmpeg, "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                             capture_output=True, check=True).stdout
    assert len(decoded) == 6 * 34 * 66 * 3  # every frame back, at the padded size
