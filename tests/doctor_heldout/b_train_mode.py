"""MLP with dropout on CIFAR-10, in the style of optuna's pytorch_simple example.
Bug: model.train() is called once before the epoch loop; the per-epoch validation
calls model.eval() and training never switches back to train mode (dropout off).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
import torch.utils.data
from torchvision import transforms

from cifarlab.data import CIFAR10

SOURCE = "https://github.com/optuna/optuna/pull/1725"
EXPECT = "train-mode"

DEVICE = torch.device("cpu")
BATCHSIZE = 128
CLASSES = 10
EPOCHS = 10
# Fixed values standing in for the trial's suggestions.
PARAMS = {"n_layers": 2, "dropout": 0.4, "n_units": [256, 128], "optimizer": "Adam", "lr": 1e-3}


class Net(nn.Module):
    def __init__(self, params):
        super().__init__()
        layers, input_dim = [], 32 * 32 * 3
        for i in range(params["n_layers"]):
            out_dim = params["n_units"][i]
            layers += [nn.Linear(input_dim, out_dim), nn.ReLU(), nn.Dropout(params["dropout"])]
            input_dim = out_dim
        layers.append(nn.Linear(input_dim, CLASSES))
        self.layers = nn.Sequential(*layers)

    def forward(self, data):
        data = data.view(-1, 32 * 32 * 3)
        return F.log_softmax(self.layers(data), dim=1)


def get_cifar10():
    tf = transforms.Compose([transforms.ToTensor(),
                             transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))])
    train_loader = torch.utils.data.DataLoader(
        CIFAR10(root=None, train=True, transform=tf, n=2048), batch_size=BATCHSIZE, shuffle=True)
    valid_loader = torch.utils.data.DataLoader(
        CIFAR10(root=None, train=False, transform=tf, n=512), batch_size=BATCHSIZE, shuffle=False)
    return train_loader, valid_loader


def objective(params):
    model = Net(params).to(DEVICE)
    optimizer = getattr(optim, params["optimizer"])(model.parameters(), lr=params["lr"])
    train_loader, valid_loader = get_cifar10()

    # Training of the model.
    model.train()
    for epoch in range(EPOCHS):
        for batch_idx, (data, target) in enumerate(train_loader):
            data, target = data.to(DEVICE), target.to(DEVICE)
            optimizer.zero_grad()
            output = model(data)
            loss = F.nll_loss(output, target)
            loss.backward()
            optimizer.step()

        # Validation of the model.
        model.eval()
        correct = 0
        with torch.no_grad():
            for data, target in valid_loader:
                data, target = data.to(DEVICE), target.to(DEVICE)
                pred = model(data).argmax(dim=1, keepdim=True)
                correct += pred.eq(target.view_as(pred)).sum().item()
        accuracy = correct / len(valid_loader.dataset)
        print("epoch {}: validation accuracy {:.4f}".format(epoch, accuracy))
    return accuracy


if __name__ == "__main__":
    print("Final accuracy:", objective(PARAMS))
