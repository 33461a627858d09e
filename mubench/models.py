"""Model registry. Normalisation is the first layer inside every model (SPEC §1), so every
input-space method (forget vectors) works in pixel space [0, 1].

A builder takes `ModelSpec` (classes, channels, image size, mean/std) and returns an nn.Module.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .errors import ConfigError, MubenchError
from .registry import Registry

MODELS = Registry("model")


@dataclass(frozen=True)
class ModelSpec:
    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


class Normalize(nn.Module):
    """(x − mean) / std per channel; buffers so they move with the model and sit in checkpoints."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


class _Fp32Input:
    """Mixin of the input layer: its op runs in the weight's dtype (fp32) even under autocast.

    Under bf16 autocast a forward rounds x + δ to bf16 before the first convolution, which
    swamps a small universal perturbation (SPEC §5, Precision); kept in fp32 here, x + δ and
    its first linear map are exact and only later layers round. The class keeps its base
    class's name, so a model prints (and hashes, `pipeline.architecture_key`) as before: in
    fp32 nothing changes.
    """

    base_name = ""  # the torch class this one stands in for

    def forward(self, x):
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x.to(self.weight.dtype))

    def _get_name(self):
        return self.base_name


class Fp32Conv2d(_Fp32Input, nn.Conv2d):
    base_name = "Conv2d"


class Fp32Linear(_Fp32Input, nn.Linear):
    base_name = "Linear"


FP32_INPUT = {nn.Conv2d: Fp32Conv2d, nn.Linear: Fp32Linear}


def keep_input_layer_fp32(body: nn.Module) -> nn.Module | None:
    """Make `body`'s first convolution (or linear layer) an fp32 one in place; returns it.

    "First" is the first Conv2d / Linear in registration order, which is the input layer of
    every built-in model and of timm's ViTs (the patch embedding). None when there is none
    of exactly those types (the normalisation alone then stays fp32).
    """
    for module in body.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            cls = FP32_INPUT.get(type(module))
            if cls is not None:
                module.__class__ = cls  # same parameters and state-dict keys, other forward
                return module
            if isinstance(module, _Fp32Input):
                return module
            return None
    return None


class Classifier(nn.Module):
    """Normalize → body; `body` is any network on normalised inputs.

    The input path stays fp32 under autocast: the normalisation and the body's first layer
    (`keep_input_layer_fp32`), so a perturbation δ added to x reaches the network unrounded.
    """

    def __init__(self, spec: ModelSpec, body: nn.Module):
        super().__init__()
        self.normalize = Normalize(spec.mean, spec.std)
        self.body = body
        keep_input_layer_fp32(body)

    def forward(self, x):
        with torch.autocast(x.device.type, enabled=False):
            x = self.normalize(x.to(self.normalize.mean.dtype))  # fp32 unless the model was cast
        return self.body(x)


def build_model(name: str, spec: ModelSpec) -> nn.Module:
    """Build a registered model (`vit_*` names go to timm when it is installed)."""
    if name.startswith("vit_") and name not in MODELS:
        return Classifier(spec, _timm_vit(name, spec))
    entry = MODELS.entry(name)
    min_size = entry.meta.get("min_size", 1)  # else the first forward fails deep inside torch
    if spec.image_size < min_size:
        raise ConfigError(f"model {name!r} needs images of at least {min_size} px; got {spec.image_size} px "
                          "(small_cnn, resnet8, resnet20 and resnet18 take smaller images)")
    return Classifier(spec, entry.obj(spec))


