"""Contract tests over the model registry (timm's tests/test_models.py habit).

Every registered model builds for a fitting input size and channel count, gives (N, K) finite
logits, gives every parameter a gradient, and normalises its input in its first layer.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn

from mubench.errors import ConfigError, MubenchError, UnknownNameError
from mubench.models import (
    MODELS,
    BasicBlock,
    Classifier,
    ModelSpec,
    Normalize,
    build_model,
    count_parameters,
    spec_for,
)

# (image size, channels) per model: the large torchvision nets take seconds to build on a CPU,
# so each gets the cases that exercise its code paths; the small ones get both channel counts.
CASES = {
    "small_cnn": [(8, 1), (28, 1), (32, 3)],
    "resnet8": [(8, 1), (32, 3)],
    "resnet20": [(32, 3)],
    "resnet18": [(32, 1), (72, 3)],  # CIFAR stem, then ImageNet stem
    "vgg16_bn": [(32, 1)],
}
NUM_CLASSES = 7


def _spec(size: int, channels: int) -> ModelSpec:
    return ModelSpec(NUM_CLASSES, channels, size, tuple(0.1 * (i + 1) for i in range(channels)),
                     tuple(0.2 + 0.1 * i for i in range(channels)))


@pytest.fixture(scope="module")
def model_of():
    """Build each (name, size, channels) once per module: ResNet-18 and VGG take seconds."""
    built: dict = {}

    def get(name: str, size: int, channels: int) -> nn.Module:
        if (name, size, channels) not in built:
            torch.manual_seed(0)
            built[name, size, channels] = build_model(name, _spec(size, channels))
        return built[name, size, channels]

    return get


def test_every_registered_model_has_cases():
    assert set(CASES) == set(MODELS.names()), "add the new model to CASES"


@pytest.mark.parametrize("name, size, channels",
                         [(n, s, c) for n, cases in CASES.items() for s, c in cases],
                         ids=lambda v: str(v))
def test_forward_backward(name, size, channels, model_of):
    model = model_of(name, size, channels)
    model.train()
    x = torch.rand(3, channels, size, size, generator=torch.Generator().manual_seed(1))
    out = model(x)
    assert out.shape == (3, NUM_CLASSES)
    assert torch.isfinite(out).all()
    model.zero_grad()
    out.logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"{name}: parameters without a finite gradient: {missing[:5]}"
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (3, NUM_CLASSES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_first_layer_normalises(name, model_of):
    size, channels = CASES[name][0]
    model = model_of(name, size, channels)
    spec = _spec(size, channels)
    assert isinstance(model, Classifier)
    first = next(iter(model.children()))
    assert isinstance(first, Normalize)
    assert first.mean.flatten().tolist() == pytest.approx(spec.mean)
    assert first.std.flatten().tolist() == pytest.approx(spec.std)
    assert "normalize.mean" in model.state_dict()  # buffers travel with checkpoints
    # the model is body(normalise(x)): the same as feeding the body pre-normalised input
    model.eval()
    x = torch.rand(2, channels, size, size)
    mean, std = torch.tensor(spec.mean).view(1, -1, 1, 1), torch.tensor(spec.std).view(1, -1, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.body((x - mean) / std))


def test_resnet18_stem_depends_on_image_size(model_of):
    cifar = model_of("resnet18", 32, 1).body
    assert cifar.conv1.kernel_size == (3, 3) and cifar.conv1.stride == (1, 1)
    assert cifar.conv1.in_channels == 1 and isinstance(cifar.maxpool, nn.Identity)
    imagenet = model_of("resnet18", 72, 3).body
    assert imagenet.conv1.kernel_size == (7, 7) and imagenet.conv1.stride == (2, 2)
    assert isinstance(imagenet.maxpool, nn.MaxPool2d)


def test_resnet18_imagenet_stem_with_one_channel():
    body = build_model("resnet18", _spec(65, 1)).body
    assert body.conv1.kernel_size == (7, 7) and body.conv1.in_channels == 1


def test_vgg16_bn_head_matches_spec(model_of):
    body = model_of("vgg16_bn", 32, 1).body
    linears = [m for m in body.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(2048, 256), (256, 256), (256, NUM_CLASSES)]
    assert body[0][0].in_channels == 1
    assert sum(isinstance(m, nn.BatchNorm2d) for m in body.modules()) == 13


def test_vgg16_bn_parameter_count_matches_the_reference():
    """The OPTML VGG-16-BN has bias-free convolutions (torchvision's add 4,224 biases)."""
    widths = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
              (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
    convs = sum(9 * cin * cout for cin, cout in widths)  # 14,710,464
    bns = sum(2 * cout for _, cout in widths)  # 8,448 (gamma, beta)
    head = (2048 * 256 + 256) + (256 * 256 + 256) + (256 * 10 + 10)  # 592,906
    model = build_model("vgg16_bn", ModelSpec(10, 3, 32, (0.5,) * 3, (0.25,) * 3))
    assert count_parameters(model) == convs + bns + head == 15_311_818
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv2d))


def test_vgg16_bn_rejects_too_small_images():
    with pytest.raises(ConfigError, match="vgg16_bn.*at least 32 px; got 28"):
        build_model("vgg16_bn", _spec(28, 1))


def test_small_model_sizes_match_their_descriptions(model_of):
    # the registry descriptions quote these sizes (list models)
    assert 85_000 < count_parameters(model_of("small_cnn", 8, 1)) < 115_000  # "~0.1M"
    assert 75_000 < count_parameters(model_of("resnet8", 8, 1)) < 80_000
    assert 260_000 < count_parameters(model_of("resnet20", 32, 3)) < 280_000


def test_same_seed_same_initial_weights():
    torch.manual_seed(3)
    a = build_model("resnet8", _spec(8, 1))
    torch.manual_seed(3)
    b = build_model("resnet8", _spec(8, 1))
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_spec_for_digits(digits):
    spec = spec_for(digits)
    assert (spec.num_classes, spec.in_channels, spec.image_size) == (10, 1, 8)
    assert spec.mean == tuple(digits.mean) and spec.std == tuple(digits.std)


def test_unknown_model_is_a_named_error():
    with pytest.raises(UnknownNameError, match="did you mean 'resnet18'"):
        build_model("resnet19", _spec(32, 3))


@pytest.mark.skipif(importlib.util.find_spec("timm") is not None, reason="timm is installed")
def test_vit_without_timm_names_the_extra():
    with pytest.raises(MubenchError, match=r"vit_tiny_patch16_224.*timm.*pip install 'mubench\[timm\]'"):
        build_model("vit_tiny_patch16_224", _spec(224, 3))


def test_basic_block_in_place_forward_matches_the_textbook_formula():
    """The in-place ReLU/add (a CPU speed-up) must not change outputs or any gradient."""
    torch.manual_seed(0)
    for cin, cout, stride in [(16, 16, 1), (16, 32, 2)]:
        block = BasicBlock(cin, cout, stride).train()
        x = torch.randn(4, cin, 8, 8, requires_grad=True)
        out = block(x)
        out.square().sum().backward()
        ours = (out.detach(), x.grad.clone(), block.conv1.weight.grad.clone())
        x.grad, block.conv1.weight.grad = None, None
        ref = torch.relu(block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(x))))) + block.shortcut(x))
        ref.square().sum().backward()
        for a, b in zip(ours, (ref.detach(), x.grad, block.conv1.weight.grad), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
