"""Small CNN on CIFAR-10 with a base_trainer-style train()/val() pair.
Bug: train() calls loss.backward() and optimizer.step() but never
optimizer.zero_grad(), so gradients accumulate across iterations.
"""
import numpy as np
import torch
import torch.nn as nn
import torchvision.transforms as transforms
from torch.utils.data import DataLoader

from cifarlab.data import CIFAR10

SOURCE = "https://github.com/yastrebksv/TennisCourtDetector/issues/7"
EXPECT = "missing-zero-grad"


class SmallNet(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.MaxPool2d(2))
        self.classifier = nn.Linear(64 * 8 * 8, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def train(model, train_loader, optimizer, criterion, device, epoch, max_iters=1000):
    model.train()
    losses = []
    max_iters = min(max_iters, len(train_loader))
    for iter_id, batch in enumerate(train_loader):
        out = model(batch[0].float().to(device))
        gt = batch[1].to(device)
        loss = criterion(out, gt)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if iter_id >= max_iters:
            break
    print('train, epoch = {}, loss = {:.4f}'.format(epoch, np.mean(losses)))
    return np.mean(losses)


def val(model, val_loader, criterion, device, epoch):
    model.eval()
    losses, correct, total = [], 0, 0
    with torch.no_grad():
        for batch in val_loader:
            out = model(batch[0].float().to(device))
            gt = batch[1].to(device)
            losses.append(criterion(out, gt).item())
            correct += (out.argmax(1) == gt).sum().item()
            total += gt.size(0)
    print('val, epoch = {}, loss = {:.4f}, acc = {:.3f}'.format(epoch, np.mean(losses), correct / total))
    return correct / total


if __name__ == '__main__':
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    norm = transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
    tf = transforms.Compose([transforms.ToTensor(), norm])
    train_loader = DataLoader(CIFAR10(root=None, train=True, transform=tf, n=2048),
                              batch_size=64, shuffle=True, num_workers=0)
    val_loader = DataLoader(CIFAR10(root=None, train=False, transform=tf, n=512),
                            batch_size=128, shuffle=False, num_workers=0)
    model = SmallNet().to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    best_acc = 0
    for epoch in range(15):
        train(model, train_loader, optimizer, criterion, device, epoch)
        acc = val(model, val_loader, criterion, device, epoch)
        best_acc = max(best_acc, acc)
    print('best val acc = {:.3f}'.format(best_acc))
