"""Relearning attack: does the forgotten data come back after a little fine-tuning? (issue 26,
item 2.)

The attacker holds a small labelled sample of the forget set and fine-tunes a copy of the
predictor's weights on it with plain SGD on the cross-entropy, the whole sample as one batch, for
a few steps. After each budget (steps × sample size) the copy is scored on the rest of the forget
set (`forget_acc`, = 100 − UA on samples it never trained on) and on a fixed seeded retain subset
(`retain_acc`: a brittle model "recovers" anything, and the retain-side change under the same
fine-tuning is that confound), with their change from step 0 (`d_forget_acc`, `d_retain_acc`)
and its accuracy on its own sample (`sample_acc`). Every stored predictor of a cell is attacked
the same way: the original, Retrain (the control: a model that never saw the forget data learns
from the sample too, so what matters is recovery faster than Retrain's) and every method. A
forget vector is attacked twice: as deployed (`variant` "deployed": x ↦ f(x + δ), δ fixed, the
weights fine-tuned) and with δ removed ("delta_removed": its model alone, which is the original).

Choices, the same for every predictor:
- the model is fine-tuned in eval mode: BatchNorm keeps its running statistics, as a batch of 8
  images of one class would otherwise rewrite them and break retain accuracy for every model alike
  (the attack changes weights, not statistics); no dropout, so a step is deterministic;
- the attacker's samples are nested (the first n of one seeded permutation of the forget set) and
  every sample size is scored on the same rest (the forget set minus the largest sample), so
  budgets compare on one held-out set; each sample size is its own attack from the predictor;
- `lr` 0.01 (`LR`): a fifth of the digits and Fashion-MNIST recipes' 0.05, without momentum, so
  that 20 steps are a small budget rather than a retraining.

Two attackers (`retain_mix`, `RETAIN_MIX`): 0 fine-tunes on the forget sample alone, the standard
relearning attack. On a class-wise forget set that sample is one class, and any model pushed
towards predicting it everywhere "recovers" it: forget accuracy rises with the retain accuracy
falling. m > 0 adds m retain samples (seeded, nested, never among the scored retain subset) to
every step's batch, so a rise in forget accuracy there is relearning, not collapse onto the class.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from ..errors import MubenchError
from ..predictor import Predictor
from .cells import StoredCell, cached
from .shift import subsample

VERSION = "2"  # 2: the retain_mix attacker
SAMPLES = (8, 32)  # forget samples the attacker holds; each size is a separate attack
STEPS = (1, 5, 20)  # SGD steps after which the copy is scored (step 0 is always added)
LR = 0.01  # plain SGD, no momentum or weight decay (see the module docstring)
RETAIN_MIX = (0, 32)  # retain samples added to every step's batch: 0 = forget sample alone
VARIANTS = {"deployed": "as deployed (δ kept, weights fine-tuned)", "delta_removed": "δ removed"}
KEYS = ["dataset", "model", "scenario", "method", "seed", "variant", "retain_mix", "samples", "steps"]


@dataclass(frozen=True)
class RelearnSettings:
    """What the attacker may do (`mubench analyze --relearn-samples/--relearn-steps/--relearn-lr/
    --relearn-retain`)."""

    samples: tuple[int, ...] = SAMPLES  # sizes of the labelled forget sample
    steps: tuple[int, ...] = STEPS  # step counts to score after
    lr: float = LR  # SGD learning rate
    retain_mix: tuple[int, ...] = RETAIN_MIX  # retain samples in every step's batch, each its own attack


def attacker_split(n: int, largest: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(seeded permutation's first `largest` indices of range(n): the attacker's samples, nested;
    the other indices: the rest it is scored on)."""
    if not 0 < largest < n:
        raise MubenchError(f"relearn: a sample of {largest} forget samples leaves none of the {n} to score on; "
                           f"pass --relearn-samples below {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[:largest], perm[largest:]


@torch.inference_mode()
def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    """Top-1 accuracy in % of `model` on inputs that already carry δ (no `Predictor` around the
    copy: building one would freeze its parameters)."""
    if len(y) == 0:
        return float("nan")
    hits = sum(int((model(x[i: i + batch_size]).argmax(1) == y[i: i + batch_size]).sum())
               for i in range(0, len(y), batch_size))
    return 100.0 * hits / len(y)


def retain_pools(retain: tuple[torch.Tensor, torch.Tensor], largest_mix: int, max_samples: int,
                 seed: int) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """(the attacker's retain pool: `largest_mix` seeded samples; the scored retain subset: at
    most `max_samples` of the others, the shift analysis's subset when no pool is drawn)."""
    x, y = retain
    if largest_mix == 0:
        return (x[:0], y[:0]), subsample(x, y, max_samples, seed + 1)
    if largest_mix >= len(y):
        raise MubenchError(f"relearn: a mix of {largest_mix} retain samples leaves none of the {len(y)} to score on; "
                           f"pass --relearn-retain below {len(y)}")
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed + 2))
    pool, others = perm[:largest_mix], perm[largest_mix:]
    return (x[pool], y[pool]), subsample(x[others], y[others], max_samples, seed + 1)


