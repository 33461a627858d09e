"""The one training loop: schedules by hand, convergence, seeded determinism, hooks, BN freezing,
and the digits original trained once and then loaded from the store."""

from __future__ import annotations

import math
import time

import pytest
import torch
from torch import nn

from mubench.augment import Augment
from mubench.data import LoadOptions
from mubench.device import resolve_precision
from mubench.errors import ConfigError
from mubench.jobs import RunContext
from mubench.planner import original_job
from mubench.store import Store
from mubench.training import (
    Batch,
    OptimSpec,
    Recipe,
    accuracy,
    cross_entropy_loss,
    fit_supervised,
    lr_at,
    make_generator,
    tensor_batches,
    train,
)

CPU = torch.device("cpu")


# ---------------------------------------------------------------------------------------------
# Schedules (pure functions, values worked out by hand)


def test_constant_schedule():
    spec = OptimSpec(lr=0.3, schedule="constant")
    assert [lr_at(e, 5, spec) for e in range(5)] == [0.3] * 5


def test_multistep_schedule():
    # 8 epochs, milestones at 50% and 75% → lr drops before epochs 4 and 6
    spec = OptimSpec(lr=0.1, schedule="multistep", milestones=(0.5, 0.75), gamma=0.1)
    lrs = [lr_at(e, 8, spec) for e in range(8)]
    assert lrs == pytest.approx([0.1] * 4 + [0.01] * 2 + [0.001] * 2)


def test_multistep_cifar_recipe_milestones():
    # SPEC §1: 182 epochs, lr × 0.1 at 50% (epoch 91) and 75% (epoch 136.5 → 136)
    spec = OptimSpec()
    assert lr_at(90, 182, spec) == pytest.approx(0.1)
    assert lr_at(91, 182, spec) == pytest.approx(0.01)
    assert lr_at(135, 182, spec) == pytest.approx(0.01)
    assert lr_at(137, 182, spec) == pytest.approx(0.001)


def test_exponential_schedule():
    # forget vectors: lr × 0.9 after every epoch
    spec = OptimSpec(lr=0.2, schedule="exponential", gamma=0.9)
    assert [lr_at(e, 4, spec) for e in range(4)] == pytest.approx([0.2, 0.18, 0.162, 0.1458])


def test_cosine_schedule():
    spec = OptimSpec(lr=1.0, schedule="cosine")
    c = math.cos(math.pi / 4)
    assert [lr_at(e, 4, spec) for e in range(4)] == pytest.approx([1.0, (1 + c) / 2, 0.5, (1 - c) / 2])


def test_bad_schedule_and_precision_are_config_errors():
    with pytest.raises(ConfigError, match="'schedule' must be one of 'constant', 'multistep'.*; got 'step'"):
        OptimSpec(schedule="step")
    with pytest.raises(ConfigError, match="precision 'fp16'"):
        resolve_precision("fp16", CPU)
    assert resolve_precision("bf16", CPU) == "bf16"
    assert resolve_precision("fp32", CPU) == "fp32"


@pytest.mark.parametrize("amx, bf16_kernels, expected", [(True, True, "bf16"), (False, True, "fp32"),
                                                         (True, False, "fp32")])
def test_auto_precision_on_cpu_is_bf16_only_with_amx(monkeypatch, amx, bf16_kernels, expected):
    import mubench.device as device

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(device, "bf16_supported", lambda dev: bf16_kernels)
    assert resolve_precision("auto", CPU) == expected


# ---------------------------------------------------------------------------------------------
# Batches


