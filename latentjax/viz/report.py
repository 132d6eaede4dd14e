"""A self-contained HTML report: one file, every picture embedded as base64.

A report is a title, a summary table and sections; each section may hold its own summary, tables
(a header row and rows of cells), a score list and captioned figures. `report` returns the HTML
text; the programs decide where it goes.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
from typing import Sequence

_MIME = {b"\x89PNG": "image/png", b"GIF8": "image/gif"}
_STYLE = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1em}"
          "th,td{border:1px solid #ccc;padding:2px 8px;text-align:left}img{image-rendering:pixelated;"
          "max-width:100%}figure{margin:1em 0}")


@dataclasses.dataclass(frozen=True)
class Table:
    caption: str
    header: Sequence[str]
    rows: Sequence[Sequence]


@dataclasses.dataclass(frozen=True)
class Section:
    title: str
    summary: dict = dataclasses.field(default_factory=dict)
    tables: Sequence[Table] = ()
    scores: Sequence[float] | None = None
    figures: Sequence[tuple[str, bytes]] = ()


def markdown_table(header, rows) -> str:
    """A Markdown table of `rows` (sequences of cells) under `header`."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|---" * len(header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows]) + "\n"


def _data_uri(data: bytes) -> str:
    mime = _MIME.get(data[:4])
    if mime is None:
        raise ValueError("report figures must be PNG or GIF bytes")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _summary_html(summary: dict) -> str:
    if not summary:
        return ""
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td><code>"
                   f"{html.escape(json.dumps(v) if not isinstance(v, str) else v)}</code></td></tr>"
                   for k, v in summary.items())
    return f"<table>{rows}</table>"


def _table_html(table: Table) -> str:
    esc = lambda v: html.escape(v if isinstance(v, str) else f"{v:.6g}" if isinstance(v, float) else str(v))  # noqa: E731
    head = "".join(f"<th>{esc(h)}</th>" for h in table.header)
    rows = "".join("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>" for row in table.rows)
    caption = f"<caption>{esc(table.caption)}</caption>" if table.caption else ""
    return f"<table>{caption}<tr>{head}</tr>{rows}</table>"


def _section_html(section: Section) -> str:
    parts = [f"<h2>{html.escape(section.title)}</h2>", _summary_html(section.summary)]
    parts += [_table_html(t) for t in section.tables]
    if section.scores is not None:
        parts.append(_table_html(Table("", ("direction", "score"), list(enumerate(map(float, section.scores))))))
    parts += [f'<figure><img src="{_data_uri(data)}" alt="{html.escape(caption)}"><figcaption>'
              f"{html.escape(caption)}</figcaption></figure>" for caption, data in section.figures]
    return "".join(parts)


def report(title: str, summary: dict, sections: Sequence[Section]) -> str:
    """HTML text: the title, `summary` as a table, then each section."""
    esc = html.escape
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title><style>{_STYLE}</style>"
            f"</head><body><h1>{esc(title)}</h1>{_summary_html(summary)}"
            f"{''.join(_section_html(s) for s in sections)}</body></html>\n")