def relearn_curve(predictor: Predictor, forget: tuple[torch.Tensor, torch.Tensor],
                  retain: tuple[torch.Tensor, torch.Tensor], settings: RelearnSettings = RelearnSettings(),
                  seed: int = 0, max_rest: int | None = None,
                  pool: tuple[torch.Tensor, torch.Tensor] | None = None) -> list[dict]:
    """One row per (retain mix, sample size, step count incl. 0) of fine-tuning a copy of
    `predictor`'s model on the first n of `attacker_split`'s samples plus the first m of the
    retain `pool` (never scored), δ (if any) kept fixed, scored on the rest (at most `max_rest` of
    it, a seeded subset) and on `retain`; `predictor` is left as it was. Deterministic for a seed."""
    (fx, fy), (rx, ry) = forget, retain
    px, py = pool if pool is not None else (rx[:0], ry[:0])
    if max(settings.retain_mix) > len(py):
        raise MubenchError(f"relearn: a mix of {max(settings.retain_mix)} retain samples needs a pool that large; "
                           f"got {len(py)}")
    taken, rest = attacker_split(len(fy), max(settings.samples), seed)
    rest = rest[:max_rest]  # already a seeded permutation
    checkpoints = sorted({0, *settings.steps})
    held, rx, px = predictor.transform(fx[rest]), predictor.transform(rx), predictor.transform(px)  # δ fixed
    rows = []
    for m in sorted(settings.retain_mix):
        for n in sorted(settings.samples):
            rows += _attack(predictor, (predictor.transform(fx[taken[:n]]), fy[taken[:n]]), (px[:m], py[:m]),
                            (held, fy[rest]), (rx, ry), checkpoints, settings.lr)
    return rows


def _attack(predictor: Predictor, sample, mix, held, retain, checkpoints: list[int], lr: float) -> list[dict]:
    """One attack: SGD on the forget `sample` and the retain `mix` in one batch (inputs already
    through δ), scored on the `held` forget rest and on `retain` after each checkpoint."""
    sx, sy = sample
    bx, by = torch.cat([sx, mix[0]]), torch.cat([sy, mix[1]])
    n, m = len(sy), len(mix[1])
    model = copy.deepcopy(predictor.model).eval()  # eval mode: BatchNorm statistics stay (docstring)
    for p in model.parameters():
        p.requires_grad_(True)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    done, first, rows = 0, {}, []
    for t in checkpoints:
        with torch.enable_grad():
            for _ in range(t - done):
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(bx), by).backward()
                opt.step()
        done = t
        row = {"retain_mix": m, "samples": n, "steps": t, "budget": n * t,
               "forget_acc": _accuracy(model, *held),
               "retain_acc": _accuracy(model, *retain),
               "sample_acc": _accuracy(model, sx, sy)}
        first = first or row
        row["d_forget_acc"] = row["forget_acc"] - first["forget_acc"]
        row["d_retain_acc"] = row["retain_acc"] - first["retain_acc"]
        rows.append(row)
    return rows


