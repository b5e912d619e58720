"""Fine-tuning a head on a frozen backbone the way the answer to the thread does it (mmclassification's
backbones): the frozen stages have requires_grad=False and the model's train() is overridden so that, after
every model.train(), the frozen stages go back to eval mode (_freeze_stages; norm_eval, off by default as
there, would put every batch-norm layer in eval): their running statistics stay those of the pretrained
backbone, while the trainable stage's batch-norm trains. Correct. A small CNN stands in for the pretrained backbone."""
import os

import torch
import torchvision.transforms as T
from torch import nn
from torch.utils.data import DataLoader

from cifar import CIFAR10

SOURCE = "https://github.com/open-mmlab/mmcv/issues/964 (answer: mmclassification's mobilenet_v2.py train())"
EXPECT = None

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def conv_bn(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class Classifier(nn.Module):
    def __init__(self, num_classes=10, frozen_stages=2, norm_eval=False):
        super().__init__()
        self.stages = nn.ModuleList([nn.Sequential(conv_bn(3, 32), nn.MaxPool2d(2)),
                                     nn.Sequential(conv_bn(32, 64), nn.MaxPool2d(2)),
                                     nn.Sequential(conv_bn(64, 128), nn.AdaptiveAvgPool2d(1))])
        self.head = nn.Linear(128, num_classes)
        self.frozen_stages, self.norm_eval = frozen_stages, norm_eval
        self._freeze_stages()

    def _freeze_stages(self):
        for stage in self.stages[:self.frozen_stages]:
            stage.eval()
            for param in stage.parameters():
                param.requires_grad = False

    def train(self, mode=True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def forward(self, x):
        for stage in self.stages:
            x = stage(x)
        return self.head(torch.flatten(x, 1))


def main():
    root = os.environ.get("CIFARLAB_DATA", "./data")
    train_tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
    test_tf = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])
    train_loader = DataLoader(CIFAR10(root, True, train_tf), batch_size=64, shuffle=True)
    test_loader = DataLoader(CIFAR10(root, False, test_tf), batch_size=256)
    model = Classifier()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9,
                                weight_decay=1e-4)
    criterion = nn.CrossEntropyLoss()
    for epoch in range(12):
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            criterion(model(x), y).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            acc = sum((model(x).argmax(1) == y).sum().item() for x, y in test_loader) / len(test_loader.dataset)
        print(f"epoch {epoch}: top-1 {acc:.3f}")


if __name__ == "__main__":
    main()
