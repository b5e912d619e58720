"""Early pytorch-cifar used the training transform (RandomCrop(32, padding=4) + RandomHorizontalFlip) for the
test set too, so testing the same model twice gave different results; the PR gave the test set a fixed
transform."""
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from .common import KUANGLIU_STD, C10_MEAN, crop_flip

SOURCE = "https://github.com/kuangliu/pytorch-cifar/pull/6"
BUG = "random crop and flip applied to the test set"
EXPECT = "eval-augmented"


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 6, 5), nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(16 * 5 * 5, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        out = F.max_pool2d(F.relu(self.conv1(x)), 2)
        out = F.max_pool2d(F.relu(self.conv2(out)), 2)
        out = F.relu(self.fc1(out.view(out.size(0), -1)))
        return self.fc3(F.relu(self.fc2(out)))


def pipeline(d):
    net = LeNet()
    tf = crop_flip(C10_MEAN, KUANGLIU_STD)
    return dict(model=net, loss_fn=nn.CrossEntropyLoss(),
                optimizer=torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4),
                train_loader=DataLoader(d.cifar10(True, tf), batch_size=128, shuffle=True),
                eval_loader=DataLoader(d.cifar10(False, tf), batch_size=100), num_classes=10)
