"""VGG-11 without batch-norm trained with SGD at lr 0.05 (the BN-free variant of the repository's settings):
"I run your code and always nan loss"; the answer is to lower the learning rate (torchvision's reference
notes the same for VGG without BN). Full-width VGG-11 convolutions, as in the source."""
import os

import torch
import torchvision.transforms as transforms
from torch import nn

from cifar import CIFAR10

SOURCE = ("https://github.com/chengyangfu/pytorch-vgg-cifar10/issues/7; "
          "https://github.com/pytorch/vision/pull/1998")
EXPECT = "diverges"
KNOWN_MISS = "divergence of the full-width VGG is not reproduced within the audit's CPU budget"

CFG = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]  # VGG-11 ("A")


class VGG(nn.Module):
    def __init__(self):
        super().__init__()
        layers, cin = [], 3
        for v in CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=True)]
                cin = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(), nn.Linear(512, 512), nn.ReLU(True), nn.Dropout(),
                                        nn.Linear(512, 512), nn.ReLU(True), nn.Linear(512, 10))
        for m in self.modules():  # the repository's init: normal(0, sqrt(2 / n)), zero bias
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.data.normal_(0, (2.0 / n) ** 0.5)
                m.bias.data.zero_()

    def forward(self, x):
        return self.classifier(self.features(x).view(x.size(0), -1))


def main():
    normalize = transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    root = os.environ.get("CIFARLAB_DATA", "./data")
    train_loader = torch.utils.data.DataLoader(CIFAR10(root, True, transforms.Compose([
        transforms.RandomHorizontalFlip(), transforms.RandomCrop(32, 4), transforms.ToTensor(), normalize])),
        batch_size=128, shuffle=True)
    val_loader = torch.utils.data.DataLoader(CIFAR10(root, False, transforms.Compose([
        transforms.ToTensor(), normalize])), batch_size=128, shuffle=False)
    model = VGG()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), 0.05, momentum=0.9, weight_decay=5e-4)
    for epoch in range(300):
        model.train()
        for i, (x, y) in enumerate(train_loader):
            loss = criterion(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if i % 20 == 0:
                print(f"Epoch: [{epoch}][{i}/{len(train_loader)}] Loss {loss.item():.4f}")
        model.eval()
        with torch.no_grad():
            correct = sum((model(x).argmax(1) == y).sum().item() for x, y in val_loader)
        print(f" * Prec@1 {100 * correct / len(val_loader.dataset):.3f}")


if __name__ == "__main__":
    main()
