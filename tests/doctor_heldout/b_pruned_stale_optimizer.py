'''Prune-then-fine-tune on CIFAR-10 in the style of microsoft/nni examples/model_compress/pruning/basic_pruners_torch.py:
pre-train a small VGG, L1-filter prune it and "speed it up" (replace every Conv/BN/Linear with a smaller one holding the
kept weights, as ModelSpeedup does), then fine-tune. Bug: fine-tuning reuses the pre-training optimizer, which still
holds the replaced layers' parameters, so the pruned model is never updated (nni#4521: create a new optimizer).
'''
import argparse
import copy

import torch
import torch.nn as nn
import torch.optim as optim
from torch.optim.lr_scheduler import MultiStepLR
from torchvision import transforms

from cifarlab.data import CIFAR10

SOURCE = "https://github.com/microsoft/nni/issues/4521"
EXPECT = "optimizer-params"


class VGG(nn.Module):
    def __init__(self, cfg=(32, 'M', 64, 'M', 128, 'M', 128), num_classes=10):
        super(VGG, self).__init__()
        layers, in_channels = [], 3
        for v in cfg:
            if v == 'M':
                layers += [nn.MaxPool2d(kernel_size=2, stride=2)]
            else:
                layers += [nn.Conv2d(in_channels, v, kernel_size=3, padding=1, bias=False),
                           nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                in_channels = v
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(in_channels, num_classes)

    def forward(self, x):
        x = self.pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def get_data(data_dir, batch_size, test_batch_size):
    normalize = transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
    train_loader = torch.utils.data.DataLoader(
        CIFAR10(data_dir, train=True, download=False, n=2048, transform=transforms.Compose([
            transforms.RandomHorizontalFlip(),
            transforms.RandomCrop(32, 4),
            transforms.ToTensor(),
            normalize,
        ])),
        batch_size=batch_size, shuffle=True, num_workers=0)
    test_loader = torch.utils.data.DataLoader(
        CIFAR10(data_dir, train=False, download=False, n=512, transform=transforms.Compose([
            transforms.ToTensor(),
            normalize,
        ])),
        batch_size=test_batch_size, shuffle=False, num_workers=0)
    criterion = torch.nn.CrossEntropyLoss()
    return train_loader, test_loader, criterion


def train(args, model, device, train_loader, criterion, optimizer, epoch):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = criterion(output, target)
        loss.backward()
        optimizer.step()
        if batch_idx % args.log_interval == 0:
            print('Train Epoch: {} [{}/{} ({:.0f}%)]\tLoss: {:.6f}'.format(
                epoch, batch_idx * len(data), len(train_loader.dataset),
                100. * batch_idx / len(train_loader), loss.item()))


def test(args, model, device, criterion, test_loader):
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += criterion(output, target).item() * data.size(0)
            pred = output.argmax(dim=1, keepdim=True)
            correct += pred.eq(target.view_as(pred)).sum().item()
    test_loss /= len(test_loader.dataset)
    acc = 100 * correct / len(test_loader.dataset)
    print('Loss: {:.4f}  Accuracy: {:.2f}%\n'.format(test_loss, acc))
    return acc


def get_trained_model_optimizer(args, device, train_loader, test_loader, criterion):
    model = VGG().to(device)
    if args.pretrained_model_dir is not None:
        model.load_state_dict(torch.load(args.pretrained_model_dir))
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, weight_decay=5e-4)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        scheduler = MultiStepLR(
            optimizer, milestones=[int(args.pretrain_epochs * 0.5), int(args.pretrain_epochs * 0.75)], gamma=0.1)

    print('start pre-training...')
    if args.pretrained_model_dir is None:
        best_acc, state_dict = -1, None
        for epoch in range(args.pretrain_epochs):
            train(args, model, device, train_loader, criterion, optimizer, epoch)
            scheduler.step()
            acc = test(args, model, device, criterion, test_loader)
            if acc > best_acc:
                best_acc = acc
                state_dict = copy.deepcopy(model.state_dict())
        model.load_state_dict(state_dict)
    else:
        best_acc = test(args, model, device, criterion, test_loader)
    print('Pretrained model acc:', best_acc)
    return model, optimizer


