"""Report figures (matplotlib, Agg; PNG + PDF): the two every cell gets (metric bars,
efficacy–cost scatter) and the registry of figures owned by what they show (benchopt's plot
plugins): a method or an attack registers its own in its file (`register_figure`: the forget
vector's δ, the arithmetic's weights, U-LiRA's per-example curves), and the report draws every
registered figure per cell from the records and, where a figure asks, the stored predictors.
Jobs draw nothing.

Every figure takes data the report already computed (summary statistics, records, stored cells)
and never reads files itself. Each method keeps one colour in every figure (`method_color`), so
a reader can follow FV across plots; parameter variants of one method share its colour and
differ by hatch. `pyplot`, `save_figure`, `slug` and `method_color` are the helpers figure
plugins draw with.
"""

from __future__ import annotations

import dataclasses
import re
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .registry import Registry

CELL = ["dataset", "model", "scenario"]
BAR_METRICS = {"ua": "UA", "ra": "RA", "ta": "TA", "mia_efficacy": "MIA-Efficacy", "avg_gap": "Avg. Gap"}
_SPARE_COLORS = ("#17becf", "#bcbd22", "#7f7f7f", "#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5",
                 "#c49c94", "#9edae5", "#dbdb8d")
_HATCHES = ("", "//", "..", "xx", "\\\\", "oo")
_MARKERS = ("o", "s", "^", "D", "v", "P")  # the scatter's stand-in for the bars' hatches


@dataclasses.dataclass(frozen=True)
class Figure:
    """One written figure: the cell it belongs to, what it shows, and its two files."""

    cell: tuple
    kind: str    # "metrics", "efficacy_cost", or a registered figure's name
    title: str
    png: Path
    pdf: Path

    @property
    def paths(self) -> list[Path]:
        return [self.png, self.pdf]

    @property
    def caption(self) -> str:
        if self.kind in FIGURES:
            return FIGURES.entry(self.kind).meta["caption"]
        return CAPTIONS.get(self.kind, self.title)


CAPTIONS = {
    "metrics": "Bars: mean over seeds; whiskers: std. Good unlearning matches the Retrain bar in "
               "every group; Avg. Gap (right, own scale) is the mean distance to Retrain per seed.",
    "efficacy_cost": "Each method at (RTE, Avg. Gap), mean ± std over seeds; lower-left is better. "
                     "Ringed points are on the Pareto front: no other method is both faster and "
                     "closer to Retrain.",
}

FIGURES = Registry("figure")


@dataclasses.dataclass(frozen=True)
class FigureInput:
    """What a registered figure draws one cell from."""

    cell: tuple  # (dataset, model, scenario)
    rows: pd.DataFrame  # the cell's current ok records, one row per (variant, seed)
    stats: pd.DataFrame  # the cell's summary statistics (its `label` column names each variant)
    stem: Path  # where the cell's figures go: stem.name + "_<what>" (+ .png / .pdf, by save_figure)
    stored: Callable[[str, int], Any] | None = None  # (method, seed) → the stored cell (analysis.cells), or None

    def label(self, variant: str) -> str:
        found = self.stats.loc[self.stats["variant"].eq(variant), "label"]
        return found.iloc[0] if len(found) else variant

    def path(self, *parts: str) -> Path:
        return self.stem.with_name("_".join([self.stem.name, *map(slug, parts)]))


def register_figure(name: str, caption: str, stored: bool = False):
    """Decorator: `@register_figure("fv_weights", caption=...)` on `draw(inp: FigureInput) ->
    list[Figure]`, called by the report once per cell. stored: the figure reads stored predictors
    (`inp.stored(method, seed)`); without a run config in the results root it is skipped."""
    return FIGURES.register(name, caption=caption, stored=stored)


def method_color(method: str) -> str:
    """The method class's `color`; methods without one (or unknown names) get a stable spare
    colour from a hash of the name."""
    from .plugins import load_plugins
    from .unlearning import METHODS

    load_plugins()  # built-ins and entry points, once per process; file plugins register themselves
    if method in METHODS and METHODS.get(method).color:
        return METHODS.get(method).color
    return _SPARE_COLORS[zlib.crc32(method.encode()) % len(_SPARE_COLORS)]


