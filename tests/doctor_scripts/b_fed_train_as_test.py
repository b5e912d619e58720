"""FedML's federated CIFAR-100 data loader opened the *training* file where it meant the test file, so the
global test data were clients' training images and every reported test accuracy was measured on data the
model trained on (fixed by opening the test file). Written like FedML's centralized experiment: argparse
options, a data loader that reads per-client image arrays and wraps them in its own Dataset (images kept
in `self.images`, no `.data`), a CentralizedTrainer with train()/test() per epoch. The client "files" are
read from the local CIFAR-100 copy (the source: fed_cifar100_train.h5 / fed_cifar100_test.h5)."""
import argparse
import logging
import os

import numpy as np
import torch
import torchvision.transforms as transforms
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from cifar import CIFAR100

SOURCE = "https://github.com/FedML-AI/FedML/pull/163"
EXPECT = "eval-on-train"

DEFAULT_TRAIN_CLIENTS_NUM = 32
DEFAULT_TEST_CLIENTS_NUM = 16
DEFAULT_TRAIN_FILE = "fed_cifar100_train"
DEFAULT_TEST_FILE = "fed_cifar100_test"
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)


def add_args(parser):
    parser.add_argument("--dataset", type=str, default="fed_cifar100")
    parser.add_argument("--data_dir", type=str, default=os.environ.get("CIFARLAB_DATA", "./data"))
    parser.add_argument("--batch_size", type=int, default=20)
    parser.add_argument("--lr", type=float, default=0.03)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--frequency_of_the_test", type=int, default=1)
    return parser.parse_args()


def read_client_file(data_dir, file_name, n_clients):
    """The per-client examples of one file: {client_id: (images uint8 NHWC, labels)}."""
    src = CIFAR100(data_dir, train=(file_name == DEFAULT_TRAIN_FILE))
    images, labels = src.data, np.asarray(src.targets)
    return {cid: (x, y) for cid, (x, y) in
            enumerate(zip(np.array_split(images, n_clients), np.array_split(labels, n_clients)))}


class ClientCifar(Dataset):
    def __init__(self, images, labels, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def get_dataloader(data_dir, train_bs, test_bs):
    train_h5 = read_client_file(data_dir, DEFAULT_TRAIN_FILE, DEFAULT_TRAIN_CLIENTS_NUM)
    test_h5 = read_client_file(data_dir, DEFAULT_TRAIN_FILE, DEFAULT_TRAIN_CLIENTS_NUM)  # the bug: train file
    client_ids_train = list(train_h5)
    client_ids_test = list(test_h5)[:DEFAULT_TEST_CLIENTS_NUM]

    train_x = np.vstack([train_h5[c][0] for c in client_ids_train])
    train_y = np.concatenate([train_h5[c][1] for c in client_ids_train])
    test_x = np.vstack([test_h5[c][0] for c in client_ids_test])
    test_y = np.concatenate([test_h5[c][1] for c in client_ids_test])

    train_ds = ClientCifar(train_x, train_y, transforms.Compose([
        transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
        transforms.Normalize(CIFAR100_MEAN, CIFAR100_STD)]))
    test_ds = ClientCifar(test_x, test_y, transforms.Compose([
        transforms.ToTensor(), transforms.Normalize(CIFAR100_MEAN, CIFAR100_STD)]))
    train_dl = DataLoader(dataset=train_ds, batch_size=train_bs, shuffle=True, drop_last=False)
    test_dl = DataLoader(dataset=test_ds, batch_size=test_bs, shuffle=True, drop_last=False)
    return train_dl, test_dl


def load_partition_data_federated_cifar100(data_dir, batch_size):
    train_data_global, test_data_global = get_dataloader(data_dir, batch_size, 64)
    train_data_num = len(train_data_global.dataset)
    test_data_num = len(test_data_global.dataset)
    class_num = 100
    return train_data_num, test_data_num, train_data_global, test_data_global, class_num


class CNN_DropOut(nn.Module):
    """The FedAvg paper's CIFAR CNN (two 5x5 convolutions, 512 hidden units), 100 outputs."""

    def __init__(self, num_classes=100):
        super().__init__()
        self.conv2d_1 = nn.Conv2d(3, 32, kernel_size=5, padding=2)
        self.max_pooling = nn.MaxPool2d(2, stride=2)
        self.conv2d_2 = nn.Conv2d(32, 64, kernel_size=5, padding=2)
        self.flatten = nn.Flatten()
        self.linear_1 = nn.Linear(64 * 8 * 8, 512)
        self.linear_2 = nn.Linear(512, num_classes)
        self.relu = nn.ReLU()

    def forward(self, x):
        x = self.max_pooling(self.relu(self.conv2d_1(x)))
        x = self.max_pooling(self.relu(self.conv2d_2(x)))
        x = self.relu(self.linear_1(self.flatten(x)))
        return self.linear_2(x)


class CentralizedTrainer:
    def __init__(self, dataset, model, device, args):
        self.device, self.args = device, args
        [self.train_data_num, self.test_data_num, self.train_global, self.test_global, self.class_num] = dataset
        self.model = model.to(device)
        self.criterion = nn.CrossEntropyLoss().to(device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=self.args.lr)

    def train(self):
        for epoch in range(self.args.epochs):
            self.train_impl(epoch)
            self.eval_impl(epoch)

    def train_impl(self, epoch_idx):
        self.model.train()
        for batch_idx, (x, labels) in enumerate(self.train_global):
            x, labels = x.to(self.device), labels.to(self.device)
            self.optimizer.zero_grad()
            log_probs = self.model(x)
            loss = self.criterion(log_probs, labels)
            loss.backward()
            self.optimizer.step()
            logging.info("Epoch: {} batch {} loss {:.6f}".format(epoch_idx, batch_idx, loss.item()))

    def eval_impl(self, epoch_idx):
        if epoch_idx % self.args.frequency_of_the_test == 0:
            acc = self.test(self.test_global)
            print(f"epoch {epoch_idx}: test acc {acc:.4f} over {self.test_data_num} samples")

    def test(self, test_data):
        self.model.eval()
        correct = total = 0
        with torch.no_grad():
            for x, target in test_data:
                pred = self.model(x.to(self.device))
                correct += pred.argmax(-1).eq(target.to(self.device)).sum().item()
                total += target.size(0)
        return correct / total


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    args = add_args(argparse.ArgumentParser(description="FedML-centralized"))
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    dataset = load_partition_data_federated_cifar100(args.data_dir, args.batch_size)
    model = CNN_DropOut(num_classes=dataset[-1])
    trainer = CentralizedTrainer(dataset, model, device, args)
    trainer.train()
