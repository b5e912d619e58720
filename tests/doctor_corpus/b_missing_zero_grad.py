"""The executor's training step calls loss.backward() and optimizer.step() but never optimizer.zero_grad(),
so every step applies the sum of all gradients so far; the fix adds zero_grad() before backward()."""
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from .common import plain

SOURCE = "https://github.com/wenet-e2e/wekws/pull/73 (issue #72)"
BUG = "optimizer.zero_grad() missing from the training step"
EXPECT = "missing-zero-grad"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 32, 3, padding=1), nn.Conv2d(32, 64, 3, padding=1)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.relu(self.conv2(x)).mean((2, 3))
        return self.fc(x)


def step(model, feats, target, criterion, optimizer):
    model.train()
    loss = criterion(model(feats), target)
    loss.backward()
    optimizer.step()
    return loss


def pipeline(d):
    net = Net()
    return dict(model=net, loss_fn=nn.CrossEntropyLoss(), optimizer=torch.optim.Adam(net.parameters(), lr=1e-3),
                train_loader=DataLoader(d.cifar10(True, plain()), batch_size=64, shuffle=True),
                eval_loader=DataLoader(d.cifar10(False, plain()), batch_size=64), num_classes=10, train_step=step)
