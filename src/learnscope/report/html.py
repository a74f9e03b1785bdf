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
"""


def figure(png: Path, caption: str = "") -> str:
    """An <img> with the PNG's bytes inlined, so the report needs no other file."""
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">{cap}</figure>'


def _cell(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def table(header: Sequence[str], rows: Sequence[Sequence[object]], first_left: bool = True) -> str:
    """An HTML table; floats are shown with 4 significant digits."""
    cls = ' class="l"' if first_left else ""
    head = "".join(f"<th{cls if i == 0 else ''}>{html.escape(str(h))}</th>" for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f"<td{cls if i == 0 else ''}>{_cell(v)}</td>" for i, v in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def paragraph(text: str, note: bool = False) -> str:
    return f"<p{' class=note' if note else ''}>{html.escape(text)}</p>"


def preformatted(text: str) -> str:
    return f"<pre>{html.escape(text)}</pre>"


def page(title: str, sections: Sequence[tuple[str, Sequence[str]]], subtitle: str = "") -> str:
    """A whole HTML document from (heading, [html fragments]) sections."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
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
