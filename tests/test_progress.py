import io

from latentjax.progress import Progress, track


def test_track_yields_everything_and_reports_total():
    stream = io.StringIO()
    assert list(track(range(5), desc="work", stream=stream, log_interval=0.0)) == list(range(5))
    lines = stream.getvalue().strip().splitlines()
    assert lines[-1].startswith("work  5/5 [100%]")
    assert sum(line.startswith("work  5/5") for line in lines) == 1


def test_progress_shows_postfix_and_eta():
    bar = Progress(10, "steps", stream=io.StringIO(), log_interval=0.0)
    bar.update(4, loss=0.25)
    line = bar.line({"loss": 0.25})
    assert "4/10 [ 40%]" in line and "loss=0.25" in line and "<" in line


def test_disabled_progress_prints_nothing():
    stream = io.StringIO()
    with Progress(3, stream=stream, enabled=False, log_interval=0.0) as bar:
        bar.update(3)
    assert stream.getvalue() == ""
