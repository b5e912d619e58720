"""chengyangfu/pytorch-vgg-cifar10's main.py training torchvision's VGG with batch-norm (the vgg11_bn layout at
reduced width): conv-BN-ReLU(inplace=True) blocks, `model.features` wrapped in DataParallel as the repository
does, and torchvision's classifier Linear-ReLU(inplace=True)-Dropout-Linear-ReLU(inplace=True)-Dropout-Linear.
The repository's argparse options and settings for its BN variant: SGD lr 0.05, momentum 0.9, weight decay
5e-4, batch 128, lr halved every 30 epochs, flip + crop augmentation for training only, train() under
model.train() with AverageMeters, validate() under model.eval() and torch.no_grad(), a checkpoint per epoch
in --save-dir. Correct (in-place ReLUs after batch-norm are fine for autograd)."""
import argparse
import os
import shutil
import time

import torch
import torch.nn as nn
import torch.nn.parallel
import torch.optim
import torch.utils.data
import torchvision.transforms as transforms

from cifar import CIFAR10

SOURCE = ("https://github.com/pytorch/vision/blob/main/torchvision/models/vgg.py; "
          "https://github.com/chengyangfu/pytorch-vgg-cifar10")
EXPECT = None

cfg = {"A": [16, "M", 32, "M", 64, 64, "M", 128, 128, "M", 128, 128, "M"]}  # vgg11 at 1/4 width


