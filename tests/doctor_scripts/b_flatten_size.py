"""fc1's in_features does not match the flattened feature map (the tutorial's 16*5*5 kept after changing
the convolutions): the script crashes on its first batch."""
import os

import torch
import torch.nn.functional as F
import torchvision.transforms as transforms
from torch import nn

from cifar import CIFAR10

SOURCE = "https://github.com/pytorch/examples/issues/210 (comment: flatten size vs fc1 in_features)"
EXPECT = "shape-mismatch"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 6, 3), nn.Conv2d(6, 16, 3)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1, self.fc2 = nn.Linear(16 * 5 * 5, 120), nn.Linear(120, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))


transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
root = os.environ.get("CIFARLAB_DATA", "./data")
trainloader = torch.utils.data.DataLoader(CIFAR10(root, True, transform), batch_size=4, shuffle=True)
testloader = torch.utils.data.DataLoader(CIFAR10(root, False, transform), batch_size=4)
net = Net()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9)
for epoch in range(2):
    for inputs, labels in trainloader:
        optimizer.zero_grad()
        loss = criterion(net(inputs), labels)
        loss.backward()
        optimizer.step()
