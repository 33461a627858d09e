"""evaluate(): one forward pass per part, controls, cost, invariances, and a real digits run."""

from __future__ import annotations

import copy
import dataclasses
import io

import pytest
import torch
from torch import nn

from mubench.augment import Augment
from mubench.data import ImageData, eval_view
from mubench.errors import ConfigError
from mubench.evaluation import (
    PartOutputs,
    SplitOutputs,
    evaluate,
    forward_split,
    load_outputs,
    noise_like,
    save_outputs,
)
from mubench.models import count_parameters
from mubench.pipeline import fresh_model
from mubench.predictor import Predictor
from mubench.scenarios import make_split
from mubench.training import fit_supervised

CONTROLS = {"ua_bypass", "ua_noise", "ra_noise", "ta_noise", "mia_noise"}
CPU = torch.device("cpu")


# ---------------------------------------------------------------------------------------------
# A toy with outputs worked out by hand: 1×1×1 images, the model says class 1 iff x > 0.5.


class Threshold(nn.Module):
    def forward(self, x):
        v = x.flatten(1).mean(1)
        return torch.stack([0.5 - v, v - 0.5], dim=1) * 10


@pytest.fixture(scope="module")
def toy():
    def images(values):
        return torch.tensor(values).view(-1, 1, 1, 1)

    data = ImageData("toy", images([0.7, 0.8, 0.2, 0.1, 0.9, 0.3]), torch.tensor([1, 1, 0, 0, 1, 0]),
                     images([0.6, 0.4, 0.75, 0.25]), torch.tensor([1, 0, 1, 0]), ("a", "b"), (0.5,), (0.25,),
                     Augment("crop", pad=1), eval_size=1)
    # forget = class-1 training images (0.7, 0.8, 0.9); retain 0.2, 0.1, 0.3;
    # test = class-0 test images (0.4, 0.25); test_forgotten = 0.6, 0.75
    split = make_split(data.train_y.numpy(), data.test_y.numpy(), "class:1", 0)
    return data, split


def test_toy_metrics_by_hand(toy):
    data, split = toy
    plain = evaluate(Predictor(Threshold()), data, split, device=CPU)
    assert {k: plain[k] for k in ("ua", "ra", "ta", "ta_forgotten")} == \
        {"ua": 0.0, "ra": 100.0, "ta": 100.0, "ta_forgotten": 100.0}  # every image on its side
    assert not CONTROLS & set(plain)  # a model-based predictor has no input transform to control
    assert "params_changed" not in plain  # model-based without the original: cost unknown

    # δ = −0.45 moves every forget image below 0.5 (UA 100); retain and test stay class 0; the
    # forgotten test images 0.6, 0.75 drop to 0.15, 0.30 → class 0 → 0 %
    fv = evaluate(Predictor(Threshold(), torch.full((1, 1, 1), -0.45)), data, split, device=CPU)
    assert {k: fv[k] for k in ("ua", "ra", "ta", "ta_forgotten", "ua_bypass")} == \
        {"ua": 100.0, "ra": 100.0, "ta": 100.0, "ta_forgotten": 0.0, "ua_bypass": 0.0}
    assert (fv["params_changed"], fv["bytes"]) == (1, 4)  # C·H·W = 1 float32


def test_noise_control_uses_a_seeded_delta_of_equal_norm(toy):
    data, split = toy
    delta = torch.full((1, 1, 1), -0.45)
    signs = set()
    for seed in range(6):
        noise = noise_like(delta, seed)
        assert float(noise.abs().squeeze()) == pytest.approx(0.45)  # on a 1-D sphere: ±0.45
        assert torch.equal(noise, noise_like(delta, seed))
        sign = float(noise.sign().squeeze())
        signs.add(sign)
        got = evaluate(Predictor(Threshold(), delta), data, split, device=CPU, seed=seed)
        # −0.45 behaves like δ (UA, RA, TA all 100); +0.45 pushes every image to class 1, so the
        # forget set stays right (UA 0) and the class-0 retain and test images go wrong (0, 0)
        expected = 100.0 if sign < 0 else 0.0
        assert (got["ua_noise"], got["ra_noise"], got["ta_noise"]) == (expected, expected, expected)
    assert signs == {-1.0, 1.0}  # both cases were exercised


def test_noise_like_in_image_shape():
    delta = torch.randn(3, 8, 8)
    noise = noise_like(delta, 0)
    assert noise.shape == delta.shape and noise.dtype == torch.float32
    assert float(noise.norm()) == pytest.approx(float(delta.norm()), rel=1e-5)
    assert not torch.allclose(noise, noise_like(delta, 1))
    assert float(noise_like(torch.zeros(3, 8, 8), 0).norm()) == 0.0


# ---------------------------------------------------------------------------------------------
# Digits with the session's original model


def test_forward_split_is_one_unaugmented_pass_per_part(digits, digits_original, class0_split):
    predictor = Predictor(digits_original)
    out = forward_split(predictor, digits, class0_split, CPU)
    for part, (x, y) in {"forget": (digits.train_x, digits.train_y), "retain": (digits.train_x, digits.train_y),
                         "test": (digits.test_x, digits.test_y),
                         "test_forgotten": (digits.test_x, digits.test_y)}.items():
        idx = torch.from_numpy(getattr(class0_split, part))
        got = getattr(out, part)
        assert torch.equal(got.labels, y[idx])
        assert got.logits.dtype == torch.float32 and got.logits.shape == (len(idx), 10)
        with torch.inference_mode():
            assert torch.allclose(got.logits, digits_original(eval_view(digits, x[idx])), atol=1e-5)


