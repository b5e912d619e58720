"""The tutorial net after removing the second pooling layer, keeping the hard-coded x.view(-1, 16 * 5 * 5):
each image's 16x10x10 map becomes four rows, so the output has 4x the batch size and the loss raises
"Expected input batch_size (16) to match target batch_size (4)"."""
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from .common import HALF, plain

SOURCE = "https://github.com/qijiezhao/pseudo-3d-pytorch/issues/28"
BUG = "x.view(-1, N) with a hard-coded N merges several images into one row (batch size changes)"
EXPECT = "shape-mismatch"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 6, 5), nn.Conv2d(6, 16, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1, self.fc2, self.fc3 = nn.Linear(16 * 5 * 5, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = F.relu(self.conv2(x))  # second pooling removed: the map is 16x10x10
        x = x.view(-1, 16 * 5 * 5)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def pipeline(d):
    net = Net()
    return dict(model=net, loss_fn=nn.CrossEntropyLoss(),
                optimizer=torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9),
                train_loader=DataLoader(d.cifar10(True, plain(HALF, HALF)), batch_size=4, shuffle=True),
                eval_loader=DataLoader(d.cifar10(False, plain(HALF, HALF)), batch_size=4), num_classes=10)