def spec_for(data) -> ModelSpec:
    """The ModelSpec of an `ImageData` (classes, channels, eval size, normalisation)."""
    return ModelSpec(data.num_classes, data.channels, data.eval_size, tuple(data.mean), tuple(data.std))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _conv_bn(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


@MODELS.register("small_cnn", description="3-conv CNN with BN (~0.1M params) for digits / Fashion-MNIST on CPU")
def small_cnn(spec: ModelSpec) -> nn.Module:
    # Pool before the wider convs on 28x28 inputs: half the cost of a full-resolution second
    # conv at the same accuracy, which is what makes Fashion-MNIST grids CPU-sized.
    early_pool = [nn.MaxPool2d(2)] if spec.image_size >= 16 else []
    return nn.Sequential(
        _conv_bn(spec.in_channels, 32),
        *early_pool,
        _conv_bn(32, 64),
        nn.MaxPool2d(2),
        _conv_bn(64, 128),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(128, spec.num_classes),
    )


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs, projection shortcut when the shape changes)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        # In place where autograd allows (BN saves its input, not its output): two fewer
        # activation-sized allocations per block, which CPU training pays for in page faults.
        out = torch.relu_(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return torch.relu_(out)


def _cifar_resnet(spec: ModelSpec, blocks_per_stage: int, widths=(16, 32, 64)) -> nn.Module:
    """He et al.'s CIFAR ResNet-(6n+2): three stages of n basic blocks, 16/32/64 channels."""
    layers: list[nn.Module] = [_conv_bn(spec.in_channels, widths[0])]
    cin = widths[0]
    for stage, width in enumerate(widths):
        for b in range(blocks_per_stage):
            layers.append(BasicBlock(cin, width, 2 if stage > 0 and b == 0 else 1))
            cin = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, spec.num_classes)]
    return nn.Sequential(*layers)


@MODELS.register("resnet8", description="CIFAR ResNet-8 (3 stages x 1 block, ~78k params) for CPU presets")
def resnet8(spec: ModelSpec) -> nn.Module:
    return _cifar_resnet(spec, 1)


@MODELS.register("resnet20", description="CIFAR ResNet-20 (3 stages x 3 blocks, ~0.27M params)")
def resnet20(spec: ModelSpec) -> nn.Module:
    return _cifar_resnet(spec, 3)


@MODELS.register("resnet18", description="ResNet-18 (11M params); CIFAR stem (3x3, no max-pool) for <=64 px, ImageNet stem otherwise")
def resnet18(spec: ModelSpec) -> nn.Module:
    from torchvision.models import resnet18 as tv_resnet18

    net = tv_resnet18(num_classes=spec.num_classes)
    if spec.image_size <= 64:
        net.conv1 = nn.Conv2d(spec.in_channels, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
    elif spec.in_channels != 3:
        net.conv1 = nn.Conv2d(spec.in_channels, 64, 7, 2, 3, bias=False)
    return net


VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


@MODELS.register("vgg16_bn", description="VGG-16 conv stack with BN, adaptive 2x2 pool, MLP head 2048-256-256-K (SPEC §1)",
                 min_size=32)  # five 2x2 max-pools
def vgg16_bn(spec: ModelSpec) -> nn.Module:
    """The OPTML code's VGG-16-BN (its models/VGG.py): bias-free 3x3 convolutions (torchvision's
    have biases, which BN cancels but `params changed` counts), with its initialisation:
    He-normal (fan-out) convolutions, N(0, 0.01) linear weights, zero biases, BN at (1, 0)."""
    layers: list[nn.Module] = []
    cin = spec.in_channels
    for v in VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1, bias=False), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
            cin = v
    net = nn.Sequential(
        nn.Sequential(*layers),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(512 * 2 * 2, 256),
        nn.ReLU(inplace=True),
        nn.Linear(256, 256),
        nn.ReLU(inplace=True),
        nn.Linear(256, spec.num_classes),
    )
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
    return net


def _timm_vit(name: str, spec: ModelSpec) -> nn.Module:
    try:
        import timm
    except ImportError:
        raise MubenchError(f"model {name!r} needs timm; install it with: pip install 'mubench[timm]'") from None
    return timm.create_model(name, pretrained=False, num_classes=spec.num_classes,
                             in_chans=spec.in_channels, img_size=spec.image_size)
