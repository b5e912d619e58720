"""ResNet (option-A shortcuts, 1 block per stage) on CIFAR-10, akamaster/pytorch_resnet_cifar10 trainer.py style.
Correct script: CIFAR-10's own mean/std, no test-time augmentation, model.train()/model.eval(),
zero_grad each step, CrossEntropyLoss on logits, validation under torch.no_grad().
"""
import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.transforms as transforms

from cifarlab.data import CIFAR10

SOURCE = "https://github.com/akamaster/pytorch_resnet_cifar10/blob/master/trainer.py"

parser = argparse.ArgumentParser(description='Proper ResNets for CIFAR10 in pytorch')
parser.add_argument('--epochs', default=12, type=int, metavar='N', help='number of total epochs to run')
parser.add_argument('-b', '--batch-size', default=128, type=int, metavar='N', help='mini-batch size')
parser.add_argument('--lr', '--learning-rate', default=0.1, type=float, metavar='LR', help='initial learning rate')


class BasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False), nn.BatchNorm2d(planes)
        self.pad = planes - in_planes if (stride != 1 or in_planes != planes) else 0

    def shortcut(self, x):  # option A: subsample and zero-pad channels
        if self.pad == 0:
            return x
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad // 2, self.pad // 2), "constant", 0)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16)
        self.layers = nn.Sequential(BasicBlock(16, 16), BasicBlock(16, 32, 2), BasicBlock(32, 64, 2))
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x):
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


def train(train_loader, model, criterion, optimizer, epoch):
    model.train()
    total_loss, n = 0.0, 0
    for i, (input, target) in enumerate(train_loader):
        loss = criterion(model(input), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total_loss, n = total_loss + loss.item() * input.size(0), n + input.size(0)
    print('Epoch: [{0}]\tLoss {1:.4f}'.format(epoch, total_loss / n))


def validate(val_loader, model, criterion):
    model.eval()
    correct, n = 0, 0
    with torch.no_grad():
        for input, target in val_loader:
            correct += (model(input).argmax(1) == target).sum().item()
            n += target.size(0)
    print(' * Prec@1 {:.3f}'.format(100.0 * correct / n))
    return 100.0 * correct / n


def main():
    args = parser.parse_args()
    model = ResNet()
    normalize = transforms.Normalize(mean=[0.4914, 0.4822, 0.4465], std=[0.2470, 0.2435, 0.2616])
    train_loader = torch.utils.data.DataLoader(CIFAR10(root=None, train=True, n=2048, transform=transforms.Compose([
        transforms.RandomHorizontalFlip(), transforms.RandomCrop(32, 4), transforms.ToTensor(), normalize])),
        batch_size=args.batch_size, shuffle=True, num_workers=0)
    val_loader = torch.utils.data.DataLoader(CIFAR10(root=None, train=False, n=512, transform=transforms.Compose([
        transforms.ToTensor(), normalize])), batch_size=128, shuffle=False, num_workers=0)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), args.lr, momentum=0.9, weight_decay=1e-4)
    lr_scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[6, 9], last_epoch=-1)
    best_prec1 = 0
    for epoch in range(args.epochs):
        train(train_loader, model, criterion, optimizer, epoch)
        lr_scheduler.step()
        best_prec1 = max(validate(val_loader, model, criterion), best_prec1)
    print('best Prec@1 {:.3f}'.format(best_prec1))


if __name__ == '__main__':
    main()
