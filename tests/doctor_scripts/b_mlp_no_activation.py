"""SAINT's MLP class only inserts an activation when one is passed (`act=None` by default) and the model
builds it without one, so its stacked Linear layers (batch-norm between them, no non-linearity) compose to a
single linear map. Written like SAINT's train.py: an argparse block with the repository's option names,
AdamW, model.train() per epoch, a validation/test evaluation every 5 epochs under model.eval() and
torch.no_grad() that keeps the best model's state, then model.train() again. The MLP here is the classifier
itself, over flattened images (SAINT's vision variant flattens images into tabular rows too)."""
import argparse
import os

import torch
import torchvision.transforms as transforms
from torch import nn, optim
from torch.utils.data import DataLoader, Subset

from cifar import CIFAR10

SOURCE = "https://github.com/somepago/saint/issues/23"
EXPECT = "linear-collapse"

parser = argparse.ArgumentParser()
parser.add_argument("--vision_dset", action="store_true", default=True)
parser.add_argument("--task", default="multiclass", type=str, choices=["binary", "multiclass", "regression"])
parser.add_argument("--mlp_hidden", default=[512, 256], type=int, nargs="+")
parser.add_argument("--optimizer", default="AdamW", type=str, choices=["AdamW", "Adam", "SGD"])
parser.add_argument("--scheduler", default="cosine", type=str, choices=["cosine", "linear"])
parser.add_argument("--lr", default=0.0001, type=float)
parser.add_argument("--epochs", default=100, type=int)
parser.add_argument("--batchsize", default=256, type=int)
parser.add_argument("--savemodelroot", default="./bestmodels", type=str)
parser.add_argument("--run_name", default="testrun", type=str)
parser.add_argument("--set_seed", default=1, type=int)
parser.add_argument("--dset_seed", default=5, type=int)
opt = parser.parse_args()


class MLP(nn.Module):
    def __init__(self, dims, act=None, use_bn=True):
        super().__init__()
        dims_pairs = list(zip(dims[:-1], dims[1:]))
        layers = []
        for ind, (dim_in, dim_out) in enumerate(dims_pairs):
            is_last = ind >= (len(dims_pairs) - 1)
            layers.append(nn.Linear(dim_in, dim_out))
            if is_last:
                continue
            if use_bn:
                layers.append(nn.BatchNorm1d(dim_out))
            if act is not None:
                layers.append(act)
        self.mlp = nn.Sequential(*layers)

    def forward(self, x):
        return self.mlp(x.flatten(1))


def classification_scores(model, dloader):
    correct = total = 0
    for x, y in dloader:
        correct += (model(x).argmax(dim=1) == y).sum().item()
        total += y.size(0)
    return 100 * correct / total


def main():
    torch.manual_seed(opt.set_seed)
    modelsave_path = os.path.join(os.getcwd(), opt.savemodelroot, "cifar10", opt.run_name)
    os.makedirs(modelsave_path, exist_ok=True)
    root = os.environ.get("CIFARLAB_DATA", "./data")
    tf = transforms.Compose([transforms.ToTensor(),
                             transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))])
    full = CIFAR10(root, train=True, transform=tf)
    g = torch.Generator().manual_seed(opt.dset_seed)
    perm = torch.randperm(len(full), generator=g).tolist()
    n_valid = len(full) // 10
    trainloader = DataLoader(Subset(full, perm[n_valid:]), batch_size=opt.batchsize, shuffle=True)
    validloader = DataLoader(Subset(full, perm[:n_valid]), batch_size=opt.batchsize, shuffle=False)
    testloader = DataLoader(CIFAR10(root, train=False, transform=tf), batch_size=opt.batchsize, shuffle=False)

    model = MLP([3 * 32 * 32, *opt.mlp_hidden, 10])  # no act= passed: no non-linearity anywhere
    criterion = nn.CrossEntropyLoss()
    if opt.optimizer == "SGD":
        optimizer = optim.SGD(model.parameters(), lr=opt.lr, momentum=0.9, weight_decay=5e-4)
        scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=opt.epochs)
    elif opt.optimizer == "Adam":
        optimizer = optim.Adam(model.parameters(), lr=opt.lr)
    else:
        optimizer = optim.AdamW(model.parameters(), lr=opt.lr)

    best_valid_accuracy = best_test_accuracy = 0
    print("Training begins now.")
    for epoch in range(opt.epochs):
        model.train()
        running_loss = 0.0
        for i, (x, y_gts) in enumerate(trainloader, 0):
            optimizer.zero_grad()
            y_outs = model(x)
            loss = criterion(y_outs, y_gts.squeeze())
            loss.backward()
            optimizer.step()
            if opt.optimizer == "SGD":
                scheduler.step()
            running_loss += loss.item()
        if epoch % 5 == 0:
            model.eval()
            with torch.no_grad():
                accuracy = classification_scores(model, validloader)
                test_accuracy = classification_scores(model, testloader)
                print("[EPOCH %d] VALID ACCURACY: %.3f, TEST ACCURACY: %.3f" % (epoch + 1, accuracy, test_accuracy))
                if accuracy > best_valid_accuracy:
                    best_valid_accuracy, best_test_accuracy = accuracy, test_accuracy
                    torch.save(model.state_dict(), "%s/bestmodel.pth" % modelsave_path)
            model.train()
    print("Accuracy on best model:  %.3f" % best_test_accuracy)


if __name__ == "__main__":
    main()
