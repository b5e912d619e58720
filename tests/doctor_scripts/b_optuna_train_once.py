"""Optuna's PyTorch example before the fix: model.train() is called once, above the epoch loop, while the
validation at the end of every epoch calls model.eval(); from the second epoch on the MLP trains with its
dropout switched off (the fix moved model.train() to the top of each epoch). The example tunes layers,
dropout and learning rate per trial and trains on a cut of the data; one trial's settings here, on CIFAR-10."""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.transforms as T
from torch.utils.data import DataLoader

from cifar import CIFAR10

SOURCE = "https://github.com/optuna/optuna/pull/1725"
EXPECT = "train-mode"

BATCHSIZE = 128
EPOCHS = 10
N_TRAIN_EXAMPLES = BATCHSIZE * 30
N_VALID_EXAMPLES = BATCHSIZE * 10


def define_model(n_layers=2, units=(128, 64), dropout=(0.3, 0.2)):
    # nn.Flatten() first (the example flattens in its loop, kept below; the doctor feeds loader batches as-is)
    layers, in_features = [nn.Flatten()], 3 * 32 * 32
    for i in range(n_layers):
        layers += [nn.Linear(in_features, units[i]), nn.ReLU(), nn.Dropout(dropout[i])]
        in_features = units[i]
    layers += [nn.Linear(in_features, 10), nn.LogSoftmax(dim=1)]
    return nn.Sequential(*layers)


def main():
    root = os.environ.get("CIFARLAB_DATA", "./data")
    tf = T.Compose([T.ToTensor(), T.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))])
    train_loader = DataLoader(CIFAR10(root, train=True, transform=tf), batch_size=BATCHSIZE, shuffle=True)
    valid_loader = DataLoader(CIFAR10(root, train=False, transform=tf), batch_size=BATCHSIZE, shuffle=True)
    model = define_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)

    model.train()
    for epoch in range(EPOCHS):
        for batch_idx, (data, target) in enumerate(train_loader):
            if batch_idx * BATCHSIZE >= N_TRAIN_EXAMPLES:
                break
            data = data.view(data.size(0), -1)
            optimizer.zero_grad()
            loss = F.nll_loss(model(data), target)
            loss.backward()
            optimizer.step()

        model.eval()
        correct = 0
        with torch.no_grad():
            for batch_idx, (data, target) in enumerate(valid_loader):
                if batch_idx * BATCHSIZE >= N_VALID_EXAMPLES:
                    break
                pred = model(data.view(data.size(0), -1)).argmax(dim=1, keepdim=True)
                correct += pred.eq(target.view_as(pred)).sum().item()
        accuracy = correct / min(len(valid_loader.dataset), N_VALID_EXAMPLES)
        print(f"epoch {epoch}: accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
