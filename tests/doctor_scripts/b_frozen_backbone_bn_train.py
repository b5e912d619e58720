"""Transfer learning with a backbone frozen by requires_grad=False on all its parameters while the loop calls
model.train() / model.eval() as usual: batch-norm's running mean and variance are buffers, not parameters, so in
train mode they keep following the new data; after training the 'frozen' feature extractor no longer computes
what it did (the thread: "after training, I end up with a model where all batchnorm params have changed" —
the usual fix keeps the frozen part's batch-norm in eval mode). The 'pretrained' backbone is a small CNN here."""
import os

import torch
import torchvision.transforms as T
from torch import nn
from torch.utils.data import DataLoader

from cifar import CIFAR10

SOURCE = "https://github.com/pytorch/pytorch/issues/86590"
EXPECT = "frozen-bn-updating"

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def feature_extractor():
    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(64, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten())


class TransferNet(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = feature_extractor()  # stands in for a pretrained backbone
        self.classifier = nn.Linear(128, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x))


def main():
    root = os.environ.get("CIFARLAB_DATA", "./data")
    tf = T.Compose([T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
    test_tf = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])
    train_loader = DataLoader(CIFAR10(root, True, tf), batch_size=64, shuffle=True)
    test_loader = DataLoader(CIFAR10(root, False, test_tf), batch_size=256)
    net = TransferNet()
    for param in net.features.parameters():
        param.requires_grad = False
    optimizer = torch.optim.SGD(filter(lambda p: p.requires_grad, net.parameters()), lr=0.01, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    for epoch in range(15):
        net.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            criterion(net(x), y).backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            acc = sum((net(x).argmax(1) == y).sum().item() for x, y in test_loader) / len(test_loader.dataset)
        print(f"epoch {epoch}: test accuracy {acc:.3f}")


if __name__ == "__main__":
    main()