@torch.no_grad()
def l1_filter_prune_and_speedup(model, sparsity):
    """Keep the filters with the largest L1 norm in every conv and rebuild the layers at the smaller shapes."""
    features = model.features
    kept_in = torch.arange(3)
    for i, m in enumerate(list(features)):
        if not isinstance(m, nn.Conv2d):
            continue
        bn = features[i + 1]
        n_keep = max(1, int(m.out_channels * (1 - sparsity)))
        l1_norm = m.weight.abs().sum(dim=(1, 2, 3))
        kept = torch.sort(torch.argsort(l1_norm, descending=True)[:n_keep]).values
        conv = nn.Conv2d(len(kept_in), n_keep, m.kernel_size, m.stride, m.padding, bias=False)
        conv.weight.copy_(m.weight[kept][:, kept_in])
        new_bn = nn.BatchNorm2d(n_keep)
        for name in ('weight', 'bias', 'running_mean', 'running_var'):
            getattr(new_bn, name).copy_(getattr(bn, name)[kept])
        features[i], features[i + 1] = conv, new_bn
        kept_in = kept
    fc = model.classifier
    new_fc = nn.Linear(len(kept_in), fc.out_features)
    new_fc.weight.copy_(fc.weight[:, kept_in])
    new_fc.bias.copy_(fc.bias)
    model.classifier = new_fc
    return model


def main(args):
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    # prepare model and data
    train_loader, test_loader, criterion = get_data(args.data_dir, args.batch_size, args.test_batch_size)
    model, optimizer = get_trained_model_optimizer(args, device, train_loader, test_loader, criterion)

    print('start pruning...')
    n_before = sum(p.numel() for p in model.parameters())
    model = l1_filter_prune_and_speedup(model, args.sparsity).to(device)
    n_after = sum(p.numel() for p in model.parameters())
    print('params: {} -> {}'.format(n_before, n_after))
    print('Pruned model acc (before fine-tuning):')
    test(args, model, device, criterion, test_loader)

    if args.fine_tune:
        print('start finetuning...')
        best_top1 = 0
        for epoch in range(args.fine_tune_epochs):
            train(args, model, device, train_loader, criterion, optimizer, epoch)
            top1 = test(args, model, device, criterion, test_loader)
            best_top1 = max(best_top1, top1)
        print('Best fine-tuned acc:', best_top1)


if __name__ == '__main__':
    def str2bool(s):
        if isinstance(s, bool):
            return s
        if s.lower() in ('yes', 'true', 't', 'y', '1'):
            return True
        if s.lower() in ('no', 'false', 'f', 'n', '0'):
            return False
        raise argparse.ArgumentTypeError('Boolean value expected.')

    parser = argparse.ArgumentParser(description='PyTorch Example for model compression')
    parser.add_argument('--data-dir', type=str, default=None, help='dataset directory')
    parser.add_argument('--pretrained-model-dir', type=str, default=None, help='path to pretrained model')
    parser.add_argument('--pretrain-epochs', type=int, default=3, help='number of epochs to pretrain the model')
    parser.add_argument('--batch-size', type=int, default=64, help='input batch size for training (default: 64)')
    parser.add_argument('--test-batch-size', type=int, default=64, help='input batch size for testing (default: 64)')
    parser.add_argument('--fine-tune', type=str2bool, default=True, help='whether to fine-tune the pruned model')
    parser.add_argument('--fine-tune-epochs', type=int, default=20, help='epochs to fine tune')
    parser.add_argument('--log-interval', type=int, default=10, metavar='N',
                        help='how many batches to wait before logging training status')
    parser.add_argument('--sparsity', type=float, default=0.5, help='target overall target sparsity')
    args = parser.parse_args()
    main(args)
