"""A correct CIFAR-10 training script with torchvision's ResNet-50, written the way most public ones are
(argparse, main(), a train and a test function per epoch, a checkpoint per epoch): the largest model
`cifarlab doctor run` is budgeted for.

    python examples/resnet50_train.py --epochs 200            # a real run (hours on a CPU)
    cifarlab doctor run examples/resnet50_train.py            # its audit (benchmarks/doctor_speed.py times it)
"""
import argparse
import os

import torch
import torchvision.transforms as T
from torch import nn
from torchvision.models import resnet50

from cifarlab.data import CIFAR10  # torchvision's CIFAR10 interface over cifarlab's verified copy

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def train(model, loader, loss_fn, optimizer):
    model.train()
    for images, labels in loader:
        optimizer.zero_grad()
        loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()


@torch.no_grad()
def test(model, loader):
    model.eval()
    correct = sum((model(images).argmax(1) == labels).sum().item() for images, labels in loader)
    return 100.0 * correct / len(loader.dataset)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=128)
    a = p.parse_args()
    train_tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
    test_tf = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])
    train_loader = torch.utils.data.DataLoader(CIFAR10(train=True, transform=train_tf), batch_size=a.batch_size,
                                               shuffle=True)
    test_loader = torch.utils.data.DataLoader(CIFAR10(train=False, transform=test_tf), batch_size=256)
    model = resnet50(num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=a.epochs)
    loss_fn = nn.CrossEntropyLoss()
    os.makedirs("checkpoint", exist_ok=True)
    for epoch in range(a.epochs):
        train(model, train_loader, loss_fn, optimizer)
        scheduler.step()
        print(f"epoch {epoch}: test accuracy {test(model, test_loader):.2f}%")
        torch.save({"epoch": epoch, "model": model.state_dict()}, "checkpoint/resnet50.pt")


if __name__ == "__main__":
    main()