def test_batch_size_does_not_change_a_metric(digits, digits_original, class0_split):
    predictor = Predictor(digits_original, torch.full((1, 8, 8), 0.05))
    big = evaluate(predictor, digits, class0_split, device=CPU, original=digits_original)
    small = evaluate(predictor, digits, class0_split, device=CPU, original=digits_original, batch_size=7)
    assert big.keys() == small.keys() and CONTROLS <= big.keys()
    assert big == pytest.approx(small, abs=1e-9)


def test_parameter_counts(digits, digits_original, class0_split):
    fv = evaluate(Predictor(digits_original, torch.zeros(1, 8, 8)), digits, class0_split, device=CPU,
                  original=digits_original, controls=False)
    assert (fv["params_changed"], fv["bytes"]) == (64, 256)  # a forget vector: C·H·W = 1·8·8
    untouched = copy.deepcopy(digits_original)
    changed = copy.deepcopy(digits_original)
    with torch.no_grad():
        for p in changed.parameters():
            p.add_(1.0)
    same = evaluate(Predictor(untouched), digits, class0_split, device=CPU, original=digits_original)
    every = evaluate(Predictor(changed), digits, class0_split, device=CPU, original=digits_original)
    n = count_parameters(digits_original)
    assert (same["params_changed"], same["bytes"]) == (0, 0)
    assert (every["params_changed"], every["bytes"]) == (n, 4 * n)


def test_outputs_survive_the_store_format(digits, digits_original, random10_split):
    out = forward_split(Predictor(digits_original), digits, random10_split, CPU)
    buffer = io.BytesIO()
    torch.save(save_outputs(out), buffer)
    buffer.seek(0)
    back = load_outputs(torch.load(buffer, weights_only=True))
    for part in ("forget", "retain", "test", "test_forgotten"):
        assert torch.equal(getattr(back, part).logits, getattr(out, part).logits)
        assert torch.equal(getattr(back, part).labels, getattr(out, part).labels)
    partial = load_outputs(save_outputs(SplitOutputs(forget=out.forget)))
    assert partial.retain is None and torch.equal(partial.forget.labels, out.forget.labels)


def test_random_scenario_has_no_forgotten_class_accuracy(digits, digits_original, random10_split):
    got = evaluate(Predictor(digits_original), digits, random10_split, device=CPU, extra_mia=True)
    assert got["ta_forgotten"] is None
    assert {"mia_entropy", "mia_m_entropy", "mia_correctness"} <= got.keys()
    assert all(0.0 <= got[k] <= 100.0 for k in ("ua", "ra", "ta", "mia_efficacy", "mia_m_entropy"))


# ---------------------------------------------------------------------------------------------
# Sanity on a real run (SPEC §5): the original vs a model retrained without class 0


@pytest.fixture(scope="module")
def retrained(digits, digits_recipe, class0_split):
    """small_cnn trained on the class:0 retain set only (10 epochs suffice on digits: ~8 s)."""
    model = fresh_model(digits, "small_cnn", 0)
    retain = torch.from_numpy(class0_split.retain)
    fit_supervised(model, digits.train_x[retain], digits.train_y[retain],
                   dataclasses.replace(digits_recipe, epochs=10), digits.augment, 0, CPU, progress=False)
    return Predictor(model)


def test_original_and_retrain_sit_apart_on_class_forgetting(digits, digits_original, class0_split, retrained):
    ref_outputs = forward_split(retrained, digits, class0_split, CPU)
    ref = evaluate(retrained, digits, class0_split, device=CPU, original=digits_original, outputs=ref_outputs)
    # measured: UA 100, MIA-Efficacy 100, RA 99.7, TA 99.3, TA on class 0: 0
    assert ref["ua"] == 100.0 and ref["ta_forgotten"] == 0.0
    assert ref["mia_efficacy"] > 90.0
    assert ref["ra"] > 95.0 and ref["ta"] > 95.0

    itself = evaluate(retrained, digits, class0_split, device=CPU, original=digits_original,
                      reference=ref, reference_outputs=ref_outputs)
    assert itself["avg_gap"] == 0.0 and itself["kl_forget"] == 0.0 and itself["kl_test"] == 0.0
    assert {k: itself[k] for k in ref} == ref  # a second evaluation gives the same numbers

    original = evaluate(Predictor(digits_original), digits, class0_split, device=CPU, original=digits_original,
                        reference=ref, reference_outputs=ref_outputs)
    # measured: UA 0, MIA-Efficacy 0, TA on class 0: 100, Avg. Gap ≈ 50, KL on forget ≈ 10 nats
    assert original["ua"] < 5.0 and original["mia_efficacy"] < 10.0
    assert original["ta_forgotten"] > 90.0
    assert original["avg_gap"] > 40.0
    assert original["kl_forget"] > 1.0 > original["kl_test"]
    assert original["params_changed"] == 0


def test_reference_outputs_of_another_split_are_refused(digits, digits_original, class0_split, random10_split):
    other = forward_split(Predictor(digits_original), digits, random10_split, CPU)
    with pytest.raises(ConfigError, match="same split"):
        evaluate(Predictor(digits_original), digits, class0_split, device=CPU, reference_outputs=other)


def test_part_outputs_len():
    assert len(PartOutputs(torch.zeros(3, 2), torch.zeros(3, dtype=torch.int64))) == 3
