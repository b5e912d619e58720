from __future__ import annotations

import torch
from torch import nn


def conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class ResBlock(nn.Module):
    """Conv-BN-ReLU-Conv-BN plus a shortcut (identity, or 1x1 conv-BN when channels change), ReLU."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.body = nn.Sequential(*conv_bn(c_in, c_out), nn.Conv2d(c_out, c_out, 3, padding=1),
                                  nn.BatchNorm2d(c_out))
        self.shortcut = nn.Identity() if c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.body(x) + self.shortcut(x))


class ConvNet(nn.Module):
    """A plain CNN family: per block (Conv-BN-ReLU)x2 then MaxPool(2); a 2-layer head.

    With channels (32, 64) this is the reference course project's CNN (2,215,940 parameters for 100 classes).
    """

    def __init__(self, num_classes: int, channels=(32, 64), residual: bool = False,
                 hidden: int = 512, dropout: float = 0.0, image_size: int = 32):
        super().__init__()
        blocks: list[nn.Module] = []
        prev = 3
        for c in channels:
            block = ResBlock(prev, c) if residual else nn.Sequential(*conv_bn(prev, c), *conv_bn(c, c))
            blocks += [block, nn.MaxPool2d(2)]
            prev = c
        self.features = nn.Sequential(*blocks)
        side = image_size // 2 ** len(channels)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(prev * side * side, hidden), nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True), *([nn.Dropout(dropout)] if dropout else []),
            nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, 32, 32) -> (B, C)
        return self.head(self.features(x))
