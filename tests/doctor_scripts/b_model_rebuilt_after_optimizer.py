"""The optimizer is given the model's parameters, then the model is built again (a notebook cell that re-runs
the constructor, here the cell that moves the model to the device): the optimizer keeps updating tensors
the new model no longer uses, so the trained model never changes and its loss stays where it started. The
source's fix made the optimizer take the parameters of the model actually trained (created after the
parameters were replaced). Written as a notebook exported to a script (`# In[n]:` cells), with the
train()/test() functions of the PyTorch examples."""
# In[1]:


import os

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torchvision import transforms

from cifar import CIFAR10

SOURCE = "https://github.com/openvinotoolkit/nncf/pull/327"
EXPECT = "cannot-overfit"

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
batch_size, test_batch_size, epochs, lr, log_interval = 64, 64, 14, 1e-3, 10


# In[2]:


transform = transforms.Compose([transforms.ToTensor(),
                                transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))])
root = os.environ.get("CIFARLAB_DATA", "./data")
train_loader = torch.utils.data.DataLoader(CIFAR10(root, train=True, transform=transform), batch_size=batch_size,
                                           shuffle=True)
test_loader = torch.utils.data.DataLoader(CIFAR10(root, train=False, transform=transform),
                                          batch_size=test_batch_size)


# In[3]:


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc1 = nn.Linear(64 * 8 * 8, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc2(F.relu(self.fc1(x)))


model = Net()
optimizer = optim.Adam(model.parameters(), lr=lr)


# In[4]:


def train(model, device, train_loader, optimizer, epoch):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.cross_entropy(output, target)
        loss.backward()
        optimizer.step()
        if batch_idx % log_interval == 0:
            print("Train Epoch: {} [{}/{}]\tLoss: {:.6f}".format(
                epoch, batch_idx * len(data), len(train_loader.dataset), loss.item()))


def test(model, device, test_loader):
    model.eval()
    test_loss = correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.cross_entropy(output, target, reduction="sum").item()
            correct += output.argmax(dim=1).eq(target).sum().item()
    test_loss /= len(test_loader.dataset)
    print("Test set: Average loss: {:.4f}, Accuracy: {}/{} ({:.0f}%)".format(
        test_loss, correct, len(test_loader.dataset), 100. * correct / len(test_loader.dataset)))


# In[5]:


model = Net().to(device)  # re-runs the constructor: new parameters, the optimizer still holds the old ones


# In[6]:


for epoch in range(1, epochs + 1):
    train(model, device, train_loader, optimizer, epoch)
    test(model, device, test_loader)

torch.save(model.state_dict(), "cifar_cnn.pt")
