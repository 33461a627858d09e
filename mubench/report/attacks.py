"""The attacks in reports: SVC MIA-Efficacy beside every attack's columns per method (the
"side-by-side"), so a reader sees where SPEC §5's SVC misjudges a method (../shared/MIA.md).
The attacks' figures are registered by the attacks themselves (U-LiRA's: attacks/ulira.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..attacks import ATTACKS, report_columns
from .records import CELL, attack_metrics, current_ok, method_label


def _attacked(df: pd.DataFrame, fields=None) -> pd.Series:
    """Rows with a value of any of `fields` (default: every attack's summary columns)."""
    fields = attack_metrics() if fields is None else fields
    found = [pd.to_numeric(df[f], errors="coerce").notna() for f in fields if f in df]
    return pd.concat(found, axis=1).any(axis=1) if found else pd.Series(False, index=df.index)


def has_attack(df: pd.DataFrame, fields=None) -> bool:
    return bool(_attacked(df, fields).any())


def side_by_side(df: pd.DataFrame) -> pd.DataFrame:
    """Per (cell, method): mean over seeds of the SVC's MIA-Efficacy (with Retrain's, its
    target) beside every attack's side-by-side columns (U-LiRA's AUC, CI, TPRs and per-example
    wins, the reference-model screen with its null band, a plugin's own) and the text columns
    the attacks describe their rows with (`Attack.describe`); seconds are per cell."""
    ok = current_ok(df)
    retrain = ok[ok["method"].eq("retrain")].groupby(CELL)["mia_efficacy"].mean()
    rows = ok[_attacked(ok)].copy()
    columns = report_columns("side")
    cols = [c for c in columns if c in rows]
    for c in cols:
        rows[c] = pd.to_numeric(rows[c], errors="coerce")
    groups = [rows[c] for c in CELL + ["variant"]]
    table = rows.groupby(CELL + ["variant"], sort=False)[cols].mean()
    table.insert(1, "Retrain's MIA-Efficacy", [retrain.get(tuple(i[:3]), np.nan) for i in table.index])
    table["seeds"] = rows.groupby(CELL + ["variant"], sort=False).size()
    for entry in ATTACKS.entries():
        for name, text in entry.obj.describe(rows).items():
            table[name] = text.groupby(groups, sort=False).agg(lambda v: " + ".join(sorted(set(v) - {""})))
    table = table.rename(columns=columns).round(2).reset_index()
    table["method"] = table.pop("variant").map(method_label)
    return table.set_index(CELL + ["method"])
