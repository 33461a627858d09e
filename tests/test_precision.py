"""Precision must not change the perturbation (SPEC §5, Precision; issue 13 item 6).

Under bf16 autocast a forward used to round x + δ to bf16 before the first convolution, so a
small δ reached the network distorted by tens of percent. Models now keep their input path
(normalisation and first layer) in fp32 and only later layers round.
"""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch import nn

from mubench import device
from mubench.device import exact_fp32, resolve_precision
from mubench.models import Fp32Conv2d, ModelSpec, build_model, keep_input_layer_fp32

CPU = torch.device("cpu")
# (model, channels, image size): CIFAR-shaped inputs, where random-forgetting δ are smallest
CASES = [("small_cnn", 3, 32), ("resnet8", 3, 32), ("resnet18", 3, 32), ("vgg16_bn", 3, 32)]


def _model(name: str, channels: int, size: int) -> nn.Module:
    torch.manual_seed(0)
    spec = ModelSpec(10, channels, size, (0.49, 0.48, 0.45)[:channels], (0.25, 0.24, 0.26)[:channels])
    return build_model(name, spec).eval()


def _first_layer_output(model: nn.Module, x: torch.Tensor, bf16: bool) -> torch.Tensor:
    first = next(m for m in model.body.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    seen = []
    handle = first.register_forward_hook(lambda mod, inp, out: seen.append(out))
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            model(x)
    finally:
        handle.remove()
    return seen[0]


@pytest.mark.parametrize("name, channels, size", CASES, ids=lambda v: str(v))
def test_delta_reaches_the_first_layer_unrounded_under_bf16(name, channels, size):
    """δ as the network sees it, first_layer(x + δ) − first_layer(x), is the same under bf16
    autocast as in fp32 to 1e-5 relative (float32 round-off). Before the input path was kept
    in fp32 it differed by 10% at ‖δ‖₂ 0.5 and more for smaller δ (random forgetting's sizes)."""
    model = _model(name, channels, size)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(8, channels, size, size, generator=g)
    for norm in (0.5, 0.06):
        delta = torch.randn(channels, size, size, generator=g)
        delta *= norm / delta.norm()
        signal = {bf16: _first_layer_output(model, x + delta, bf16) - _first_layer_output(model, x, bf16)
                  for bf16 in (False, True)}
        err = float((signal[True].float() - signal[False]).norm() / signal[False].norm())
        assert err < 1e-5, f"{name}: ‖δ‖₂ {norm}: the first layer sees δ with relative error {err:.3g} under bf16"
        assert signal[True].dtype == torch.float32


def test_later_layers_still_run_in_bf16():
    model = _model("small_cnn", 3, 32)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert model(torch.rand(2, 3, 32, 32)).dtype == torch.bfloat16


def test_fp32_input_layer_changes_nothing_in_fp32():
    """Same parameters, state-dict keys, repr (architecture_key) and fp32 outputs as a plain Conv2d."""
    model = _model("small_cnn", 3, 32)
    first = model.body[0][0]
    assert isinstance(first, Fp32Conv2d)
    plain = nn.Conv2d(3, 32, 3, 1, 1, bias=False)
    plain.load_state_dict(first.state_dict())
    x = torch.randn(4, 3, 32, 32)
    assert torch.equal(first(x), plain(x))
    assert repr(first) == repr(plain)
    assert "body.0.0.weight" in model.state_dict()  # unchanged keys: stored originals load
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert isinstance(clone.body[0][0], Fp32Conv2d)
        assert torch.equal(clone(x), model(x))


def test_keep_input_layer_fp32_takes_the_first_layer_once():
    body = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3))
    assert keep_input_layer_fp32(body) is body[0]
    assert keep_input_layer_fp32(body) is body[0]  # idempotent
    assert type(body[1]) is nn.Conv2d
    assert keep_input_layer_fp32(nn.Sequential(nn.Flatten())) is None


# ---------------------------------------------------------------------------------------------
# CUDA: auto never picks emulated bf16; evaluation without TF32 (flags only: no GPU needed)


@pytest.mark.parametrize("capability, native, expected", [((9, 0), True, "bf16"), ((8, 0), True, "bf16"),
                                                          ((7, 5), False, "fp32"), ((7, 0), True, "fp32"),
                                                          ((8, 6), False, "fp32")])
def test_auto_precision_on_cuda_needs_native_bf16(monkeypatch, capability, native, expected):
    # torch's default check (including_emulation=True) says yes on pre-Ampere GPUs too
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: True if including_emulation else native)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert resolve_precision("auto", torch.device("cuda")) == expected
    assert resolve_precision("bf16", torch.device("cuda")) == "bf16"  # asked for: given


def test_exact_fp32_turns_tf32_off_and_determinism_on_for_cuda_only():
    cuda, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    before = (cuda.allow_tf32, cudnn.allow_tf32, cudnn.benchmark, torch.are_deterministic_algorithms_enabled())
    try:
        cuda.allow_tf32 = cudnn.allow_tf32 = cudnn.benchmark = True
        with exact_fp32(CPU):
            assert cudnn.allow_tf32 and not torch.are_deterministic_algorithms_enabled()
        with exact_fp32("cuda"):
            assert not cuda.allow_tf32 and not cudnn.allow_tf32 and not cudnn.benchmark
            assert torch.are_deterministic_algorithms_enabled()
            assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert cuda.allow_tf32 and cudnn.allow_tf32 and cudnn.benchmark  # restored for training
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        cuda.allow_tf32, cudnn.allow_tf32, cudnn.benchmark = before[:3]
        torch.use_deterministic_algorithms(before[3])


def test_cublas_workspace_is_fixed_for_deterministic_kernels():
    assert device.os.environ.get("CUBLAS_WORKSPACE_CONFIG")  # set on import, before any CUDA work
