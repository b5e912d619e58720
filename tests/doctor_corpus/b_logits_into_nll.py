"""F.nll_loss applied to the raw output of the classifier head (no log_softmax): the 'label loss' goes
negative and the model is pushed to inflate one logit."""
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from .common import plain

SOURCE = "https://github.com/yanx27/Pointnet_Pointnet2_pytorch/issues/30"
BUG = "nll_loss on raw logits"
EXPECT = "loss-output-mismatch"


def nll(output, target):
    return F.nll_loss(output, target)


def pipeline(d):
    net = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(64, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.4),
                        nn.Linear(256, 10))
    return dict(model=net, loss_fn=nll, optimizer=torch.optim.Adam(net.parameters(), lr=1e-3),
                train_loader=DataLoader(d.cifar10(True, plain()), batch_size=32, shuffle=True),
                eval_loader=DataLoader(d.cifar10(False, plain()), batch_size=64), num_classes=10)
