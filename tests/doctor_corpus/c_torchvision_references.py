"""torchvision's classification reference (references/classification/train.py): train_one_epoch() calls
model.train() and steps SGD with momentum and label smoothing; evaluate() calls model.eval() under
torch.inference_mode(); the model family here is torchvision's ResNet (resnet18 at CIFAR resolution)."""
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.models import resnet18

from .common import crop_flip, plain

SOURCE = "https://github.com/pytorch/vision/tree/main/references/classification (train.py)"
BUG = None
EXPECT = None


def train_one_step(model, image, target, criterion, optimizer):
    model.train()
    output = model(image)
    loss = criterion(output, target)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss


def evaluate(model, data_loader, criterion):
    model.eval()
    n = correct = 0
    loss_sum = 0.0
    with torch.inference_mode():
        for image, target in data_loader:
            output = model(image)
            loss_sum += criterion(output, target).item() * image.shape[0]
            correct += (output.argmax(1) == target).sum().item()
            n += image.shape[0]
    return loss_sum / n, correct / n


def pipeline(d):
    model = resnet18(num_classes=10)
    return dict(model=model, loss_fn=nn.CrossEntropyLoss(label_smoothing=0.1),
                optimizer=torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4),
                train_loader=DataLoader(d.cifar10(True, crop_flip()), batch_size=32, shuffle=True),
                eval_loader=DataLoader(d.cifar10(False, plain()), batch_size=64),
                num_classes=10, train_step=train_one_step, evaluate=evaluate)