def _styles(rows: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """variant → (colour, hatch): colour by method, hatch by the variant's rank in its method."""
    styles, seen = {}, {}
    for variant, method in zip(rows["variant"], rows["method"], strict=True):
        if variant not in styles:
            rank = seen.setdefault(method, [])
            styles[variant] = (method_color(method), _HATCHES[len(rank) % len(_HATCHES)])
            rank.append(variant)
    return styles


def pareto_front(x: Sequence[float], y: Sequence[float]) -> np.ndarray:
    """Mask of points no other point beats in both x and y (lower is better for both)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    le = (x[None, :] <= x[:, None]) & (y[None, :] <= y[:, None])
    lt = (x[None, :] < x[:, None]) | (y[None, :] < y[:, None])
    return ~(le & lt).any(axis=1)


def slug(*parts) -> str:
    return re.sub(r"[^A-Za-z0-9._]+", "-", "_".join(map(str, parts))).strip("-")


def save_figure(fig, stem: Path, cell: tuple, kind: str, title: str) -> Figure:
    """Write `fig` as stem.png and stem.pdf (a reproducible PDF: no creation date) and close it."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, pdf = stem.with_suffix(".png"), stem.with_suffix(".pdf")
    fig.savefig(png, dpi=130)  # constrained layout already fits legends: no "tight" re-draw
    fig.savefig(pdf, metadata={"CreationDate": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return Figure(tuple(cell), kind, title, png, pdf)


def pyplot():
    """matplotlib.pyplot on the Agg backend (no screen)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_metric_bars(stats: pd.DataFrame, cell: tuple, stem: Path) -> Figure:
    """Grouped bars, one bar per method, error bar = std over seeds: UA, RA, TA, MIA-Efficacy
    on a 0–100 axis, and Avg. Gap on its own panel, since gaps of a few points would be
    invisible on the accuracy scale."""
    plt = pyplot()
    rows = stats[stats["metric"].isin(BAR_METRICS)]
    variants = list(dict.fromkeys(rows["variant"]))
    styles = _styles(rows)
    labels = dict(zip(rows["variant"], rows["label"], strict=True))
    width = 0.8 / max(len(variants), 1)
    panels = [[m for m in BAR_METRICS if m != "avg_gap"], ["avg_gap"]]
    fig, axes = plt.subplots(1, 2, figsize=(10.5 + 0.15 * len(variants), 3.8), layout="constrained",
                             gridspec_kw={"width_ratios": [4, 1.3]})
    for ax, metrics in zip(axes, panels, strict=True):
        x = np.arange(len(metrics))
        for i, variant in enumerate(variants):
            v = rows[rows["variant"].eq(variant)].set_index("metric").reindex(metrics)
            colour, hatch = styles[variant]
            ax.bar(x + (i - (len(variants) - 1) / 2) * width, v["mean"].fillna(0), width,
                   yerr=v["std"].fillna(0), color=colour, hatch=hatch, edgecolor="white",
                   linewidth=0.5, label=labels[variant], capsize=2, error_kw={"elinewidth": 0.8})
        ax.set_xticks(x, [BAR_METRICS[m] for m in metrics])
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    top = rows.loc[rows["metric"].ne("avg_gap"), "mean"].max()
    axes[0].set_ylim(0, max(105, (top if top == top else 0) + 5))
    axes[0].set_ylabel("%  (mean ± std over seeds)")
    axes[1].set_ylabel("% points from Retrain")
    title = f"{' / '.join(map(str, cell))}: metrics per method"
    fig.suptitle(title, fontsize=10)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize=8,
               frameon=False)
    return save_figure(fig, stem, cell, "metrics", title)


def _place_labels(ax, points: Sequence[tuple[float, float, str, str]]) -> None:
    """Annotate points without overlapping labels: try a few offsets per label, in order, and
    keep the first whose box hits no label placed before (greedy; enough for ~15 methods)."""
    from matplotlib.transforms import Bbox

    renderer = ax.figure.canvas.get_renderer()  # limits are final; layout shifts all boxes alike
    offsets = [(6, 4), (6, -12), (-6, 4), (-6, -12), (6, 16), (6, -24), (-6, 16), (-6, -24),
               (6, 28), (6, -36)]
    placed = []  # label boxes so far, seeded with the markers so no label covers a point
    for x, y, _, _ in points:
        cx, cy = ax.transData.transform((x, y))
        placed.append(Bbox.from_extents(cx - 6, cy - 6, cx + 6, cy + 6))
    for x, y, text, colour in sorted(points, key=lambda p: (-p[1], p[0])):
        for dx, dy in offsets:
            ann = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points",
                              fontsize=8, color=colour, ha="left" if dx > 0 else "right",
                              arrowprops={"arrowstyle": "-", "color": colour, "lw": 0.5}
                              if abs(dy) > 12 else None)
            box = ann.get_window_extent(renderer).expanded(1.05, 1.1)
            if not any(box.overlaps(b) for b in placed) or (dx, dy) == offsets[-1]:
                placed.append(box)
                break
            ann.remove()


def plot_efficacy_cost(stats: pd.DataFrame, cell: tuple, stem: Path) -> Figure | None:
    """Avg. Gap (lower = closer to Retrain) against RTE on a log axis; the Pareto front of
    methods that no other method beats on both is joined by a dashed line and ringed."""
    plt = pyplot()
    gap = stats[stats["metric"].eq("avg_gap")].set_index("variant")
    rte = stats[stats["metric"].eq("rte_s")].set_index("variant")
    both = gap[["mean", "std", "label", "method"]].join(
        rte[["mean", "std"]].rename(columns={"mean": "mean_rte", "std": "std_rte"}))
    both = both[both["mean"].notna() & (both["mean_rte"] > 0)]
    if both.empty:
        return None
    styles = _styles(both.reset_index())
    front = pareto_front(both["mean_rte"], both["mean"])
    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    f = both[front].sort_values("mean_rte")
    ax.step(f["mean_rte"], f["mean"], where="post", ls="--", color="#888888", lw=1,
            label="Pareto front (ringed points)", zorder=1)
    labels = []
    for (variant, r), on_front in zip(both.iterrows(), front, strict=True):
        colour, hatch = styles[variant]
        ax.errorbar(r["mean_rte"], r["mean"], xerr=np.nan_to_num(r["std_rte"]),
                    yerr=np.nan_to_num(r["std"]), fmt=_MARKERS[_HATCHES.index(hatch)], color=colour, ms=7, capsize=2,
                    mec="black" if on_front else colour, mew=1.6 if on_front else 0.5, zorder=3)
        labels.append((r["mean_rte"], r["mean"], r["label"], colour))
    ax.set_xscale("log")
    lo, hi = both["mean_rte"].min(), both["mean_rte"].max()
    ax.set_xlim(lo / 2, hi * 3)
    # Plain numbers at 1-2-5 steps (only powers of ten over wide ranges) instead of matplotlib's
    # "2×10⁰" minor labels, which collide when the range is under a decade or two.
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    subs = (1.0,) if hi / lo > 300 else (1.0, 2.0, 5.0)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(bottom=min(0, both["mean"].min()) - 0.5, top=both["mean"].max() * 1.15 + 1)
    ax.set_xlabel("RTE (s, log scale)")
    ax.set_ylabel("Avg. Gap to Retrain (%)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    title = f"{' / '.join(map(str, cell))}: efficacy vs cost"
    ax.set_title(title, fontsize=10)
    _place_labels(ax, labels)
    return save_figure(fig, stem, cell, "efficacy_cost", title)


def report_figures(df: pd.DataFrame, stats: pd.DataFrame, out_dir: Path,
                   stored: Callable[[tuple, str, int], Any] | None = None) -> list[Figure]:
    """Every figure of a report, per (dataset, model, scenario), written under `out_dir`: the
    metric bars and efficacy–cost scatter, then each registered figure (those that read stored
    predictors only when `stored(cell, method, seed)` is given). `df`: one record per job and
    forget set (report.records.current: a family member's copy of a scenario run alone is not a
    second record of it)."""
    figures: list[Figure] = []
    for cell, s in stats.groupby(CELL, sort=False):
        stem = Path(out_dir) / slug(*cell)
        figures.append(plot_metric_bars(s, cell, stem.with_name(stem.name + "_metrics")))
        fig = plot_efficacy_cost(s, cell, stem.with_name(stem.name + "_efficacy_cost"))
        figures += [fig] if fig else []
        rows = df[(df[CELL] == list(cell)).all(axis=1) & df["status"].eq("ok") & ~df["superseded"]]
        cell_stored = (lambda m, seed, c=cell: stored(c, m, seed)) if stored else None
        inp = FigureInput(tuple(cell), rows, s, stem, cell_stored)
        for entry in FIGURES.entries():
            if entry.meta["stored"] and stored is None:
                continue
            figures += [f for f in entry.obj(inp) if f is not None]
    return figures
