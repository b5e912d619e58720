"""Network-in-Network (its final block: 1x1 conv to 10 maps, ReLU, global average pooling) trained with SGD at
lr 0.1: the loss sits at exactly 2.302585 (= ln 10) and test accuracy at 10.00% in every epoch — the ReLU in
front of the logits is dead for every image, so nothing learns."""
import torch
from torch import nn
from torch.utils.data import DataLoader

from .common import plain, train_step as step

SOURCE = "https://github.com/jiecaoyu/pytorch-nin-cifar10/issues/1"
BUG = "a ReLU on the logits: once it is dead for every image the loss is stuck at exactly ln 10"
EXPECT = "activation-before-loss"


class NIN(nn.Module):
    def __init__(self):
        super().__init__()
        w = 48  # the source's NIN has 192/160/96 channels; half of its CIFAR width here to stay fast on CPU
        self.net = nn.Sequential(
            nn.Conv2d(3, w, 5, padding=2), nn.ReLU(inplace=True), nn.Conv2d(w, 40, 1), nn.ReLU(inplace=True),
            nn.Conv2d(40, 24, 1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1), nn.Dropout(0.5),
            nn.Conv2d(24, w, 5, padding=2), nn.ReLU(inplace=True), nn.Conv2d(w, w, 1), nn.ReLU(inplace=True),
            nn.Conv2d(w, w, 1), nn.ReLU(inplace=True), nn.AvgPool2d(3, 2, 1), nn.Dropout(0.5),
            nn.Conv2d(w, w, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(w, w, 1), nn.ReLU(inplace=True),
            nn.Conv2d(w, 10, 1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x):
        return self.net(x)




def pipeline(d):
    net = NIN()
    return dict(model=net, loss_fn=nn.CrossEntropyLoss(),
                optimizer=torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4),
                train_loader=DataLoader(d.cifar10(True, plain()), batch_size=128, shuffle=True),
                eval_loader=DataLoader(d.cifar10(False, plain()), batch_size=128), num_classes=10, train_step=step)
