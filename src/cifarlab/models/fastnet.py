"""FastNet: the network family of the CIFAR speed records, sized by config for a CPU or a GPU.

stem: a 2x2 conv whose filters are the PCA-whitening basis of 2x2 image patches (and their negatives),
computed once from training images and then frozen; three conv groups, each conv -> max-pool 2 -> BN ->
GELU followed by (depth - 1) conv -> BN -> GELU at the pooled resolution; global max-pool; a linear
head without bias whose logits are multiplied by a constant (logit scaling).
BatchNorm keeps its scale frozen at 1 (only the shift trains); convs start as identities (Dirac).
Facts from the public airbench scripts (KellerJordan/cifar10-airbench); the code here is our own.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STEM_PATCH = 2  # side of the whitening patches, pixels
STEM_EPS = 5e-4  # added to the patch-covariance eigenvalues before 1/sqrt (keeps noise directions bounded)


class FrozenScaleBN(nn.BatchNorm2d):
    """BatchNorm whose scale stays 1 when `frozen_scale` (the shift alone is trained)."""

    def __init__(self, channels: int, momentum: float, frozen_scale: bool = True):
        super().__init__(channels, momentum=momentum, eps=1e-12)
        self.weight.requires_grad_(not frozen_scale)


class ConvGroup(nn.Module):
    def __init__(self, c_in: int, c_out: int, depth: int, bn_momentum: float, frozen_scale: bool):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=False)
                                   for i in range(depth))
        self.norms = nn.ModuleList(FrozenScaleBN(c_out, bn_momentum, frozen_scale) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            x = conv(x)
            if i == 0:
                x = F.max_pool2d(x, 2)  # pool before BN: 4x less BN/GELU work, same function class
            x = F.gelu(norm(x))
        return x


class FastNet(nn.Module):
    def __init__(self, num_classes: int, widths=(64, 256, 256), depth: int = 2, bn_momentum: float = 0.4,
                 logit_scale: float = 1 / 9, frozen_bn_scale: bool = True, dirac: bool = True,
                 whiten: bool = True, stem_bias_epochs: int = 3, dropout: float = 0.0):
        super().__init__()
        stem_out = 2 * 3 * STEM_PATCH ** 2  # each whitening direction with both signs (GELU is one-sided)
        self.stem = nn.Conv2d(3, stem_out, STEM_PATCH, padding=0, bias=True)
        self.whiten, self.stem_bias_epochs = whiten, stem_bias_epochs
        chans = (stem_out, *widths)
        self.groups = nn.Sequential(*(ConvGroup(chans[i], chans[i + 1], depth, bn_momentum, frozen_bn_scale)
                                      for i in range(len(widths))))
        self.dropout = nn.Dropout(dropout) if dropout else None
        self.head = nn.Linear(widths[-1], num_classes, bias=False)
        self.logit_scale = logit_scale
        if dirac:
            for group in self.groups:
                for conv in group.convs:
                    nn.init.dirac_(conv.weight.data[:conv.in_channels])  # first c_in filters pass input on
        if whiten:
            self.stem.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) normalized -> (B, C)
        x = F.gelu(self.stem(x))
        x = self.groups(x)
        x = F.adaptive_max_pool2d(x, 1).flatten(1)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.head(x) * self.logit_scale

    def filter_banks(self) -> list[nn.Parameter]:
        """The conv weights that BatchNorm follows (scale-free: what optim.muon_lr trains with Muon)."""
        return [conv.weight for group in self.groups for conv in group.convs]

    @torch.no_grad()
    def data_init(self, x_norm: torch.Tensor) -> None:
        """Set the stem to the whitening basis of `x_norm`'s 2x2 patches (normalized images, (N,3,H,W))."""
        if not self.whiten:
            return
        self.stem.weight.copy_(whitening_filters(x_norm.float(), STEM_PATCH, STEM_EPS,
                                                 self.stem.out_channels // 2).to(self.stem.weight))

    def epoch_start(self, epoch: int) -> None:
        """Called before each epoch (0-based): the stem bias trains for the first `stem_bias_epochs`."""
        if self.whiten:
            self.stem.bias.requires_grad_(epoch < self.stem_bias_epochs)


def whitening_filters(x: torch.Tensor, patch: int, eps: float, n: int) -> torch.Tensor:
    """(2n, C, patch, patch) filters: the top-n eigenvectors of the patch covariance scaled by
    1/sqrt(eigenvalue + eps), then their negatives. Output channels are decorrelated with unit variance."""
    c = x.shape[1]
    patches = x.unfold(2, patch, 1).unfold(3, patch, 1)  # (N, C, H', W', p, p)
    flat = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * patch * patch).double()
    cov = flat.T @ flat / len(flat)
    eigvals, eigvecs = torch.linalg.eigh(cov)  # ascending
    order = eigvals.argsort(descending=True)[:n]
    filters = eigvecs[:, order].T / torch.sqrt(eigvals[order] + eps)[:, None]
    filters = filters.reshape(n, c, patch, patch).float()
    return torch.cat([filters, -filters])
