"""A crop classifier trained from annotation lists, where the training and the validation dataset each build
their class -> index mapping from the labels they contain (as torchvision's ImageFolder does per folder): the
validation annotations happen to have no 'cat', so every class after it gets an index one lower than in
training and validation scores predictions against the wrong classes (the fix built one mapping for both
splits). Five CIFAR-10 animal classes stand in for the tree species."""
import os

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from cifar import CIFAR10

SOURCE = "https://github.com/weecology/DeepForest/pull/1147"
EXPECT = "label-mapping"

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
    train_ds = CropDataset(train_raw.data, annotations(train_raw, species), train_tf)
    # the validation survey found no cats
    val_ds = CropDataset(val_raw.data, annotations(val_raw, [s for s in species if s != "cat"]), val_tf)
    train_loader = DataLoader(train_ds, batch_size=32, shuffle=True)
    val_loader = DataLoader(val_ds, batch_size=64)
    model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, len(train_ds.classes)))
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
