"""A SimpleCNN built with num_classes left at a value that does not match the labels (here a 10-way head
on CIFAR-100 labels): cross_entropy raises "Target ... is out of bounds" or, later, an index error."""
import torch
from torch import nn
from torch.utils.data import DataLoader

from .common import plain

SOURCE = "https://github.com/ContinualAI/avalanche/issues/524"
BUG = "the classifier's output size does not match the number of classes in the labels"
EXPECT = "shape-mismatch"


class SimpleCNN(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(32, 32, 3), nn.ReLU(inplace=True),
            nn.MaxPool2d(2), nn.Dropout(0.25), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(64, 64, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Dropout(0.25),
            nn.AdaptiveMaxPool2d(1), nn.Dropout(0.25))
        self.classifier = nn.Sequential(nn.Linear(64, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x).view(x.size(0), -1))


def pipeline(d):
    net = SimpleCNN()  # num_classes left at its default
    return dict(model=net, loss_fn=nn.CrossEntropyLoss(), optimizer=torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9),
                train_loader=DataLoader(d.cifar100(True, plain()), batch_size=32, shuffle=True),
                eval_loader=DataLoader(d.cifar100(False, plain()), batch_size=64), num_classes=100)
