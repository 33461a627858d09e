"""The forget-vector bank as a resource: its stacked forward pass stays within a memory budget,
and its settings come from [bank], never from the forget vector's own overrides."""

from __future__ import annotations

import torch

from mubench.methods.fv_bank import MAX_STACK_VALUES, bank_settings, classes_per_group


def test_stacked_groups_shrink_with_the_image_size():
    # CIFAR-10 at batch 256: 16 classes fit the budget (all 10 in one pass).
    assert classes_per_group(256, (3, 32, 32)) == 16
    # ImageNet-10 at 224 px: one class at a time, never 10 × 256 images in one forward.
    assert classes_per_group(256, (3, 224, 224)) == 1
    assert classes_per_group(128, (3, 224, 224)) == 1
    # Tiny digits: many classes per pass.
    assert classes_per_group(256, (1, 8, 8)) == MAX_STACK_VALUES // (256 * 64)


def test_bank_settings_are_class_wise_and_read_only_the_bank_table():
    cpu = torch.device("cpu")
    plain = bank_settings("cifar10", {}, cpu, "fp32")
    assert plain["params"]["beta"] == 5.0 and plain["batched"] is False
    assert bank_settings("cifar10", {"beta": 3.0}, cpu, "fp32")["params"]["beta"] == 3.0
    assert bank_settings("cifar10", {}, torch.device("cuda"), "bf16")["batched"] is True
