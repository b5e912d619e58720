"""The validation pass runs the model without model.eval(): dropout stays on and batch-norm normalizes
with (and updates its running statistics from) validation batches."""
import torch
from torch import nn
from torch.utils.data import DataLoader

from .common import crop_flip, plain, train_step as step

SOURCE = "https://github.com/wolny/pytorch-3dunet/issues/53"
BUG = "model.eval() missing before validation"
EXPECT = "eval-mode"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2))
        self.block2 = nn.Sequential(nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(64 * 8 * 8, 10))

    def forward(self, x):
        return self.head(self.block2(self.block1(x)))




def validate(model, loader, criterion):
    losses = []
    with torch.no_grad():
        for x, y in loader:
            losses.append(criterion(model(x), y).item())
    return sum(losses) / len(losses), 0.0


def pipeline(d):
    net = Net()
    return dict(model=net, loss_fn=nn.CrossEntropyLoss(), optimizer=torch.optim.Adam(net.parameters(), lr=2e-4),
                train_loader=DataLoader(d.cifar10(True, crop_flip()), batch_size=16, shuffle=True),
                eval_loader=DataLoader(d.cifar10(False, plain()), batch_size=16), num_classes=10,
                train_step=step, evaluate=validate)
