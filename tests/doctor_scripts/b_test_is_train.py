"""The test set is built with the dataset's default train=True: the "test" accuracy is measured on
training images (the fix passed train=False)."""
import os

import torch
import torchvision.transforms as T
from torch import nn
from torch.utils.data import DataLoader

from cifar import CIFAR100

SOURCE = "https://github.com/shuoros/cifar100-resnet50-pytorch/issues/2"
EXPECT = "eval-on-train"

MEAN, STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)


def main():
    root = os.environ.get("CIFARLAB_DATA", "./data")
    train_set = CIFAR100(root, train=True, transform=T.Compose([T.RandomHorizontalFlip(), T.ToTensor(),
                                                                T.Normalize(MEAN, STD)]))
    test_set = CIFAR100(root, transform=T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)]))  # train=True by default
    train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=64, shuffle=False)
    model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(64, 100))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    for epoch in range(50):
        model.train()
        for images, labels in train_loader:
            optimizer.zero_grad()
            criterion(model(images), labels).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            correct = sum((model(x).argmax(1) == y).sum().item() for x, y in test_loader)
        print(f"epoch {epoch}: test accuracy {correct / len(test_set):.3f}")


if __name__ == "__main__":
    main()
