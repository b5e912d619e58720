'''Train CIFAR10 with PyTorch (kuangliu/pytorch-cifar main.py style, small VGG).
Bug: transform_test repeats the training augmentation (RandomCrop + RandomHorizontalFlip),
so test accuracy is measured on randomly augmented images and changes run to run.
'''
import argparse

import torch
import torch.nn as nn
import torch.optim as optim
import torchvision.transforms as transforms

from cifarlab.data import CIFAR10

SOURCE = "https://github.com/kuangliu/pytorch-cifar/pull/6"
EXPECT = "eval-augmented"

parser = argparse.ArgumentParser(description='PyTorch CIFAR10 Training')
parser.add_argument('--lr', default=0.05, type=float, help='learning rate')
parser.add_argument('--epochs', default=20, type=int)
args = parser.parse_args()

device = 'cuda' if torch.cuda.is_available() else 'cpu'
best_acc = 0

transform_train = transforms.Compose([
    transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
    transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))])
transform_test = transforms.Compose([
    transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
    transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))])
trainset = CIFAR10(root=None, train=True, transform=transform_train, n=2048)
trainloader = torch.utils.data.DataLoader(trainset, batch_size=128, shuffle=True, num_workers=0)
testset = CIFAR10(root=None, train=False, transform=transform_test, n=512)
testloader = torch.utils.data.DataLoader(testset, batch_size=100, shuffle=False, num_workers=0)


class VGG(nn.Module):
    def __init__(self, cfg=(32, 'M', 64, 'M', 128, 'M', 128, 'M', 128, 'M')):
        super(VGG, self).__init__()
        layers, in_channels = [], 3
        for x in cfg:
            if x == 'M':
                layers += [nn.MaxPool2d(kernel_size=2, stride=2)]
            else:
                layers += [nn.Conv2d(in_channels, x, kernel_size=3, padding=1),
                           nn.BatchNorm2d(x), nn.ReLU(inplace=True)]
                in_channels = x
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(128, 10)

    def forward(self, x):
        out = self.features(x)
        return self.classifier(out.view(out.size(0), -1))


net = VGG().to(device)
criterion = nn.CrossEntropyLoss()
optimizer = optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)


def train(epoch):
    net.train()
    train_loss = 0
    for batch_idx, (inputs, targets) in enumerate(trainloader):
        inputs, targets = inputs.to(device), targets.to(device)
        optimizer.zero_grad()
        loss = criterion(net(inputs), targets)
        loss.backward()
        optimizer.step()
        train_loss += loss.item()
    print('Epoch %d | Loss: %.3f' % (epoch, train_loss / (batch_idx + 1)))


def test(epoch):
    global best_acc
    net.eval()
    correct, total = 0, 0
    with torch.no_grad():
        for inputs, targets in testloader:
            inputs, targets = inputs.to(device), targets.to(device)
            correct += net(inputs).max(1)[1].eq(targets).sum().item()
            total += targets.size(0)
    acc = 100. * correct / total
    best_acc = max(best_acc, acc)
    print('Test Acc: %.3f%% (best %.3f%%)' % (acc, best_acc))


for epoch in range(args.epochs):
    train(epoch)
    test(epoch)
