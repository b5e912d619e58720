"""The model's last step is a (plain) softmax and the loss is nn.NLLLoss, which expects log-probabilities:
"the loss is always negative"."""
import torch
from torch import nn
from torch.utils.data import DataLoader

from .common import plain

SOURCE = "https://github.com/AnubhavGupta3377/Text-Classification-Models-Pytorch/issues/9"
BUG = "NLLLoss on softmax probabilities instead of log_softmax"
EXPECT = "loss-output-mismatch"


def pipeline(d):
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(32 * 8 * 8, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 10), nn.Softmax(dim=1))
    return dict(model=net, loss_fn=nn.NLLLoss(), optimizer=torch.optim.Adam(net.parameters(), lr=1e-3),
                train_loader=DataLoader(d.cifar10(True, plain()), batch_size=64, shuffle=True),
                eval_loader=DataLoader(d.cifar10(False, plain()), batch_size=64), num_classes=10)
