"""The net posted in the thread: the tutorial's classifier with a third convolution, whose forward() ends
`x = F.relu(self.fc2(x))` before nn.CrossEntropyLoss: every negative logit is clipped to 0, classes whose
score is dead get no gradient, and the loss stalls. Written as the tutorial-style script of the thread:
module-level loaders, Net, criterion and SGD, the `for epoch in range(2)` loop with running-loss prints,
then the test accuracy overall and per class."""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
import torchvision.transforms as transforms

from cifar import CIFAR10

SOURCE = "https://github.com/pytorch/examples/issues/210 (comment's Net: ReLU after the last Linear)"
EXPECT = "activation-before-loss"

transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
root = os.environ.get("CIFARLAB_DATA", "./data")
trainset = CIFAR10(root=root, train=True, download=True, transform=transform)
trainloader = torch.utils.data.DataLoader(trainset, batch_size=20, shuffle=True, num_workers=0)
testset = CIFAR10(root=root, train=False, download=True, transform=transform)
testloader = torch.utils.data.DataLoader(testset, batch_size=20, shuffle=False, num_workers=0)
classes = ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 16, 3, padding=1)
        self.conv3 = nn.Conv2d(16, 32, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(32 * 4 * 4, 120)
        self.fc2 = nn.Linear(120, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = self.pool(F.relu(self.conv3(x)))
        x = x.view(-1, 32 * 4 * 4)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return x


net = Net()
criterion = nn.CrossEntropyLoss()
optimizer = optim.SGD(net.parameters(), lr=0.01)

for epoch in range(10):
    running_loss = 0.0
    for i, data in enumerate(trainloader, 0):
        inputs, labels = data
        optimizer.zero_grad()
        outputs = net(inputs)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
        if i % 500 == 499:
            print("[%d, %5d] loss: %.3f" % (epoch + 1, i + 1, running_loss / 500))
            running_loss = 0.0
print("Finished Training")

correct = 0
total = 0
class_correct = list(0. for i in range(10))
class_total = list(0. for i in range(10))
with torch.no_grad():
    for images, labels in testloader:
        outputs = net(images)
        _, predicted = torch.max(outputs.data, 1)
        total += labels.size(0)
        correct += (predicted == labels).sum().item()
        for label, c in zip(labels, (predicted == labels)):
            class_correct[label] += c.item()
            class_total[label] += 1
print("Accuracy of the network on the 10000 test images: %d %%" % (100 * correct / total))
for i in range(10):
    print("Accuracy of %5s : %2d %%" % (classes[i], 100 * class_correct[i] / max(class_total[i], 1)))
