"""Network-in-Network for CIFAR-10 whose last block ends 1x1 conv to 10 maps, ReLU, global average pooling:
the logits go through a ReLU. Trained with SGD at base lr 0.1 (per-layer learning rates, the last conv at
0.1x), the issue reports the loss at exactly 2.302585 (= ln 10) and 10.00% test accuracy in every epoch:
once the final ReLU is dead for every image, every logit is 0 and nothing learns. Written like the
repository's original.py: the model in a Sequential called `classifier`, normal(0, 0.05) conv init, one
param group per tensor, train(epoch) / test() over global loaders, adjust_learning_rate() at fixed epochs,
the best model saved. Half of the source's CIFAR width (192/160/96 channels) to stay fast on CPU."""
import argparse
import os

import torch
import torch.nn as nn
import torch.optim as optim
import torchvision.transforms as transforms

from cifar import CIFAR10

SOURCE = "https://github.com/jiecaoyu/pytorch-nin-cifar10/issues/1"
EXPECT = "activation-before-loss"


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.classifier = nn.Sequential(
            nn.Conv2d(3, 48, kernel_size=5, stride=1, padding=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(48, 40, kernel_size=1, stride=1, padding=0),
            nn.ReLU(inplace=True),
            nn.Conv2d(40, 24, kernel_size=1, stride=1, padding=0),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
            nn.Dropout(0.5),

            nn.Conv2d(24, 48, kernel_size=5, stride=1, padding=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(48, 48, kernel_size=1, stride=1, padding=0),
            nn.ReLU(inplace=True),
            nn.Conv2d(48, 48, kernel_size=1, stride=1, padding=0),
            nn.ReLU(inplace=True),
            nn.AvgPool2d(kernel_size=3, stride=2, padding=1),
            nn.Dropout(0.5),

            nn.Conv2d(48, 48, kernel_size=3, stride=1, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(48, 48, kernel_size=1, stride=1, padding=0),
            nn.ReLU(inplace=True),
            nn.Conv2d(48, 10, kernel_size=1, stride=1, padding=0),
            nn.ReLU(inplace=True),
            nn.AvgPool2d(kernel_size=8, stride=1, padding=0),
        )

    def forward(self, x):
        x = self.classifier(x)
        x = x.view(x.size(0), 10)
        return x


def save_state(model, best_acc):
    print("==> Saving model ...")
    os.makedirs("models", exist_ok=True)
    torch.save({"best_acc": best_acc, "state_dict": model.state_dict()}, "models/nin.pth.tar")


def train(epoch):
    model.train()
    for batch_idx, (data, target) in enumerate(trainloader):
        optimizer.zero_grad()
        output = model(data)
        loss = criterion(output, target)
        loss.backward()
        optimizer.step()
        if batch_idx % 100 == 0:
            print("Train Epoch: {} [{}/{} ({:.0f}%)]\tLoss: {:.6f}\tLR: {}".format(
                epoch, batch_idx * len(data), len(trainloader.dataset), 100. * batch_idx / len(trainloader),
                loss.item(), optimizer.param_groups[1]["lr"]))


def test():
    global best_acc
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in testloader:
            output = model(data)
            test_loss += criterion(output, target).item()
            pred = output.max(1, keepdim=True)[1]
            correct += pred.eq(target.view_as(pred)).sum().item()
    acc = 100. * correct / len(testloader.dataset)
    if acc > best_acc:
        best_acc = acc
        save_state(model, best_acc)
    test_loss /= len(testloader)
    print("\nTest set: Average loss: {:.4f}, Accuracy: {}/{} ({:.2f}%)".format(
        test_loss, correct, len(testloader.dataset), acc))
    print("Best Accuracy: {:.2f}%\n".format(best_acc))


def adjust_learning_rate(optimizer, epoch):
    update_list = [80, 160, 240]
    if epoch in update_list:
        for param_group in optimizer.param_groups:
            param_group["lr"] = param_group["lr"] * 0.1


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--cpu", action="store_true", help="set if only CPU is available")
    parser.add_argument("--data", action="store", default=os.environ.get("CIFARLAB_DATA", "./data"),
                        help="dataset path")
    parser.add_argument("--pretrained", action="store", default=None, help="the path to the pretrained model")
    parser.add_argument("--evaluate", action="store_true", help="evaluate the model")
    args = parser.parse_args()

    normalize = transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
    trainset = CIFAR10(root=args.data, train=True, transform=transforms.Compose([transforms.ToTensor(), normalize]))
    trainloader = torch.utils.data.DataLoader(trainset, batch_size=128, shuffle=True)
    testset = CIFAR10(root=args.data, train=False, transform=transforms.Compose([transforms.ToTensor(), normalize]))
    testloader = torch.utils.data.DataLoader(testset, batch_size=100, shuffle=False)

    model = Net()
    if not args.pretrained:
        best_acc = 0.0
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.data.normal_(0, 0.05)
                m.bias.data.zero_()
    else:
        pretrained_model = torch.load(args.pretrained)
        best_acc = pretrained_model["best_acc"]
        model.load_state_dict(pretrained_model["state_dict"])

    base_lr = 0.1
    params = []
    for key, value in dict(model.named_parameters()).items():
        if key == "classifier.20.weight":
            params += [{"params": [value], "lr": 0.1 * base_lr, "weight_decay": 0.0001}]
        elif key == "classifier.20.bias":
            params += [{"params": [value], "lr": 0.1 * base_lr, "weight_decay": 0.0}]
        elif "weight" in key:
            params += [{"params": [value], "lr": 1.0 * base_lr, "weight_decay": 0.0001}]
        else:
            params += [{"params": [value], "lr": 2.0 * base_lr, "weight_decay": 0.0}]
    optimizer = optim.SGD(params, lr=base_lr, momentum=0.9)
    criterion = nn.CrossEntropyLoss()

    if args.evaluate:
        test()
        exit(0)

    for epoch in range(1, 320):
        adjust_learning_rate(optimizer, epoch)
        train(epoch)
        test()
