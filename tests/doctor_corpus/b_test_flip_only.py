"""The course notebook builds one data_transform with RandomHorizontalFlip(p=0.5) and uses it for both the
training and the test dataset: half of the test images are mirrored at random on every pass (the TinyVGG
model of the notebook)."""
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms as T

SOURCE = "https://github.com/mrdbourke/pytorch-deep-learning/issues/1352 (PR #1354)"
BUG = "RandomHorizontalFlip in the test transform"
EXPECT = "eval-augmented"


class TinyVGG(nn.Module):
    def __init__(self, hidden=10, out=10):
        super().__init__()
        block = lambda cin: nn.Sequential(nn.Conv2d(cin, hidden, 3, padding=1), nn.ReLU(),  # noqa: E731
                                          nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.block1, self.block2 = block(3), block(hidden)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(hidden * 8 * 8, out))

    def forward(self, x):
        return self.classifier(self.block2(self.block1(x)))


def pipeline(d):
    data_transform = T.Compose([T.RandomHorizontalFlip(p=0.5), T.ToTensor()])
    net = TinyVGG()
    return dict(model=net, loss_fn=nn.CrossEntropyLoss(), optimizer=torch.optim.Adam(net.parameters(), lr=1e-3),
                train_loader=DataLoader(d.cifar10(True, data_transform), batch_size=32, shuffle=True),
                eval_loader=DataLoader(d.cifar10(False, data_transform), batch_size=32, shuffle=False),
                num_classes=10)
