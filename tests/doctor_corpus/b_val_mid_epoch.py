"""The trainer validates every few iterations inside the epoch; validate() switches the model to eval mode
and the loop only calls model.train() at the start of the next epoch, so the rest of the epoch trains with
dropout off and frozen batch-norm statistics. Fixed by calling model.train() right after validate()."""
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from .common import crop_flip, plain, step_no_mode as step, evaluate as validate

SOURCE = "https://github.com/wkentaro/pytorch-fcn/issues/57 (PR #56)"
BUG = "no model.train() after a mid-epoch validation"
EXPECT = "train-mode"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32)
        self.conv2, self.bn2 = nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64)
        self.drop = nn.Dropout2d(0.2)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = self.drop(F.relu(self.bn2(self.conv2(x))))
        return self.fc(x.mean((2, 3)))






def fit(model, criterion, optimizer, train_loader, val_loader, epochs, interval=1):  # the source validates every
    # `interval` iterations (thousands); 1 here so that the doctor's few-batch run reaches a validation
    for _ in range(epochs):
        model.train()
        for iteration, (x, y) in enumerate(train_loader):
            if iteration % interval == 0 and iteration > 0:
                validate(model, val_loader, criterion)
            step(model, x, y, criterion, optimizer)


def pipeline(d):
    net = Net()
    return dict(model=net, loss_fn=nn.CrossEntropyLoss(),
                optimizer=torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9),
                train_loader=DataLoader(d.cifar10(True, crop_flip()), batch_size=32, shuffle=True),
                eval_loader=DataLoader(d.cifar10(False, plain()), batch_size=64), num_classes=10,
                train_step=step, evaluate=validate, fit=fit)
