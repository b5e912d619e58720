"""Three conv+pool stages on 32x32 images leave 32x4x4 features, but the first Linear was sized for
another input (32 * 3 * 3): "size mismatch" / "mat1 and mat2 shapes cannot be multiplied"."""
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from .common import plain

SOURCE = "https://github.com/pytorch/examples/issues/210 (comment: flatten size vs fc1 in_features)"
BUG = "fc1.in_features does not match the flattened feature map"
EXPECT = "shape-mismatch"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2, self.conv3 = nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 16, 3, padding=1), \
            nn.Conv2d(16, 32, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1, self.fc2 = nn.Linear(32 * 3 * 3, 120), nn.Linear(120, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = self.pool(F.relu(self.conv3(x)))
        x = x.view(x.size(0), -1)
        return self.fc2(F.relu(self.fc1(x)))


def pipeline(d):
    net = Net()
    return dict(model=net, loss_fn=nn.CrossEntropyLoss(), optimizer=torch.optim.SGD(net.parameters(), lr=0.01),
                train_loader=DataLoader(d.cifar10(True, plain()), batch_size=20, shuffle=True),
                eval_loader=DataLoader(d.cifar10(False, plain()), batch_size=20), num_classes=10)
