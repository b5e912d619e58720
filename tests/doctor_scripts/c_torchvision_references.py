"""torchvision's classification reference (references/classification/train.py) reduced to what a CIFAR-10
run of it uses: get_args_parser() with the reference's option names, load_data() with a random crop + flip
training transform and a deterministic evaluation transform, RandomSampler / SequentialSampler loaders,
torchvision.models.get_model(), weight decay kept off the batch-norm parameters (set_weight_decay with
--norm-weight-decay 0), CrossEntropyLoss with label smoothing 0.1 (the recipes' value), SGD momentum 0.9
with StepLR, train_one_epoch() under model.train() with gradient clipping when asked, evaluate() under
model.eval() and torch.inference_mode(), a checkpoint per epoch in --output-dir. Correct. resnet18 at
CIFAR resolution, as the corpus pipeline."""
import datetime
import os
import time

import torch
import torch.utils.data
import torchvision
import torchvision.transforms as T
from torch import nn

from cifar import CIFAR10

SOURCE = "https://github.com/pytorch/vision/tree/main/references/classification (train.py)"
EXPECT = None

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def accuracy(output, target, topk=(1,)):
    with torch.inference_mode():
        maxk = max(topk)
        _, pred = output.topk(maxk, 1, True, True)
        correct = pred.t().eq(target[None])
        return [correct[:k].flatten().sum(dtype=torch.float32).item() * 100.0 / target.size(0) for k in topk]


def set_weight_decay(model, weight_decay, norm_weight_decay=None):
    norm_classes = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)
    params = {"other": [], "norm": []}
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if not p.requires_grad:
                continue
            key = "norm" if norm_weight_decay is not None and isinstance(module, norm_classes) else "other"
            params[key].append(p)
    groups = [{"params": params["other"], "weight_decay": weight_decay}]
    if params["norm"]:
        groups.append({"params": params["norm"], "weight_decay": norm_weight_decay})
    return groups


def train_one_epoch(model, criterion, optimizer, data_loader, device, epoch, args):
    model.train()
    start_time = time.time()
    for i, (image, target) in enumerate(data_loader):
        image, target = image.to(device), target.to(device)
        output = model(image)
        loss = criterion(output, target)
        optimizer.zero_grad()
        loss.backward()
        if args.clip_grad_norm is not None:
            nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad_norm)
        optimizer.step()
        if i % args.print_freq == 0:
            acc1, acc5 = accuracy(output, target, topk=(1, 5))
            print(f"Epoch: [{epoch}] [{i}/{len(data_loader)}] loss {loss.item():.4f} acc1 {acc1:.2f} "
                  f"acc5 {acc5:.2f} lr {optimizer.param_groups[0]['lr']:g} time {time.time() - start_time:.1f}s")


def evaluate(model, criterion, data_loader, device, log_suffix=""):
    model.eval()
    n = 0
    loss_sum = acc1_sum = acc5_sum = 0.0
    with torch.inference_mode():
        for image, target in data_loader:
            image, target = image.to(device, non_blocking=True), target.to(device, non_blocking=True)
            output = model(image)
            loss = criterion(output, target)
            acc1, acc5 = accuracy(output, target, topk=(1, 5))
            batch_size = image.shape[0]
            loss_sum, acc1_sum, acc5_sum = (loss_sum + loss.item() * batch_size, acc1_sum + acc1 * batch_size,
                                            acc5_sum + acc5 * batch_size)
            n += batch_size
    print(f"{log_suffix} Acc@1 {acc1_sum / n:.3f} Acc@5 {acc5_sum / n:.3f} loss {loss_sum / n:.4f}")
    return acc1_sum / n


def load_data(data_path, args):
    print("Loading data")
    dataset = CIFAR10(data_path, train=True, transform=T.Compose([
        T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(args.hflip_prob), T.ToTensor(), T.Normalize(MEAN, STD)]))
    dataset_test = CIFAR10(data_path, train=False, transform=T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)]))
    train_sampler = torch.utils.data.RandomSampler(dataset)
    test_sampler = torch.utils.data.SequentialSampler(dataset_test)
    return dataset, dataset_test, train_sampler, test_sampler


