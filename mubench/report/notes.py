"""What a reader must know that table cells cannot show: failed and missing jobs (with the command
that fills them), gaps that cannot be computed or disagree with the record, one-time bank costs,
superseded records, and where the numbers come from."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..device import threads_phrase
from .records import CELL, current_ok, method_label, with_gaps
from .tables import UNSTABLE_UA_RANGE, failed_jobs, format_number, missing_jobs

GAP_TOLERANCE = 1e-3  # stored vs recomputed Avg. Gap differing by more than this is noted


def fill_command(root: str | Path | None, job) -> str:
    """The command that produces a missing job's record (a variant's non-default parameters,
    read back from its display name `method[k=v,...]`, become `--set method.k=v`)."""
    sets = "".join(f" --set {job.method}.{kv}"
                   for kv in job.variant.partition("[")[2].rstrip("]").split(",") if kv)
    out = f" --out {root}" if root is not None else ""
    return (f"python -m mubench run{out} --datasets {job.dataset} --models {job.model} "
            f"--scenarios {job.scenario} --methods {job.method} --seeds {job.seed}{sets}")


def _cell(r) -> str:
    return f"{r.dataset}/{r.model}/{r.scenario}"


def report_notes(df: pd.DataFrame, root: str | Path | None = None) -> list[str]:
    """Everything a reader must know that the table cells cannot show, one sentence each."""
    df = with_gaps(df)
    notes = []
    for r in failed_jobs(df).itertuples():
        where = f"; traceback in {r.traceback_file}" if getattr(r, "traceback_file", None) else ""
        notes.append(f"failed: {_cell(r)} {r.variant} seed {r.seed}: "
                     f"{getattr(r, 'error', None) or 'no error text'}{where}")
    for r in missing_jobs(df).itertuples():
        notes.append(f"missing: {_cell(r)} {r.variant} seed {r.seed}; "
                     f"fill it with `{fill_command(root, r)}`")
    ok = current_ok(df)
    for r in ok[ok["avg_gap"].isna()].itertuples():
        notes.append(f"no Retrain for {_cell(r)} seed {r.seed}: "
                     f"Avg. Gap of {r.variant} cannot be computed")
    stored = pd.to_numeric(ok["avg_gap_stored"], errors="coerce")
    off = ok[stored.notna() & ok["avg_gap"].notna() & ((stored - ok["avg_gap"]).abs() > GAP_TOLERANCE)]
    for r in off.itertuples():
        notes.append(f"Avg. Gap of {r.variant} on {_cell(r)} seed {r.seed}: "
                     f"record says {float(r.avg_gap_stored):.4f}, recomputed {r.avg_gap:.4f} "
                     "against that seed's Retrain (the table uses the recomputed value)")
    if "bank_s" in ok:  # SPEC §5: the arithmetic bank is a one-time cost, reported apart from RTE
        banks = ok.assign(bank_s=pd.to_numeric(ok["bank_s"], errors="coerce")).dropna(subset=["bank_s"])
        for (*cell, variant), g in banks.groupby(CELL + ["variant"], sort=False):
            notes.append(f"{method_label(variant)} on {'/'.join(cell)}: RTE excludes the one-time "
                         f"class-wise bank, {format_number('rte_s', g['bank_s'].mean(), g['bank_s'].std())} s "
                         f"over {len(g)} seed(s)")
    notes += tuning_notes(ok)
    n_old = int(df["superseded"].sum())
    if n_old:
        notes.append(f"{n_old} older record(s) of re-run jobs are superseded by newer ones and not "
                     "shown in the tables (they stay in the CSV with superseded=True)")
    return notes


def tuning_notes(ok: pd.DataFrame) -> list[str]:
    """SPEC §3: which rows are tuned, by which file and protocol; which rows are unstable."""
    notes = []
    if "tuned_file" in ok and ok["tuned_file"].notna().any():
        tuned = ok[ok["tuned_file"].notna()]
        for (file, protocol), g in tuned.groupby(["tuned_file", "tuning_protocol"], sort=False):
            how = ("selected on a validation split held out of the training set, tuning seeds disjoint from "
                   "these" if protocol == "heldout" else "selected on the test set (the references' protocol)")
            labels = ", ".join(dict.fromkeys(method_label(v) for v in g["variant"]))
            notes.append(f"tuned ({protocol}): {labels} use hyper-parameters from {file}, {how}; "
                         "docs/tuning.md" + live_counts(file, list(dict.fromkeys(g["method"]))))
        untuned = ok[ok["tuned_file"].isna() & ok["method"].ne("retrain")]
        if len(untuned):
            labels = ", ".join(dict.fromkeys(method_label(v) for v in untuned["variant"]))
            notes.append(f"not tuned: {labels} (their values are defaults or set by the user)")
    for (*cell, variant), g in ok.groupby(CELL + ["variant"], sort=False):
        ua = pd.to_numeric(g["ua"], errors="coerce").dropna()
        if len(ua) > 1 and ua.max() - ua.min() > UNSTABLE_UA_RANGE:
            notes.append(f"unstable: {method_label(variant)} on {'/'.join(cell)} has per-seed UA from "
                         f"{ua.min():.1f} to {ua.max():.1f} (range over {UNSTABLE_UA_RANGE:g} points): its mean "
                         "averages forgetting and not forgetting")
    return notes


def live_counts(file: str, methods: list[str]) -> str:
    """`; live candidates in its search: FT class 4 of 8, random n/a of 8` from the tuned file's
    `[[candidates]]` `live` fields (mubench/tuning.live_candidate); "" when the file cannot be read
    or predates the count."""
    from .transfer import read_named_tuned

    tuned = read_named_tuned(file)
    if tuned is None:  # a file moved or removed since the run: the note says what it can
        return ""
    if not tuned.live_rule:
        return ""
    counts: dict[str, dict[str, list]] = {}
    for row in tuned.candidates:
        if row.get("method") in methods:
            counts.setdefault(row["method"], {}).setdefault(row.get("kind"), []).append(row.get("live"))
    parts = [f"{method_label(m)} " + ", ".join(f"{kind} {'n/a' if None in lv else sum(lv)} of {len(lv)}"
                                              for kind, lv in counts[m].items()) for m in methods if m in counts]
    return f"; live candidates in its search (they change UA and keep RA): {'; '.join(parts)}" if parts else ""


def provenance_line(df: pd.DataFrame, root: str | Path) -> str:
    """Where the numbers come from, in one line (per-record provenance is in the CSV): devices,
    the machines (CPU, AMX or not, torch threads per job), precision and versions."""
    def seen(col):
        return ", ".join(sorted({str(v) for v in df[col].dropna()})) if col in df else "?"
    return (f"{len(df)} method records from {root} (devices: {seen('device')}; machines: {machines_seen(df)}; "
            f"training precision: {seen('precision')}; mubench {seen('version_mubench')}, torch "
            f"{seen('version_torch')}; last finished {max(df['finished'].dropna().astype(str), default='?')}).")


def machines_seen(df: pd.DataFrame) -> str:
    """`AMD EPYC (no AMX), 1 torch thread per job` for each machine the records name; `not
    recorded` for records written before they carried it."""
    if "machine_cpu" not in df:
        return "not recorded"
    out = set()
    for row in df[df["machine_cpu"].notna()].itertuples():
        threads = getattr(row, "machine_threads", None)
        amx = "AMX" if bool(getattr(row, "machine_amx", False)) else "no AMX"
        gpu = getattr(row, "machine_gpu", None)
        where = gpu if isinstance(gpu, str) else f"{row.machine_cpu} ({amx})"
        out.add(where + ("" if isinstance(gpu, str) or pd.isna(threads) else f", {threads_phrase(int(threads))} per job"))
    missing = " and not recorded" if df["machine_cpu"].isna().any() else ""
    return "; ".join(sorted(out)) + missing
