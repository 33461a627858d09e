"""Result records → pandas → summary tables (as data) → Markdown / LaTeX / CSV / HTML files.

Tables are computed as DataFrames by pure functions first (mean ± std over seeds, per-seed gaps
to Retrain, failed and missing jobs) and only then rendered, so every format shows the same
numbers. A report never trains: a job the grid expects but that has no record is listed as
missing, with the command that fills it; a failed job stays in the table as failed.

One job per module: `records` (records → one row per job, Avg. Gap recomputed per seed against
that seed's Retrain, the tidy long form), `tables` (aggregation: expected, missing and failed
jobs, mean ± std over seeds, the summary table), `notes` (what the cells cannot show),
`markdown`, `latex` and `html` (renderers), `write` (`write_report`: every file of a report).
The names below are the public API; import them from `mubench.report`.
"""

from .calibration import calibration_check, calibration_flags, non_discriminating, null_bands
from .html import render_html
from .latex import latex_table, render_latex
from .markdown import markdown_table, render_markdown, summary_markdown
from .notes import GAP_TOLERANCE, fill_command, provenance_line, report_notes
from .records import (
    CELL,
    GAP_METRICS,
    METHOD_LABELS,
    PROVENANCE,
    RENAMED_COLUMNS,
    TABLE_METRICS,
    load_records,
    method_label,
    metric_columns,
    records_frame,
    tidy,
    with_gaps,
)
from .tables import (
    expected_jobs,
    failed_jobs,
    format_number,
    missing_jobs,
    per_seed_gaps,
    summary_stats,
    summary_table,
)
from .write import FORMATS, write_report

__all__ = ["CELL", "FORMATS", "GAP_METRICS", "GAP_TOLERANCE", "METHOD_LABELS", "PROVENANCE",
           "RENAMED_COLUMNS", "TABLE_METRICS", "calibration_check", "calibration_flags", "expected_jobs", "failed_jobs", "fill_command",
           "format_number", "latex_table", "load_records", "markdown_table", "method_label",
           "metric_columns", "missing_jobs", "non_discriminating", "null_bands", "per_seed_gaps", "provenance_line", "records_frame",
           "render_html", "render_latex", "render_markdown", "report_notes", "summary_markdown",
           "summary_stats", "summary_table", "tidy", "with_gaps", "write_report"]
