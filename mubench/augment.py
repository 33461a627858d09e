"""Training augmentation as batched tensor ops on the compute device.

One call augments a whole batch (no per-image PIL work in training loops). Randomness comes from
an explicit `torch.Generator`, so a seeded run draws the same crops and flips every time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

AUGMENT_KINDS = ("none", "flip", "crop", "crop_flip", "rrc_flip")


@dataclass(frozen=True)
class Augment:
    """What a dataset's training augmentation is; `__call__` applies it to a float batch."""

    kind: str = "crop_flip"  # one of AUGMENT_KINDS
    pad: int = 4  # zero padding for random crops (CIFAR recipe: 4)
    out_size: int | None = None  # output side for rrc_flip; None keeps the input size

    def __post_init__(self):
        if self.kind not in AUGMENT_KINDS:
            raise ValueError(f"augmentation kind {self.kind!r} is not one of {AUGMENT_KINDS}")

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.kind == "none":
            return x
        if self.kind == "rrc_flip":
            return random_flip(random_resized_crop(x, self.out_size or x.shape[-1], generator), generator)
        if self.kind in ("crop", "crop_flip"):
            x = random_crop(x, self.pad, generator)
        if self.kind in ("flip", "crop_flip"):
            x = random_flip(x, generator)
        return x


def _rand(n: int, generator: torch.Generator, device) -> torch.Tensor:
    # Draw on the generator's device, then move: one generator serves CPU and CUDA batches.
    return torch.rand(n, generator=generator, device=generator.device).to(device)


def _randint(high: int, n: int, generator: torch.Generator, device) -> torch.Tensor:
    return torch.randint(high, (n,), generator=generator, device=generator.device).to(device)


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip each image horizontally with probability 1/2."""
    flip = _rand(x.shape[0], generator, x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_crop(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by `pad` and cut a random HxW window per image (torchvision RandomCrop(padding))."""
    if pad <= 0:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = _randint(2 * pad + 1, n, generator, x.device)
    dx = _randint(2 * pad + 1, n, generator, x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # (n, h, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]  # (n, 1, w)
    batch = torch.arange(n, device=x.device)[:, None, None]
    # Advanced indexing on (n, h+2p, w+2p, c) gathers every window at once.
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


def random_resized_crop(
    x: torch.Tensor,
    size: int,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> torch.Tensor:
    """Batched RandomResizedCrop: per-image box (area `scale`, aspect `ratio`), bilinear resize."""
    n = x.shape[0]
    area = scale[0] + (scale[1] - scale[0]) * _rand(n, generator, x.device)
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * _rand(n, generator, x.device)
    aspect = torch.exp(log_r)
    # Box sides as fractions of the image side; clipped so the box always fits.
    bw = torch.sqrt(area * aspect).clamp(max=1.0)
    bh = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (1 - bw) * _rand(n, generator, x.device) + bw / 2
    cy = (1 - bh) * _rand(n, generator, x.device) + bh / 2
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = bw
    theta[:, 1, 1] = bh
    theta[:, 0, 2] = cx * 2 - 1
    theta[:, 1, 2] = cy * 2 - 1
    grid = F.affine_grid(theta, (n, x.shape[1], size, size), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """The central size×size window (evaluation view of images stored larger than they are used)."""
    h, w = x.shape[-2:]
    if h == size and w == size:
        return x
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]