def variants(predictor: Predictor) -> dict[str, Predictor]:
    """variant → the predictor the attacker fine-tunes: as deployed, and for a forget vector also
    without its δ."""
    out = {"deployed": predictor}
    if predictor.is_input_based:
        out["delta_removed"] = Predictor(predictor.model, None, predictor.clamp)
    return out


def analyze_relearn(cell: StoredCell, settings: RelearnSettings = RelearnSettings(),
                    max_samples: int = 2000) -> dict[str, dict[str, list[dict]]]:
    """method → variant → relearn_curve rows, for the original and every stored predictor,
    Retrain included, each attacked with the cell's seed (cached)."""
    forget = cell.part("forget")
    # the attacker's retain pool and the scored subset (the shift analysis's when there is no pool)
    pool, retain = retain_pools(cell.part("retain"), max(settings.retain_mix), max_samples, cell.seed)
    out = {}
    for method in dict.fromkeys(["original", *sorted(cell.records)]):
        pred = cell.predictor(method)
        key = cell.original_key if method == "original" else cell.records[method]["unlearn_key"]
        inputs = {"predictor": key, "split": cell.split.hash, "max_samples": max_samples, "seed": cell.seed,
                  "settings": asdict(settings)}
        out[method] = cached(cell.store.root, "relearn", VERSION, inputs, lambda p=pred: {
            v: relearn_curve(q, forget, retain, settings, cell.seed, max_samples, pool) for v, q in variants(p).items()})
    return out


def relearn_frame(results: Sequence[tuple[StoredCell, dict]]) -> pd.DataFrame:
    """The tidy table: one row per (dataset, model, scenario, method, seed, variant, retain_mix,
    samples, steps)."""
    rows = [{"dataset": cell.dataset, "model": cell.model, "scenario": cell.scenario, "method": method,
             "seed": cell.seed, "variant": variant, **row}
            for cell, by_method in results for method, by_variant in by_method.items()
            for variant, curve in by_variant.items() for row in curve]
    return pd.DataFrame(rows)


def _label(method: str, variant: str) -> str:
    name = "retrain (control)" if method == "retrain" else method
    return name if variant == "deployed" else f"{name} [{VARIANTS[variant]}]"


def _pm(values: pd.Series) -> str:
    return f"{values.mean():.1f} ± {values.std(ddof=1):.1f}" if len(values) > 1 else f"{values.mean():.1f}"


def relearn_summary(frame: pd.DataFrame) -> dict[tuple, pd.DataFrame]:
    """(dataset, model, scenario, retain mix, samples) → rows per method and variant (Retrain, the
    control, first): forget accuracy at each step count and, at the largest, the retain change and
    the forget accuracy minus Retrain's at the same seed and budget, each mean ± std over seeds."""
    frame = _with_mix(frame)
    pair = ["dataset", "model", "scenario", "seed", "retain_mix", "samples", "steps"]  # Retrain of the same attack
    ref = frame[frame.method == "retrain"].set_index(pair)["forget_acc"]
    frame = frame.assign(vs_retrain=frame.forget_acc.values - ref.reindex(
        pd.MultiIndex.from_frame(frame[pair])).values)
    last = frame.steps.max()
    out = {}
    for (dataset, model, scenario, m, n), part in frame.groupby(["dataset", "model", "scenario", "retain_mix", "samples"],
                                                                sort=True):
        order = sorted(part.groupby(["method", "variant"]).groups,
                       key=lambda mv: (mv[0] != "retrain", mv[0] != "original", mv[0], mv[1] != "deployed"))
        rows = []
        for method, variant in order:
            g = part[(part.method == method) & (part.variant == variant)]
            at_last = g[g.steps == last]
            rows.append({"method": _label(method, variant),
                         **{f"forget acc @{t}": _pm(g[g.steps == t].forget_acc) for t in sorted(g.steps.unique())},
                         f"Δ retain acc @{last}": _pm(at_last.d_retain_acc),
                         f"forget acc − Retrain's @{last}": _pm(at_last.vs_retrain),
                         "seeds": at_last.seed.nunique()})
        out[(dataset, model, scenario, m, n)] = pd.DataFrame(rows)
    return out


