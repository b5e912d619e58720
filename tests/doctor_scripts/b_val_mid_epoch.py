"""The trainer validates every `interval` iterations inside the epoch; validate() switches the model to eval
mode and model.train() is only called at the start of the next epoch, so the rest of the epoch trains with
dropout off and frozen batch-norm statistics (fixed by model.train() right after validate())."""
import argparse
import os

import torch
import torch.nn.functional as F
import torchvision.transforms as T
from torch import nn
from torch.utils.data import DataLoader

from cifar import CIFAR10

SOURCE = "https://github.com/wkentaro/pytorch-fcn/issues/57 (PR #56)"
EXPECT = "train-mode"
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


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


class Trainer:
    def __init__(self, model, optimizer, train_loader, val_loader, interval):
        self.model, self.optim = model, optimizer
        self.train_loader, self.val_loader, self.interval = train_loader, val_loader, interval
        self.iteration = 0

    def validate(self):
        self.model.eval()
        with torch.no_grad():
            losses = [F.cross_entropy(self.model(x), y).item() for x, y in self.val_loader]
        print(f"iter {self.iteration}: val loss {sum(losses) / len(losses):.3f}")

    def train_epoch(self):
        self.model.train()
        for batch_idx, (x, y) in enumerate(self.train_loader):
            if self.iteration % self.interval == 0 and self.iteration > 0:
                self.validate()
            self.optim.zero_grad()
            F.cross_entropy(self.model(x), y).backward()
            self.optim.step()
            self.iteration += 1


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--interval", type=int, default=2)  # the source: every 4000 iterations; here within an epoch
    a = p.parse_args()
    root = os.environ.get("CIFARLAB_DATA", "./data")
    tf = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])
    model = Net()
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9),
                      DataLoader(CIFAR10(root, True, tf), batch_size=32, shuffle=True),
                      DataLoader(CIFAR10(root, False, tf), batch_size=64), a.interval)
    for epoch in range(100):
        trainer.train_epoch()
