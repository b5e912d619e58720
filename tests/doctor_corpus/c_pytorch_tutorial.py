"""The official PyTorch CIFAR-10 tutorial ("Training a Classifier"): LeNet-style net, batch 4, SGD lr 0.001
with momentum 0.9, no train()/eval() calls (no dropout or batch-norm), test pass only after training."""
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from .common import HALF, plain

SOURCE = "https://pytorch.org/tutorials/beginner/blitz/cifar10_tutorial.html"
BUG = None
EXPECT = None


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 6, 5), nn.Conv2d(6, 16, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1, self.fc2, self.fc3 = nn.Linear(16 * 5 * 5, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def step(net, inputs, labels, criterion, optimizer):
    optimizer.zero_grad()
    loss = criterion(net(inputs), labels)
    loss.backward()
    optimizer.step()
    return loss


def test(net, loader, criterion):
    correct = total = 0
    with torch.no_grad():
        for images, labels in loader:
            _, predicted = torch.max(net(images), 1)
            total += labels.size(0)
            correct += (predicted == labels).sum().item()
    return 0.0, correct / total


def fit(net, criterion, optimizer, trainloader, testloader, epochs):
    for _ in range(epochs):
        for inputs, labels in trainloader:
            step(net, inputs, labels, criterion, optimizer)
    return test(net, testloader, criterion)


def pipeline(d):
    net = Net()
    return dict(model=net, loss_fn=nn.CrossEntropyLoss(),
                optimizer=torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9),
                train_loader=DataLoader(d.cifar10(True, plain(HALF, HALF)), batch_size=4, shuffle=True),
                eval_loader=DataLoader(d.cifar10(False, plain(HALF, HALF)), batch_size=4, shuffle=False),
                num_classes=10, train_step=step, evaluate=test, fit=fit)
