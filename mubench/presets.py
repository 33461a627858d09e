"""Per-dataset defaults of the original model: its architecture and its training recipe.

A method's own per-dataset defaults live on its class (`Method.presets`, resolved by
`Method.dataset_defaults`), next to the code they tune. User overrides (TOML, --set) are
applied on top of both.
"""

from __future__ import annotations

from dataclasses import dataclass

from .device import resolve_precision
from .training import OptimSpec, Recipe


@dataclass(frozen=True)
class Preset:
    model: str
    recipe: Recipe
    note: str = ""
    # [evaluation] attacks when the config names none: the reference-model screen costs
    # `reference_models` trainings per retain set, seconds on digits (docs/metrics.md)
    attacks: tuple[str, ...] = ("svc",)
    # what --precision auto means for this dataset: "auto" → the hardware rule (bf16 on AMX CPUs
    # and bf16 GPUs), or a fixed precision where bf16's speed is not worth a table that differs
    # by CPU type (docs/reproducibility.md)
    precision: str = "auto"


PRESETS: dict[str, Preset] = {
    "digits": Preset(
        model="small_cnn",
        recipe=Recipe(epochs=30, batch_size=64,
                      optim=OptimSpec(lr=0.05, weight_decay=5e-4, schedule="multistep")),
        note="1,347 training images: seconds per model on a CPU",
        attacks=("svc", "refmia"),
        precision="fp32",  # the default grid: one table on every CPU (docs/reproducibility.md)
    ),
    "fashion-mnist": Preset(
        model="small_cnn",
        # SPEC §1 wants the original to fit its training set; why this recipe: docs/adding-a-method.md.
        recipe=Recipe(epochs=30, batch_size=64, augment=False,
                      optim=OptimSpec(lr=0.05, weight_decay=5e-4, schedule="cosine")),
        note="no augmentation, cosine schedule: the original fits its training set (SPEC §1)",
    ),
    "cifar10": Preset(model="resnet18", recipe=Recipe()),
    "cifar100": Preset(model="resnet18", recipe=Recipe()),
    "svhn": Preset(model="resnet18", recipe=Recipe(epochs=50)),
    "imagenet10": Preset(model="vgg16_bn", recipe=Recipe(epochs=100, batch_size=128)),
}
DEFAULT_PRESET = Preset(model="resnet18", recipe=Recipe(epochs=100, batch_size=128))


def preset_for(dataset: str) -> Preset:
    """The preset of a dataset name (`imagefolder:PATH` gets the generic one)."""
    return PRESETS.get(dataset, DEFAULT_PRESET)


def run_precision(precision: str, dataset: str, device) -> str:
    """`precision` for `dataset` on `device`, resolved. 'auto' is the dataset preset's fixed
    choice where it makes one (digits: fp32 on every device, so the default grid gives one table
    on every CPU; docs/reproducibility.md), else the hardware rule (`device.resolve_precision`)."""
    fixed = preset_for(dataset).precision
    if precision == "auto" and fixed != "auto":
        return fixed
    return resolve_precision(precision, device)