def test_tensor_batches_cover_every_sample_once_per_epoch():
    x = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 2, 2).contiguous()
    y = torch.arange(10)
    forget = y % 3 == 0
    gen = make_generator(0)
    batches = list(tensor_batches(x, y, 4, gen, forget=forget))
    assert [len(b.y) for b in batches] == [4, 4, 2]
    seen = torch.cat([b.y for b in batches])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))  # shuffled
    for b in batches:
        assert b.x.dtype == torch.float32
        assert torch.equal(b.x[:, 0, 0, 0] * 255, b.y.float())  # images stay with their labels
        assert torch.equal(b.forget, b.y % 3 == 0)
    again = list(tensor_batches(x, y, 4, make_generator(0)))
    assert torch.equal(torch.cat([b.y for b in again]), seen)
    ordered = list(tensor_batches(x, y, 4, make_generator(0), shuffle=False))
    assert torch.cat([b.y for b in ordered]).tolist() == list(range(10))


def test_accuracy_by_hand():
    class PixelLogits(nn.Module):  # logits are the two pixels of a 1×1×2 image
        def forward(self, x):
            return x.flatten(1)

    x = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]]).view(4, 1, 1, 2)
    y = torch.tensor([0, 1, 1, 1])  # the third is wrong → 3 of 4
    assert accuracy(PixelLogits(), x, y, CPU, batch_size=3) == 75.0


# ---------------------------------------------------------------------------------------------
# The loop


def _blobs(n: int = 200, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    centres = torch.tensor([[0.2, 0.2], [0.8, 0.2], [0.5, 0.8]])
    x = (centres[y] + 0.08 * torch.randn(n, 2, generator=g)).view(n, 1, 1, 2)
    return x, y


def _bn_net() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(2, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))


def _run(model, x, y, epochs=5, seed=0, **kwargs):
    gen = make_generator(seed)
    return train(model, epochs=epochs, batches=lambda e: tensor_batches(x, y, 32, gen),
                 loss_fn=cross_entropy_loss, optim=OptimSpec(lr=0.1, schedule="constant"),
                 device=CPU, progress=False, **kwargs)


def test_train_decreases_loss_and_learns():
    x, y = _blobs()
    torch.manual_seed(0)
    model = _bn_net()
    result = _run(model, x, y, epochs=8)
    losses = [h["loss"] for h in result.history]
    assert result.epochs_run == 8 and len(losses) == 8
    assert losses[-1] < 0.3 * losses[0], losses
    assert result.last_loss == losses[-1] and result.seconds > 0
    assert accuracy(model, x, y, CPU) > 95.0


def test_bf16_autocast_on_cpu_still_learns():
    x, y = _blobs()
    torch.manual_seed(0)
    model = _bn_net()
    result = _run(model, x, y, epochs=6, precision="bf16")
    assert result.history[-1]["loss"] < 0.5 * result.history[0]["loss"]
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast, not a cast


def test_history_records_the_schedule():
    x, y = _blobs(64)
    torch.manual_seed(0)
    gen = make_generator(0)
    spec = OptimSpec(lr=0.1, schedule="multistep", milestones=(0.5,), gamma=0.5)
    result = train(_bn_net(), epochs=4, batches=lambda e: tensor_batches(x, y, 32, gen),
                   loss_fn=cross_entropy_loss, optim=spec, device=CPU, progress=False)
    assert [h["lr"] for h in result.history] == pytest.approx([0.1, 0.1, 0.05, 0.05])


