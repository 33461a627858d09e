"""Seeded tensor corruptions and a small PGD attack for the data-shift analysis (shift.py).

Each corruption maps float images in [0, 1] (N, C, H, W) and a severity 0–3 to corrupted images
(clipped to [0, 1]; severity 0 returns the input unchanged), in the spirit of ImageNet-C but as
plain tensor ops so every dataset and image size gets them: Gaussian noise (σ), Gaussian blur
(σ in pixels), contrast (each image pulled towards its mean) and brightness (added offset).
PGD is an ℓ∞ attack on the predictor itself (δ included: the attacker sees x ↦ f(x + δ)),
one loop in two directions: untargeted (ascend the true label's loss: the shift analysis's
TA-robustness condition, under which forget samples can only look more forgotten) and
targeted at the true label (descend it: the recovery attack of recovery.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

SEVERITIES = (1, 2, 3)
LEVELS = {  # severity 1, 2, 3
    "gaussian_noise": (0.04, 0.08, 0.16),
    "blur": (0.5, 1.0, 1.5),
    "contrast": (0.7, 0.5, 0.3),
    "brightness": (0.1, 0.2, 0.3),
    "pgd": (1 / 255, 2 / 255, 4 / 255),
}


def _level(name: str, severity: int) -> float:
    return LEVELS[name][severity - 1]


def gaussian_noise(x: torch.Tensor, severity: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (x + _level("gaussian_noise", severity) * torch.randn(x.shape, generator=g)).clamp(0, 1)


def blur(x: torch.Tensor, severity: int, seed: int) -> torch.Tensor:
    """Separable Gaussian blur, edges replicated (works on 8×8 digits as on 224 px images)."""
    sigma = _level("blur", severity)
    radius = max(1, int(round(2 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-(t ** 2) / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    out = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1),
                   groups=c)
    out = F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1),
                   groups=c)
    return out.clamp(0, 1)


def contrast(x: torch.Tensor, severity: int, seed: int) -> torch.Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * _level("contrast", severity) + mean).clamp(0, 1)


def brightness(x: torch.Tensor, severity: int, seed: int) -> torch.Tensor:
    return (x + _level("brightness", severity)).clamp(0, 1)


CORRUPTIONS: dict[str, Callable[[torch.Tensor, int, int], torch.Tensor]] = {
    "gaussian_noise": gaussian_noise, "blur": blur, "contrast": contrast, "brightness": brightness}


def corrupt(name: str, x: torch.Tensor, severity: int, seed: int = 0) -> torch.Tensor:
    """`x` under corruption `name` at `severity` (0: `x` itself)."""
    return x if severity == 0 else CORRUPTIONS[name](x, severity, seed)


def linf_pgd(predictor, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 10, batch_size: int = 512,
             targeted: bool = False) -> torch.Tensor:
    """ℓ∞ PGD on the cross-entropy of the true labels `y` (step ε/4, no random start, so
    deterministic; the attacked inputs stay within ε of `x` and in [0, 1]). Untargeted: ascend
    the loss (misclassify). `targeted`: descend it (push each input towards its own label: on a
    forget sample, undo the forgetting). ε = 0 returns `x` itself."""
    if eps == 0:
        return x
    direction = -1.0 if targeted else 1.0
    outs = []
    for i in range(0, len(x), batch_size):
        xb, yb = x[i: i + batch_size], y[i: i + batch_size]
        adv = xb.clone()
        for _ in range(steps):
            adv.requires_grad_(True)
            with torch.enable_grad():
                loss = F.cross_entropy(predictor(adv), yb)
                (grad,) = torch.autograd.grad(loss, adv)
            adv = (adv.detach() + direction * eps / 4 * grad.sign()).clamp(xb - eps, xb + eps).clamp(0, 1)
        outs.append(adv.detach())
    return torch.cat(outs) if outs else x


def pgd(predictor, x: torch.Tensor, y: torch.Tensor, severity: int, steps: int = 10,
        batch_size: int = 512) -> torch.Tensor:
    """Untargeted ℓ∞ PGD (`linf_pgd`) at ε = LEVELS['pgd'][severity − 1] (severity 0: `x`)."""
    return x if severity == 0 else linf_pgd(predictor, x, y, _level("pgd", severity), steps, batch_size)
