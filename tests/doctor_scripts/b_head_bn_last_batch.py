"""A fine-tuning run with a fastai-style classifier head (concat pooling, then BatchNorm1d / Dropout / Linear
twice) on a training split that leaves one image in the last batch: 1639 training images in batches of 18
(91 * 18 + 1). The first epoch trains, then the last batch reaches BatchNorm1d in train mode with a single
row and raises "Expected more than 1 value per channel when training" (the answer: drop_last=True for the
training loader, fastai's default since). A small convolutional body stands in for senet154."""
import os

import torch
import torchvision.transforms as T
from torch import nn
from torch.utils.data import DataLoader, Subset

from cifar import CIFAR10

SOURCE = "https://github.com/fastai/fastai/issues/1352"
EXPECT = "bn-batch-of-one"

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


class AdaptiveConcatPool2d(nn.Module):
    def forward(self, x):
        return torch.cat([nn.functional.adaptive_max_pool2d(x, 1), nn.functional.adaptive_avg_pool2d(x, 1)], 1)


def create_cnn(num_classes, ps=0.5):
    body = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU())
    head = nn.Sequential(AdaptiveConcatPool2d(), nn.Flatten(), nn.BatchNorm1d(128), nn.Dropout(ps / 2),
                         nn.Linear(128, 64), nn.ReLU(), nn.BatchNorm1d(64), nn.Dropout(ps), nn.Linear(64, num_classes))
    return nn.Sequential(body, head)


def main():
    root = os.environ.get("CIFARLAB_DATA", "./data")
    tfms = (T.Compose([T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)]),
            T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)]))  # augmentation for training only
    full = CIFAR10(root, train=True)
    n_valid = int(0.2 * len(full))  # valid_pct=0.2
    idx = torch.randperm(len(full), generator=torch.Generator().manual_seed(42)).tolist()
    train_ds = Subset(CIFAR10(root, train=True, transform=tfms[0]), idx[n_valid:])
    valid_ds = Subset(CIFAR10(root, train=True, transform=tfms[1]), idx[:n_valid])
    train_dl = DataLoader(train_ds, batch_size=18, shuffle=True)
    valid_dl = DataLoader(valid_ds, batch_size=36)
    model = create_cnn(10)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_func = nn.CrossEntropyLoss()
    for epoch in range(5):
        model.train()
        for xb, yb in train_dl:
            loss = loss_func(model(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad()
        model.eval()
        with torch.no_grad():
            acc = sum((model(xb).argmax(1) == yb).float().sum().item() for xb, yb in valid_dl) / n_valid
        print(f"epoch {epoch}: valid accuracy {acc:.3f}")


if __name__ == "__main__":
    main()
