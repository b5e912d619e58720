"""Fully connected net (3072-1024-10) trained on CIFAR-10, notebook style.
Bug: the model's forward ends in F.softmax, and those probabilities are fed to
nn.CrossEntropyLoss, which applies log-softmax again (activation before the loss).
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
import torchvision.transforms as transforms

from cifarlab.data import CIFAR10

SOURCE = "https://github.com/GiorgiaD/PEPITA/issues/1"
EXPECT = "activation-before-loss"


class NetFC1x1024(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(32 * 32 * 3, 1024, bias=False)
        self.fc2 = nn.Linear(1024, 10, bias=False)
        # He uniform initialisation, as in the notebook
        lim1 = np.sqrt(6.0 / (32 * 32 * 3))
        nn.init.uniform_(self.fc1.weight, a=-lim1, b=lim1)
        lim2 = np.sqrt(6.0 / 1024)
        nn.init.uniform_(self.fc2.weight, a=-lim2, b=lim2)

    def forward(self, x):
        x = x.view(x.size(0), -1)
        x = F.relu(self.fc1(x))
        x = F.softmax(self.fc2(x), dim=1)
        return x


# hyperparameters
eta = 0.01
gamma = 0.9  # momentum
batch_size = 64
epochs = 20

transform = transforms.Compose([
    transforms.ToTensor(),
    transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))])
trainset = CIFAR10(root=None, train=True, transform=transform, n=2048)
trainloader = torch.utils.data.DataLoader(trainset, batch_size=batch_size,
                                          shuffle=True, num_workers=0)
testset = CIFAR10(root=None, train=False, transform=transform, n=512)
testloader = torch.utils.data.DataLoader(testset, batch_size=batch_size,
                                         shuffle=False, num_workers=0)

net = NetFC1x1024()
criterion = nn.CrossEntropyLoss()
optimizer = optim.SGD(net.parameters(), lr=eta, momentum=gamma)

for epoch in range(epochs):
    net.train()
    running_loss = 0.0
    for i, (inputs, labels) in enumerate(trainloader):
        optimizer.zero_grad()
        outputs = net(inputs)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
    print('[%d] loss: %.3f' % (epoch + 1, running_loss / len(trainloader)))

    print('Testing...')
    net.eval()
    correct, total = 0, 0
    with torch.no_grad():
        for images, labels in testloader:
            outputs = net(images)
            _, predicted = torch.max(outputs, 1)
            total += labels.size(0)
            correct += (predicted == labels).sum().item()
    print('Test accuracy epoch {}: {} %'.format(epoch, 100 * correct / total))

print('Finished Training')
