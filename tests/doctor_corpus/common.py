"""What the corpus pipelines share: small slices of the real CIFAR data behind torchvision-style datasets.

Only the data loading differs from the sources (no downloads in tests): `CifarDS` behaves like
torchvision.datasets.CIFAR10/100 (`.data` (N, 32, 32, 3) uint8, `.targets`, PIL images through
`transform`), over a few hundred real images.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms as T

C10_MEAN, C10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
KUANGLIU_STD = (0.2023, 0.1994, 0.2010)  # the std most CIFAR repos copied
HALF = (0.5, 0.5, 0.5)
N_TRAIN, N_TEST = 512, 256


class CifarDS(Dataset):
    """torchvision.datasets.CIFAR10 look-alike over in-memory uint8 images."""

    def __init__(self, x_uint8: torch.Tensor, y: torch.Tensor, transform=None):
        self.data = x_uint8.permute(0, 2, 3, 1).contiguous().numpy()
        self.targets = y.tolist()
        self.transform = transform

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        img = Image.fromarray(self.data[i])
        return (self.transform(img) if self.transform else img), self.targets[i]


@dataclass
class Data:
    """Slices of the genuine datasets: first N_TRAIN training and N_TEST test images."""
    c10: object
    c100: object

    def cifar10(self, train: bool, transform, n: int | None = None) -> CifarDS:
        src = self.c10
        x, y = (src.train_x, src.train_y) if train else (src.test_x, src.test_y)
        n = n or (N_TRAIN if train else N_TEST)
        return CifarDS(x[:n], y[:n], transform)

    def cifar100(self, train: bool, transform, n: int | None = None) -> CifarDS:
        src = self.c100
        x, y = (src.train_x, src.train_y) if train else (src.test_x, src.test_y)
        n = n or (2 * N_TRAIN if train else N_TEST)
        return CifarDS(x[:n], y[:n], transform)


def plain(mean=C10_MEAN, std=C10_STD):
    return T.Compose([T.ToTensor(), T.Normalize(mean, std)])


def crop_flip(mean=C10_MEAN, std=C10_STD):
    return T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)])


# ---------------------------------------------------------------- the steps most sources share (bugs live in
# each file's own functions; these are the correct, common forms)

def train_step(model, x, y, criterion, optimizer):
    """The usual step: train mode, clear gradients, forward, backward, update."""
    model.train()
    return step_no_mode(model, x, y, criterion, optimizer)


def step_no_mode(model, x, y, criterion, optimizer):
    """The same step for loops that set the mode themselves (or have no dropout / batch-norm)."""
    optimizer.zero_grad()
    loss = criterion(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


def evaluate(model, loader, criterion):
    """The usual evaluation: eval mode, no gradients; (mean loss, accuracy)."""
    model.eval()
    loss_sum, correct, n = 0.0, 0, 0
    with torch.no_grad():
        for x, y in loader:
            out = model(x)
            loss_sum += criterion(out, y).item() * len(y)
            correct += (out.argmax(1) == y).sum().item()
            n += len(y)
    return loss_sum / n, correct / n
