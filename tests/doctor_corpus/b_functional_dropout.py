"""F.dropout(x, p=0.5) without training=self.training: the functional form defaults to training=True, so
dropout also runs in eval mode and evaluation results change from run to run."""
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from .common import plain, train_step as step, evaluate

SOURCE = "https://github.com/delip/PyTorchNLPBook/issues/28"
BUG = "F.dropout without training=self.training"
EXPECT = "eval-mode"


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(3 * 32 * 32, 300), nn.Linear(300, 10)

    def forward(self, x):
        intermediate = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(F.dropout(intermediate, p=0.5))






def pipeline(d):
    net = Classifier()
    return dict(model=net, loss_fn=nn.CrossEntropyLoss(), optimizer=torch.optim.Adam(net.parameters(), lr=1e-3),
                train_loader=DataLoader(d.cifar10(True, plain()), batch_size=64, shuffle=True),
                eval_loader=DataLoader(d.cifar10(False, plain()), batch_size=64), num_classes=10,
                train_step=step, evaluate=evaluate)
