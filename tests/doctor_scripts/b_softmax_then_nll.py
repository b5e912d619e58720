"""The model's forward() ends with nn.Softmax() and the loss is nn.NLLLoss, which expects log-probabilities:
NLLLoss of probabilities is minus the target's probability, so "the loss is always negative" and its
gradients are not those of cross-entropy (fix: LogSoftmax, or raw logits with CrossEntropyLoss). Written
the way the repository's models are: a Config class, a model that owns its optimizer and loss
(add_optimizer / add_loss_op) and trains itself in run_epoch(), validating every 100 iterations, then
final train/val/test accuracies from evaluate_model(). As in the repository, model.train() is called once
and evaluate_model() never switches to eval mode, so the dropout layer is also on while evaluating (a
second bug of the source, kept). A small CNN replaces the text encoder; same head (dropout, fc, softmax)."""
import os

import numpy as np
import torch
import torch.optim as optim
import torchvision.transforms as transforms
from torch import nn
from torch.utils.data import DataLoader, random_split

from cifar import CIFAR10

SOURCE = "https://github.com/AnubhavGupta3377/Text-Classification-Models-Pytorch/issues/9"
EXPECT = "loss-output-mismatch"


class Config(object):
    num_channels = 16
    output_size = 10
    max_epochs = 35
    lr = 0.001
    batch_size = 64
    dropout_keep = 0.5


class Dataset(object):
    def __init__(self, config):
        self.config = config
        self.train_iterator = None
        self.test_iterator = None
        self.val_iterator = None

    def load_data(self, root):
        tf = transforms.Compose([transforms.ToTensor(),
                                 transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))])
        train_data = CIFAR10(root, train=True, transform=tf)
        test_data = CIFAR10(root, train=False, transform=tf)
        n_train = int(0.8 * len(train_data))
        train_data, val_data = random_split(train_data, [n_train, len(train_data) - n_train])
        self.train_iterator = DataLoader(train_data, batch_size=self.config.batch_size, shuffle=True)
        self.val_iterator = DataLoader(val_data, batch_size=self.config.batch_size, shuffle=False)
        self.test_iterator = DataLoader(test_data, batch_size=self.config.batch_size, shuffle=False)
        print("Loaded {} training examples".format(len(train_data)))
        print("Loaded {} test examples".format(len(test_data)))
        print("Loaded {} validation examples".format(len(val_data)))


def evaluate_model(model, iterator):
    all_preds = []
    all_y = []
    for idx, (x, y) in enumerate(iterator):
        y_pred = model(x)
        predicted = torch.max(y_pred.cpu().data, 1)[1]
        all_preds.extend(predicted.numpy())
        all_y.extend(y.numpy())
    return float(np.mean(np.array(all_preds) == np.array(all_y)))


class ConvClassifier(nn.Module):
    def __init__(self, config):
        super(ConvClassifier, self).__init__()
        self.config = config
        c = self.config.num_channels
        self.conv1 = nn.Conv2d(3, c, kernel_size=3, padding=1)
        self.activation1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c, 2 * c, kernel_size=3, padding=1)
        self.activation2 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(2 * c * 8 * 8, 64)
        self.activation3 = nn.ReLU()
        self.dropout = nn.Dropout(self.config.dropout_keep)
        self.fc = nn.Linear(64, self.config.output_size)

        # Softmax non-linearity
        self.softmax = nn.Softmax()

    def forward(self, x):
        out = self.pool(self.activation1(self.conv1(x)))
        out = self.pool(self.activation2(self.conv2(out)))
        out = self.activation3(self.fc1(out.view(out.size(0), -1)))
        final_out = self.fc(self.dropout(out))
        return self.softmax(final_out)

    def add_optimizer(self, optimizer):
        self.optimizer = optimizer

    def add_loss_op(self, loss_op):
        self.loss_op = loss_op

    def reduce_lr(self):
        print("Reducing LR")
        for g in self.optimizer.param_groups:
            g["lr"] = g["lr"] / 2

    def run_epoch(self, train_iterator, val_iterator, epoch):
        train_losses = []
        val_accuracies = []
        losses = []

        # Reduce learning rate as number of epochs increase
        if (epoch == int(self.config.max_epochs / 3)) or (epoch == int(2 * self.config.max_epochs / 3)):
            self.reduce_lr()

        for i, (x, y) in enumerate(train_iterator):
            self.optimizer.zero_grad()
            y_pred = self.__call__(x)
            loss = self.loss_op(y_pred, y)
            loss.backward()
            losses.append(loss.data.cpu().numpy())
            self.optimizer.step()

            if i % 100 == 0:
                print("Iter: {}".format(i + 1))
                avg_train_loss = np.mean(losses)
                train_losses.append(avg_train_loss)
                print("\tAverage training loss: {:.5f}".format(avg_train_loss))
                losses = []

                # Evalute Accuracy on validation set
                val_accuracy = evaluate_model(self, val_iterator)
                val_accuracies.append(val_accuracy)
                print("\tVal Accuracy: {:.4f}".format(val_accuracy))
                self.train()

        return train_losses, val_accuracies


if __name__ == "__main__":
    config = Config()
    dataset = Dataset(config)
    dataset.load_data(os.environ.get("CIFARLAB_DATA", "./data"))

    # Create Model with specified optimizer and loss function
    ##############################################################
    model = ConvClassifier(config)
    if torch.cuda.is_available():
        model.cuda()
    model.train()
    optimizer = optim.Adam(model.parameters(), lr=config.lr)
    NLLLoss = nn.NLLLoss()
    model.add_optimizer(optimizer)
    model.add_loss_op(NLLLoss)
    ##############################################################

    train_losses = []
    val_accuracies = []

    for i in range(config.max_epochs):
        print("Epoch: {}".format(i))
        train_loss, val_accuracy = model.run_epoch(dataset.train_iterator, dataset.val_iterator, i)
        train_losses.append(train_loss)
        val_accuracies.append(val_accuracy)

    train_acc = evaluate_model(model, dataset.train_iterator)
    val_acc = evaluate_model(model, dataset.val_iterator)
    test_acc = evaluate_model(model, dataset.test_iterator)

    print("Final Training Accuracy: {:.4f}".format(train_acc))
    print("Final Validation Accuracy: {:.4f}".format(val_acc))
    print("Final Test Accuracy: {:.4f}".format(test_acc))
