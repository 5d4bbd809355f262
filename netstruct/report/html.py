"""A small, dependency-free HTML writer for the report (figures embedded as PNG)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["Section", "render_report"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}figure{margin:1em 0}
figcaption{font-size:.85em;color:#555}img{max-width:100%}.note{color:#555;font-size:.9em}
.toc a{margin-right:1em}code{background:#f5f5f5;padding:0 .2em}
details{margin:.6em 0}summary{cursor:pointer}
"""


@dataclass
class Section:
    """One report section: prose, tables, figures and the numbers behind them."""

    key: str
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    figures: list[tuple[str, bytes, str]] = field(default_factory=list)  # caption, png, file stem
    numbers: dict[str, Any] = field(default_factory=dict)
    collapsed: set[str] = field(default_factory=set)  # captions of tables rendered folded


def _table(caption: str, df: pd.DataFrame, collapsed: bool = False) -> str:
    body = df.to_html(
        index=False, float_format=lambda v: f"{v:.4g}", border=0, escape=True, na_rep="–"
    )
    if collapsed:
        return (
            f"<details><summary><b>{html.escape(caption)}</b> ({len(df)} rows; "
            f"click to show)</summary>{body}</details>"
        )
    return f"<p><b>{html.escape(caption)}</b></p>{body}"


def render_report(title: str, intro: list[str], sections: list[Section]) -> str:
    """Render the sections as one HTML page with embedded figures."""
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
    ]
    parts += [f"<p class='note'>{p}</p>" for p in intro]
    parts.append(
        "<p class='toc'>"
        + "".join(f"<a href='#{s.key}'>{html.escape(s.title)}</a>" for s in sections)
        + "</p>"
    )
    for s in sections:
        parts.append(f"<h2 id='{s.key}'>{html.escape(s.title)}</h2>")
        parts += [f"<p>{p}</p>" for p in s.paragraphs]
        parts += [_table(c, df, c in s.collapsed) for c, df in s.tables]
        for cap, png, stem in s.figures:
            data = base64.b64encode(png).decode()
            parts.append(
                f"<figure><img alt='{html.escape(cap)}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{html.escape(cap)} (vector: <code>figures/{html.escape(stem)}.pdf</code>, "
                f"<code>.svg</code>)</figcaption></figure>"
            )
    parts.append("</body></html>\n")
    return "\n".join(parts)
