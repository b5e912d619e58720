"""The test loader reuses the training transform: random crop and flip applied to the test set (the fix gave
the test set ToTensor + Normalize only)."""
import os

import torch
import torchvision.transforms as transforms
from torch import nn

from cifar import CIFAR10

SOURCE = "https://github.com/kuangliu/pytorch-cifar/pull/6"
EXPECT = "eval-augmented"

transform = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                transforms.ToTensor(),
                                transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))])
root = os.environ.get("CIFARLAB_DATA", "./data")
trainloader = torch.utils.data.DataLoader(CIFAR10(root, True, transform), batch_size=128, shuffle=True)
testloader = torch.utils.data.DataLoader(CIFAR10(root, False, transform), batch_size=100, shuffle=False)
net = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                    nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                    nn.Flatten(), nn.Linear(64, 10))
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
for epoch in range(200):
    net.train()
    for inputs, targets in trainloader:
        optimizer.zero_grad()
        criterion(net(inputs), targets).backward()
        optimizer.step()
    net.eval()
    with torch.no_grad():
        correct = sum(net(x).argmax(1).eq(y).sum().item() for x, y in testloader)
    print(f"epoch {epoch}: test acc {correct / len(testloader.dataset):.3f}")
