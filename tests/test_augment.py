"""Batched augmentation: crops are true windows of the padded image, flips flip, seeds repeat."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mubench.augment import Augment, center_crop, random_crop, random_flip, random_resized_crop


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    # random values: every window of the padded image is distinct, so a match identifies it
    return torch.rand(32, 3, 8, 10, generator=_gen(123))


def _window_offsets(x: torch.Tensor, out: torch.Tensor, pad: int) -> list[tuple[int, int]]:
    """Per image, the (dy, dx) of the padded-image window equal to the output (reference by slicing)."""
    h, w = x.shape[-2:]
    offsets = []
    for i in range(len(x)):
        padded = F.pad(x[i], (pad, pad, pad, pad))
        found = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                 if torch.equal(padded[:, dy : dy + h, dx : dx + w], out[i])]
        assert len(found) == 1, f"image {i}: output is not exactly one window of the padded image"
        offsets.append(found[0])
    return offsets


def test_random_crop_gives_true_windows_of_the_padded_image(batch):
    out = random_crop(batch, 2, _gen(0))
    assert out.shape == batch.shape
    offsets = _window_offsets(batch, out, 2)
    assert len(set(offsets)) > 5  # offsets vary per image
    assert {dy for dy, _ in offsets} <= set(range(5))


def test_random_crop_offsets_cover_the_full_range():
    x = torch.rand(400, 1, 4, 4, generator=_gen(5))
    offsets = _window_offsets(x, random_crop(x, 1, _gen(1)), 1)
    assert set(offsets) == {(dy, dx) for dy in range(3) for dx in range(3)}


def test_random_crop_without_padding_is_identity(batch):
    assert torch.equal(random_crop(batch, 0, _gen(0)), batch)


def test_random_flip_flips_about_half(batch):
    out = random_flip(batch, _gen(0))
    flipped = [torch.equal(o, x.flip(-1)) for o, x in zip(out, batch, strict=True)]
    kept = [torch.equal(o, x) for o, x in zip(out, batch, strict=True)]
    assert all(f != k for f, k in zip(flipped, kept, strict=True))  # each image is one or the other
    assert 6 <= sum(flipped) <= 26  # Binomial(32, 1/2)


def test_flip_reverses_columns():
    x = torch.arange(6.0).view(1, 1, 2, 3)
    flipped = next(random_flip(x, _gen(s)) for s in range(50) if not torch.equal(random_flip(x, _gen(s)), x))
    assert flipped.tolist() == [[[[2.0, 1.0, 0.0], [5.0, 4.0, 3.0]]]]


@pytest.mark.parametrize("kind", ["flip", "crop", "crop_flip", "rrc_flip"])
def test_same_seed_same_output_different_seed_different(batch, kind):
    aug = Augment(kind, pad=2, out_size=6)
    a, b, c = aug(batch, _gen(7)), aug(batch, _gen(7)), aug(batch, _gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_augment_kinds_and_shapes(batch):
    assert Augment("none")(batch, _gen(0)) is batch
    assert Augment("crop_flip", pad=3)(batch, _gen(0)).shape == batch.shape
    assert Augment("rrc_flip", out_size=5)(batch, _gen(0)).shape == (32, 3, 5, 5)
    assert Augment("rrc_flip")(batch, _gen(0)).shape == (32, 3, 10, 10)  # None keeps the width
    with pytest.raises(ValueError, match="not one of"):
        Augment("rotate")


def test_crop_flip_output_is_a_window_or_its_mirror(batch):
    out = Augment("crop_flip", pad=2)(batch, _gen(3))
    h, w = batch.shape[-2:]
    for i in range(len(batch)):
        padded = F.pad(batch[i], (2, 2, 2, 2))
        windows = [padded[:, dy : dy + h, dx : dx + w] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], v) or torch.equal(out[i], v.flip(-1)) for v in windows)


def test_random_resized_crop_full_box_is_identity(batch):
    # area 1 and aspect 1: the box is the whole image, resampled at the pixel centres
    out = random_resized_crop(batch[..., :8], 8, _gen(0), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    torch.testing.assert_close(out, batch[..., :8], atol=1e-5, rtol=0)


def test_random_resized_crop_samples_inside_the_image():
    # a constant image stays constant whatever box is drawn (no zero padding leaks in)
    x = torch.full((16, 3, 12, 12), 0.7)
    out = random_resized_crop(x, 6, _gen(1))
    assert out.shape == (16, 3, 6, 6)
    torch.testing.assert_close(out, torch.full_like(out, 0.7))


def test_random_resized_crop_zooms_in():
    # left half 0, right half 1: a small box mostly sees one half, so outputs differ per image
    x = torch.zeros(64, 1, 16, 16)
    x[..., 8:] = 1.0
    out = random_resized_crop(x, 8, _gen(2), scale=(0.05, 0.1))
    means = out.mean(dim=(1, 2, 3))
    assert means.min() < 0.2 and means.max() > 0.8


def test_center_crop_is_the_central_window():
    x = torch.arange(36.0).view(1, 1, 6, 6)
    assert center_crop(x, 2).tolist() == [[[[14.0, 15.0], [20.0, 21.0]]]]
    assert center_crop(x, 6) is x
    assert center_crop(torch.zeros(2, 3, 256, 256), 224).shape == (2, 3, 224, 224)