class VGG(nn.Module):
    def __init__(self, features, num_classes=10):
        super(VGG, self).__init__()
        self.features = features
        self.classifier = nn.Sequential(
            nn.Linear(128, 128), nn.ReLU(True), nn.Dropout(),
            nn.Linear(128, 128), nn.ReLU(True), nn.Dropout(),
            nn.Linear(128, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)

    def forward(self, x):
        x = self.features(x)
        x = torch.flatten(x, 1)
        x = self.classifier(x)
        return x


def make_layers(cfg, batch_norm=False):
    layers = []
    in_channels = 3
    for v in cfg:
        if v == "M":
            layers += [nn.MaxPool2d(kernel_size=2, stride=2)]
        else:
            conv2d = nn.Conv2d(in_channels, v, kernel_size=3, padding=1)
            if batch_norm:
                layers += [conv2d, nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
            else:
                layers += [conv2d, nn.ReLU(inplace=True)]
            in_channels = v
    return nn.Sequential(*layers)


def vgg11_bn():
    return VGG(make_layers(cfg["A"], batch_norm=True))


model_names = ["vgg11_bn"]
parser = argparse.ArgumentParser(description="PyTorch CIFAR10 Training")
parser.add_argument("--arch", "-a", metavar="ARCH", default="vgg11_bn", choices=model_names)
parser.add_argument("-j", "--workers", default=0, type=int, metavar="N", help="number of data loading workers")
parser.add_argument("--epochs", default=300, type=int, metavar="N", help="number of total epochs to run")
parser.add_argument("--start-epoch", default=0, type=int, metavar="N", help="manual epoch number")
parser.add_argument("-b", "--batch-size", default=128, type=int, metavar="N", help="mini-batch size")
parser.add_argument("--lr", "--learning-rate", default=0.05, type=float, metavar="LR", help="initial learning rate")
parser.add_argument("--momentum", default=0.9, type=float, metavar="M", help="momentum")
parser.add_argument("--weight-decay", "--wd", default=5e-4, type=float, metavar="W", help="weight decay")
parser.add_argument("--print-freq", "-p", default=20, type=int, metavar="N", help="print frequency")
parser.add_argument("-e", "--evaluate", dest="evaluate", action="store_true", help="evaluate model on validation set")
parser.add_argument("--cpu", dest="cpu", action="store_true", help="use cpu")
parser.add_argument("--save-dir", dest="save_dir", default="save_temp", type=str)
parser.add_argument("--data", default=os.environ.get("CIFARLAB_DATA", "./data"), type=str)

best_prec1 = 0


def main():
    global args, best_prec1
    args = parser.parse_args()
    if not torch.cuda.is_available():
        args.cpu = True

    if not os.path.exists(args.save_dir):
        os.makedirs(args.save_dir)

    model = vgg11_bn()
    model.features = torch.nn.DataParallel(model.features)
    if args.cpu:
        model.cpu()
    else:
        model.cuda()

    normalize = transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    train_loader = torch.utils.data.DataLoader(
        CIFAR10(root=args.data, train=True, transform=transforms.Compose([
            transforms.RandomHorizontalFlip(), transforms.RandomCrop(32, 4), transforms.ToTensor(), normalize,
        ]), download=True),
        batch_size=args.batch_size, shuffle=True, num_workers=args.workers, pin_memory=not args.cpu)
    val_loader = torch.utils.data.DataLoader(
        CIFAR10(root=args.data, train=False, transform=transforms.Compose([transforms.ToTensor(), normalize])),
        batch_size=args.batch_size, shuffle=False, num_workers=args.workers, pin_memory=not args.cpu)

    criterion = nn.CrossEntropyLoss()
    if not args.cpu:
        criterion = criterion.cuda()
    optimizer = torch.optim.SGD(model.parameters(), args.lr, momentum=args.momentum, weight_decay=args.weight_decay)

    if args.evaluate:
        validate(val_loader, model, criterion)
        return

    for epoch in range(args.start_epoch, args.epochs):
        adjust_learning_rate(optimizer, epoch)
        train(train_loader, model, criterion, optimizer, epoch)
        prec1 = validate(val_loader, model, criterion)
        is_best = prec1 > best_prec1
        best_prec1 = max(prec1, best_prec1)
        save_checkpoint({"epoch": epoch + 1, "state_dict": model.state_dict(), "best_prec1": best_prec1}, is_best,
                        filename=os.path.join(args.save_dir, "checkpoint_{}.tar".format(epoch)))


def train(train_loader, model, criterion, optimizer, epoch):
    batch_time, data_time, losses, top1 = AverageMeter(), AverageMeter(), AverageMeter(), AverageMeter()
    model.train()
    end = time.time()
    for i, (input, target) in enumerate(train_loader):
        data_time.update(time.time() - end)
        if not args.cpu:
            input, target = input.cuda(), target.cuda()
        output = model(input)
        loss = criterion(output, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        output = output.float()
        loss = loss.float()
        prec1 = accuracy(output.data, target)[0]
        losses.update(loss.item(), input.size(0))
        top1.update(prec1.item(), input.size(0))
        batch_time.update(time.time() - end)
        end = time.time()
        if i % args.print_freq == 0:
            print("Epoch: [{0}][{1}/{2}]\tTime {batch_time.val:.3f} ({batch_time.avg:.3f})\t"
                  "Loss {loss.val:.4f} ({loss.avg:.4f})\tPrec@1 {top1.val:.3f} ({top1.avg:.3f})".format(
                      epoch, i, len(train_loader), batch_time=batch_time, loss=losses, top1=top1))


def validate(val_loader, model, criterion):
    losses, top1 = AverageMeter(), AverageMeter()
    model.eval()
    for i, (input, target) in enumerate(val_loader):
        if not args.cpu:
            input, target = input.cuda(), target.cuda()
        with torch.no_grad():
            output = model(input)
            loss = criterion(output, target)
        prec1 = accuracy(output.float().data, target)[0]
        losses.update(loss.float().item(), input.size(0))
        top1.update(prec1.item(), input.size(0))
    print(" * Prec@1 {top1.avg:.3f}".format(top1=top1))
    return top1.avg


def save_checkpoint(state, is_best, filename="checkpoint.pth.tar"):
    torch.save(state, filename)
    if is_best:
        shutil.copyfile(filename, os.path.join(args.save_dir, "model_best.pth.tar"))


class AverageMeter(object):
    """Computes and stores the average and current value"""

    def __init__(self):
        self.reset()

    def reset(self):
        self.val = self.avg = self.sum = self.count = 0

    def update(self, val, n=1):
        self.val = val
        self.sum += val * n
        self.count += n
        self.avg = self.sum / self.count


def adjust_learning_rate(optimizer, epoch):
    """Sets the learning rate to the initial LR decayed by 2 every 30 epochs"""
    lr = args.lr * (0.5 ** (epoch // 30))
    for param_group in optimizer.param_groups:
        param_group["lr"] = lr


def accuracy(output, target, topk=(1,)):
    """Computes the precision@k for the specified values of k"""
    maxk = max(topk)
    batch_size = target.size(0)
    _, pred = output.topk(maxk, 1, True, True)
    pred = pred.t()
    correct = pred.eq(target.view(1, -1).expand_as(pred))
    return [correct[:k].reshape(-1).float().sum(0).mul_(100.0 / batch_size) for k in topk]


if __name__ == "__main__":
    main()