def test_same_seed_gives_bit_identical_weights(digits):
    recipe = Recipe(epochs=2, batch_size=64, optim=OptimSpec(lr=0.05))
    x, y = digits.train_x[:400], digits.train_y[:400]

    def fit(seed):
        from mubench.models import build_model, spec_for

        torch.manual_seed(seed)
        model = build_model("small_cnn", spec_for(digits))
        fit_supervised(model, x, y, recipe, Augment("crop_flip", pad=1), seed, CPU, progress=False)
        return model.state_dict()

    a, b, c = fit(0), fit(0), fit(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_after_epoch_can_stop_early_and_after_step_runs_per_step():
    x, y = _blobs(96)
    steps = []
    result = _run(_bn_net(), x, y, epochs=10, after_step=lambda: steps.append(1),
                  after_epoch=lambda epoch, stats: epoch == 2)
    assert result.epochs_run == 3 and len(result.history) == 3
    assert len(steps) == 3 * 3  # 96 samples / 32 per batch × 3 epochs


def test_train_mode_false_keeps_batchnorm_statistics():
    x, y = _blobs(64)
    torch.manual_seed(0)
    model = _bn_net()
    bn = model[2]
    before = (bn.running_mean.clone(), bn.running_var.clone(), int(bn.num_batches_tracked))
    weight_before = model[1].weight.detach().clone()
    _run(model, x, y, epochs=2, train_mode=False)
    assert not model.training
    assert torch.equal(bn.running_mean, before[0]) and torch.equal(bn.running_var, before[1])
    assert int(bn.num_batches_tracked) == before[2]
    assert not torch.equal(model[1].weight, weight_before)  # the weights did train
    _run(model, x, y, epochs=1, train_mode=True)
    assert not torch.equal(bn.running_mean, before[0])


def test_only_the_given_params_move():
    x, y = _blobs(64)
    torch.manual_seed(0)
    model = _bn_net()
    frozen = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("1.")}
    head = model[4]
    head_before = head.weight.detach().clone()
    _run(model, x, y, epochs=1, params=head.parameters())
    assert all(torch.equal(model.state_dict()[k], v) for k, v in frozen.items())
    assert not torch.equal(head.weight, head_before)


def test_lr_scale_of_a_param_group():
    x, y = _blobs(64)
    torch.manual_seed(0)
    model = _bn_net()
    first = model[1].weight.detach().clone()
    groups = [{"params": list(model[1].parameters()), "lr_scale": 0.0, "weight_decay": 0.0},
              {"params": [p for m in list(model)[2:] for p in m.parameters()]}]
    _run(model, x, y, epochs=1, params=groups)
    assert torch.equal(model[1].weight, first)


def test_loss_fn_sees_batches_with_forget_flags():
    x, y = _blobs(40)
    flags = torch.arange(40) < 10
    seen = []

    def loss_fn(model, batch: Batch, epoch: int):
        seen.append(int(batch.forget.sum()))
        return cross_entropy_loss(model, batch)

    gen = make_generator(0)
    train(_bn_net(), epochs=1, batches=lambda e: tensor_batches(x, y, 16, gen, forget=flags),
          loss_fn=loss_fn, optim=OptimSpec(schedule="constant"), device=CPU, progress=False)
    assert sum(seen) == 10 and len(seen) == 3


# ---------------------------------------------------------------------------------------------
# The digits original: trained once, then loaded from the store


def test_digits_original_fits_and_is_loaded_the_second_time(tmp_path, digits, digits_recipe):
    store = Store(tmp_path / "results")
    ctx = RunContext(store, CPU)
    first = original_job("digits", LoadOptions(), "small_cnn", {}, "fp32", 0, CPU, 1).load(ctx)
    info = first.info
    assert info["loaded"] is False
    assert info["test_acc"] >= 95.0 and info["train_acc"] >= 99.0  # measured: 98.7 / 99.6
    assert store.has_artifact("original", first.key) and store.read_record("original", first.key)

    start = time.perf_counter()
    second = original_job("digits", LoadOptions(), "small_cnn", {}, "fp32", 0, CPU, 1).load(ctx)
    elapsed = time.perf_counter() - start
    assert second.info["loaded"] is True and second.key == first.key
    assert elapsed < info["seconds"] / 3, (elapsed, info["seconds"])
    assert second.info["test_acc"] == info["test_acc"]
    state = second.model.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in first.model.state_dict().items())
    assert not second.model.training

    # another recipe is another artifact; one epoch under-fits, which SPEC §1 says to warn about
    with pytest.warns(UserWarning, match="under-fits its training set"):
        short = original_job("digits", LoadOptions(), "small_cnn", {"epochs": 1}, "fp32", 0, CPU, 1).load(ctx)
    assert short.key != first.key and short.info["loaded"] is False
