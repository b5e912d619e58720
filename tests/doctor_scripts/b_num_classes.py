"""A class-incremental CIFAR-100 run whose SimpleCNN is built with num_classes left at its default of 10:
the labels go up to 99, so cross_entropy raises "Target ... is out of bounds" on the first batch (the
issue's fix: SimpleCNN(num_classes=100)). Written the way Avalanche examples read: a SplitCIFAR100-style
benchmark of 10 experiences with a seeded class order, a Naive (fine-tuning) strategy with
train(experience) and eval(test_stream), train_mb_size / train_epochs / eval_mb_size. The benchmark and
strategy are small local stand-ins for Avalanche's classes (no Avalanche dependency); the model is
Avalanche's SimpleCNN."""
import os

import numpy as np
import torch
import torchvision.transforms as transforms
from torch import nn
from torch.utils.data import DataLoader, Subset

from cifar import CIFAR100

SOURCE = "https://github.com/ContinualAI/avalanche/issues/524"
EXPECT = "shape-mismatch"


class SimpleCNN(nn.Module):
    def __init__(self, num_classes=10):
        super(SimpleCNN, self).__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, kernel_size=3, stride=1, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, kernel_size=3, padding=0),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Dropout(p=0.25),
            nn.Conv2d(32, 64, kernel_size=3, stride=1, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(64, 64, kernel_size=3, padding=0),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Dropout(p=0.25),
            nn.Conv2d(64, 64, kernel_size=1, padding=0),
            nn.ReLU(inplace=True),
            nn.AdaptiveMaxPool2d(1),
            nn.Dropout(p=0.25),
        )
        self.classifier = nn.Sequential(nn.Linear(64, num_classes))

    def forward(self, x):
        x = self.features(x)
        x = x.view(x.size(0), -1)
        return self.classifier(x)


class Experience:
    def __init__(self, dataset, classes, current_experience):
        self.dataset, self.classes_in_this_experience, self.current_experience = dataset, classes, current_experience


def SplitCIFAR100(n_experiences, seed, dataset_root):
    """train_stream / test_stream: the 100 classes in a seeded random order, n_experiences groups of them."""
    mean, std = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
    train_tf = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(), transforms.Normalize(mean, std)])
    eval_tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
    train_set = CIFAR100(dataset_root, train=True, transform=train_tf)
    test_set = CIFAR100(dataset_root, train=False, transform=eval_tf)
    order = np.random.RandomState(seed).permutation(100)
    streams = []
    for ds in (train_set, test_set):
        targets = np.asarray(ds.targets)
        streams.append([Experience(Subset(ds, np.flatnonzero(np.isin(targets, classes)).tolist()), classes.tolist(), i)
                        for i, classes in enumerate(np.array_split(order, n_experiences))])
    return streams


class Naive:
    """Fine-tuning on each experience in turn, no continual-learning strategy."""

    def __init__(self, model, optimizer, criterion, train_mb_size=32, train_epochs=1, eval_mb_size=64,
                 device="cpu"):
        self.model, self.optimizer, self.criterion = model, optimizer, criterion
        self.train_mb_size, self.train_epochs, self.eval_mb_size, self.device = \
            train_mb_size, train_epochs, eval_mb_size, device

    def train(self, experience):
        self.model.train()
        dataloader = DataLoader(experience.dataset, batch_size=self.train_mb_size, shuffle=True)
        for epoch in range(self.train_epochs):
            for mb_x, mb_y in dataloader:
                mb_x, mb_y = mb_x.to(self.device), mb_y.to(self.device)
                self.optimizer.zero_grad()
                loss = self.criterion(self.model(mb_x), mb_y)
                loss.backward()
                self.optimizer.step()

    @torch.no_grad()
    def eval(self, stream):
        self.model.eval()
        results = {}
        for exp in stream:
            correct = total = 0
            for mb_x, mb_y in DataLoader(exp.dataset, batch_size=self.eval_mb_size):
                correct += (self.model(mb_x.to(self.device)).argmax(1).cpu() == mb_y).sum().item()
                total += len(mb_y)
            results[f"Top1_Acc_Exp/eval_phase/test_stream/Exp{exp.current_experience:03d}"] = correct / max(total, 1)
        return results


def main():
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    train_stream, test_stream = SplitCIFAR100(n_experiences=10, seed=1234,
                                              dataset_root=os.environ.get("CIFARLAB_DATA", "./data"))
    model = SimpleCNN()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    cl_strategy = Naive(model, optimizer, nn.CrossEntropyLoss(), train_mb_size=32, train_epochs=30,
                        eval_mb_size=64, device=device)

    print("Starting experiment...")
    results = []
    for experience in train_stream:
        print("Start of experience: ", experience.current_experience)
        print("Current Classes: ", experience.classes_in_this_experience)
        cl_strategy.train(experience)
        print("Training completed")
        print("Computing accuracy on the whole test set")
        results.append(cl_strategy.eval(test_stream))


if __name__ == "__main__":
    main()
