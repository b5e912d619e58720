"""A keyword-spotting-style trainer whose training step lost its optimizer.zero_grad(): gradients of every
batch add up across steps (the fix added zero_grad() before backward)."""
import os

import torch
import torchvision.transforms as T
from torch import nn
from torch.utils.data import DataLoader

from cifar import CIFAR10

SOURCE = "https://github.com/wenet-e2e/wekws/pull/73 (issue #72)"
EXPECT = "missing-zero-grad"


def train_one_epoch(model, loader, criterion, optimizer):
    model.train()
    for x, y in loader:
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()


def evaluate(model, loader):
    model.eval()
    with torch.no_grad():
        return sum((model(x).argmax(1) == y).sum().item() for x, y in loader) / len(loader.dataset)


def main():
    tf = T.Compose([T.ToTensor(), T.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))])
    root = os.environ.get("CIFARLAB_DATA", "./data")
    train = DataLoader(CIFAR10(root, True, tf), batch_size=64, shuffle=True)
    test = DataLoader(CIFAR10(root, False, tf), batch_size=128)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(32, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(30):
        train_one_epoch(model, train, nn.CrossEntropyLoss(), optimizer)
        print(epoch, evaluate(model, test))


if __name__ == "__main__":
    main()
