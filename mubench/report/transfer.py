"""Does a tuned selection hold up on the reported runs? (issue 25, "settings that transfer")

A tuned row's hyper-parameters won a search on other seeds and, since `mubench tune` selects on
forget sets disjoint from the reported ones, on other forget sets. This module puts the winner's
score in its search (the tuned file's chosen candidate: Avg. Gap mean ± std over the tuning runs)
beside the row's reported Avg. Gap, and marks rows whose reported forget set is one the search
selected on (files written before the disjoint default, e.g. a search on `class:0` reported on
`class:0`): their numbers are not a clean test of the selection.

The tuning score comes from the file the records name, read when the report is made: a file
rewritten since the run no longer describes that run's search, so where its protocol, criterion,
budget or seeds differ from what the records carry, the row says so instead of a score.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import ConfigError
from ..scenarios import forgotten_classes, parse_scenario
from .records import CELL, current_ok, method_label, sort_rows, with_gaps

SELECTED_HERE = "selected on this forget set"  # the row flag (report/tables.row_flags)


def read_named_tuned(file: str):
    """The tuned settings file a record names (shipped files are named `mubench/tuned/…`), or
    None when it cannot be read any more (moved or removed since the run)."""
    from ..tuned import SHIPPED_DIR, read_tuned

    path = Path(file)
    path = path if path.is_file() else SHIPPED_DIR.parent.parent / file
    try:
        return read_tuned(path)
    except ConfigError:
        return None


def selected_here(scenario: str, tuned_on: list[str]) -> bool:
    """Whether a reported scenario forgets a class that one of the search's forget sets forgot
    (random forget sets are drawn per seed; tuning seeds never are reported seeds)."""
    try:
        reported = forgotten_classes(parse_scenario(scenario))
        searched = [forgotten_classes(parse_scenario(s)) for s in tuned_on]  # member specs, never families
    except ConfigError:
        return False
    return any(reported & s for s in searched)


GAP_WORDS = {"avg_gap": "Avg. Gap", "avg_gap_no_mia": "Avg. Gap w/o MIA"}


def selected_gap(chosen: dict) -> tuple[str, float, float]:
    """(the gap the search selected on, its mean, its std over the tuning runs) for a chosen
    candidate's row. Where the SVC extrapolated in the cell, selection read the gap without the
    MIA term (mubench/tuning.py), whose mean and std the row holds as `score_mean` and
    `score_mean_std − score_mean`; files say which (`selected_on`), older ones by those scores
    differing from the Avg. Gap's."""
    nan = float("nan")
    gap = chosen.get("selected_on")
    if gap is None:
        gap = "avg_gap" if abs(chosen.get("score_mean", nan) - chosen.get("avg_gap_mean", nan)) <= 1e-3 else "avg_gap_no_mia"
    if gap == "avg_gap":
        return gap, chosen.get("avg_gap_mean", nan), chosen.get("avg_gap_std", nan)
    mean = chosen.get("score_mean", nan)
    return gap, mean, chosen.get("score_mean_std", nan) - mean


def _file_matches(settings, g: pd.DataFrame) -> bool:
    """The file still describes the search the records name (their `tuned_from` stamps)."""
    stamp = settings.stamp()
    return all(not isinstance(s, dict) or all(s.get(k) == v for k, v in stamp.items() if k != "file")
               for s in g["tuned_from"])


def transfer_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per tuned (cell, variant): where it was selected (forget sets, seeds), its Avg. Gap there
    and here (mean ± std), reported − tuning, and whether this forget set was selected on."""
    ok = current_ok(with_gaps(df))
    if "tuned_file" not in ok or not ok["tuned_file"].notna().any():
        return pd.DataFrame()
    files: dict[str, object] = {}
    rows = []
    for (*cell, variant, method, file), g in ok[ok["tuned_file"].notna()].groupby(
            CELL + ["variant", "method", "tuned_file"], sort=False):
        settings = files.setdefault(file, read_named_tuned(file))
        kind = parse_scenario(cell[2]).request.kind
        gaps = pd.to_numeric(g["avg_gap"], errors="coerce").dropna()
        row = {**dict(zip(CELL, cell, strict=True)), "method": method, "variant": variant, "tuned_file": file,
               "reported_mean": gaps.mean() if len(gaps) else float("nan"),
               "reported_std": gaps.std() if len(gaps) > 1 else float("nan"), "n_reported": len(gaps)}
        chosen = settings.chosen(method, kind) if settings is not None else None
        if settings is None or chosen is None or not _file_matches(settings, g):
            row["note"] = ("the file is gone" if settings is None else "the file has no chosen candidate here"
                           if chosen is None else "the file was rewritten since this run")
        else:
            tuned_on = settings.scenarios.get(kind, [])
            gap, mean, std = selected_gap(chosen)
            if gap != "avg_gap":  # compared on the term it was selected on
                gaps = pd.to_numeric(g[gap], errors="coerce").dropna()
                row.update(reported_mean=gaps.mean() if len(gaps) else float("nan"),
                           reported_std=gaps.std() if len(gaps) > 1 else float("nan"))
            row.update(tuned_on=", ".join(tuned_on) or "?", tuning_seeds=", ".join(map(str, settings.seeds)),
                       gap=GAP_WORDS[gap], tuning_mean=mean, tuning_std=std,
                       selected_here=selected_here(cell[2], tuned_on), note="")
            row["difference"] = row["reported_mean"] - row["tuning_mean"]
        rows.append(row)
    return sort_rows(pd.DataFrame(rows), ["variant"]).reset_index(drop=True)


def transfer_text(table: pd.DataFrame) -> pd.DataFrame:
    """The table as the report prints it."""
    def pm(mean, std):
        return "" if pd.isna(mean) else f"{mean:.2f}" + ("" if pd.isna(std) else f" ± {std:.2f}")

    out = pd.DataFrame({
        **{c: table[c] for c in CELL}, "method": table["variant"].map(method_label),
        "tuned on": table.get("tuned_on", pd.Series("", index=table.index)).fillna(""),
        "tuning seeds": table.get("tuning_seeds", pd.Series("", index=table.index)).fillna(""),
        "gap": table.get("gap", pd.Series("", index=table.index)).fillna(""),
        "in tuning": [pm(m, s) for m, s in zip(table.get("tuning_mean", [float("nan")] * len(table)),
                                                        table.get("tuning_std", [float("nan")] * len(table)),
                                                        strict=True)],
        "reported": [pm(m, s) for m, s in zip(table["reported_mean"], table["reported_std"], strict=True)],
        "reported − tuning": [("" if pd.isna(d) else f"{d:+.2f}") for d in table.get("difference", [float("nan")] * len(table))],
        "note": [SELECTED_HERE if here is True else note for here, note in
                 zip(table.get("selected_here", [False] * len(table)), table["note"], strict=True)],
    })
    return out


def selected_here_rows(df: pd.DataFrame) -> set[tuple]:
    """(dataset, model, scenario, variant) of tuned rows selected on their own forget set."""
    table = transfer_table(df)
    if table.empty or "selected_here" not in table:
        return set()
    hits = table[table["selected_here"].eq(True)]
    return {tuple(r) for r in hits[CELL + ["variant"]].itertuples(index=False)}
