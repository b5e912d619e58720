"""The validation function calls model.eval() and then, a few lines later and still before the
validation forwards, model.train(): validation runs in training mode. Fixed by removing model.train()
from the validation function."""
import torch
from torch import nn
from torch.utils.data import DataLoader

from .common import plain, train_step as step

SOURCE = "https://github.com/pliang279/MultiBench/issues/26"
BUG = "model.train() inside the validation function"
EXPECT = "eval-mode"




def validate(model, loader, criterion):
    model.eval()
    with torch.no_grad():
        model.train()
        total = correct = 0
        for x, y in loader:
            correct += (model(x).argmax(1) == y).sum().item()
            total += len(y)
    return 0.0, correct / total


def pipeline(d):
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.1),
                        nn.Linear(256, 10))
    return dict(model=net, loss_fn=nn.CrossEntropyLoss(), optimizer=torch.optim.AdamW(net.parameters(), lr=1e-3),
                train_loader=DataLoader(d.cifar10(True, plain()), batch_size=32, shuffle=True),
                eval_loader=DataLoader(d.cifar10(False, plain()), batch_size=64), num_classes=10,
                train_step=step, evaluate=validate)
