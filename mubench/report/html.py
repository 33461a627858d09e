"""HTML rendering: one self-contained page (inline CSS, figures as base64 PNG, no scripts)."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence

import pandas as pd

from .tables import per_cell

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}
th,td{padding:.3em .7em;text-align:right;border-bottom:1px solid #e4e4e4;white-space:nowrap}
th{border-bottom:2px solid #444}td:first-child,th:first-child{text-align:left}
td.bad{color:#b00020;font-weight:600}figure{margin:1em 0}img{max-width:100%}
figcaption{font-size:.85em;color:#555}li{margin:.2em 0}
"""


def _html_table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        tds = []
        for v in row:
            text = str(v)
            bad = "failed" in text or "missing" in text
            tds.append(f'<td class="bad">{html.escape(text)}</td>' if bad else f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _html_figure(fig) -> str:
    data = base64.b64encode(fig.png.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(fig.title)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(fig.caption)}</figcaption></figure>")


def render_html(table: pd.DataFrame, notes: Sequence[str] = (),
                extra_sections: Sequence[tuple[str, pd.DataFrame]] = (), figures: Sequence = (),
                intro: str = "") -> str:
    """One self-contained page: inline CSS, figures as base64 PNG, no external assets or scripts."""
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           "<title>mubench report</title>", f"<style>{_CSS}</style></head><body>",
           "<h1>mubench report</h1>",
           "<p>Mean ± std over seeds; Avg. Gap is computed per seed against that seed's Retrain. "
           "RTE is the wall-clock time of the unlearning call.</p>"]
    out += [f"<p>{html.escape(intro)}</p>"] if intro else []
    under = table.attrs.get("cell_notes", {})
    for cell, part in per_cell(table):
        out.append(f"<h2>{html.escape(' / '.join(map(str, cell)))}</h2>")
        out.append(_html_table(part.reset_index()))
        out += [f'<p class="note">{html.escape(n)}</p>' for n in under.get(tuple(cell), [])]
        out += [_html_figure(f) for f in figures if tuple(f.cell) == tuple(cell)]
    for title, frame in extra_sections:
        out.append(f"<h2>{html.escape(title)}</h2>")
        out.append(_html_table(frame) if len(frame) else "<p>(none)</p>")
    if notes:
        out.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
