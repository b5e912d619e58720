""" train network using pytorch (pytorch-cifar100 train.py style: warmup + MultiStepLR, small ResNet)
Correct script: CIFAR-100 mean/std, augmentation only on the training set, net.train()/net.eval(),
zero_grad each step, CrossEntropyLoss on logits, evaluation under @torch.no_grad().
"""
import argparse

import torch
import torch.nn as nn
import torch.optim as optim
import torchvision.transforms as transforms
from torch.optim.lr_scheduler import _LRScheduler
from torch.utils.data import DataLoader

from cifarlab.data import CIFAR100

SOURCE = "https://github.com/weiaicunzai/pytorch-cifar100/blob/master/train.py"

CIFAR100_TRAIN_MEAN = (0.5070751592371323, 0.48654887331495095, 0.4409178433670343)
CIFAR100_TRAIN_STD = (0.2673342858792401, 0.2564384629170883, 0.27615047132568393)
MILESTONES, EPOCH = [6, 10, 13], 15


class WarmUpLR(_LRScheduler):  # warmup_training learning rate scheduler
    def __init__(self, optimizer, total_iters, last_epoch=-1):
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base_lr * self.last_epoch / (self.total_iters + 1e-8) for base_lr in self.base_lrs]


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.residual_function = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)) \
            if (stride != 1 or cin != cout) else nn.Sequential()

    def forward(self, x):
        return nn.functional.relu(self.residual_function(x) + self.shortcut(x))


def train(epoch):
    net.train()
    for batch_index, (images, labels) in enumerate(cifar100_training_loader):
        optimizer.zero_grad()
        loss = loss_function(net(images), labels)
        loss.backward()
        optimizer.step()
        if epoch <= args.warm:
            warmup_scheduler.step()
    print(f'Training Epoch: {epoch}\tLoss: {loss.item():0.4f}\tLR: {optimizer.param_groups[0]["lr"]:0.6f}')


@torch.no_grad()
def eval_training(epoch=0):
    net.eval()
    correct = 0  # count of right top-1 predictions
    for images, labels in cifar100_test_loader:
        correct += net(images).max(1)[1].eq(labels).sum().item()
    acc = correct / len(cifar100_test_loader.dataset)
    print(f'Test set: Epoch: {epoch}, Accuracy: {acc:.4f}')
    return acc


if __name__ == '__main__':
    parser = argparse.ArgumentParser()
    parser.add_argument('-b', type=int, default=64, help='batch size for dataloader')
    parser.add_argument('-warm', type=int, default=1, help='warm up training phase')
    parser.add_argument('-lr', type=float, default=0.1, help='initial learning rate')
    args = parser.parse_args()

    net = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
                        BasicBlock(32, 32), BasicBlock(32, 64, 2), BasicBlock(64, 128, 2),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 100))
    normalize = transforms.Normalize(CIFAR100_TRAIN_MEAN, CIFAR100_TRAIN_STD)
    transform_train = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                          transforms.RandomRotation(15), transforms.ToTensor(), normalize])
    transform_test = transforms.Compose([transforms.ToTensor(), normalize])
    cifar100_training_loader = DataLoader(CIFAR100(root=None, train=True, transform=transform_train, n=2048),
                                          shuffle=True, num_workers=0, batch_size=args.b)
    cifar100_test_loader = DataLoader(CIFAR100(root=None, train=False, transform=transform_test, n=512),
                                      shuffle=False, num_workers=0, batch_size=args.b)

    loss_function = nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    train_scheduler = optim.lr_scheduler.MultiStepLR(optimizer, milestones=MILESTONES, gamma=0.2)
    warmup_scheduler = WarmUpLR(optimizer, len(cifar100_training_loader) * args.warm)

    best_acc = 0.0  # no checkpointing in this short version
    for epoch in range(1, EPOCH + 1):
        train(epoch)
        if epoch > args.warm:
            train_scheduler.step()
        best_acc = max(best_acc, eval_training(epoch))
    print(f'best acc is {best_acc:0.4f}')
