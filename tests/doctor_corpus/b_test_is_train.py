"""The 'test' dataset is built as CIFAR100(root, download=True, transform=test_transform) without
train=False, so it is the training set (torchvision's default train=True): "the test is also tested on
the training set"."""
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.models import resnet18

from .common import crop_flip, plain

SOURCE = "https://github.com/shuoros/cifar100-resnet50-pytorch/issues/2"
BUG = "test set loaded with the default train=True"
EXPECT = "eval-on-train"


def pipeline(d):
    mean, std = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
    train = d.cifar100(True, crop_flip(mean, std))
    test = d.cifar100(True, plain(mean, std))  # the bug: train=True (the default) for the test set
    net = resnet18(num_classes=100)  # the source fine-tunes a ResNet-50; same family, smaller
    return dict(model=net, loss_fn=nn.CrossEntropyLoss(),
                optimizer=torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9),
                train_loader=DataLoader(train, batch_size=32, shuffle=True),
                eval_loader=DataLoader(test, batch_size=64), num_classes=100)
