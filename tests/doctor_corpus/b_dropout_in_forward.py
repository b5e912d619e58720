"""forward() builds a fresh nn.Dropout(p=0.5) and applies it: that module is never registered, so
net.eval() cannot switch it off and test predictions stay random ("the model returns at test time
different results")."""
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchvision.models import resnet18

from .common import plain, train_step as step, evaluate as test

SOURCE = "https://github.com/yangze0930/NTS-Net/issues/14"
BUG = "nn.Dropout created inside forward(), unaffected by model.eval()"
EXPECT = "eval-mode"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        backbone = resnet18(num_classes=10)
        self.features = nn.Sequential(*list(backbone.children())[:-2])
        self.fc = nn.Linear(512, 10)

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
        x = nn.Dropout(p=0.5)(x)
        return self.fc(x)






def pipeline(d):
    net = Net()
    return dict(model=net, loss_fn=nn.CrossEntropyLoss(),
                optimizer=torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9, weight_decay=1e-4),
                train_loader=DataLoader(d.cifar10(True, plain()), batch_size=16, shuffle=True),
                eval_loader=DataLoader(d.cifar10(False, plain()), batch_size=32), num_classes=10,
                train_step=step, evaluate=test)
