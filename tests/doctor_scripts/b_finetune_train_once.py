"""Fine-tuning with per-epoch validation where model.train() is called once, before the epoch loop: after the
first validation (model.eval()) every later epoch trains with dropout off and batch-norm statistics frozen.
Modelled on the thread's script: a pretrained-style CNN, a new head, SGD, validate() after every epoch."""
import argparse
import os

import torch
from cifar import CIFAR10
import torchvision.transforms as T
from torch import nn

SOURCE = "https://discuss.pytorch.org/t/model-train-and-model-eval-vs-model-and-model-eval/5744"
EXPECT = "train-mode"

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def make_model(num_classes):
    backbone = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return nn.Sequential(backbone, nn.Dropout(0.5), nn.Linear(64, num_classes))


def validate(model, loader, criterion):
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x).argmax(1) == y).sum().item()
            total += len(y)
    return correct / max(total, 1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--data", default=os.environ.get("CIFARLAB_DATA", "./data"))
    a = p.parse_args()
    tf = T.Compose([T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
    train = CIFAR10(a.data, train=True, transform=tf, download=False)
    val = CIFAR10(a.data, train=False, transform=T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)]))
    train_loader = torch.utils.data.DataLoader(train, batch_size=64, shuffle=True)
    val_loader = torch.utils.data.DataLoader(val, batch_size=256)
    model = make_model(10)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9)
    model.train()
    for epoch in range(a.epochs):
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch}: val acc {validate(model, val_loader, criterion):.3f}")
    torch.save(model.state_dict(), "finetuned.pt")


if __name__ == "__main__":
    main()
