"""softmax applied at the end of forward() before nn.CrossEntropyLoss (which applies log-softmax itself):
"cross entropy loss is not decreasing"."""
import os

import torch
import torch.nn.functional as F
import torchvision.transforms as transforms
from torch import nn

from cifar import CIFAR10

SOURCE = "https://discuss.pytorch.org/t/cross-entropy-loss-is-not-decreasing/43814"
EXPECT = "activation-before-loss"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 6, 5), nn.Conv2d(6, 16, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1, self.fc2, self.fc3 = nn.Linear(16 * 5 * 5, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = F.relu(self.fc1(x.view(-1, 16 * 5 * 5)))
        return F.softmax(self.fc3(F.relu(self.fc2(x))), dim=1)


transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
root = os.environ.get("CIFARLAB_DATA", "./data")
trainloader = torch.utils.data.DataLoader(CIFAR10(root, True, transform), batch_size=4, shuffle=True)
testloader = torch.utils.data.DataLoader(CIFAR10(root, False, transform), batch_size=4)
net = Net()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9)
for epoch in range(2):
    for i, (inputs, labels) in enumerate(trainloader):
        optimizer.zero_grad()
        loss = criterion(net(inputs), labels)
        loss.backward()
        optimizer.step()
print("Finished Training")
