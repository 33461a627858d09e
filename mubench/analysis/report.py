"""`mubench analyze`: run the analyses on a finished grid and write DIR/analysis/analysis.md
(one section per analysis: a Markdown table and its figures) — never retrains a grid job.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..report.markdown import markdown_table
from . import figures
from .cells import StoredCell, load_cells
from .figures import _fig, _slug

ANALYSES = ("transfer", "geometry", "shift", "recovery", "relearn", "sensitivity")


def transfer_section(cells: Sequence[StoredCell], out: Path) -> list[str]:
    from .transfer import analyze_transfer

    lines = ["## Transfer: the class-c vector on every class",
             "Row c: training accuracy (%) on each class c′ under the class-c bank vector (diagonal: "
             "its own forget set). Composition: zero-shot δ_a + δ_b and their mean; 'worst third' is "
             "the other class whose accuracy drops most.", ""]
    seen = set()
    for cell in cells:
        if cell.original_key in seen:
            continue
        seen.add(cell.original_key)
        result = analyze_transfer(cell)
        if result is None:
            continue
        title = f"{cell.dataset}/{cell.model}/seed {cell.seed}"
        m = np.array(result["matrix"])
        off = m[~np.eye(len(m), dtype=bool)]
        lines += [f"### {title}", "",
                  f"Diagonal (own class) mean {np.mean(np.diag(m)):.1f}%; off-diagonal mean {off.mean():.1f}% "
                  f"(min {off.min():.1f}%); without δ {np.mean(result['clean']):.1f}%.", "",
                  _fig(out, figures.transfer_figure(result, title, out / "figures" / f"transfer_{_slug(title)}")), "",
                  markdown_table(pd.DataFrame(result["composition"]).round(1)), ""]
    return lines if len(lines) > 3 else lines + ["No class-wise bank is stored (run fv_arithmetic).", ""]


def geometry_section(cells: Sequence[StoredCell], out: Path) -> list[str]:
    from .geometry import analyze_geometry, summary

    lines = ["## Geometry: where δ sends inputs",
             "CKA of penultimate features of x and x + δ per part; median logit margin (top-1 − top-2) "
             "under δ against Retrain's on the same samples; the largest share of forget samples "
             "predicted as one class, with δ and for Retrain.", ""]
    rows = []
    for cell in cells:
        results = analyze_geometry(cell)
        if not results:
            continue
        for method, r in results.items():
            rows.append({"cell": f"{cell.dataset}/{cell.scenario}/seed {cell.seed}", "method": method, **summary(r)})
        png = figures.geometry_figure(results, cell.label, out / "figures" / f"geometry_{_slug(cell.label)}")
        lines += [f"### {cell.label}", "", _fig(out, png), ""]
    if rows:
        lines[4:4] = [markdown_table(pd.DataFrame(rows).round(3)), ""]
    return lines


def shift_frame(results: dict[str, dict], metric: str) -> pd.DataFrame:
    """One shift table: the clean value, then the change under each condition (PGD labelled as
    the untargeted TA-robustness condition it is)."""
    from .shift import PGD_LABEL, shift_table

    return pd.DataFrame([{"method": m, f"clean {metric}": results[m]["clean"][metric],
                          **{f"Δ {PGD_LABEL if k == 'pgd' else k}": v for k, v in row.items()}}
                         for m, row in shift_table(results, metric).items()])


def shift_section(cells: Sequence[StoredCell], out: Path, max_samples: int) -> list[str]:
    from .shift import analyze_shift

    lines = ["## Data shift: every predictor on corrupted and PGD-perturbed data",
             "Mean over severities 1–3 of (value under shift − clean value); the clean value is in "
             "the first column. Corruptions and ε: mubench/analysis/corruptions.py. The PGD column is "
             "untargeted (it raises the true label's loss): a TA-robustness row. On forget samples it "
             "can only raise UA, so it does not test whether forgetting can be undone; the recovery "
             "section does.", ""]
    for cell in cells:
        results = analyze_shift(cell, max_samples=max_samples)
        for metric in ("ta", "ua", "mia"):
            lines += [f"### {cell.label}: {metric.upper()}", "", markdown_table(shift_frame(results, metric).round(2)),
                      ""]
        png = figures.shift_figure(results, f"{cell.label}: TA under shift", out / "figures" / f"shift_{_slug(cell.label)}")
        lines += [_fig(out, png), ""]
    return lines


def recovery_section(cells: Sequence[StoredCell], out: Path, max_samples: int,
                     epsilons: Sequence[float] | None) -> list[str]:
    from .recovery import EPSILONS, MEASURES, analyze_recovery, recovery_table

    lines = ["## Recovery: can a small input change undo the forgetting?",
             "Every predictor as deployed (a forget vector with its δ) attacked in input space, pixel "
             "values clipped to [0, 1], at each ℓ∞ budget ε. Targeted PGD lowers the true label's loss "
             "on each forget sample; the universal perturbation is one image-shaped u learned on a "
             "seeded half of the forget samples and scored on the other half (the attacker's own forget "
             "vector). Retrain never saw the forget data: the control, attacked at the same ε. A method "
             "whose UA falls faster than Retrain's under the same attack keeps what it forgot closer to "
             "the surface than a model that never learned it. The last table is TA under untargeted PGD, "
             "a robustness row. Code: mubench/analysis/recovery.py.", ""]
    for cell in cells:
        results = analyze_recovery(cell, max_samples=max_samples, epsilons=tuple(epsilons or EPSILONS))
        for measure, title in MEASURES.items():
            lines += [f"### {cell.label}: {title}", "",
                      markdown_table(pd.DataFrame(recovery_table(results, measure)).round(2)), ""]
        png = figures.recovery_figure(results, f"{cell.label}: recovery attacks",
                                      out / "figures" / f"recovery_{_slug(cell.label)}")
        lines += [_fig(out, png), ""]
    return lines


def sensitivity_section(root: Path, out: Path, swept: Sequence[str] | None, scenarios: Sequence[str]) -> list[str]:
    from .sensitivity import SWEPT, analyze_sensitivity

    rows = analyze_sensitivity(root, tuple(swept or SWEPT), tuple(scenarios))
    lines = ["## Sensitivity of the forget vector",
             "Each parameter scaled around its resolved default (others at default); 'select best' is "
             "the per-run epoch chosen on a held-out slice of the training data; 'augment' learns δ with the other "
             "augmentation setting than the grid's. Mean over seeds.", "",
             markdown_table(pd.DataFrame(rows).round(3)), ""]
    for (dataset, scenario), group in pd.DataFrame(rows).groupby(["dataset", "scenario"]):
        title = f"{dataset}/{scenario}"
        png = figures.sensitivity_figure(group.to_dict("records"), title,
                                         out / "figures" / f"sensitivity_{_slug(title)}")
        lines += [_fig(out, png), ""]
    return lines


def write_analysis(root: str | Path, analyses: Sequence[str] = ANALYSES, max_samples: int = 2000,
                   swept: Sequence[str] | None = None, scenarios: Sequence[str] = (),
                   epsilons: Sequence[float] | None = None, relearn=None) -> Path:
    """Run `analyses` on the grid under `root`; returns DIR/analysis/analysis.md (sensitivity:
    `swept` parameters, default all, on `scenarios`, default the grid's; recovery: at the ℓ∞
    budgets `epsilons` in pixel units, default recovery.EPSILONS; relearn: a
    relearn.RelearnSettings, default its defaults)."""
    root = Path(root)
    out = root / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    cells = load_cells(root) if set(analyses) - {"sensitivity"} else []
    lines = [f"# Forget-vector analyses of {root}", "",
             f"`python -m mubench analyze --results {root}`; results cached under analysis/cache/.", ""]
    if "transfer" in analyses:
        lines += transfer_section(cells, out)
    if "geometry" in analyses:
        lines += geometry_section(cells, out)
    if "shift" in analyses:
        lines += shift_section(cells, out, max_samples)
    if "recovery" in analyses:
        lines += recovery_section(cells, out, max_samples, epsilons)
    if "relearn" in analyses:
        from .relearn import relearn_section

        lines += relearn_section(cells, out, max_samples, relearn)
    if "sensitivity" in analyses:
        lines += sensitivity_section(root, out, swept, scenarios)
    path = out / "analysis.md"
    path.write_text("\n".join(lines))
    return path
