"""Training metrics: one JSON line per logged step, TensorBoard event files, and image grids.

Only process 0 writes. TensorBoard events go through `tensorboardX` (a maintained writer); without
it the JSONL file and PNG grids are still written and a note says why there are no events.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import jax

from latentjax.viz.grid import encode_png, image_grid, to_uint8

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
SAMPLES_DIR = "samples"


def note(message: str) -> None:
    """Print a line to stderr on process 0 only."""
    if jax.process_index() == 0:
        print(message, file=sys.stderr, flush=True)


def read_metrics(workdir) -> list[dict]:
    """The records of `workdir/metrics.jsonl`, in order. A torn last line (what a kill mid-write leaves)
    is dropped with a note; an unreadable line elsewhere is a ValueError naming the file and line."""
    path = Path(workdir) / METRICS_FILE
    if not path.exists():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            if number == len(lines):
                note(f"{path}: dropped a torn last line (a run killed while writing it)")
                break
            raise ValueError(f"{path}: line {number} is not a JSON record ({e}); the file is damaged") from None
    return records


class MetricWriter:
    """Writes scalars (JSONL + TensorBoard) and image grids under `workdir` from process 0.

    `first_step` > 0 means a resumed run: records after it (written by a run that was killed before
    its next checkpoint) are dropped, so the file holds one history.
    """

    def __init__(self, workdir, first_step: int = 0):
        self.workdir = Path(workdir)
        self.enabled = jax.process_index() == 0
        self._tb = None
        if not self.enabled:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        kept = [r for r in read_metrics(self.workdir) if r.get("step", 0) <= first_step]
        (self.workdir / METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in kept))
        self._jsonl = open(self.workdir / METRICS_FILE, "a")
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            note("tensorboardX is not installed: no TensorBoard events (metrics.jsonl and PNG grids are written)")
        else:
            # A resumed run starts a new event file; purge_step hides the killed run's events after it.
            self._tb = SummaryWriter(str(self.workdir / TENSORBOARD_DIR), purge_step=first_step or None,
                                     filename_suffix=f".from{first_step}")

    def scalars(self, step: int, metrics: dict) -> None:
        if not self.enabled:
            return
        values = {k: float(v) for k, v in metrics.items()}
        finite = {k: v if math.isfinite(v) else str(v) for k, v in values.items()}  # JSON has no NaN
        record = {"step": int(step), "time": time.time(), **finite}
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()
        if self._tb is not None:
            for name, value in values.items():
                self._tb.add_scalar(name, value, int(step))

    def images(self, step: int, name: str, images) -> Path | None:
        """Save `images` [N, H, W, C] in [-1, 1] as `samples/{name}_{step:07d}.png` (and to TensorBoard)."""
        if not self.enabled:
            return None
        grid = image_grid(to_uint8(images))
        path = self.workdir / SAMPLES_DIR / f"{name}_{int(step):07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode_png(grid))
        if self._tb is not None:
            self._tb.add_image(name, grid, int(step), dataformats="HWC")
        return path

    def close(self) -> None:
        if not self.enabled:
            return
        self._jsonl.close()
        if self._tb is not None:
            self._tb.close()
