"""CIFAR-10 CNN with a BatchNorm1d classifier head, trained on a 95%/5% train/validation split of the training set.
Bug: the train split has 1945 images and batch_size=24 without drop_last, so every epoch ends with a batch of ONE
image, and BatchNorm1d in training mode fails on it ("Expected more than 1 value per channel when training").
pytorch/pytorch#7716 diagnosed this: any BatchNorm1d training loop breaks when dataset_size % batch_size == 1.
"""
import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, random_split
from torchvision import transforms

from cifarlab.data import CIFAR10

SOURCE = "https://github.com/pytorch/pytorch/issues/7716"
EXPECT = "bn-batch-of-one"


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32)
        self.conv2, self.bn2 = nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64)
        self.conv3, self.bn3 = nn.Conv2d(64, 128, 3, padding=1), nn.BatchNorm2d(128)
        self.fc1 = nn.Linear(128 * 4 * 4, 256)
        self.bn_fc = nn.BatchNorm1d(256)
        self.dropout = nn.Dropout(0.3)
        self.fc2 = nn.Linear(256, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = F.max_pool2d(F.relu(self.bn3(self.conv3(x))), 2)
        x = torch.flatten(x, 1)
        x = self.dropout(F.relu(self.bn_fc(self.fc1(x))))
        return self.fc2(x)


def evaluate(model, loader, criterion, device):
    model.eval()
    loss_sum, correct, n = 0.0, 0, 0
    with torch.no_grad():
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            outputs = model(images)
            loss_sum += criterion(outputs, labels).item() * labels.size(0)
            correct += (outputs.argmax(1) == labels).sum().item()
            n += labels.size(0)
    return loss_sum / n, correct / n


def main():
    parser = argparse.ArgumentParser(description="CIFAR-10 CNN with a BatchNorm1d head")
    parser.add_argument("--batch-size", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--val-fraction", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tf = transforms.Compose([transforms.ToTensor(),
                             transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))])
    full_train = CIFAR10(root=None, train=True, download=False, transform=tf, n=2048)
    n_train = int((1 - args.val_fraction) * len(full_train))
    train_set, val_set = random_split(full_train, [n_train, len(full_train) - n_train])
    test_set = CIFAR10(root=None, train=False, download=False, transform=tf, n=512)

    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, num_workers=0)
    val_loader = DataLoader(val_set, batch_size=256, shuffle=False, num_workers=0)
    test_loader = DataLoader(test_set, batch_size=256, shuffle=False, num_workers=0)
    print(f"train {len(train_set)} / val {len(val_set)} / test {len(test_set)} images")

    model = Net().to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    best_val_acc = 0.0
    for epoch in range(args.epochs):
        model.train()
        running_loss = 0.0
        for images, labels in train_loader:
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad()
            loss = criterion(model(images), labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
        val_loss, val_acc = evaluate(model, val_loader, criterion, device)
        best_val_acc = max(best_val_acc, val_acc)
        print(f"epoch {epoch + 1}: train loss {running_loss / len(train_loader):.4f} "
              f"val loss {val_loss:.4f} val acc {val_acc:.3f}")

    test_loss, test_acc = evaluate(model, test_loader, criterion, device)
    print(f"best val acc {best_val_acc:.3f}, test acc {test_acc:.3f}")


if __name__ == "__main__":
    main()
