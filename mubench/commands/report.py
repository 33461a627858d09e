"""`mubench report`: tables and figures from the records of a results directory (never trains)."""

from __future__ import annotations

import argparse
import sys
import warnings


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="write Markdown/LaTeX/CSV/HTML tables and figures from results",
                       description="Summarise the records under a results directory: one table per "
                       "(dataset, model, scenario) with mean ± std over seeds, Avg. Gap against each "
                       "seed's Retrain, failed and missing jobs, figures and seed statistics.")
    p.add_argument("--results", default="results", metavar="DIR",
                   help="results root written by `mubench run` (default: results)")
    p.add_argument("--format", default="md,latex,csv,html", metavar="LIST",
                   help="comma-separated formats among md, latex, csv, html, parquet "
                   "(default: md,latex,csv,html; parquet needs pyarrow)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="where to write the report (default: <results>/report)")
    p.add_argument("--plugin", action="append", default=[], metavar="PATH",
                   help="load methods or attacks from this file, for their labels and columns (repeatable)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mubench.plugins import load_plugins
    from mubench.report import write_report

    load_plugins(args.plugin, strict_plugins=True)
    formats = tuple(f.strip().lower() for f in args.format.split(",") if f.strip())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = write_report(args.results, args.out, formats=formats)
    for w in caught:  # e.g. an unreadable record file, or Parquet skipped without pyarrow
        if issubclass(w.category, UserWarning):
            print(f"mubench: note: {w.message}", file=sys.stderr)
        else:  # library deprecations are for developers: hand them back to the default filter
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    for path in paths:
        print(path)
    return 0
