"""torchvision's VGG with batch-norm (vgg11_bn layout at reduced width): conv-BN-ReLU(inplace=True) blocks and
a classifier Linear-ReLU(inplace=True)-Dropout-Linear-ReLU(inplace=True)-Dropout-Linear; trained the way
chengyangfu/pytorch-vgg-cifar10 trains its BN variant (SGD lr 0.05, momentum 0.9, wd 5e-4, batch 128)."""
import torch
from torch import nn
from torch.utils.data import DataLoader

from .common import crop_flip, plain, train_step, evaluate as validate

SOURCE = ("https://github.com/pytorch/vision/blob/main/torchvision/models/vgg.py; "
          "https://github.com/chengyangfu/pytorch-vgg-cifar10")
BUG = None
EXPECT = None

CFG = [16, "M", 32, "M", 64, 64, "M", 128, 128, "M", 128, 128, "M"]


def make_layers(cfg):
    layers, cin = [], 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
            cin = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = make_layers(CFG)
        self.classifier = nn.Sequential(
            nn.Linear(128, 128), nn.ReLU(inplace=True), nn.Dropout(),
            nn.Linear(128, 128), nn.ReLU(inplace=True), nn.Dropout(),
            nn.Linear(128, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))






def pipeline(d):
    model = VGG()
    return dict(model=model, loss_fn=nn.CrossEntropyLoss(),
                optimizer=torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4),
                train_loader=DataLoader(d.cifar10(True, crop_flip()), batch_size=128, shuffle=True),
                eval_loader=DataLoader(d.cifar10(False, plain()), batch_size=128),
                num_classes=10, train_step=train_step, evaluate=validate)
