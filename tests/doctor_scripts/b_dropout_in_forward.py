"""NTS-Net's backbone: a copy of torchvision's ResNet whose forward() builds a fresh nn.Dropout(p=0.5) on every
call and applies it to the pooled features. That Dropout is never registered as a submodule, so net.eval()
cannot reach it: "the model returns at test time different results" for the same image. Written the way the
repository's train.py is: config constants at the top, net.train() and one SGD step per batch, then an
evaluation of the training and the test set under net.eval() and torch.no_grad() every SAVE_FREQ epochs,
a checkpoint per save. The backbone is resnet18 (the source: resnet50) at CIFAR resolution."""
import os

import torch
import torchvision.transforms as transforms
from torch import nn
from torch.optim.lr_scheduler import MultiStepLR
from torch.utils.data import DataLoader
from torchvision.models.resnet import BasicBlock, ResNet

from cifar import CIFAR10

SOURCE = "https://github.com/yangze0930/NTS-Net/issues/14"
EXPECT = "eval-mode"

# config.py
BATCH_SIZE = 16
LR = 0.001
WD = 1e-4
SAVE_FREQ = 1
save_dir = "./models"


class DropResNet(ResNet):
    """torchvision's ResNet with the repository's forward: pooled features, dropout, fc."""

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(x)
        x = x.view(x.size(0), -1)
        x = nn.Dropout(p=0.5)(x)  # built per call: not a submodule, so eval() never turns it off
        return self.fc(x)


def resnet18(num_classes):
    return DropResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)


def main():
    root = os.environ.get("CIFARLAB_DATA", "./data")
    transform = transforms.Compose([transforms.ToTensor(),
                                    transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))])
    trainset = CIFAR10(root=root, train=True, transform=transform)
    trainloader = DataLoader(trainset, batch_size=BATCH_SIZE, shuffle=True, num_workers=0, drop_last=False)
    testset = CIFAR10(root=root, train=False, transform=transform)
    testloader = DataLoader(testset, batch_size=2 * BATCH_SIZE, shuffle=False, num_workers=0, drop_last=False)

    net = resnet18(num_classes=10)
    creterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(net.parameters(), lr=LR, momentum=0.9, weight_decay=WD)
    scheduler = MultiStepLR(optimizer, milestones=[60, 100], gamma=0.1)
    os.makedirs(save_dir, exist_ok=True)

    for epoch in range(500):
        net.train()
        for i, data in enumerate(trainloader):
            img, label = data[0], data[1]
            optimizer.zero_grad()
            loss = creterion(net(img), label)
            loss.backward()
            optimizer.step()
        scheduler.step()

        if epoch % SAVE_FREQ == 0:
            net.eval()
            for name, loader in (("train", trainloader), ("test", testloader)):
                total_loss, correct, total = 0.0, 0, 0
                with torch.no_grad():
                    for img, label in loader:
                        logits = net(img)
                        total_loss += creterion(logits, label).item() * img.size(0)
                        correct += torch.max(logits, 1)[1].eq(label).sum().item()
                        total += img.size(0)
                print(f"epoch:{epoch} - {name} loss: {total_loss / max(total, 1):.3f} and "
                      f"{name} acc: {correct / max(total, 1):.3f} total sample: {total}")
            torch.save({"epoch": epoch, "net_state_dict": net.state_dict()},
                       os.path.join(save_dir, "%03d.ckpt" % epoch))
    print("finishing training")


if __name__ == "__main__":
    main()
