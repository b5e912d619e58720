"""The net posted in the same thread ends with x = F.relu(self.fc2(x)) before CrossEntropyLoss: logits are
clipped at zero, so every negative score is lost and dead outputs stop learning."""
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from .common import plain

SOURCE = "https://github.com/pytorch/examples/issues/210 (comment's Net: ReLU after the last Linear)"
BUG = "ReLU applied to the logits before CrossEntropyLoss"
EXPECT = "activation-before-loss"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2, self.conv3 = nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 16, 3, padding=1), \
            nn.Conv2d(16, 32, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1, self.fc2 = nn.Linear(32 * 4 * 4, 120), nn.Linear(120, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = self.pool(F.relu(self.conv3(x)))
        x = x.view(-1, 32 * 4 * 4)
        x = F.relu(self.fc1(x))
        return F.relu(self.fc2(x))


def pipeline(d):
    net = Net()
    return dict(model=net, loss_fn=nn.CrossEntropyLoss(), optimizer=torch.optim.SGD(net.parameters(), lr=0.01),
                train_loader=DataLoader(d.cifar10(True, plain()), batch_size=20, shuffle=True),
                eval_loader=DataLoader(d.cifar10(False, plain()), batch_size=20), num_classes=10)
