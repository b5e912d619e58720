"""A sanity training run on a 1000-image CIFAR-10 subset with batch size 3: 1000 = 333 * 3 + 1, so the last
batch of every epoch holds a single image, and the classifier's BatchNorm1d in train mode raises "Expected more
than 1 value per channel when training" at the end of the first epoch (the fix: drop_last=True in the training
DataLoader). A small CNN with a batch-normalised fully connected head stands in for the thread's models."""
import os

import torch
import torchvision.transforms as T
from torch import nn
from torch.utils.data import DataLoader

from cifar import CIFAR10

SOURCE = "https://github.com/openvinotoolkit/nncf/pull/379"
EXPECT = "bn-batch-of-one"

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def make_model():
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(32, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 10))


def main():
    root = os.environ.get("CIFARLAB_DATA", "./data")
    tf = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])
    train_set = CIFAR10(root, train=True, transform=tf, n=1000)  # the sanity subset
    train_loader = DataLoader(train_set, batch_size=3, shuffle=True)
    val_loader = DataLoader(CIFAR10(root, train=False, transform=tf), batch_size=100)
    model = make_model()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for epoch in range(2):
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            criterion(model(x), y).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            top1 = sum((model(x).argmax(1) == y).sum().item() for x, y in val_loader) / len(val_loader.dataset)
        print(f"epoch {epoch}: top-1 {top1:.3f}")


if __name__ == "__main__":
    main()
