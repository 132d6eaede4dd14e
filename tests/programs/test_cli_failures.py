"""Commands fail early and in one line: unwritable or misnamed outputs before any work, bad config
flags naming the file or field, and a failed command exits even when background threads remain."""

import subprocess
import sys
import time

import numpy as np
import pytest

from latentjax.cli import main
from latentjax.programs.flags import parse_config_flags
from latentjax.programs.outputs import apart, output_dir, output_file


def test_output_checks_name_the_flag_and_the_problem(tmp_path):
    afile = tmp_path / "afile.txt"
    afile.write_text("x")
    with pytest.raises(ValueError, match="--out .*afile.txt/x.png: its directory .*not a directory"):
        output_file(afile / "x.png", "--out", (".png",))
    with pytest.raises(ValueError, match=r"written as \.png; give a name ending in \.png"):
        output_file(tmp_path / "g.jpg", "--out", (".png",))
    with pytest.raises(ValueError, match="is a directory"):
        output_file(tmp_path, "--out", (".png",))
    with pytest.raises(ValueError, match="exists and is not a directory"):
        output_dir(afile, "--workdir")
    with pytest.raises(ValueError, match="cannot write there"):
        output_dir("/proc/latentjax-out", "--workdir")
    assert output_dir(tmp_path / "new" / "dir", "--workdir").is_dir()
    with pytest.raises(ValueError, match="lies inside the input directory"):
        apart(tmp_path / "in" / "out", tmp_path / "in", "out_dir")
    with pytest.raises(ValueError, match="is or lies inside"):
        apart(tmp_path, tmp_path, "out_dir")
    apart(tmp_path / "out", tmp_path / "in", "out_dir")  # siblings are fine


@pytest.mark.parametrize("argv, message", [
    (["generate", "builtin:shapes", "--out", "{tmp}/afile.txt/x.png"], "--out .*not a directory"),
    (["generate", "builtin:shapes", "--out", "{tmp}/g.jpg"], r"give a name ending in \.png"),
    (["convert", "builtin:shapes", "{tmp}/afile.txt"], "out_dir .*exists and is not a directory"),
    (["walk", "{tmp}/none.npz", "--generator", "builtin:shapes", "--workdir", "{tmp}/afile.txt"],
     "--workdir .*not a directory"),
    (["discover", "--config", "configs/sefa.py:smoke", "--workdir", "{tmp}/afile.txt"], "--workdir .*not a directory"),
])
def test_commands_refuse_bad_outputs_before_working(tmp_path, capsys, argv, message):
    (tmp_path / "afile.txt").write_text("x")
    start = time.perf_counter()
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and __import__("re").search(message, err), err
    assert time.perf_counter() - start < 5  # refused before loading or sampling anything heavy


def test_config_flag_errors_name_the_file_or_field(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("x = (\n")
    cases = [(["--config", "nope.py"], "--config nope.py: no such file"),
             (["--config", "configs/sefa.py", "--config.bogus=1"], r"--config\.bogus: .*has no such field; its fields"),
             (["--config", "configs/sefa.py:bogus"], "unknown config argument 'bogus'"),
             (["--config", str(bad)], "not a Python config file"),
             (["--config", "configs/sefa.py", "--config.seed=abc"], "invalid literal for int")]
    for argv, message in cases:
        with pytest.raises(SystemExit, match=message) as e:
            parse_config_flags(argv + ["--workdir", str(tmp_path)], "discover")
        assert "Traceback" not in str(e.value) and "\n" not in str(e.value)


def test_a_failed_command_exits_although_a_thread_is_still_running():
    script = ("import threading, time\n"
              "from latentjax import cli\n"
              "threading.Thread(target=time.sleep, args=(60,)).start()  # non-daemon, like a checkpointer's\n"
              "def failing():\n"
              "    print('error: disk full', file=__import__('sys').stderr)\n"
              "    return 2\n"
              "cli.main = failing\n"
              "cli.run()\n")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=50)
    assert done.returncode == 2 and "error: disk full" in done.stderr
    assert time.perf_counter() - start < 30


def test_images_load_at_their_depth_and_unreadable_files_are_named(tmp_path):
    from PIL import Image

    from latentjax.io.images import load_target

    ramp = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")  # a 16-bit grayscale PNG (mode I;16)
    loaded = load_target(tmp_path / "deep.png", 8, 3)
    np.testing.assert_allclose(loaded[..., 0], ramp / 32767.5 - 1.0, atol=1e-5)  # not clipped to 255
    assert loaded.shape == (8, 8, 3) and np.all(loaded[..., 0] == loaded[..., 2])
    (tmp_path / "fake.png").write_text("not an image")
    with pytest.raises(ValueError, match="fake.png: not a readable image"):
        load_target(tmp_path / "fake.png", 8, 3)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "cut.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "cut.png").read_bytes()[:40])
    with pytest.raises(ValueError, match="cut.png: not a readable image"):
        load_target(tmp_path / "cut.png", 8, 3)


def test_invert_never_writes_into_its_input_directory(tmp_path, capsys):
    (tmp_path / "img0.png").write_bytes(b"")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for out in (tmp_path, tmp_path / "inside"):
        assert main(["invert", "builtin:shapes", str(tmp_path), str(out), "--loss", "mse"]) == 2
        assert "is or lies inside the input directory" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
