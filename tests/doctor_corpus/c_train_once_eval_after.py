"""The PyTorch CIFAR-10 tutorial's structure (all epochs of training, then one test pass) for a net with
batch-norm and dropout: model.train() called once before the epoch loop, model.eval() once before the
final test, no evaluation in between — correct, since nothing switches the model to eval mode mid-training."""
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from .common import crop_flip, plain, step_no_mode as step, evaluate as test

SOURCE = "https://pytorch.org/tutorials/beginner/blitz/cifar10_tutorial.html (loop structure)"
BUG = None
EXPECT = None


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32)
        self.conv2, self.bn2 = nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64)
        self.fc1, self.fc2 = nn.Linear(64 * 8 * 8, 128), nn.Linear(128, 10)
        self.drop = nn.Dropout(0.3)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        return self.fc2(self.drop(F.relu(self.fc1(x.flatten(1)))))






def fit(net, criterion, optimizer, trainloader, testloader, epochs):
    net.train()
    for _ in range(epochs):
        for inputs, labels in trainloader:
            step(net, inputs, labels, criterion, optimizer)
    return test(net, testloader, criterion)


def pipeline(d):
    net = Net()
    return dict(model=net, loss_fn=nn.CrossEntropyLoss(), optimizer=torch.optim.Adam(net.parameters(), lr=1e-3),
                train_loader=DataLoader(d.cifar10(True, crop_flip()), batch_size=32, shuffle=True),
                eval_loader=DataLoader(d.cifar10(False, plain()), batch_size=64),
                num_classes=10, train_step=step, evaluate=test, fit=fit)
