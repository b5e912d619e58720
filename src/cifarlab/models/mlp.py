from __future__ import annotations

from torch import nn


class MLP(nn.Module):
    """Flatten -> [Linear-BN-ReLU-Dropout] per hidden width -> Linear to logits (the seed used 0.3)."""

    def __init__(self, num_classes: int, hidden=(512, 256), dropout: float = 0.0, in_features=3 * 32 * 32):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        prev = in_features
        for h in hidden:
            layers += [nn.Linear(prev, h), nn.BatchNorm1d(h), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            prev = h
        layers.append(nn.Linear(prev, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):  # (B, 3, 32, 32) -> (B, C)
        return self.net(x)
