"""The figures of `mubench analyze`: one function per analysis, each writing PNG + PDF and
returning the PNG's path (colours per method as in every mubench figure)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..plots import method_color, pyplot
from .corruptions import CORRUPTIONS, SEVERITIES


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._]+", "-", text).strip("-")


def _fig(out: Path, png: Path) -> str:
    return f"![{png.stem}]({png.relative_to(out).as_posix()})"


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path.with_suffix(".png"), dpi=130)
    fig.savefig(path.with_suffix(".pdf"), metadata={"CreationDate": None})
    pyplot().close(fig)
    return path.with_suffix(".png")


def _color(method: str) -> str:
    return "#7f7f7f" if method == "original" else method_color(method)


def transfer_figure(result: dict, title: str, path: Path) -> Path:
    plt = pyplot()
    m = np.array(result["matrix"])
    fig, ax = plt.subplots(figsize=(5.2, 4.4), layout="constrained")
    im = ax.imshow(m, vmin=0, vmax=100, cmap="viridis")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, f"{m[i, j]:.0f}", ha="center", va="center", fontsize=7,
                    color="white" if m[i, j] < 50 else "black")
    ax.set_xlabel("class c′ evaluated (training images)")
    ax.set_ylabel("class-c forget vector applied")
    ax.set_xticks(range(m.shape[1]))
    ax.set_yticks(range(m.shape[0]))
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="accuracy (%)")
    return _save(fig, path)


def geometry_figure(results: dict[str, dict], title: str, path: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(len(results), 3, figsize=(12, 3.2 * len(results)), layout="constrained", squeeze=False)
    for row, (method, r) in zip(axes, results.items(), strict=True):
        parts = list(r["cka"])
        row[0].bar(parts, [r["cka"][p] for p in parts], color=_color(method))
        row[0].set_ylim(0, 1.05)
        row[0].set_title(f"{method}: CKA(features of x, of x + δ)", fontsize=9)
        k = np.arange(len(r["hist"]))
        for off, key, label, color in ((-0.27, "hist_clean", "no δ", "#7f7f7f"), (0, "hist", "with δ", _color(method)),
                                       (0.27, "hist_retrain", "Retrain", method_color("retrain"))):
            row[1].bar(k + off, r[key], width=0.27, label=label, color=color)
        row[1].set_xticks(k)
        row[1].set_xlabel("predicted class of forget samples")
        row[1].set_ylabel("% of forget samples")
        row[1].legend(fontsize=7)
        data = [r["margin"]["forget"], r["margin_retrain"]["forget"], r["margin"]["test"], r["margin_retrain"]["test"]]
        row[2].boxplot(data, showfliers=False)
        row[2].set_xticks([1, 2, 3, 4], ["forget\nwith δ", "forget\nRetrain", "test\nwith δ", "test\nRetrain"])
        row[2].set_ylabel("logit margin (top-1 − top-2)")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def shift_figure(results: dict[str, dict], title: str, path: Path, metric: str = "ta") -> Path:
    plt = pyplot()
    names = (*CORRUPTIONS, "pgd")
    fig, axes = plt.subplots(1, len(names), figsize=(3.0 * len(names), 3.0), layout="constrained", sharey=True)
    for ax, name in zip(axes, names, strict=True):
        for method, by in results.items():
            ys = [by["clean"][metric], *(by[f"{name}:{s}"][metric] for s in SEVERITIES)]
            ax.plot([0, *SEVERITIES], ys, marker="o", label=method, color=_color(method),
                    linestyle="--" if method in ("original", "retrain") else "-")
        ax.set_title("pgd (untargeted)" if name == "pgd" else name, fontsize=9)
        ax.set_xlabel("severity")
        ax.set_xticks([0, *SEVERITIES])
    axes[0].set_ylabel(metric.upper() + " (%)")
    axes[-1].legend(fontsize=6, loc="best")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def recovery_figure(results: dict[str, list[dict]], title: str, path: Path) -> Path:
    """UA under the two recovery attacks and TA under untargeted PGD against ε (recovery.py)."""
    plt = pyplot()
    panels = (("ua_targeted", "UA (%), targeted PGD"), ("ua_universal", "UA (%), universal u, held-out"),
              ("ta_untargeted", "TA (%), untargeted PGD (robustness)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.0), layout="constrained")
    for ax, (field, label) in zip(axes, panels, strict=True):
        for method, rows in results.items():
            ax.plot([255 * r["eps"] for r in rows], [r[field] for r in rows], marker="o", label=method,
                    color=_color(method), linestyle="--" if method in ("original", "retrain") else "-")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("ε (/255)")
    axes[-1].legend(fontsize=6, loc="best")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def sensitivity_figure(rows: list[dict], title: str, path: Path) -> Path:
    plt = pyplot()
    default = next(r for r in rows if r["param"] == "default")
    params = [p for p in dict.fromkeys(r["param"] for r in rows) if p not in ("default", "select", "augment")]  # categorical: table only
    fig, axes = plt.subplots(1, len(params), figsize=(3.2 * len(params), 3.0), layout="constrained", squeeze=False)
    for ax, p in zip(axes[0], params, strict=True):
        at_default = (next(r["default"] for r in rows if r["param"] == p), default["avg_gap"], default["rte_s"])
        pts = sorted([(r["value"], r["avg_gap"], r["rte_s"]) for r in rows if r["param"] == p] + [at_default])
        xs, gaps, rtes = zip(*pts, strict=True)
        ax.plot(xs, gaps, marker="o", color=method_color("forget_vector"))
        ax.set_xscale("log")
        ax.set_xlabel(p)
        ax.set_ylabel("Avg. Gap", color=method_color("forget_vector"))
        twin = ax.twinx()
        twin.plot(xs, rtes, marker="s", linestyle="--", color="#555555")
        twin.set_ylabel("RTE (s)", color="#555555")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)
