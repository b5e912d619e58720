"""Udacity deep-learning-v2-pytorch, cifar10_cnn_solution: one training dataset split into train and
validation by two disjoint SubsetRandomSamplers, ToTensor + Normalize(0.5) for all data, a 3-conv CNN
with dropout, batch 20, plain SGD at lr 0.01, model.train()/model.eval() every epoch."""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, SubsetRandomSampler

from .common import HALF, plain, train_step as step

SOURCE = ("https://github.com/udacity/deep-learning-v2-pytorch/blob/master/convolutional-neural-networks/"
          "cifar-cnn/cifar10_cnn_solution.ipynb")
BUG = None
EXPECT = None


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2, self.conv3 = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 32, 3, padding=1), \
            nn.Conv2d(32, 64, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1, self.fc2 = nn.Linear(64 * 4 * 4, 500), nn.Linear(500, 10)
        self.dropout = nn.Dropout(0.25)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = self.pool(F.relu(self.conv3(x)))
        x = self.dropout(x.view(-1, 64 * 4 * 4))
        x = self.dropout(F.relu(self.fc1(x)))
        return self.fc2(x)




def validate(model, loader, criterion):
    model.eval()
    valid_loss, n = 0.0, 0
    for data, target in loader:
        valid_loss += criterion(model(data), target).item() * data.size(0)
        n += data.size(0)
    return valid_loss / n, 0.0


def pipeline(d):
    train_data = d.cifar10(True, plain(HALF, HALF))
    rng = np.random.default_rng(0)
    indices = rng.permutation(len(train_data)).tolist()
    split = int(0.2 * len(indices))
    train_idx, valid_idx = indices[split:], indices[:split]
    model = Net()
    return dict(model=model, loss_fn=nn.CrossEntropyLoss(),
                optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
                train_loader=DataLoader(train_data, batch_size=20, sampler=SubsetRandomSampler(train_idx)),
                eval_loader=DataLoader(train_data, batch_size=20, sampler=SubsetRandomSampler(valid_idx)),
                num_classes=10, train_step=step, evaluate=validate)
