"""A dependency-free progress bar with rate and ETA, shown by process 0 only.

Long jobs (direction discovery, training, inversion) report through `track` or `Progress`, so every
command looks the same and multi-process runs print once. On a terminal the bar redraws in place;
in a log file it writes a line at most every `log_interval` seconds.
"""

from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator, TextIO, TypeVar

import jax

T = TypeVar("T")


def _format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class Progress:
    """Counts work done out of `total` and prints `desc  n/total [pct] rate unit/s, elapsed<eta`."""

    def __init__(self, total: int | None, desc: str = "", unit: str = "it", *, start: int = 0,
                 stream: TextIO | None = None, log_interval: float = 10.0, enabled: bool | None = None):
        self.total = total
        self.desc = desc
        self.unit = unit
        self.n = start
        self._start_n = start
        self._stream = stream if stream is not None else sys.stderr
        self._interactive = getattr(self._stream, "isatty", lambda: False)()
        self._interval = 0.2 if self._interactive else log_interval
        self._enabled = jax.process_index() == 0 if enabled is None else enabled
        self._t0 = time.perf_counter()
        self._last_print = -float("inf")
        self._printed_n = None

    def update(self, n: int = 1, **postfix) -> None:
        """Advance by `n`; `postfix` values (e.g. loss=0.3) are shown after the bar."""
        self.n += n
        now = time.perf_counter()
        if now - self._last_print >= self._interval or (self.total is not None and self.n >= self.total):
            self._print(now, postfix)

    def line(self, postfix: dict | None = None) -> str:
        """The current status as one line of text."""
        elapsed = time.perf_counter() - self._t0
        done = self.n - self._start_n
        rate = done / elapsed if elapsed > 0 else 0.0
        parts = [self.desc] if self.desc else []
        if self.total:
            parts.append(f"{self.n}/{self.total} [{100.0 * self.n / self.total:3.0f}%]")
        else:
            parts.append(f"{self.n}")
        timing = f"{rate:.3g} {self.unit}/s, {_format_seconds(elapsed)}"
        if self.total and rate > 0:
            timing += f"<{_format_seconds(max(self.total - self.n, 0) / rate)}"
        parts.append(timing)
        parts += [f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
                  for key, value in (postfix or {}).items()]
        return "  ".join(parts)

    def _print(self, now: float, postfix: dict) -> None:
        self._last_print = now
        self._printed_n = self.n
        if not self._enabled:
            return
        end = "" if self._interactive else "\n"
        prefix = "\r\033[K" if self._interactive else ""
        self._stream.write(prefix + self.line(postfix) + end)
        self._stream.flush()

    def close(self) -> None:
        """Print the final state unless it was just printed (and end the line on a terminal)."""
        if self._printed_n != self.n:
            self._print(time.perf_counter(), {})
        if self._enabled and self._interactive:
            self._stream.write("\n")
            self._stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def track(iterable: Iterable[T], total: int | None = None, desc: str = "", unit: str = "it",
          **kwargs) -> Iterator[T]:
    """Iterate over `iterable`, showing progress; `total` defaults to `len(iterable)` where defined."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    with Progress(total, desc, unit, **kwargs) as bar:
        for item in iterable:
            yield item
            bar.update()
