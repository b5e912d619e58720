"""kuangliu/pytorch-cifar: a BasicBlock ResNet (here ResNet-10 at width 16 to stay fast on CPU; same block,
stem and head), crop+flip augmentation, SGD lr 0.1 momentum 0.9 weight decay 5e-4, batch 128,
net.train() at the start of every training epoch and net.eval() + no_grad in test()."""
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from .common import KUANGLIU_STD, C10_MEAN, crop_flip, plain

SOURCE = "https://github.com/kuangliu/pytorch-cifar (main.py, models/resnet.py)"
BUG = None
EXPECT = None


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, blocks=(1, 1, 1, 1), width=16, num_classes=10):
        super().__init__()
        self.cin = width
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layers = nn.Sequential(*[self._stage(width * 2 ** i, n, 1 if i == 0 else 2) for i, n in enumerate(blocks)])
        self.linear = nn.Linear(width * 8, num_classes)

    def _stage(self, planes, n, stride):
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(BasicBlock(self.cin, planes, s))
            self.cin = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        out = F.avg_pool2d(out, 4).view(out.size(0), -1)
        return self.linear(out)


def train_step(net, inputs, targets, criterion, optimizer):
    optimizer.zero_grad()
    loss = criterion(net(inputs), targets)
    loss.backward()
    optimizer.step()
    return loss


def test(net, loader, criterion):
    net.eval()
    test_loss = correct = total = 0
    with torch.no_grad():
        for inputs, targets in loader:
            outputs = net(inputs)
            test_loss += criterion(outputs, targets).item()
            correct += outputs.max(1)[1].eq(targets).sum().item()
            total += targets.size(0)
    return test_loss / max(len(loader), 1), correct / total


def fit(net, criterion, optimizer, trainloader, testloader, epochs):
    for _ in range(epochs):
        net.train()
        for inputs, targets in trainloader:
            train_step(net, inputs, targets, criterion, optimizer)
        test(net, testloader, criterion)


def step(net, inputs, targets, criterion, optimizer):  # one step as train() runs it (after net.train())
    net.train()
    return train_step(net, inputs, targets, criterion, optimizer)


def pipeline(d):
    net = ResNet()
    return dict(model=net, loss_fn=nn.CrossEntropyLoss(),
                optimizer=torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4),
                train_loader=DataLoader(d.cifar10(True, crop_flip(C10_MEAN, KUANGLIU_STD)), batch_size=128, shuffle=True),
                eval_loader=DataLoader(d.cifar10(False, plain(C10_MEAN, KUANGLIU_STD)), batch_size=100, shuffle=False),
                num_classes=10, train_step=step, evaluate=test, fit=fit)