def main(args):
    if args.output_dir:
        os.makedirs(args.output_dir, exist_ok=True)
    print(args)
    device = torch.device(args.device if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True

    dataset, dataset_test, train_sampler, test_sampler = load_data(args.data_path, args)
    num_classes = len(dataset.classes)
    data_loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, sampler=train_sampler,
                                              num_workers=args.workers, pin_memory=torch.cuda.is_available())
    data_loader_test = torch.utils.data.DataLoader(dataset_test, batch_size=args.batch_size, sampler=test_sampler,
                                                   num_workers=args.workers, pin_memory=torch.cuda.is_available())

    print("Creating model")
    model = torchvision.models.get_model(args.model, weights=args.weights, num_classes=num_classes)
    model.to(device)

    criterion = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    parameters = set_weight_decay(model, args.weight_decay, norm_weight_decay=args.norm_weight_decay)
    optimizer = torch.optim.SGD(parameters, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
                                nesterov="nesterov" in args.opt)
    lr_scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=args.lr_step_size, gamma=args.lr_gamma)

    if args.test_only:
        evaluate(model, criterion, data_loader_test, device=device)
        return

    print("Start training")
    start_time = time.time()
    for epoch in range(args.start_epoch, args.epochs):
        train_one_epoch(model, criterion, optimizer, data_loader, device, epoch, args)
        lr_scheduler.step()
        evaluate(model, criterion, data_loader_test, device=device)
        if args.output_dir:
            checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                          "lr_scheduler": lr_scheduler.state_dict(), "epoch": epoch, "args": args}
            torch.save(checkpoint, os.path.join(args.output_dir, f"model_{epoch}.pth"))
            torch.save(checkpoint, os.path.join(args.output_dir, "checkpoint.pth"))
    total_time_str = str(datetime.timedelta(seconds=int(time.time() - start_time)))
    print(f"Training time {total_time_str}")


def get_args_parser(add_help=True):
    import argparse

    parser = argparse.ArgumentParser(description="PyTorch Classification Training", add_help=add_help)
    parser.add_argument("--data-path", default=os.environ.get("CIFARLAB_DATA", "./data"), type=str)
    parser.add_argument("--model", default="resnet18", type=str, help="model name")
    parser.add_argument("--device", default="cuda", type=str, help="device (Use cuda or cpu Default: cuda)")
    parser.add_argument("-b", "--batch-size", default=32, type=int, help="images per gpu")
    parser.add_argument("--epochs", default=90, type=int, metavar="N", help="number of total epochs to run")
    parser.add_argument("-j", "--workers", default=0, type=int, metavar="N", help="number of data loading workers")
    parser.add_argument("--opt", default="sgd", type=str, help="optimizer")
    parser.add_argument("--lr", default=0.1, type=float, help="initial learning rate")
    parser.add_argument("--momentum", default=0.9, type=float, metavar="M", help="momentum")
    parser.add_argument("--wd", "--weight-decay", default=1e-4, type=float, metavar="W", dest="weight_decay")
    parser.add_argument("--norm-weight-decay", default=0.0, type=float,
                        help="weight decay for Normalization layers (the recipes: 0.0; None: same value as --wd)")
    parser.add_argument("--label-smoothing", default=0.1, type=float, help="label smoothing (the recipes: 0.1)",
                        dest="label_smoothing")
    parser.add_argument("--lr-step-size", default=30, type=int, help="decrease lr every step-size epochs")
    parser.add_argument("--lr-gamma", default=0.1, type=float, help="decrease lr by a factor of lr-gamma")
    parser.add_argument("--hflip-prob", default=0.5, type=float, help="random horizontal flip probability")
    parser.add_argument("--clip-grad-norm", default=None, type=float, help="the maximum gradient norm")
    parser.add_argument("--print-freq", default=10, type=int, help="print frequency")
    parser.add_argument("--output-dir", default=".", type=str, help="path to save outputs")
    parser.add_argument("--start-epoch", default=0, type=int, metavar="N", help="start epoch")
    parser.add_argument("--test-only", dest="test_only", help="Only test the model", action="store_true")
    parser.add_argument("--weights", default=None, type=str, help="the weights enum name to load")
    return parser


if __name__ == "__main__":
    args = get_args_parser().parse_args()
    main(args)
