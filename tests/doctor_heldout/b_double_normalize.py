"""Target-model training on CIFAR-10 with a CombinedCIFAR10-style in-memory dataset.
Bug: from_cifar10() already normalizes the float tensor with the CIFAR mean/std,
and the dataset's transform applies the same Normalize again in __getitem__ (normalized twice).
"""
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from cifarlab.data import CIFAR10

SOURCE = "https://github.com/aidotse/LeakPro/issues/156"
EXPECT = "input-normalization"

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


class CombinedCIFAR10(Dataset):
    def __init__(self, data, targets, transform=None):
        self.data, self.targets, self.transform = data, targets, transform

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        image, label = self.data[index], self.targets[index]
        if self.transform:
            image = self.transform(image)
        return image, label

    @classmethod
    def from_cifar10(cls, train=True, n=None, transform=None):
        ds = CIFAR10(root=None, train=train, download=False, n=n)
        data = torch.tensor(ds.data, dtype=torch.float32) / 255.0  # [0, 255] -> [0, 1]
        data = data.permute(0, 3, 1, 2)  # NHWC -> NCHW
        data = transforms.Normalize(MEAN, STD)(data)
        targets = torch.tensor(ds.targets)
        return cls(data, targets, transform)


def get_cifar10_dataset():
    transform = transforms.Compose([transforms.Normalize(MEAN, STD)])
    trainset = CombinedCIFAR10.from_cifar10(train=True, n=2048, transform=transform)
    testset = CombinedCIFAR10.from_cifar10(train=False, n=512, transform=transform)
    return trainset, testset


class ConvNet(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 8 * 8, 128), nn.ReLU(), nn.Linear(128, num_classes))

    def forward(self, x):
        return self.net(x)


def create_trained_model(trainset, testset, epochs=10, lr=1e-3):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    train_loader = DataLoader(trainset, batch_size=64, shuffle=True, num_workers=0)
    test_loader = DataLoader(testset, batch_size=128, shuffle=False, num_workers=0)
    model = ConvNet().to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for epoch in range(epochs):
        model.train()
        train_loss = 0.0
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            train_loss += loss.item()
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in test_loader:
                x, y = x.to(device), y.to(device)
                correct += (model(x).argmax(1) == y).sum().item()
        print(f"epoch {epoch}: train loss {train_loss / len(train_loader):.3f}, "
              f"test acc {correct / len(testset):.3f}")
    return model


if __name__ == "__main__":
    trainset, testset = get_cifar10_dataset()
    create_trained_model(trainset, testset)
