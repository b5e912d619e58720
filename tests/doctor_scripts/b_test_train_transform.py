"""The benchmark's Cifar10DataModule.setup() decides both transforms by testing `self.custom_train_transform
is None` (the second test should check custom_test_transform), and builds its validation set with
random_split() of the CIFAR-10 training dataset, which carries the training transform: with the custom
RandomResizedCrop training transform of main.py, every validation pass (the metric the best checkpoint is
chosen by, and the "validation accuracy" main.py reports) sees randomly cropped images, different on
every pass. Written like the repository: a LightningDataModule-style class (prepare_data / setup /
*_dataloader), a LightningModule-style classifier (training_step / validation_step / configure_optimizers),
main.py's argparse, and a trainer that fits with a validation pass every epoch (a sanity check of two
validation batches first), keeps the best checkpoint by validation accuracy, then tests on the validation
and test loaders. The trainer is a small local stand-in for pl.Trainer (no Lightning dependency); the
network is a small CNN instead of MobileNet-v3."""
import argparse
import os
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data.dataset import random_split
from torchvision import transforms

from cifar import CIFAR10

SOURCE = "https://github.com/rasbt/b3-basic-batchsize-benchmark/issues/6"
EXPECT = "eval-augmented"

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


class Cifar10DataModule:
    def __init__(self, batch_size, train_transform=None, test_transform=None, num_workers=0, data_path="./"):
        self.data_path = data_path
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.custom_train_transform = train_transform
        self.custom_test_transform = test_transform

    def prepare_data(self):
        CIFAR10(root=self.data_path, download=False)

    def setup(self, stage=None):
        if self.custom_train_transform is None:
            self.train_transform = transforms.Compose([transforms.Resize((36, 36)), transforms.RandomCrop((32, 32)),
                                                       transforms.ToTensor()])
        else:
            self.train_transform = self.custom_train_transform

        if self.custom_train_transform is None:
            self.test_transform = transforms.Compose([transforms.Resize((36, 36)), transforms.CenterCrop((32, 32)),
                                                      transforms.ToTensor()])
        else:
            self.test_transform = self.custom_test_transform

        train = CIFAR10(root=self.data_path, train=True, transform=self.train_transform, download=False)
        self.test = CIFAR10(root=self.data_path, train=False, transform=self.test_transform, download=False)
        n_valid = len(train) // 10
        self.train, self.valid = random_split(train, lengths=[len(train) - n_valid, n_valid])

    def train_dataloader(self):
        return DataLoader(dataset=self.train, batch_size=self.batch_size, drop_last=True, shuffle=True,
                          num_workers=self.num_workers)

    def val_dataloader(self):
        return DataLoader(dataset=self.valid, batch_size=self.batch_size, drop_last=False, shuffle=False,
                          num_workers=self.num_workers)

    def test_dataloader(self):
        return DataLoader(dataset=self.test, batch_size=self.batch_size, drop_last=False, shuffle=False,
                          num_workers=self.num_workers)


class LightningClassifier(nn.Module):
    def __init__(self, model, learning_rate, log_accuracy=True):
        super().__init__()
        self.learning_rate = learning_rate
        self.log_accuracy = log_accuracy
        self.model = model

    def forward(self, x):
        return self.model(x)

    def _shared_step(self, batch):
        features, true_labels = batch
        logits = self(features)
        loss = F.cross_entropy(logits, true_labels)
        predicted_labels = torch.argmax(logits, dim=1)
        return loss, true_labels, predicted_labels

    def training_step(self, batch, batch_idx):
        loss, _, _ = self._shared_step(batch)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, true_labels, predicted_labels = self._shared_step(batch)
        return loss.item(), (predicted_labels == true_labels).sum().item(), len(true_labels)

    test_step = validation_step

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.learning_rate)


class Trainer:
    """What pl.Trainer does for this script: fit with a validation pass per epoch, save the best checkpoint."""

    def __init__(self, max_epochs, default_root_dir="", num_sanity_val_steps=2):
        self.max_epochs = max_epochs
        self.ckpt_dir = os.path.join(default_root_dir or ".", "checkpoints")
        self.num_sanity_val_steps = num_sanity_val_steps
        self.model = None

    def _evaluate(self, step, loader, limit=None):
        self.model.eval()
        loss_sum = correct = n = 0
        with torch.no_grad():
            for batch_idx, batch in enumerate(loader):
                if limit is not None and batch_idx >= limit:
                    break
                loss, c, k = step(batch, batch_idx)
                loss_sum, correct, n = loss_sum + loss * k, correct + c, n + k
        return {"loss": loss_sum / max(n, 1), "acc": correct / max(n, 1)}

    def fit(self, model, datamodule):
        self.model = model
        datamodule.prepare_data()
        datamodule.setup("fit")
        train_loader, val_loader = datamodule.train_dataloader(), datamodule.val_dataloader()
        optimizer = model.configure_optimizers()
        self._evaluate(model.validation_step, val_loader, self.num_sanity_val_steps)
        best = -1.0
        for epoch in range(self.max_epochs):
            model.train()
            for batch_idx, batch in enumerate(train_loader):
                loss = model.training_step(batch, batch_idx)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            metrics = self._evaluate(model.validation_step, val_loader)
            print(f"Epoch {epoch}: valid_loss {metrics['loss']:.3f} valid_acc {metrics['acc']:.3f}")
            if metrics["acc"] > best:  # ModelCheckpoint(save_top_k=1, mode="max", monitor="valid_acc")
                best = metrics["acc"]
                os.makedirs(self.ckpt_dir, exist_ok=True)
                torch.save(model.state_dict(), os.path.join(self.ckpt_dir, "best.ckpt"))

    def test(self, dataloaders):
        metrics = self._evaluate(self.model.test_step, dataloaders)
        print(f"test_loss {metrics['loss']:.3f} test_acc {metrics['acc']:.3f}")
        return [metrics]


def parse_cmdline_args(parser=None):
    if parser is None:
        parser = argparse.ArgumentParser()
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--data_path", type=str, default=os.environ.get("CIFARLAB_DATA", "./data"))
    parser.add_argument("--learning_rate", type=float, default=0.0005)
    parser.add_argument("--num_epochs", type=int, default=10)
    parser.add_argument("--num_workers", type=int, default=0)
    parser.add_argument("--output_path", type=str, default="")
    parser.add_argument("--random_seed", type=int, default=-1)
    return parser.parse_args()


if __name__ == "__main__":
    args = parse_cmdline_args(argparse.ArgumentParser())
    torch.manual_seed(args.random_seed)

    custom_train_transform = transforms.Compose([transforms.RandomResizedCrop(32, scale=(0.6, 1.0)),
                                                 transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    custom_test_transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    data_module = Cifar10DataModule(batch_size=args.batch_size, data_path=args.data_path,
                                    num_workers=args.num_workers, train_transform=custom_train_transform,
                                    test_transform=custom_test_transform)

    pytorch_model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
    lightning_model = LightningClassifier(pytorch_model, learning_rate=args.learning_rate)
    trainer = Trainer(max_epochs=args.num_epochs, default_root_dir=args.output_path)

    start_time = time.time()
    trainer.fit(model=lightning_model, datamodule=data_module)
    print(f"Training took {(time.time() - start_time) / 60:.2f} min.")

    data_module.prepare_data()
    data_module.setup()
    val_acc = trainer.test(dataloaders=data_module.val_dataloader())
    test_acc = trainer.test(dataloaders=data_module.test_dataloader())
    print("Validation accuracy:", val_acc)
    print("Test accuracy:", test_acc)
