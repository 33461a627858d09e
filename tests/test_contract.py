"""The contract kit (mubench.testing) over every registry: each method, metric, model, and each
dataset that can be read offline (digits; Fashion-MNIST where Debian's package put it; small
files written here in the real layouts for the others)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from test_data import write_cifar10, write_cifar100, write_imagefolder, write_svhn

from mubench import testing as kit
from mubench.data import DATASETS, LoadOptions
from mubench.metrics import METRICS
from mubench.models import MODELS, ModelSpec
from mubench.plugins import load_plugins
from mubench.unlearning import METHODS

load_plugins()
FMNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.parametrize("name", METHODS.names())
def test_method_contract_on_the_kits_own_task(name):
    """check_method as a plugin author calls it: no fixtures, the kit builds its tiny task."""
    kit.check_method(METHODS.get(name))


@pytest.mark.parametrize("name", METRICS.names())
def test_metric_contract(name):
    kit.check_metric(name)


@pytest.mark.parametrize("name", MODELS.names())
def test_model_contract(name):
    if name == "vgg16_bn":  # a CIFAR model, and seconds per build: the colour spec only
        kit.check_model(name, ModelSpec(3, 3, 32, (0.5,) * 3, (0.25,) * 3))
    else:
        kit.check_model(name)


def _write(name: str, root: Path) -> None:
    if name == "cifar10":
        write_cifar10(root)
    elif name == "cifar100":
        write_cifar100(root)
    elif name == "svhn":
        write_svhn(root / "svhn")
    elif name == "imagenet10":
        write_imagefolder(root / "imagenet10")


WRITTEN = ("cifar10", "cifar100", "svhn", "imagenet10")


def test_every_dataset_is_covered():
    assert set(DATASETS.names()) <= {"digits", "fashion-mnist", *WRITTEN}, "add the new dataset to test_contract"


@pytest.mark.parametrize("name", WRITTEN)
def test_dataset_contract_on_written_files(name, tmp_path, monkeypatch):
    from mubench import data as data_mod

    monkeypatch.setattr(data_mod, "SYSTEM_DATA_DIRS", ())
    _write(name, tmp_path)
    kit.check_dataset(name, root=tmp_path)


def test_digits_contract():
    data = kit.check_dataset("digits")
    assert data.num_classes == 10


@pytest.mark.skipif(not FMNIST.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_contract():
    kit.check_dataset("fashion-mnist", options=LoadOptions(train_subset=2000))


def test_imagefolder_contract(tmp_path):
    write_imagefolder(tmp_path / "tree")
    kit.check_dataset(f"imagefolder:{tmp_path / 'tree'}")


# -- the kit catches what it exists to catch ---------------------------------------------------------
def test_check_metric_rejects_a_non_finite_or_mutating_metric():
    from mubench.metrics import register_metric

    @register_metric("kit_nan", description="always NaN")
    def kit_nan(ctx):
        return float("nan")

    @register_metric("kit_mutates", description="edits the logits it is given")
    def kit_mutates(ctx):
        ctx.outputs.forget.logits.add_(1)
        return 0.0

    @register_metric("kit_random", description="unseeded")
    def kit_random(ctx):
        return float(torch.rand(()))

    try:
        with pytest.raises(AssertionError, match="finite"):
            kit.check_metric("kit_nan")
        with pytest.raises(AssertionError, match="changed its inputs"):
            kit.check_metric("kit_mutates")
        with pytest.raises(AssertionError, match="differs between two calls"):
            kit.check_metric("kit_random")
    finally:
        for n in ("kit_nan", "kit_mutates", "kit_random"):
            METRICS.remove(n)


def test_check_dataset_rejects_labels_out_of_range(monkeypatch):
    from mubench import data as data_mod

    real = data_mod.load_dataset

    def bad_labels(name, options=None):
        data = real(name, options)
        return dataclasses.replace(data, train_y=data.train_y + 1)

    monkeypatch.setattr(data_mod, "load_dataset", bad_labels)
    with pytest.raises(AssertionError, match=r"labels must lie in \[0, 10\)"):
        kit.check_dataset("digits")


def test_check_model_rejects_unseeded_initialisation():
    from torch import nn

    builds = []

    @MODELS.register("kit_unseeded", description="initialises from a generator of its own")
    def kit_unseeded(spec):
        builds.append(1)
        layer = nn.Linear(spec.in_channels * spec.image_size**2, spec.num_classes)
        g = torch.Generator().manual_seed(len(builds))  # a different init on every build
        with torch.no_grad():
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=g))
        return nn.Sequential(nn.Flatten(), layer)

    try:
        with pytest.raises(AssertionError, match="two builds"):
            kit.check_model("kit_unseeded")
    finally:
        MODELS.remove("kit_unseeded")
