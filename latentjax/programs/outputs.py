"""Output places checked before a command does its work: a one-line error now, not a traceback after it.

`output_dir` creates the directory and proves it writable; `output_file` checks a file's name,
suffix and directory; `apart` refuses an output directory that is, or lies inside, an input
directory (a command never writes into what it reads). `write` puts encoded bytes or text in place.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def output_dir(path, flag: str) -> Path:
    """`path` as a directory that exists (created, with its parents) and can be written, or a ValueError."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path}: exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as e:
        raise ValueError(f"{flag} {path}: cannot write there ({e.strerror or e})") from None
    return path


def output_file(path, flag: str, suffixes: tuple[str, ...]) -> Path:
    """`path` as a file to (over)write: one of `suffixes`, not a directory, in a writable directory."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag} {path}: is a directory; give a file name")
    if path.suffix.lower() not in suffixes:
        raise ValueError(f"{flag} {path}: the file is written as {'/'.join(suffixes)}; give a name ending in "
                         f"{' or '.join(suffixes)}")
    output_dir(path.parent if str(path.parent) else ".", f"{flag} {path}: its directory")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"{flag} {path}: exists and cannot be written")
    return path


def apart(out_dir, in_dir, flag: str) -> None:
    """A ValueError if `out_dir` is `in_dir` or lies inside it."""
    out_dir, in_dir = Path(out_dir).resolve(), Path(in_dir).resolve()
    if out_dir == in_dir or in_dir in out_dir.parents:
        raise ValueError(f"{flag} {out_dir}: is or lies inside the input directory {in_dir}; results would be "
                         f"written among the inputs (and overwrite images of the same name); choose another "
                         f"directory")


def write(path, data: bytes | str) -> Path:
    """Write `data` (bytes, or text as UTF-8) to `path`, creating its parent directories; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path
