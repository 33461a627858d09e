"""GitHub-Markdown rendering: the report page, one table, and the summary `mubench run` prints."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .notes import report_notes
from .records import with_gaps
from .tables import per_cell, summary_table


def render_markdown(table: pd.DataFrame, notes: Sequence[str] = (),
                    extra_sections: Sequence[tuple[str, pd.DataFrame]] = (), intro: str = "") -> str:
    """One GitHub-Markdown table per (dataset, model, scenario), then extra tables and notes."""
    out = ["# mubench report", ""] + ([intro, ""] if intro else [])
    under = table.attrs.get("cell_notes", {})
    for (dataset, model, scenario), part in per_cell(table):
        out += [f"## {dataset} / {model} / {scenario}", "", markdown_table(part.reset_index()), ""]
        out += [f"*{n}*" + "\n" for n in under.get((dataset, model, scenario), [])]
    for title, frame in extra_sections:
        out += [f"## {title}", "", markdown_table(frame) if len(frame) else "(none)", ""]
    if notes:
        out += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(out)


def markdown_table(frame: pd.DataFrame) -> str:
    """One GitHub-Markdown table of a frame's columns and rows (index not shown)."""
    def cell(v):
        return str(v).replace("|", "\\|")
    head = [cell(c) for c in frame.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def summary_markdown(df: pd.DataFrame, root: str | Path | None = None) -> str:
    """The summary tables and notes as Markdown, without figures or seed statistics: what
    `mubench run` prints when it finishes."""
    if df.empty:
        return "(no finished method jobs)"
    df = with_gaps(df)
    text = render_markdown(summary_table(df), report_notes(df, root))
    return text.split("\n", 2)[2]  # drop the page title: the caller prints its own context
