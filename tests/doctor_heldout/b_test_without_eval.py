"""One active-learning round on CIFAR-10 in the style of sinhasam/vaal (main.py + solver.py), task-model part only:
a VGG-with-BN task model trained for a fixed number of iterations from an endless read_data() generator.
Bug: Solver.test() never calls task_model.eval(), so testing runs with dropout active and BatchNorm on test-batch
statistics (vaal#2: the task model is vgg16_bn with BN and dropout, so it must be put in eval mode before testing).
"""
import argparse
import copy
import random

import torch
import torch.nn as nn
import torch.optim as optim
import torch.utils.data as data
from torchvision import transforms

from cifarlab.data import CIFAR10 as TorchvisionCIFAR10

SOURCE = "https://github.com/sinhasam/vaal/issues/2"
EXPECT = "eval-mode"


def cifar10_transformer():  # training images (custom_datasets.py)
    return transforms.Compose([
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5]),
    ])


def cifar_transformer():  # test images (main.py)
    return transforms.Compose([
        transforms.ToTensor(),
        transforms.Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5]),
    ])


class CIFAR10(data.Dataset):
    """Training set that also returns each image's index (used by the sampler in VAAL)."""

    def __init__(self, n=2048):
        self.cifar10 = TorchvisionCIFAR10(root=None, train=True, download=False,
                                          transform=cifar10_transformer(), n=n)

    def __getitem__(self, index):
        img, target = self.cifar10[index]
        return img, target, index

    def __len__(self):
        return len(self.cifar10)


class VGG(nn.Module):
    """vgg16_bn-shaped task model, shrunk for 32x32 CPU training."""

    def __init__(self, cfg=(32, 'M', 64, 'M', 128, 128, 'M'), num_classes=10):
        super().__init__()
        layers, in_channels = [], 3
        for v in cfg:
            if v == 'M':
                layers += [nn.MaxPool2d(kernel_size=2, stride=2)]
            else:
                layers += [nn.Conv2d(in_channels, v, kernel_size=3, padding=1),
                           nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                in_channels = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(128 * 4 * 4, 256), nn.ReLU(True), nn.Dropout(),
            nn.Linear(256, 256), nn.ReLU(True), nn.Dropout(),
            nn.Linear(256, num_classes))

    def forward(self, x):
        x = self.features(x)
        return self.classifier(torch.flatten(x, 1))


class Solver:
    def __init__(self, args, test_dataloader):
        self.args = args
        self.test_dataloader = test_dataloader
        self.ce_loss = nn.CrossEntropyLoss()

    def read_data(self, dataloader, labels=True):
        if labels:
            while True:
                for img, label, _ in dataloader:
                    yield img, label
        else:
            while True:
                for img, _, _ in dataloader:
                    yield img

    def train(self, querry_dataloader, task_model):
        self.args.train_iterations = (self.args.num_images * self.args.train_epochs) // self.args.batch_size
        lr_change = self.args.train_iterations // 4
        labeled_data = self.read_data(querry_dataloader)

        optim_task_model = optim.SGD(task_model.parameters(), lr=0.01, weight_decay=5e-4, momentum=0.9)
        task_model.train()
        task_model = task_model.to(self.args.device)

        best_acc = 0
        best_model = copy.deepcopy(task_model)
        for iter_count in range(self.args.train_iterations):
            if iter_count != 0 and iter_count % lr_change == 0:
                for param in optim_task_model.param_groups:
                    param['lr'] = param['lr'] / 10
            labeled_imgs, labels = next(labeled_data)
            labeled_imgs, labels = labeled_imgs.to(self.args.device), labels.to(self.args.device)

            # task_model step
            preds = task_model(labeled_imgs)
            task_loss = self.ce_loss(preds, labels)
            optim_task_model.zero_grad()
            task_loss.backward()
            optim_task_model.step()

            if iter_count % 100 == 0:
                print('Current training iteration: {}'.format(iter_count))
                print('Current task model loss: {:.4f}'.format(task_loss.item()))
                acc = self.test(task_model)
                if acc > best_acc:
                    best_acc = acc
                    best_model = copy.deepcopy(task_model)
                print('current step: {} acc: {}'.format(iter_count, acc))
                print('best acc: ', best_acc)

        final_accuracy = self.test(best_model)
        return final_accuracy

    def test(self, task_model):
        total, correct = 0, 0
        for imgs, labels in self.test_dataloader:
            imgs = imgs.to(self.args.device)

            with torch.no_grad():
                preds = task_model(imgs)

            preds = torch.argmax(preds, dim=1).cpu().numpy()
            correct += int((preds == labels.numpy()).sum())
            total += imgs.size(0)
        return correct / total * 100


def main(args):
    test_dataloader = data.DataLoader(
        TorchvisionCIFAR10(root=None, train=False, download=False, transform=cifar_transformer(), n=512),
        batch_size=args.batch_size, drop_last=False)
    train_dataset = CIFAR10(n=2048)

    args.num_images = 2048
    args.initial_budget = 1024
    args.num_classes = 10
    args.device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')

    all_indices = list(range(args.num_images))
    initial_indices = random.sample(all_indices, args.initial_budget)
    sampler = data.sampler.SubsetRandomSampler(initial_indices)

    # dataset with labels available
    querry_dataloader = data.DataLoader(train_dataset, sampler=sampler,
                                        batch_size=args.batch_size, drop_last=True)

    solver = Solver(args, test_dataloader)
    task_model = VGG(num_classes=args.num_classes)
    acc = solver.train(querry_dataloader, task_model)
    split = args.initial_budget / args.num_images
    print('Final accuracy with {}% of data is: {:.2f}'.format(int(split * 100), acc))


if __name__ == '__main__':
    parser = argparse.ArgumentParser()
    parser.add_argument('--batch_size', type=int, default=128, help='Batch size used for training and testing')
    parser.add_argument('--train_epochs', type=int, default=100, help='Number of training epochs')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    main(args)
