"""The federated CIFAR-100 loader built the test data from the training files: evaluation runs on training
images. Modelled with a custom Dataset that keeps its images in `self.images` (no `.data`) behind an
augmented training loader, where comparing loader outputs cannot find the overlap."""
import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .common import crop_flip, plain

SOURCE = "https://github.com/FedML-AI/FedML/pull/163"
BUG = "training images loaded as the test data"
EXPECT = "eval-on-train"


class ClientCifar(Dataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def pipeline(d):
    src = d.cifar100(True, None)
    images, labels = src.data, np.asarray(src.targets)
    mean, std = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
    train = ClientCifar(images, labels, crop_flip(mean, std))
    test = ClientCifar(images[::2].copy(), labels[::2].copy(), plain(mean, std))  # from the training files
    net = nn.Sequential(nn.Conv2d(3, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(64 * 8 * 8, 512), nn.ReLU(), nn.Linear(512, 100))
    return dict(model=net, loss_fn=nn.CrossEntropyLoss(), optimizer=torch.optim.SGD(net.parameters(), lr=0.03),
                train_loader=DataLoader(train, batch_size=20, shuffle=True),
                eval_loader=DataLoader(test, batch_size=64), num_classes=100)
