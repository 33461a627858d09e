"""Per-dataset defaults in one place: the model, the original recipe, and method
hyper-parameters scaled so that each method does something visible on small data.

Method `Params` dataclasses carry SPEC §3's CIFAR-10 / ResNet-18 values; a dataset preset
overrides some of them, optionally per scenario kind ("class", "classes", "random", "subset";
"*" for all). User overrides (TOML, --set) are applied on top of these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .training import OptimSpec, Recipe


@dataclass(frozen=True)
class Preset:
    model: str
    recipe: Recipe
    methods: dict = field(default_factory=dict)  # method → {scenario kind or "*": {field: value}}
    note: str = ""


_SMALL_METHODS = {
    # digits / Fashion-MNIST with the small CNN: a few epochs go a long way. The figures below
    # were measured in fp32 (precision auto on a CPU without AMX); with AMX, auto trains in bf16
    # and digits class:0's bimodal baselines land differently per seed (BENCHMARKS.md §1).
    # Baseline values were measured on digits class:0, seed 0 (original UA 0, RA 99.4): FT → UA 100, RA 97.6;
    # GA → UA 95.5, RA 98.4; RL → UA 97.7, RA 97.6; l1 → UA 83, RA 99.3; SalUn → UA 97.7,
    # RA 98.4; each in 0.2-4 s on one CPU core. SPEC §3's CIFAR-10 lrs barely move this
    # small CNN (FT/l1/SalUn at lr 0.01 leave UA near 0), hence the larger lrs and batches of 32.
    "finetune": {"*": {"lr": 0.1, "epochs": 5, "batch_size": 32}},
    "grad_ascent": {"*": {"lr": 1e-3, "epochs": 5, "batch_size": 64}},
    "random_label": {"*": {"lr": 0.05, "epochs": 5, "batch_size": 32}},
    "l1_sparse": {"*": {"lr": 0.05, "epochs": 5, "batch_size": 32, "gamma": 5e-4}},
    "salun": {"*": {"lr": 0.05, "epochs": 5, "batch_size": 32}},
    # Forget vectors keep the paper's batch 256, lr 0.2 × 0.9/epoch and β = 5 (class-wise), but
    # 60 epochs instead of 100: on digits class:0 (seed 0) that gives Avg. Gap 1.3 to Retrain
    # (UA 100, RA 97.9, TA 96.5, MIA 100); 30 epochs stop while δ still swings (gap 2.5).
    # Random forgetting needs a small β (SPEC §4; docs/forget-vectors.md has the sweep).
    # tol 3e-3: the convergence stop then ends class:0 at ~45 epochs with UA/RA within 0.75
    # points of the fixed 100-epoch schedule; random forgetting's small δ settles sooner, and
    # tol 1e-2 ends random:10 at ~38 epochs (2.6x, UA/RA within 0.1 points) where 3e-3 needs ~51
    # (benchmarks/fv_convergence.py, BENCHMARKS.md §3). class:0 at 1e-2 moves UA 1.5 points.
    "forget_vector": {"*": {"epochs": 60, "tol": 3e-3}, "random": {"beta": 0.2, "tol": 1e-2},
                      "subset": {"beta": 0.2}},
    "fv_arithmetic": {"*": {"epochs": 60, "tol": 3e-3}, "random": {"beta": 0.2}, "subset": {"beta": 0.2}},
    # SCRUB: the reference's lr 5e-4 leaves class:0 at UA 1.5 here; lr 0.005 with 5 epochs (2 of
    # them max-steps) and batches 64/32 (the reference's 4:1 retain:forget ratio) gives UA 100,
    # RA 99.4, gap 0.21 on digits class:0 and gap 0.79 on random:10 (seed 0, 1.2 s). lr 0.01 with
    # 3 epochs leaves RA at 82.5 (too few min-steps to repair); lr 0.05 diverges (the max-step
    # loss is unbounded).
    "scrub": {"*": {"lr": 0.005, "epochs": 5, "batch_size": 64, "forget_batch_size": 32}},
    # SSD keeps the paper's α = 10, λ = 1 (no entry). class:0: seeds 1 / 2 dampen 1.3% of the
    # parameters, UA 100, RA 99.9 / 99.8, gap 0.39 / 0.23; seed 0 dampens none (UA 0, gap 50.3):
    # that original's loss on class 0 is 12x below the rest's, so its forget importances sit ~30x
    # below the full data's. No α suits all three: α = 0.25, λ = 0.1 fixes seed 0 (gap 0.49) but
    # dampens half the network of seeds 1 / 2 (RA 12). random:10: ≤ 8 parameters dampened, gap
    # 0.85 / 1.19 / 0.91, i.e. the untouched original's.
}

# Fashion-MNIST (28x28) costs ~10x digits per image on a CPU: the digits values with batch 64
# for the baselines, and forget vectors with batch 128 for 20 epochs (about as many SGD steps on
# a 3,000-image subset as 60 epochs of batch 256 on digits).
_FASHION_METHODS = {
    **{m: {"*": {**v["*"], "batch_size": 64}} for m, v in _SMALL_METHODS.items()
       if m in ("finetune", "grad_ascent", "random_label", "l1_sparse", "salun")},
    **{m: {**v, "*": {"epochs": 20, "batch_size": 128}} for m, v in _SMALL_METHODS.items()
       if m in ("forget_vector", "fv_arithmetic")},
    # Measured on the 3,000-image subset, seed 0. SCRUB with the digits values loses RA (class:0
    # 86.3, gap 4.9); lr 0.002 × 8 epochs gives class:0 UA 100, RA 95.8, gap 1.1 and random:10
    # gap 4.9 (lr 0.002 × 5: 1.9 / 6.0; lr 0.001 × 5: 1.4 / 6.4), ~17 s per job.
    "scrub": {"*": {"lr": 0.002, "epochs": 8, "batch_size": 64, "forget_batch_size": 32}},
    # SSD: the paper's α = 10 dampens 55% of the weights on class:0 (RA 12); α = 100 dampens 0.7%
    # (UA 100, RA 95.2, gap 1.9). A narrow window: α = 50 → RA 37, α = 200 → nothing dampened.
    # random:10 keeps α = 10, which dampens nothing (gap 8.1, the untouched original's).
    "ssd": {"class": {"alpha": 100.0}},
}

PRESETS: dict[str, Preset] = {
    "digits": Preset(
        model="small_cnn",
        recipe=Recipe(epochs=30, batch_size=64,
                      optim=OptimSpec(lr=0.05, weight_decay=5e-4, schedule="multistep")),
        methods=_SMALL_METHODS,
        note="1,347 training images: seconds per model on a CPU",
    ),
    "fashion-mnist": Preset(
        model="small_cnn",
        # Measured on a 3,000-image subset (seed 0, one core): batch 128 x 20 epochs multistep
        # fits 90% of the training set, batch 32 x 20 multistep 94%, batch 64 x 30 cosine 99.3%
        # (test 85.5%) in ~2 min. SPEC §1 wants >= 99%, hence cosine to zero and no augmentation.
        recipe=Recipe(epochs=30, batch_size=64, augment=False,
                      optim=OptimSpec(lr=0.05, weight_decay=5e-4, schedule="cosine")),
        methods=_FASHION_METHODS,
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


def method_defaults(dataset: str, method: str, scenario_kind: str) -> dict:
    """The preset's overrides of a method's defaults for one dataset and scenario kind."""
    table = preset_for(dataset).methods.get(method, {})
    return {**table.get("*", {}), **table.get(scenario_kind, {})}
