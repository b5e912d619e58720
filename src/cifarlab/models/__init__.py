"""Model registry: MODELS maps a name to a builder `(num_classes, width, dropout) -> nn.Module`.

Every builder honours `dropout` (probability; 0 = no Dropout layer at all, so default state_dict keys
never depend on it).

Every model takes normalized float images (B, 3, 32, 32) and returns logits (B, num_classes):
no softmax, no ReLU at the end (CrossEntropyLoss expects raw logits).
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from .convnet import ConvNet
from .fastnet import FastNet
from .mlp import MLP
from .resnet import ResNet9, ResNet18


def _cnn(blocks, residual=False):
    def build(num_classes: int, width: int = 1, dropout: float = 0.0) -> nn.Module:
        return ConvNet(num_classes, [c * width for c in blocks], residual=residual, dropout=dropout)
    return build


def _fastnet(num_classes: int, width: int = 1, dropout: float = 0.0, widths=(64, 256, 256),
             **options) -> nn.Module:
    return FastNet(num_classes, widths=tuple(w * width for w in widths), dropout=dropout, **options)


def _mlp(num_classes: int, width: int = 1, dropout: float = 0.0) -> nn.Module:
    return MLP(num_classes, hidden=(512 * width, 256 * width), dropout=dropout)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp": _mlp,                          # the seed's MLP: 3072-512-256-C
    "cnn": _cnn((32, 64)),                # the seed's CNN: 2 blocks, 2.2M params
    "cnn3": _cnn((32, 64, 128)),          # + a third conv block
    "rescnn3": _cnn((32, 64, 128), residual=True),  # the 3-block CNN with residual connections
    "resnet9": ResNet9,
    "resnet18": ResNet18,
    "fastnet": _fastnet,                  # the speed-record family, sized by model.widths / depth
}

# options (ModelConfig fields) a family reads beyond width and dropout; config rejects them elsewhere
MODEL_OPTIONS = {"fastnet": ("widths", "depth", "bn_momentum", "logit_scale", "whiten", "dirac",
                             "frozen_bn_scale", "stem_bias_epochs")}

DESCRIPTIONS = {
    "mlp": "flatten, 2 hidden layers (512, 256) Linear-BN-ReLU(-Dropout), Linear to classes",
    "cnn": "2 blocks (Conv-BN-ReLU)x2-MaxPool (32, 64 ch), Linear(4096,512)-BN-ReLU-Linear",
    "cnn3": "the seed CNN with a third block (128 ch), Linear(2048,512)-BN-ReLU-Linear",
    "rescnn3": "cnn3 with an identity/1x1 shortcut around each block's two convs",
    "resnet9": "the DAWNBench ResNet-9 (64-128-256-512, two residual stages), 6.6M params",
    "resnet18": "ResNet-18 for 32x32 inputs (3x3 stem at stride 1, no max-pool), 11M params",
    "fastnet": "frozen 2x2 whitening stem, 3 conv groups (conv-pool-BN-GELU + convs), max-pool, scaled "
               "linear head (airbench's family)",
}


def build_model(name: str, num_classes: int, width: int = 1, dropout: float = 0.0, **options) -> nn.Module:
    """options: the family's MODEL_OPTIONS (e.g. fastnet's widths, depth)."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; valid models: {', '.join(MODELS)}")
    unknown = set(options) - set(MODEL_OPTIONS.get(name, ()))
    if unknown:
        raise TypeError(f"model {name!r} takes no option(s) {', '.join(sorted(unknown))}")
    return MODELS[name](num_classes, width=width, dropout=dropout, **options)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
