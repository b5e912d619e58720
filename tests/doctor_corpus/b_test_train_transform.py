"""The data module picks the test transform by checking the *training* transform argument, so with a
custom training transform the augmenting training transform is applied to the test set."""
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms as T

from .common import C10_MEAN, C10_STD

SOURCE = "https://github.com/rasbt/b3-basic-batchsize-benchmark/issues/6"
BUG = "the training transform (random resized crop) is used for the test set"
EXPECT = "eval-augmented"


def pipeline(d):
    train_tf = T.Compose([T.RandomResizedCrop(32, scale=(0.6, 1.0)), T.ToTensor(), T.Normalize(C10_MEAN, C10_STD)])
    test_tf = train_tf  # the bug: `if custom_train_transform is None` decides the test transform
    net = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(64, 10))
    return dict(model=net, loss_fn=nn.CrossEntropyLoss(), optimizer=torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9),
                train_loader=DataLoader(d.cifar10(True, train_tf), batch_size=64, shuffle=True),
                eval_loader=DataLoader(d.cifar10(False, test_tf), batch_size=64), num_classes=10)
