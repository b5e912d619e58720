"""A semantic-segmentation trainer's validate(), ported to CIFAR-10 classification: it switches the model to
eval mode but runs every validation forward (and the loss on it) with autograd on, so each batch builds a
graph that holds all its activations; the thread's run went out of memory right after the first epoch's
validation (the fix: `with torch.no_grad():` around the forward). Its validation forwards larger inputs than
training (here batch 128 against 64), so that graph is larger than any training step's: the memory a
training step fits in is not enough for evaluation. Accuracy is unaffected; the run crashes."""
import os
import time

import torch
import torchvision.transforms as T
from torch import nn
from torch.utils.data import DataLoader

from cifar import CIFAR10

SOURCE = "https://github.com/hszhao/semseg/issues/60"
EXPECT = "eval-without-no-grad"

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


class AverageMeter:
    def __init__(self):
        self.sum, self.count = 0.0, 0

    def update(self, val, n=1):
        self.sum, self.count = self.sum + val * n, self.count + n

    @property
    def avg(self):
        return self.sum / max(self.count, 1)


def train(train_loader, model, criterion, optimizer, epoch):
    model.train()
    loss_meter = AverageMeter()
    for i, (input, target) in enumerate(train_loader):
        output = model(input)
        loss = criterion(output, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss_meter.update(loss.item(), input.size(0))
    return loss_meter.avg


def validate(val_loader, model, criterion):
    loss_meter, correct = AverageMeter(), 0
    model.eval()
    end = time.time()
    for i, (input, target) in enumerate(val_loader):
        output = model(input)
        loss = criterion(output, target)
        loss_meter.update(loss.item(), input.size(0))
        correct += (output.max(1)[1] == target).sum().item()
    print(f"validation took {time.time() - end:.1f}s")
    return loss_meter.avg, correct / len(val_loader.dataset)


def main():
    root = os.environ.get("CIFARLAB_DATA", "./data")
    train_tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
    val_tf = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])
    train_loader = DataLoader(CIFAR10(root, True, train_tf), batch_size=64, shuffle=True)
    val_loader = DataLoader(CIFAR10(root, False, val_tf), batch_size=128)
    model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(64, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1), nn.Linear(128, 10))
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    for epoch in range(1, 51):
        loss_train = train(train_loader, model, criterion, optimizer, epoch)
        loss_val, acc_val = validate(val_loader, model, criterion)
        print(f"epoch {epoch}: train loss {loss_train:.3f}, val loss {loss_val:.3f}, val acc {acc_val:.3f}")


if __name__ == "__main__":
    main()
