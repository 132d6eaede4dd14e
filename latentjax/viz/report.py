"""A self-contained HTML report: one file, every picture embedded as base64."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Sequence

_MIME = {b"\x89PNG": "image/png", b"GIF8": "image/gif"}


def _data_uri(data: bytes) -> str:
    mime = _MIME.get(data[:4])
    if mime is None:
        raise ValueError("report figures must be PNG or GIF bytes")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def html_report(title: str, summary: dict, scores: Sequence[float], figures: Sequence[tuple[str, bytes]]) -> str:
    """HTML text: `summary` (method, space, settings, ...) as a table, the scores, then captioned figures."""
    esc = html.escape
    rows = "".join(f"<tr><th>{esc(str(k))}</th><td><code>{esc(json.dumps(v) if not isinstance(v, str) else v)}"
                   f"</code></td></tr>" for k, v in summary.items())
    score_rows = "".join(f"<tr><td>{i}</td><td>{s:.6g}</td></tr>" for i, s in enumerate(scores))
    body = "".join(f'<figure><img src="{_data_uri(data)}" alt="{esc(caption)}"><figcaption>{esc(caption)}'
                   f"</figcaption></figure>" for caption, data in figures)
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1em}"
             "th,td{border:1px solid #ccc;padding:2px 8px;text-align:left}img{image-rendering:pixelated;"
             "max-width:100%}figure{margin:1em 0}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title><style>{style}</style>"
            f"</head><body><h1>{esc(title)}</h1><table>{rows}</table><h2>Scores</h2><table><tr><th>direction</th>"
            f"<th>score</th></tr>{score_rows}</table><h2>Walks</h2>{body}</body></html>\n")


def save_report(path, title: str, summary: dict, scores: Sequence[float], figures: Sequence[tuple[str, bytes]]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html_report(title, summary, scores, figures), encoding="utf-8")
    return path
