"""The PyTorch CIFAR-10 tutorial's loop structure for a net with batch-norm and dropout: net.train() once
before the epochs, all epochs of training, then net.eval() and one test pass. Correct: nothing switches the
model to eval mode mid-training (the pipeline form once reported a false train-mode error here)."""
import os

import torch
import torch.nn.functional as F
import torchvision.transforms as transforms
from torch import nn, optim

from cifar import CIFAR10

SOURCE = "https://pytorch.org/tutorials/beginner/blitz/cifar10_tutorial.html (loop structure)"
EXPECT = None


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32)
        self.conv2, self.bn2 = nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64)
        self.fc1, self.fc2 = nn.Linear(64 * 8 * 8, 128), nn.Linear(128, 10)
        self.drop = nn.Dropout(0.3)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        return self.fc2(self.drop(F.relu(self.fc1(torch.flatten(x, 1)))))


transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
root = os.environ.get("CIFARLAB_DATA", "./data")
trainloader = torch.utils.data.DataLoader(CIFAR10(root, train=True, transform=transform), batch_size=32, shuffle=True)
testloader = torch.utils.data.DataLoader(CIFAR10(root, train=False, transform=transform), batch_size=64)

net = Net()
criterion = nn.CrossEntropyLoss()
optimizer = optim.Adam(net.parameters(), lr=1e-3)
net.train()
for epoch in range(20):
    running_loss = 0.0
    for i, (inputs, labels) in enumerate(trainloader):
        optimizer.zero_grad()
        loss = criterion(net(inputs), labels)
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
    print(f"[{epoch + 1}] loss: {running_loss / len(trainloader):.3f}")

net.eval()
correct = total = 0
with torch.no_grad():
    for images, labels in testloader:
        correct += (net(images).argmax(1) == labels).sum().item()
        total += labels.size(0)
print(f"Accuracy of the network on the test images: {100 * correct // total} %")
torch.save(net.state_dict(), "./cifar_net.pth")
