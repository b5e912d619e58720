"""The fix of the crop classifier trained from annotation lists: one class -> index mapping, built from the
classes of both splits, is given to the training and the validation dataset, so a class absent from the
validation annotations ('cat') no longer shifts the others. Correct."""
import os

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from cifar import CIFAR10

SOURCE = "https://github.com/weecology/DeepForest/pull/1147"
EXPECT = None

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def annotations(split, keep):
    """(image index, label name) for the images of `split` whose class is in `keep`."""
    return [(i, NAMES[t]) for i, t in enumerate(split.targets) if NAMES[t] in keep]


class CropDataset(Dataset):
    def __init__(self, images, annotations, transform, class_to_idx=None):
        found = sorted({name for _, name in annotations})
        self.class_to_idx = class_to_idx or {c: i for i, c in enumerate(found)}
        self.classes = sorted(self.class_to_idx, key=self.class_to_idx.get)
        self.data = images[np.array([i for i, _ in annotations])]
        self.targets = [self.class_to_idx[name] for _, name in annotations]
        self.transform = transform

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.data[i])), self.targets[i]


def main():
    root = os.environ.get("CIFARLAB_DATA", "./data")
    train_tf = T.Compose([T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
    val_tf = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])
    train_raw, val_raw = CIFAR10(root, train=True), CIFAR10(root, train=False)
    species = ["bird", "cat", "deer", "dog", "horse"]
    train_ann = annotations(train_raw, species)
    val_ann = annotations(val_raw, [s for s in species if s != "cat"])  # the validation survey found no cats
    shared = {c: i for i, c in enumerate(sorted({name for _, name in train_ann + val_ann}))}
    train_ds = CropDataset(train_raw.data, train_ann, train_tf, class_to_idx=shared)
    val_ds = CropDataset(val_raw.data, val_ann, val_tf, class_to_idx=shared)
    train_loader = DataLoader(train_ds, batch_size=32, shuffle=True)
    val_loader = DataLoader(val_ds, batch_size=64)
    model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, len(shared)))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    for epoch in range(20):
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            criterion(model(x), y).backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in val_loader:
                correct += (model(x).argmax(1) == y).sum().item()
        print(f"epoch {epoch}: val accuracy {correct / len(val_ds):.3f}")


if __name__ == "__main__":
    main()
