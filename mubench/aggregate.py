"""The one aggregation over seeds: report tables, paper tables and `mubench tune` all call it.

A frame has one row per job (a record, or a placeholder for a job that has none) with a
`status` column — "ok", "failed" or "missing" — and metric columns. `aggregate` groups it and
gives, per group and metric, the mean and sample std (ddof 1) over the ok rows that have a
value, with the group's job counts, so every table says how many seeds each number rests on.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

STATS = ("mean", "std", "n_values", "n_expected", "n_ok", "n_failed", "n_missing")


def aggregate(frame: pd.DataFrame, by: list[str], metrics: Iterable[str]) -> pd.DataFrame:
    """Per (group of `by`, metric): mean, std (ddof 1, NaN below two values), n_values, and the
    group's counts of jobs expected / ok / failed / missing. Groups keep their first-seen order."""
    metrics = list(metrics)
    rows = []
    status = frame["status"] if "status" in frame else pd.Series("ok", index=frame.index)
    for group, part in frame.groupby(by, sort=False, dropna=False):
        group = group if isinstance(group, tuple) else (group,)
        part_status = status.loc[part.index]
        ok = part[part_status.eq("ok")]
        counts = {"n_expected": len(part), "n_ok": len(ok), "n_failed": int(part_status.eq("failed").sum()),
                  "n_missing": int(part_status.eq("missing").sum())}
        for metric in metrics:
            values = (pd.to_numeric(ok[metric], errors="coerce").dropna() if metric in ok
                      else pd.Series([], dtype=float))
            rows.append({**dict(zip(by, group, strict=True)), "metric": metric,
                         "mean": values.mean() if len(values) else np.nan,
                         "std": values.std(ddof=1) if len(values) > 1 else np.nan,
                         "n_values": len(values), **counts})
    return pd.DataFrame(rows, columns=[*by, "metric", *STATS])
