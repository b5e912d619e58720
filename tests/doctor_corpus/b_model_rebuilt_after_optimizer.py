"""The optimizer receives the model's parameters, then the parameters are replaced (here: the model is
built again, as notebooks do when a cell re-runs the constructor); the optimizer keeps updating the old
tensors and the trained model never changes."""
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from .common import plain

SOURCE = "https://github.com/openvinotoolkit/nncf/pull/327"
BUG = "parameters replaced after the optimizer was created: the optimizer updates tensors the model no longer uses"
EXPECT = "cannot-overfit"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 32, 3, padding=1), nn.Conv2d(32, 64, 3, padding=1)
        self.fc1, self.fc2 = nn.Linear(64 * 8 * 8, 128), nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def pipeline(d):
    model = Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model = Net()  # the bug: new parameters after the optimizer took the old ones
    return dict(model=model, loss_fn=nn.CrossEntropyLoss(), optimizer=optimizer,
                train_loader=DataLoader(d.cifar10(True, plain()), batch_size=64, shuffle=True),
                eval_loader=DataLoader(d.cifar10(False, plain()), batch_size=64), num_classes=10)
