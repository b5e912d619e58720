"""The course notebook builds one `data_transform` (RandomHorizontalFlip(p=0.5), ToTensor) and passes it to
both the training and the test dataset: on every pass half of the test images are mirrored at random, so
test loss and accuracy change between evaluations of the same model (the fix gives the test data a
transform without the flip). Written like the notebook: the transform and datasets first, DataLoaders with
BATCH_SIZE and NUM_WORKERS constants, TinyVGG(input_shape, hidden_units, output_shape), and the notebook's
train_step() / test_step() / train() functions returning a results dict. 32x32 images here (the notebook
resizes its food images to 64x64, hence hidden_units*8*8 in the classifier)."""
import os
from timeit import default_timer as timer

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms

from cifar import CIFAR10

SOURCE = "https://github.com/mrdbourke/pytorch-deep-learning/issues/1352 (PR #1354)"
EXPECT = "eval-augmented"

device = "cuda" if torch.cuda.is_available() else "cpu"

# Write transform for image
data_transform = transforms.Compose([
    transforms.RandomHorizontalFlip(p=0.5),  # Flip the images randomly on the horizontal
    transforms.ToTensor(),  # Turn the image into a torch.Tensor (also scales pixels to 0.0-1.0)
])

root = os.environ.get("CIFARLAB_DATA", "./data")
train_data = CIFAR10(root=root, train=True, transform=data_transform)
test_data = CIFAR10(root=root, train=False, transform=data_transform)
class_names = train_data.classes

BATCH_SIZE = 32
NUM_WORKERS = 0
train_dataloader = DataLoader(dataset=train_data, batch_size=BATCH_SIZE, num_workers=NUM_WORKERS, shuffle=True)
test_dataloader = DataLoader(dataset=test_data, batch_size=BATCH_SIZE, num_workers=NUM_WORKERS, shuffle=False)


class TinyVGG(nn.Module):
    """Model architecture copying TinyVGG from the CNN Explainer website."""

    def __init__(self, input_shape: int, hidden_units: int, output_shape: int) -> None:
        super().__init__()
        self.conv_block_1 = nn.Sequential(
            nn.Conv2d(in_channels=input_shape, out_channels=hidden_units, kernel_size=3, stride=1, padding=1),
            nn.ReLU(),
            nn.Conv2d(in_channels=hidden_units, out_channels=hidden_units, kernel_size=3, stride=1, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2))
        self.conv_block_2 = nn.Sequential(
            nn.Conv2d(hidden_units, hidden_units, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden_units, hidden_units, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2))
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_features=hidden_units * 8 * 8, out_features=output_shape))

    def forward(self, x: torch.Tensor):
        return self.classifier(self.conv_block_2(self.conv_block_1(x)))


def train_step(model: torch.nn.Module, dataloader: torch.utils.data.DataLoader, loss_fn: torch.nn.Module,
               optimizer: torch.optim.Optimizer):
    model.train()
    train_loss, train_acc = 0, 0
    for batch, (X, y) in enumerate(dataloader):
        X, y = X.to(device), y.to(device)
        y_pred = model(X)
        loss = loss_fn(y_pred, y)
        train_loss += loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        y_pred_class = torch.argmax(torch.softmax(y_pred, dim=1), dim=1)
        train_acc += (y_pred_class == y).sum().item() / len(y_pred)
    return train_loss / len(dataloader), train_acc / len(dataloader)


def test_step(model: torch.nn.Module, dataloader: torch.utils.data.DataLoader, loss_fn: torch.nn.Module):
    model.eval()
    test_loss, test_acc = 0, 0
    with torch.inference_mode():
        for batch, (X, y) in enumerate(dataloader):
            X, y = X.to(device), y.to(device)
            test_pred_logits = model(X)
            test_loss += loss_fn(test_pred_logits, y).item()
            test_pred_labels = test_pred_logits.argmax(dim=1)
            test_acc += (test_pred_labels == y).sum().item() / len(test_pred_labels)
    return test_loss / len(dataloader), test_acc / len(dataloader)


def train(model: torch.nn.Module, train_dataloader, test_dataloader, optimizer,
          loss_fn: torch.nn.Module = nn.CrossEntropyLoss(), epochs: int = 5):
    results = {"train_loss": [], "train_acc": [], "test_loss": [], "test_acc": []}
    for epoch in range(epochs):
        train_loss, train_acc = train_step(model=model, dataloader=train_dataloader, loss_fn=loss_fn,
                                           optimizer=optimizer)
        test_loss, test_acc = test_step(model=model, dataloader=test_dataloader, loss_fn=loss_fn)
        print(f"Epoch: {epoch + 1} | train_loss: {train_loss:.4f} | train_acc: {train_acc:.4f} | "
              f"test_loss: {test_loss:.4f} | test_acc: {test_acc:.4f}")
        results["train_loss"].append(train_loss)
        results["train_acc"].append(train_acc)
        results["test_loss"].append(test_loss)
        results["test_acc"].append(test_acc)
    return results


torch.manual_seed(42)
torch.cuda.manual_seed(42)
NUM_EPOCHS = 5
model_0 = TinyVGG(input_shape=3, hidden_units=10, output_shape=len(train_data.classes)).to(device)
loss_fn = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(params=model_0.parameters(), lr=0.001)

start_time = timer()
model_0_results = train(model=model_0, train_dataloader=train_dataloader, test_dataloader=test_dataloader,
                        optimizer=optimizer, loss_fn=loss_fn, epochs=NUM_EPOCHS)
end_time = timer()
print(f"Total training time: {end_time - start_time:.3f} seconds")