def _with_mix(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with a retain_mix column (0: the forget sample alone, what rows before it were)."""
    return frame if "retain_mix" in frame else frame.assign(retain_mix=0)


def attacker_title(mix: int, samples: int) -> str:
    return f"{samples} forget samples" + (f" + {mix} retain samples per step" if mix else " alone")


def relearn_figure(frame: pd.DataFrame, title: str, path: Path) -> Path:
    """Forget accuracy (top) and retain-accuracy change (bottom) against steps, one panel pair per
    attack (retain mix, sample size), one line per method (mean over seeds; δ removed dotted)."""
    from ..plots import pyplot
    from .figures import _color, _save

    plt = pyplot()
    frame = _with_mix(frame)
    attacks = sorted(frame.groupby(["retain_mix", "samples"]).groups)
    fig, axes = plt.subplots(2, len(attacks), figsize=(3.6 * len(attacks), 5.6), layout="constrained",
                             squeeze=False, sharex=True)
    for j, (m, n) in enumerate(attacks):
        part = frame[(frame.retain_mix == m) & (frame.samples == n)]
        for (method, variant), g in part.groupby(["method", "variant"], sort=True):
            mean = g.groupby("steps")[["forget_acc", "d_retain_acc"]].mean()
            style = ":" if variant == "delta_removed" else "--" if method in ("original", "retrain") else "-"
            for row, field in enumerate(("forget_acc", "d_retain_acc")):
                axes[row, j].plot(mean.index, mean[field], marker="o", markersize=3, linestyle=style,
                                  color=_color(method), label=_label(method, variant))
        axes[0, j].set_title(attacker_title(m, n), fontsize=8)
        axes[1, j].set_xlabel("SGD steps (budget = steps × samples)")
        axes[1, j].set_xscale("symlog", linthresh=1)
        ticks = sorted(part.steps.unique())
        axes[1, j].set_xticks(ticks, [str(t) for t in ticks])
    axes[0, 0].set_ylabel("forget accuracy on the rest (%)")
    axes[1, 0].set_ylabel("Δ retain accuracy (points)")
    axes[0, -1].legend(fontsize=6, loc="best")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def relearn_section(cells: Sequence[StoredCell], out: Path, max_samples: int,
                    settings: RelearnSettings | None = None) -> list[str]:
    """The analysis.md section; writes the tidy table to out/relearn.csv and out/relearn.md and
    one figure per (dataset, model, scenario)."""
    from ..report.markdown import markdown_table
    from .figures import _fig, _slug

    settings = settings or RelearnSettings()
    frame = relearn_frame([(cell, analyze_relearn(cell, settings, max_samples)) for cell in cells])
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "relearn.csv", index=False)
    (out / "relearn.md").write_text("# Relearning attack: every row\n\n" + markdown_table(frame.round(2)) + "\n")
    lines = ["## Relearning: does the forgotten data come back after a little fine-tuning?",
             f"A copy of each predictor's weights is fine-tuned with plain SGD (lr {settings.lr:g}, the sample as "
             "one batch, BatchNorm statistics frozen) on n labelled forget samples (seeded, nested) for each "
             "step count, and scored on the rest of the forget set and on a fixed retain subset. A second "
             "attacker adds m retain samples (never scored) to every step's batch: on a class-wise forget set "
             "the sample alone pushes any model towards predicting its class everywhere, so read the first "
             "attacker's forget accuracy beside its retain change, and the second's as relearning. Retrain never "
             "saw the forget data and learns from the sample too: the control. A forget vector is attacked as "
             "deployed (δ kept) and with δ removed. Mean ± std over seeds; every row in relearn.csv / "
             "relearn.md. Code: mubench/analysis/relearn.py.", ""]
    for (dataset, model, scenario, m, n), table in relearn_summary(frame).items():
        lines += [f"### {dataset}/{model}/{scenario}: {attacker_title(m, n)}", "", markdown_table(table), ""]
    for (dataset, model, scenario), part in frame.groupby(["dataset", "model", "scenario"], sort=True):
        title = f"{dataset}/{model}/{scenario}"
        png = relearn_figure(part, f"{title}: relearning attack", out / "figures" / f"relearn_{_slug(title)}")
        lines += [_fig(out, png), ""]
    return lines
