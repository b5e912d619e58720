"""The validation pass runs the model without model.eval(): dropout stays on and batch-norm normalizes with
(and updates its running statistics from) validation batches."""
import os

import torch
import torchvision.transforms as T
from torch import nn
from torch.utils.data import DataLoader

from cifar import CIFAR10

SOURCE = "https://github.com/wolny/pytorch-3dunet/issues/53"
EXPECT = "eval-mode"

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def validate(model, loader, criterion):
    losses = []
    with torch.no_grad():
        for x, y in loader:
            losses.append(criterion(model(x), y).item())
    return sum(losses) / len(losses)


if __name__ == "__main__":
    root = os.environ.get("CIFARLAB_DATA", "./data")
    train_loader = DataLoader(CIFAR10(root, True, T.Compose([T.RandomCrop(32, 4), T.RandomHorizontalFlip(),
                                                              T.ToTensor(), T.Normalize(MEAN, STD)])),
                              batch_size=16, shuffle=True)
    val_loader = DataLoader(CIFAR10(root, False, T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])), batch_size=16)
    model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Dropout(0.5), nn.Linear(64 * 8 * 8, 10))
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    for epoch in range(100):
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            criterion(model(x), y).backward()
            optimizer.step()
        print(f"epoch {epoch} val loss {validate(model, val_loader, criterion):.3f}")
