"""Linear classification on a frozen feature extractor, kdexd/virtex scripts/clf_linear.py style (iteration loop over a
cycled dataloader, periodic validation), with a small torchvision-like ResNet on CIFAR-10.
Bug: every backbone parameter is frozen (requires_grad=False, only `fc` trains) but the model runs in train() mode, so
the backbone's BatchNorm layers keep updating running mean/var and the "frozen" backbone still changes (virtex#16).
"""
import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms

from cifarlab.data import CIFAR10

SOURCE = "https://github.com/kdexd/virtex/issues/16"
EXPECT = "frozen-bn-updating"

# fmt: off
parser = argparse.ArgumentParser(
    description="""Do image classification with linear models and frozen
    feature extractor."""
)
parser.add_argument(
    "--weight-init", choices=["random", "torchvision"], default="random",
    help="""'random' keeps the backbone's random initialization (baseline);
    'torchvision' loads a state dict from --checkpoint-path.""",
)
parser.add_argument("--checkpoint-path", default=None, help="Backbone checkpoint.")
parser.add_argument("--batch-size", type=int, default=128)
parser.add_argument("--lr", type=float, default=0.1)
parser.add_argument("--num-iterations", type=int, default=2000)
parser.add_argument("--log-every", type=int, default=20)
parser.add_argument(
    "--checkpoint-every", type=int, default=100,
    help="Validate after every these many iterations.",
)
# fmt: on

FEATURE_SIZE = 128
NUM_CLASSES = 10


class BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision-like ResNet (conv1/bn1/layer1..3/avgpool/fc) sized for 32x32 inputs."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = BasicBlock(32, 32)
        self.layer2 = BasicBlock(32, 64, stride=2)
        self.layer3 = BasicBlock(64, FEATURE_SIZE, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        # Set to identity during pretraining, as in virtex's visual backbone.
        self.fc = nn.Identity()

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def cycle(dataloader, device):
    while True:
        for images, labels in dataloader:
            yield {"image": images.to(device), "label": labels.to(device)}


def main(_A: argparse.Namespace):
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    normalize = transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    train_dataset = CIFAR10(root=None, train=True, download=False, n=2048, transform=transforms.Compose([
        transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
        transforms.ToTensor(), normalize]))
    val_dataset = CIFAR10(root=None, train=False, download=False, n=512, transform=transforms.Compose([
        transforms.ToTensor(), normalize]))
    train_dataloader = DataLoader(train_dataset, batch_size=_A.batch_size, shuffle=True,
                                  num_workers=0, drop_last=False)
    val_dataloader = DataLoader(val_dataset, batch_size=_A.batch_size, shuffle=False,
                                num_workers=0, drop_last=False)

    model = ResNet()
    if _A.weight_init == "torchvision":
        # strict=False: the state dict may hold weights for the last fc layer.
        model.load_state_dict(torch.load(_A.checkpoint_path, map_location="cpu")["state_dict"], strict=False)

    # Add back the FC layer and re-initialize it.
    model.fc = nn.Linear(FEATURE_SIZE, NUM_CLASSES)
    model = model.to(device)
    torch.nn.init.normal_(model.fc.weight.data, mean=0.0, std=0.01)
    torch.nn.init.constant_(model.fc.bias.data, 0.0)

    # Freeze all layers except FC.
    for name, param in model.named_parameters():
        if "fc" not in name:
            param.requires_grad = False

    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                                lr=_A.lr, momentum=0.9, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=_A.num_iterations)

    train_dataloader_iter = cycle(train_dataloader, device)
    model.train()

    for iteration in range(1, _A.num_iterations + 1):
        optimizer.zero_grad()
        batch = next(train_dataloader_iter)
        logits = model(batch["image"])
        loss = criterion(logits, batch["label"])
        loss.backward()
        optimizer.step()
        scheduler.step()

        if iteration % _A.log_every == 0:
            print(f"Iter: {iteration} | Loss: {loss.item():.3f} | LR: {optimizer.param_groups[0]['lr']:.4f}")

        # ---------------------------------------------------------------------
        #   VALIDATION
        # ---------------------------------------------------------------------
        if iteration % _A.checkpoint_every == 0:
            torch.set_grad_enabled(False)
            model.eval()
            total_val_loss, correct, total = 0.0, 0, 0
            for val_iteration, batch in enumerate(val_dataloader, start=1):
                images, labels = batch[0].to(device), batch[1].to(device)
                logits = model(images)
                total_val_loss += criterion(logits, labels).item()
                correct += (logits.argmax(1) == labels).sum().item()
                total += labels.size(0)
            torch.set_grad_enabled(True)
            model.train()
            print(f"Iter: {iteration} | Val loss: {total_val_loss / val_iteration:.3f} "
                  f"| Top-1 accuracy: {100.0 * correct / total:.2f}")


if __name__ == "__main__":
    _A = parser.parse_args()
    main(_A)
