"""Method records → one pandas row per job, Avg. Gap recomputed per seed, and the tidy long form.

Avg. Gap is recomputed here from each record's ua/ra/ta/mia_efficacy against the Retrain of the
same (dataset, model, scenario, seed) rather than trusted from the record; `notes` reports any
disagreement with the stored value (SPEC §5 defines the gap per seed, then aggregates).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ..attacks import report_columns
from ..errors import MubenchError
from ..plugins import load_plugins
from ..store import Store
from ..unlearning import METHODS

CELL = ["dataset", "model", "scenario"]
JOB = CELL + ["method", "variant", "seed"]  # one job of the grid
GAP_METRICS = ("ua", "ra", "ta", "mia_efficacy")
NO_MIA_TERMS = tuple(m for m in GAP_METRICS if m != "mia_efficacy")  # the gap without the SVC's term
# Result columns (API, lower snake) → the paper's names, which appear only in rendered tables.
TABLE_METRICS = {"ua": "UA", "ra": "RA", "ta": "TA", "mia_efficacy": "MIA-Efficacy",
                 "avg_gap": "Avg. Gap", "rte_s": "RTE (s)", "params_changed": "params changed"}
# Shown where some row's MIA-Efficacy is an SVC extrapolation (`mia_extrapolates`): the gap of the
# three other terms, so a reader can rank without the flagged one.
NO_MIA_GAP = {"avg_gap_no_mia": "Avg. Gap w/o MIA"}


def attack_metrics() -> dict[str, str]:
    """The attacks' summary columns (mubench/attacks/), each header stating its ideal (an unlearned
    predictor the attack cannot tell from Retrain), from every registered attack, plugins included."""
    load_plugins()
    return report_columns("summary")


def table_metrics(df: pd.DataFrame) -> dict[str, str]:
    """TABLE_METRICS, plus the attack columns that some row of `df` has a value of."""
    extra = {k: v for k, v in attack_metrics().items() if k in df and pd.to_numeric(df[k], errors="coerce").notna().any()}
    flagged = "mia_extrapolates" in df and pd.to_numeric(current_ok(df)["mia_extrapolates"], errors="coerce").fillna(0).any()
    head = {}
    for name, label in TABLE_METRICS.items():
        head[name] = label
        if name == "avg_gap" and flagged and "avg_gap_no_mia" in df:
            head.update(NO_MIA_GAP)  # right after the gap it qualifies
    return {**head, **extra}


class _MethodLabels(Mapping):
    """Registry names → report labels, in row order (each method class's `label` and `rank`).

    Read from the method registry on every use, so plugins loaded later appear too.
    """

    _cache: tuple = ((), {})

    def _table(self) -> dict[str, str]:
        if not self._cache[0]:
            load_plugins()  # built-ins and entry points, once; file plugins register themselves
        names = tuple(METHODS.names())
        if names != self._cache[0]:
            classes = sorted((METHODS.get(n) for n in names), key=lambda c: (c.rank, c.name))
            self._cache = (names, {c.name: c.label or c.name for c in classes})
        return self._cache[1]

    def __getitem__(self, name: str) -> str:
        return self._table()[name]

    def __iter__(self):
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


METHOD_LABELS = _MethodLabels()
# Old column names → current ones, mapped on read so results written by older versions still load.
RENAMED_COLUMNS = {"mia": "mia_efficacy", "rte": "rte_s", "gap": "avg_gap"}
# Columns that describe a job rather than measure it; every other numeric column is a metric.
PROVENANCE = ["key", "status", "error", "traceback_file", "scenario_kind", "family", "method_version",
              "display_name", "tuned", "tuned_from", "tuned_file", "tuning_protocol", "split_hash", "original_key", "retrain_key",
              "original_train_acc", "original_test_acc", "device", "precision", "n_jobs", "torch_threads", "started",
              "finished", "wall_s", "n_forget", "n_retain", "n_test"]
_NOT_METRICS = set(CELL) | set(PROVENANCE) | {"seed", "method", "variant", "params", "info", "data_options",
                                             "versions", "superseded", "gap_ref_key", "kind",
                                             "non_default_params"}
# Record dicts flattened to prefixed provenance columns: `versions` → version_torch, …, `machine`
# (device.machine: CPU, ISA flags, threads) → machine_cpu, machine_amx, …
FLATTENED = {"versions": "version_", "machine": "machine_"}


def _provenance_column(name: str) -> bool:
    return name.startswith(tuple(FLATTENED.values()))


def method_label(variant: str) -> str:
    """`salun[sparsity=0.3]` → `SalUn[sparsity=0.3]`; unknown method names are shown as is."""
    base, bracket, rest = variant.partition("[")
    return METHOD_LABELS.get(base, base) + bracket + rest


def sort_rows(df: pd.DataFrame, then: list[str]) -> pd.DataFrame:
    """Rows by cell, then methods in `METHOD_LABELS` order (unknown ones last), then `then`."""
    order = list(METHOD_LABELS)  # one registry read, not one per row
    rank = df["method"].map(lambda m: order.index(m) if m in order else len(order))
    out = df.assign(_rank=rank).sort_values(CELL + ["_rank"] + then, kind="stable")
    return out.drop(columns="_rank").reset_index(drop=True)


def load_records(root: str | Path) -> pd.DataFrame:
    """One row per method job under `<root>/records/method/`, failed jobs included (see
    `records_frame` for the columns), or, for a `records.csv` that `tidy` wrote, its rows back
    in wide form (so a committed report is re-rendered with today's tables from its CSV alone).
    No records at all is an error naming the folder."""
    if str(root).endswith(".csv"):
        return records_from_tidy(root)
    store = Store(root)
    records = list(store.iter_records("method"))
    if not records:
        raise MubenchError(
            f"no method records under {str(store.root / 'records' / 'method')!r}; produce results "
            f"with `python -m mubench run --out {store.root}` or pass --results DIR")
    df = records_frame(records)
    df["results_root"] = str(store.root)  # figures the runner drew live under it
    return df


def records_from_tidy(path: str | Path) -> pd.DataFrame:
    """A tidy `records.csv` (one row per job and metric) → one record per job, through
    `records_frame`. Only what the CSV holds comes back: numbers and provenance, not the lists
    (per-example margins, null values) or tables that records keep as JSON."""
    path = Path(path)
    if not path.is_file():
        raise MubenchError(f"no tidy records file {str(path)!r}; give a results folder or a records.csv "
                           "that `mubench report` wrote")
    long = pd.read_csv(path)
    missing = sorted({*JOB, "metric", "value"} - set(long.columns))
    if missing:
        raise MubenchError(f"{path} is not a tidy records file (no column {missing[0]!r})")
    long = long[~long["superseded"].astype(bool)] if "superseded" in long else long
    flags = {"True": 1.0, "False": 0.0, True: 1.0, False: 0.0}  # CSVs written before values were numeric
    long = long.assign(value=pd.to_numeric(long["value"].map(lambda v: flags.get(v, v)), errors="coerce"))
    # one record per record key: a forget set run alone and in a family is two records of one job
    by = JOB + ["key"] if "key" in long else JOB
    if "key" in long:
        long = long.assign(key=long["key"].fillna(""))
    ident = [c for c in long.columns if c not in ("metric", "value", "superseded", "method")]
    jobs = long.drop_duplicates(by)[ident + ["method"]]
    wide = long.pivot_table(index=by, columns="metric", values="value", aggfunc="first", dropna=False)
    frame = jobs.merge(wide.reset_index(), on=by, how="left").drop(columns="variant")
    records = [{k: v for k, v in r.items() if not (isinstance(v, float) and np.isnan(v))}
               for r in frame.to_dict("records")]
    for r in records:
        r.setdefault("display_name", r["method"])
    df = records_frame(records)
    df["results_root"] = str(path.parent)
    return df


def records_frame(records: Iterable[dict]) -> pd.DataFrame:
    """Method records (as dicts) → one row per job, the frame every table is computed from.

    Columns: the record's identity, provenance and metric fields (`versions` and `machine`
    flattened to `version_<name>` and `machine_<name>`, old column names mapped to current ones), plus `variant` (the display
    name, e.g. `salun[sparsity=0.3]`) and `superseded` (True for an older record of the same
    cell, variant and seed — a failed try followed by a success, or a previous method version;
    tables use the newest ok one). Records of other kinds (no `method`) are ignored.
    """
    rows = [_normalise(r) for r in records if r.get("method")]
    df = pd.DataFrame(rows)
    for col in CELL + ["method", "status", "display_name", "finished", "error", "seed", "info"]:
        if col not in df:
            df[col] = None
    for col in GAP_METRICS + ("avg_gap", "rte_s", "params_changed"):  # JSON null → NaN
        df[col] = pd.to_numeric(df[col], errors="coerce") if col in df else np.nan
    df["status"] = df["status"].fillna("ok")
    df["variant"] = df["display_name"].where(df["display_name"].notna(), df["method"])
    for col in ("seed", "n_jobs", "method_version"):  # failed rows' NaN would make them floats
        if col in df:
            try:
                df[col] = pd.to_numeric(df[col]).astype("Int64")
            except (TypeError, ValueError):
                pass  # a non-integer version string stays as written
    for col in df.columns:  # flags (mia_extrapolates) as 0/1, so every metric column is numeric
        values = df[col].dropna()
        if len(values) and values.map(lambda v: isinstance(v, (bool, np.bool_))).all():
            df[col] = df[col].map(lambda v: float(v) if isinstance(v, (bool, np.bool_)) else np.nan)
    df["superseded"] = _superseded(df) if len(df) else pd.Series(dtype=bool)
    return sort_rows(df, ["variant", "seed"])


def _normalise(record: dict) -> dict:
    row = {RENAMED_COLUMNS.get(k, k): v for k, v in record.items()}
    source = row.get("tuned_from")
    if isinstance(source, dict) or source is None:  # a tidy CSV carries the two columns themselves
        source = source or {}
        row["tuned_file"], row["tuning_protocol"] = source.get("file"), source.get("protocol")
    for field, prefix in FLATTENED.items():
        for name, value in (row.pop(field, None) or {}).items():
            row[f"{prefix}{name}"] = value
    return row


def _family(df: pd.DataFrame) -> pd.Series:
    """Each record's scenario family, "" for a scenario listed alone (or records before families)."""
    return df["family"].fillna("").astype(str) if "family" in df else pd.Series("", index=df.index)


def _superseded(df: pd.DataFrame) -> pd.Series:
    """An older record of the same job: same cell, variant, seed and family (a family member's
    Evaluate is its own job beside the same scenario listed alone, not a re-run of it)."""
    order = df.assign(_ok=df["status"].eq("ok"), _fin=df["finished"].fillna("").astype(str), _family=_family(df))
    order = order.sort_values(["_ok", "_fin"], ascending=False, kind="stable")
    first = ~order.duplicated(CELL + ["variant", "seed", "_family"], keep="first")
    return ~first.reindex(df.index)


def current(df: pd.DataFrame) -> pd.DataFrame:
    """The rows per-cell tables show: the newest record of each job (see `records_frame`), and of
    a forget set that several entries ran (alone and in a family, or in two families; the same
    predictor and numbers) one record, the one listed alone if any (report/families.py reads the
    family members' own records)."""
    cur = df[~df["superseded"]]
    if not _family(cur).ne("").any():
        return cur
    ranked = cur.assign(_member=_family(cur).ne("")).sort_values("_member", kind="stable")
    return cur.loc[sorted(ranked.drop_duplicates(CELL + ["variant", "seed"]).index)]


def current_ok(df: pd.DataFrame) -> pd.DataFrame:
    """The current rows of jobs that finished ok."""
    cur = current(df)
    return cur[cur["status"].eq("ok")]


def with_gaps(df: pd.DataFrame) -> pd.DataFrame:
    """Recompute `avg_gap` per row against the Retrain of the same cell and seed.

    The stored value moves to `avg_gap_stored`; `gap_ref_key` names the Retrain record used
    (the one the record's `retrain_key` names if present, else the cell's `retrain` of that
    seed). Rows without an ok Retrain get NaN. Idempotent.
    """
    if "avg_gap_stored" in df:
        return df
    df = df.copy()
    ok = current_ok(df)
    retrains = ok[ok["method"].eq("retrain")]
    by_key = {r.key: r for r in retrains.itertuples()} if "key" in retrains else {}
    by_seed = {}
    for r in retrains.sort_values("variant", key=lambda s: s.ne("retrain")).itertuples():
        by_seed.setdefault((r.dataset, r.model, r.scenario, r.seed), r)
    from ..hardness import tow

    gaps, no_mia, tows, refs = [], [], [], []
    for row in df.itertuples():
        ref = by_key.get(getattr(row, "retrain_key", None)) if row.method != "retrain" else None
        ref = ref or by_seed.get((row.dataset, row.model, row.scenario, row.seed))
        if row.method == "retrain" and row.status == "ok":
            ref = row  # Retrain is its own reference: gap 0 by definition
        if ref is None or row.status != "ok":
            gaps.append(np.nan)
            no_mia.append(np.nan)
            tows.append(np.nan)
            refs.append(None)
            continue
        diffs = {m: abs(float(getattr(row, m)) - float(getattr(ref, m))) for m in GAP_METRICS}
        gaps.append(float(np.mean(list(diffs.values()))))
        no_mia.append(float(np.mean([diffs[m] for m in NO_MIA_TERMS])))
        tows.append(tow(*(float(getattr(row, m)) for m in NO_MIA_TERMS), *(float(getattr(ref, m)) for m in NO_MIA_TERMS)))
        refs.append(getattr(ref, "key", None))
    df["avg_gap_stored"] = df["avg_gap"]
    df["avg_gap"] = gaps
    df["avg_gap_no_mia"] = no_mia
    df["tow"] = tows  # Zhao et al.'s tug of war (mubench/hardness.py), against the same Retrain
    df["gap_ref_key"] = refs
    return df


def metric_columns(df: pd.DataFrame) -> list[str]:
    """Numeric result columns in a stable order: the table metrics first, then the extras."""
    numeric = [c for c in df.columns if c not in _NOT_METRICS and not _provenance_column(c)
               and pd.api.types.is_numeric_dtype(df[c])]
    head = [c for c in TABLE_METRICS if c in numeric]
    return head + sorted(c for c in numeric if c not in head)


def tidy(df: pd.DataFrame) -> pd.DataFrame:
    """Long form: one row per (dataset, model, scenario, method, seed, metric) with a numeric
    `value` (flags such as `mia_extrapolates` are 0/1), plus provenance columns. Failed jobs keep one row per table metric with a NaN value and
    their status and error, so a CSV never silently loses them."""
    df = with_gaps(df)
    metrics = metric_columns(df)
    prov = [c for c in PROVENANCE if c in df] + sorted(c for c in df if _provenance_column(c))
    long = df.melt(id_vars=JOB + prov + ["superseded"], value_vars=metrics,
                   var_name="metric", value_name="value")
    failed_or_set = long["status"].ne("ok") | long["value"].notna()
    keep = failed_or_set & (long["status"].eq("ok") | long["metric"].isin(TABLE_METRICS))
    long = long[keep].assign(value=lambda f: pd.to_numeric(f["value"], errors="coerce").astype(float))
    return long[JOB + ["metric", "value"] + prov + ["superseded"]].reset_index(drop=True)
