"""MultiBench's supervised training structure calls model.eval() before the validation loop and then, a few
lines later inside that loop (the training branch's code repeated), model.train() before each forward:
validation runs with dropout on and batch-norm normalizing with (and updating its running statistics from)
validation batches, so validation losses and the "best" checkpoint do not reflect the model (fixed by
removing model.train() from the validation code). Written like the repository: get_dataloader() returning
train/valid/test loaders, train(encoder, head, ...) with optimtype / lr / weight_decay / objective keyword
arguments, gradient clipping at 8, the best model by validation loss saved with torch.save(model, save),
then test() on the reloaded model. One modality: a flattening MLP encoder and a classification head."""
import os

import torch
import torchvision.transforms as transforms
from torch import nn
from torch.utils.data import DataLoader, Subset

from cifar import CIFAR10

SOURCE = "https://github.com/pliang279/MultiBench/issues/26"
EXPECT = "eval-mode"

def get_dataloader(path, batch_size=32, num_workers=0, valid_fraction=0.1):
    tf = transforms.Compose([transforms.ToTensor(),
                             transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))])
    full = CIFAR10(path, train=True, transform=tf)
    n_valid = int(valid_fraction * len(full))
    traindata = DataLoader(Subset(full, range(n_valid, len(full))), shuffle=True, num_workers=num_workers,
                           batch_size=batch_size)
    validdata = DataLoader(Subset(full, range(n_valid)), shuffle=False, num_workers=num_workers,
                           batch_size=2 * batch_size)
    testdata = DataLoader(CIFAR10(path, train=False, transform=tf), shuffle=False, num_workers=num_workers,
                          batch_size=2 * batch_size)
    return traindata, validdata, testdata


def train(encoder, head, train_dataloader, valid_dataloader, total_epochs, early_stop=False,
          optimtype=torch.optim.RMSprop, lr=0.001, weight_decay=0.0, objective=nn.CrossEntropyLoss(),
          save="best.pt", clip_val=8, modalnum=0):
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    model = nn.Sequential(encoder, head).to(device)
    op = optimtype([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)
    bestvalloss = 10000
    patience = 0
    for epoch in range(total_epochs):
        totalloss = 0.0
        totals = 0
        model.train()
        for j in train_dataloader:
            op.zero_grad()
            model.train()
            out = model(j[modalnum].float().to(device))
            loss = objective(out, j[-1].to(device))
            totalloss += loss * len(j[-1])
            totals += len(j[-1])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_val)
            op.step()
        print("Epoch " + str(epoch) + " train loss: " + str((totalloss / totals).item()))
        model.eval()
        with torch.no_grad():
            totalloss = 0.0
            true = []
            for j in valid_dataloader:
                model.train()
                out = model(j[modalnum].float().to(device))
                loss = objective(out, j[-1].to(device))
                totalloss += loss * len(j[-1])
                true.append(j[-1])
        true = torch.cat(true, 0)
        totals = true.shape[0]
        valloss = totalloss / totals
        print("Epoch " + str(epoch) + " valid loss: " + str(valloss.item()))
        if valloss < bestvalloss:
            patience = 0
            bestvalloss = valloss
            print("Saving Best")
            torch.save(model, save)
        else:
            patience += 1
        if early_stop and patience > 7:
            break


def test(model, test_dataloader, criterion=nn.CrossEntropyLoss(), modalnum=0):
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    with torch.no_grad():
        totalloss = 0.0
        pred = []
        true = []
        for j in test_dataloader:
            model.eval()
            out = model(j[modalnum].float().to(device))
            totalloss += criterion(out, j[-1].to(device)) * len(j[-1])
            pred.append(torch.argmax(out, 1))
            true.append(j[-1])
        pred, true = torch.cat(pred, 0).cpu(), torch.cat(true, 0)
        print("loss: " + str((totalloss / true.shape[0]).item()))
        print("acc: " + str((pred == true).float().mean().item()))


if __name__ == "__main__":
    traindata, validdata, testdata = get_dataloader(os.environ.get("CIFARLAB_DATA", "./data"), batch_size=32)
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 256), nn.BatchNorm1d(256), nn.ReLU())
    head = nn.Sequential(nn.Dropout(0.1), nn.Linear(256, 10))
    train(encoder, head, traindata, validdata, 30, early_stop=True, optimtype=torch.optim.AdamW, lr=1e-3,
          weight_decay=0.01, save="best.pt")
    print("Testing:")
    model = torch.load("best.pt", weights_only=False)
    test(model, testdata)
