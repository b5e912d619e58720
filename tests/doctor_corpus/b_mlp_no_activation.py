"""An MLP made of stacked Linear layers with no non-linearity between them (batch-norm only): it is
mathematically a single linear layer."""
import torch
from torch import nn
from torch.utils.data import DataLoader

from .common import plain

SOURCE = "https://github.com/somepago/saint/issues/23"
BUG = "no activation between Linear layers: the MLP collapses to one linear map"
EXPECT = "linear-collapse"


class MLP(nn.Module):
    def __init__(self, dims=(3 * 32 * 32, 512, 256, 10)):
        super().__init__()
        layers = []
        for i, (a, b) in enumerate(zip(dims, dims[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(dims) - 2:
                layers.append(nn.BatchNorm1d(b))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x.flatten(1))


def pipeline(d):
    net = MLP()
    return dict(model=net, loss_fn=nn.CrossEntropyLoss(), optimizer=torch.optim.Adam(net.parameters(), lr=1e-3),
                train_loader=DataLoader(d.cifar10(True, plain()), batch_size=64, shuffle=True),
                eval_loader=DataLoader(d.cifar10(False, plain()), batch_size=64), num_classes=10)
