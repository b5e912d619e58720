"""The book's MLP classifier applies F.dropout(intermediate, p=0.5) without training=self.training: the
functional form defaults to training=True, so dropout keeps running after classifier.eval() and validation
and test results change from run to run (the fix passes training=self.training). Written like the book's
notebooks: an `args = Namespace(...)`, a train_state dict, generate_batches() building a DataLoader each
epoch, running means of loss and accuracy, classifier.train() for the training split and
classifier.eval() for the validation split, then the test split. Images flattened instead of one-hot
surnames: same two-layer MLP."""
import os
from argparse import Namespace

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
import torchvision.transforms as transforms
from torch.utils.data import DataLoader

from cifar import CIFAR10

SOURCE = "https://github.com/delip/PyTorchNLPBook/issues/28"
EXPECT = "eval-mode"


class MLPClassifier(nn.Module):
    def __init__(self, input_dim, hidden_dim, output_dim):
        super(MLPClassifier, self).__init__()
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, output_dim)

    def forward(self, x_in, apply_softmax=False):
        intermediate_vector = F.relu(self.fc1(x_in.view(x_in.size(0), -1)))
        prediction_vector = self.fc2(F.dropout(intermediate_vector, p=0.5))
        if apply_softmax:
            prediction_vector = F.softmax(prediction_vector, dim=1)
        return prediction_vector


def make_train_state(args):
    return {"stop_early": False, "early_stopping_step": 0, "early_stopping_best_val": 1e8,
            "learning_rate": args.learning_rate, "epoch_index": 0, "train_loss": [], "train_acc": [],
            "val_loss": [], "val_acc": [], "test_loss": -1, "test_acc": -1, "model_filename": args.model_state_file}


def generate_batches(dataset, batch_size, shuffle=True, drop_last=True, device="cpu"):
    dataloader = DataLoader(dataset=dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last)
    for x, y in dataloader:
        yield x.to(device), y.to(device)


def compute_accuracy(y_pred, y_target):
    _, y_pred_indices = y_pred.max(dim=1)
    return torch.eq(y_pred_indices, y_target).sum().item() / len(y_pred_indices) * 100


args = Namespace(
    data_dir=os.environ.get("CIFARLAB_DATA", "./data"),
    model_state_file="model.pth",
    hidden_dim=300,
    seed=1337,
    num_epochs=100,
    early_stopping_criteria=5,
    learning_rate=0.001,
    batch_size=64,
    cuda=False,
)


def main():
    torch.manual_seed(args.seed)
    args.device = torch.device("cuda" if args.cuda and torch.cuda.is_available() else "cpu")
    tf = transforms.Compose([transforms.ToTensor(),
                             transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))])
    full_train = CIFAR10(args.data_dir, train=True, transform=tf)
    n_val = len(full_train) // 5
    splits = {"train": torch.utils.data.Subset(full_train, range(n_val, len(full_train))),
              "val": torch.utils.data.Subset(full_train, range(n_val)),
              "test": CIFAR10(args.data_dir, train=False, transform=tf)}

    classifier = MLPClassifier(input_dim=3 * 32 * 32, hidden_dim=args.hidden_dim, output_dim=10).to(args.device)
    loss_func = nn.CrossEntropyLoss()
    optimizer = optim.Adam(classifier.parameters(), lr=args.learning_rate)
    scheduler = optim.lr_scheduler.ReduceLROnPlateau(optimizer=optimizer, mode="min", factor=0.5, patience=1)
    train_state = make_train_state(args)

    for epoch_index in range(args.num_epochs):
        train_state["epoch_index"] = epoch_index

        # Iterate over training dataset
        batch_generator = generate_batches(splits["train"], batch_size=args.batch_size, device=args.device)
        running_loss = running_acc = 0.0
        classifier.train()
        for batch_index, (x, y) in enumerate(batch_generator):
            optimizer.zero_grad()
            y_pred = classifier(x)
            loss = loss_func(y_pred, y)
            running_loss += (loss.item() - running_loss) / (batch_index + 1)
            loss.backward()
            optimizer.step()
            running_acc += (compute_accuracy(y_pred, y) - running_acc) / (batch_index + 1)
        train_state["train_loss"].append(running_loss)
        train_state["train_acc"].append(running_acc)

        # Iterate over val dataset
        batch_generator = generate_batches(splits["val"], batch_size=args.batch_size, device=args.device)
        running_loss = running_acc = 0.0
        classifier.eval()
        for batch_index, (x, y) in enumerate(batch_generator):
            y_pred = classifier(x)
            running_loss += (loss_func(y_pred, y).item() - running_loss) / (batch_index + 1)
            running_acc += (compute_accuracy(y_pred, y) - running_acc) / (batch_index + 1)
        train_state["val_loss"].append(running_loss)
        train_state["val_acc"].append(running_acc)

        # early stopping on the validation loss
        if running_loss < train_state["early_stopping_best_val"]:
            torch.save(classifier.state_dict(), train_state["model_filename"])
            train_state["early_stopping_best_val"], train_state["early_stopping_step"] = running_loss, 0
        else:
            train_state["early_stopping_step"] += 1
        train_state["stop_early"] = train_state["early_stopping_step"] >= args.early_stopping_criteria
        scheduler.step(train_state["val_loss"][-1])
        if train_state["stop_early"]:
            break

    classifier.load_state_dict(torch.load(train_state["model_filename"]))
    batch_generator = generate_batches(splits["test"], batch_size=args.batch_size, device=args.device)
    running_loss = running_acc = 0.0
    classifier.eval()
    for batch_index, (x, y) in enumerate(batch_generator):
        y_pred = classifier(x)
        running_loss += (loss_func(y_pred, y).item() - running_loss) / (batch_index + 1)
        running_acc += (compute_accuracy(y_pred, y) - running_acc) / (batch_index + 1)
    print("Test loss: {:.3f}".format(running_loss))
    print("Test Accuracy: {:.2f}".format(running_acc))


if __name__ == "__main__":
    main()
