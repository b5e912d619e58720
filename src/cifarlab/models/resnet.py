from __future__ import annotations

import torch
from torch import nn

from .convnet import conv_bn


def _dropout(p: float) -> list[nn.Module]:
    """Dropout before the classifier, or nothing (so the default state_dict keys stay as they were)."""
    return [nn.Dropout(p)] if p else []


class _Residual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(*conv_bn(c, c), *conv_bn(c, c))

    def forward(self, x):
        return x + self.body(x)


class ResNet9(nn.Module):
    """ResNet-9 as in the DAWNBench CIFAR-10 entries: prep, 3 stages (2 with a residual pair), pool."""

    def __init__(self, num_classes: int, width: int = 1, dropout: float = 0.0):
        super().__init__()
        c = [64 * width, 128 * width, 256 * width, 512 * width]
        self.net = nn.Sequential(
            *conv_bn(3, c[0]),
            *conv_bn(c[0], c[1]), nn.MaxPool2d(2), _Residual(c[1]),
            *conv_bn(c[1], c[2]), nn.MaxPool2d(2),
            *conv_bn(c[2], c[3]), nn.MaxPool2d(2), _Residual(c[3]),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(), *_dropout(dropout), nn.Linear(c[3], num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the 0.125 output scale of the original design keeps early logits small under high SGD lr
        return self.net(x) * 0.125


class _Basic(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.body(x) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 adapted to 32x32 inputs: 3x3 stem at stride 1, no max-pool, 4 stages of 2 blocks."""

    def __init__(self, num_classes: int, width: int = 1, dropout: float = 0.0):
        super().__init__()
        widths = [64 * width, 128 * width, 256 * width, 512 * width]
        layers: list[nn.Module] = [nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                   nn.ReLU(inplace=True)]
        prev = widths[0]
        for i, w in enumerate(widths):
            layers += [_Basic(prev, w, 1 if i == 0 else 2), _Basic(w, w, 1)]
            prev = w
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), *_dropout(dropout), nn.Linear(prev, num_classes)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
