"""A CNN whose forward() ends with softmax, trained with CrossEntropyLoss: the loss stays at ~2.30
("it always stays the same"); the thread's first fix is to stop passing softmax output to the loss."""
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from .common import plain

SOURCE = "https://discuss.pytorch.org/t/cross-entropy-loss-is-not-decreasing/43814"
BUG = "softmax applied in forward() before nn.CrossEntropyLoss"
EXPECT = "activation-before-loss"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 32, 3, padding=1)
        self.fc1, self.fc2 = nn.Linear(32 * 8 * 8, 128), nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.view(x.size(0), -1)))
        return F.softmax(self.fc2(x), dim=1)


def pipeline(d):
    net = Net()
    return dict(model=net, loss_fn=nn.CrossEntropyLoss(), optimizer=torch.optim.Adam(net.parameters(), lr=1e-3),
                train_loader=DataLoader(d.cifar10(True, plain()), batch_size=64, shuffle=True),
                eval_loader=DataLoader(d.cifar10(False, plain()), batch_size=64), num_classes=10)
