"""A picture of a forget vector: δ itself and what it does to a few images (the report's
"delta" figure, registered by mubench/methods/forget_vector.py, drawn from stored predictors).

The figure shows δ amplified to its own symmetric range on a diverging colour map (red =
brighter, blue = darker, white = unchanged; colour images show the channel mean), then each
given image before and after adding δ (shown clipped to [0, 1]; the model sees x + δ as the
Predictor makes it), titled with the predicted label. δ is usually small
next to the pixel range, so without amplification it would look blank.
"""

from __future__ import annotations

from pathlib import Path

import torch


def _show(ax, img: torch.Tensor) -> None:
    img = img.detach().float().cpu()
    if img.shape[0] == 1:
        ax.imshow(img[0].clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(img.permute(1, 2, 0).clamp(0, 1).numpy())
    ax.set_xticks([])
    ax.set_yticks([])


@torch.no_grad()
def render_forget_vector(predictor, images: torch.Tensor, labels: torch.Tensor, class_names,
                         path: str | Path, forget: torch.Tensor | None = None) -> Path:
    """Write a PNG of `predictor.delta` and of `images` (float (N,C,H,W) in [0,1]) before/after δ.

    labels: true labels of the images; forget: optional flags marking forget-set images (their
    column titles say so). Titles show the predicted class names without and with δ. Returns
    the path written.
    """
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    if predictor.delta is None:
        raise ValueError("render_forget_vector needs an input-based predictor (one with a delta)")
    delta = predictor.delta.detach().float().cpu()
    images = images.detach().float().cpu()
    n = len(images)
    model_device = next(iter(predictor.model.parameters())).device
    bare = predictor.model(images.to(model_device)).argmax(1).cpu()
    moved = predictor.transform(images)
    perturbed = predictor.model(moved.to(model_device)).argmax(1).cpu()

    fig = Figure(figsize=(1.6 * (n + 1), 3.6), layout="constrained")
    axes = fig.subplots(2, n + 1, squeeze=False)
    limit = float(delta.abs().max()) or 1.0
    shown = axes[0, 0].imshow(delta.mean(0).numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
    axes[0, 0].set_title(f"δ (‖δ‖₂={float(delta.norm()):.2f})", fontsize=8)
    axes[0, 0].set_xticks([])
    axes[0, 0].set_yticks([])
    fig.colorbar(shown, ax=axes[0, 0], fraction=0.046, pad=0.04)
    axes[1, 0].axis("off")
    axes[1, 0].text(0.5, 0.5, "top: x\nbottom: x + δ", ha="center", va="center", fontsize=8)
    for i in range(n):
        kind = "forget" if forget is not None and bool(forget[i]) else "retain" if forget is not None else ""
        true = class_names[int(labels[i])]
        _show(axes[0, i + 1], images[i])
        axes[0, i + 1].set_title(f"{kind} {true}\npred {class_names[int(bare[i])]}".strip(), fontsize=7)
        _show(axes[1, i + 1], moved[i])
        hit = int(perturbed[i]) == int(labels[i])
        axes[1, i + 1].set_title(f"pred {class_names[int(perturbed[i])]}", fontsize=7,
                                 color="black" if hit else "crimson")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)  # Figure.savefig renders with Agg when no backend is attached
    return path
