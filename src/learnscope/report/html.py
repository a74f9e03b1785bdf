"""A single self-contained HTML file: figures embedded as base64 PNG, tables, a config listing."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; }
figure { margin: .8em 0; } figcaption { font-size: .85em; color: #555; }
img { max-width: 100%; } pre { background: #f7f7f7; padding: .8em; overflow-x: auto; font-size: .8em; }
.note { background: #fff8e1; border-left: 4px solid #f0c000; padding: .5em .8em; }
.warning { background: #fdecea; border: 2px solid #c62828; border-radius: 4px; padding: .6em 1em; margin: 1em 0; }
.warning strong { color: #b71c1c; font-size: 1.1em; } .warning ul { margin: .4em 0 .2em 1.2em; padding: 0; }
.caution { background: #fff8e1; border: 2px solid #e0a800; border-radius: 4px; padding: .6em 1em; margin: 1em 0; }
.caution strong { color: #7a5500; } .caution ul { margin: .4em 0 .2em 1.2em; padding: 0; }
.ok { background: #edf7ed; border-left: 4px solid #2e7d32; padding: .35em .8em; margin: .8em 0; }
.muted { color: #666; font-size: .9em; } details { margin: .3em 0; } summary { cursor: pointer; color: #444; }
"""


def figure(png: Path, caption: str = "") -> str:
    """An <img> with the PNG's bytes inlined, so the report needs no other file."""
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">{cap}</figure>'


def _cell(v: object) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def table(header: Sequence[str], rows: Sequence[Sequence[object]], first_left: bool = True) -> str:
    """An HTML table; floats are shown with 4 significant digits, ``None`` and NaN as "–"."""
    cls = ' class="l"' if first_left else ""
    head = "".join(f"<th{cls if i == 0 else ''}>{html.escape(str(h))}</th>" for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f"<td{cls if i == 0 else ''}>{_cell(v)}</td>" for i, v in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def paragraph(text: str, note: bool = False) -> str:
    return f"<p{' class=note' if note else ''}>{html.escape(text)}</p>"


def muted(text: str) -> str:
    """A small grey paragraph (e.g. what the columns of a table mean)."""
    return f'<p class="muted">{html.escape(text)}</p>'


def preformatted(text: str) -> str:
    return f"<pre>{html.escape(text)}</pre>"


def warning_box(headline: str, items: Sequence[str], details: str = "", level: str = "warning") -> str:
    """A box for the top of a report: a headline and a list of warnings (and optional collapsed ``details``, HTML).

    level : "warning" (red: the result failed its checks) or "caution" (amber: it passed, with remarks).
    """
    if level not in ("warning", "caution"):
        raise ValueError(f"level must be 'warning' or 'caution', not {level!r}")
    lis = "".join(f"<li>{html.escape(str(i))}</li>" for i in items)
    more = f"<details><summary>details</summary>{details}</details>" if details else ""
    role = ' role="alert"' if level == "warning" else ""
    return f'<div class="{level}"{role}><strong>{html.escape(headline)}</strong><ul>{lis}</ul>{more}</div>'


def ok_note(text: str, details: str = "") -> str:
    """A one-line green note (e.g. "result checks passed"), with optional collapsed details."""
    more = f"<details><summary>details</summary>{details}</details>" if details else ""
    return f'<div class="ok">{html.escape(text)}{more}</div>'


def page(
    title: str, sections: Sequence[tuple[str, Sequence[str]]], subtitle: str = "", top: Sequence[str] = ()
) -> str:
    """A whole HTML document from (heading, [html fragments]) sections; ``top`` fragments come first, under the
    title (e.g. a :func:`warning_box`)."""
    parts = [f"<h1>{html.escape(title)}</h1>", *top]
    if subtitle:
        parts.append(f"<p>{html.escape(subtitle)}</p>")
    for heading, fragments in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts.extend(fragments)
    body = "\n".join(parts)
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )
