"""Hardness of a forget set (issue 25, item 4): forget sets stratified by how hard their
examples are, from the cell's own original model, after Zhao et al., "What makes unlearning hard
and what to do about it" (NeurIPS 2024; code github.com/kairanzhao/RUM).

Zhao et al. find two properties that make a forget set harder to unlearn: its *entanglement*
with the retain set in the original's embedding space, and the *memorization* of its examples.
mubench builds `random:P:atyp-low|mid|high` (family `random:P:atyp`):

- Per-example score (`atypicality_scores`): in the original's penultimate features z (the input
  of its last linear layer; un-augmented training images, eval mode), the distance from z to
  its own class's centroid over the distance to the nearest other class's centroid. High: the
  example sits among another class's examples, far from its class's prototype — the long-tail,
  memorized examples of Feldman's account, which a model trained without them misclassifies.
- The forget set is the P% of the training set with the lowest, middle or highest score
  (`scenarios.select_by_score`, rank-based like Zhao et al.'s sets).
- Each such split records Zhao et al.'s set-level entanglement score (`entanglement_score`,
  `forget_es` in records): within-set over between-set variance of the forget and retain
  features, ES = [mean‖z−μ_r‖² over D_r + mean‖z−μ_f‖² over D_f] / [½(‖μ_r−μ‖² + ‖μ_f−μ‖²)],
  μ = (μ_r + μ_f)/2.

Where mubench differs, and why the name is not "entanglement": Zhao et al.'s ES is a property of
a whole set, largest for sets whose mean equals the retain set's (a uniform random set is the
most entangled of all), and their code builds its ES strata by ranking examples by distance to
the centroid of the whole training set, with no fixed direction. The per-example score here has
one direction on every dataset, but it does not order ES: on digits (seed 0, 10%) the low, mid
and high strata measured ES 70, 551 and 135, while Retrain's UA on them read 0, 0 and 55 — the
strata order how hard the examples are, which is what `atyp` says. The true memorization score
(Feldman's accuracy when trained with minus without the example, hundreds of subsampled models)
and the reference code's training-dynamics proxies are not built.

`tow` is their "tug of war" score beside the Avg. Gap: (1 − |ΔFA|)(1 − |ΔRA|)(1 − |ΔTA|), the
accuracy differences to Retrain as fractions (FA, forget accuracy, = 100 − UA); 1 is Retrain.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def last_linear(model: nn.Module) -> nn.Linear:
    """The model's last linear layer, whose input is its penultimate features."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("the model has no linear layer to read penultimate features from")
    return linears[-1]


@torch.no_grad()
def penultimate_features(model: nn.Module, x: torch.Tensor, prepare, device, batch_size: int = 512) -> torch.Tensor:
    """The input of the model's last linear layer for every image of x (eval mode, fp32)."""
    model = model.eval()
    grabbed: list[torch.Tensor] = []
    hook = last_linear(model).register_forward_hook(lambda m, inp, out: grabbed.append(inp[0].detach().float().cpu()))
    try:
        for i in range(0, len(x), batch_size):
            model(prepare(x[i: i + batch_size].to(device)))
    finally:
        hook.remove()
    return torch.cat(grabbed).flatten(1)


def atypicality_scores(features: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Per example: ‖z − μ_y‖ / min over c ≠ y of ‖z − μ_c‖ (class centroids of `features`)."""
    labels = labels.long()
    classes = int(labels.max()) + 1
    centroids = torch.stack([features[labels == c].mean(0) if (labels == c).any() else
                             torch.full_like(features[0], float("inf")) for c in range(classes)])
    dist = torch.cdist(features.double(), centroids.double())  # (N, C)
    own = dist.gather(1, labels[:, None]).squeeze(1)
    other = dist.scatter(1, labels[:, None], float("inf")).min(1).values
    return (own / other.clamp_min(1e-12)).numpy()


def entanglement_score(features: torch.Tensor, forget: np.ndarray) -> float:
    """Zhao et al.'s ES of a forget set against the rest (the module docstring's formula)."""
    mask = torch.zeros(len(features), dtype=torch.bool)
    mask[torch.as_tensor(np.asarray(forget, dtype=np.int64))] = True
    zf, zr = features[mask].double(), features[~mask].double()
    mu_f, mu_r = zf.mean(0), zr.mean(0)
    mu = (mu_f + mu_r) / 2
    within = ((zr - mu_r) ** 2).sum(1).mean() + ((zf - mu_f) ** 2).sum(1).mean()
    between = 0.5 * (((mu_r - mu) ** 2).sum() + ((mu_f - mu) ** 2).sum())
    return float(within / between) if between > 0 else float("inf")


def tow(ua: float, ra: float, ta: float, ua_retrain: float, ra_retrain: float, ta_retrain: float) -> float:
    """Zhao et al.'s tug-of-war score from percentages (UA = 100 − forget accuracy)."""
    return float((1 - abs(ua - ua_retrain) / 100) * (1 - abs(ra - ra_retrain) / 100) * (1 - abs(ta - ta_retrain) / 100))
