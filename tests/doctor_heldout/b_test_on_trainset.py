"""CIFAR-100 classifier with a train/test phase loop (data_transforms / image_datasets dicts).
Bug: the 'test' dataset is built without train=False, so it defaults to train=True and
the reported test accuracy is measured on training images.
"""
import copy
import time

import torch
import torch.nn as nn
import torch.optim as optim
from torch.optim import lr_scheduler
from torchvision import transforms

from cifarlab.data import CIFAR100

SOURCE = "https://github.com/shuoros/cifar100-resnet50-pytorch/issues/2"
EXPECT = "eval-on-train"

mean, std = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
data_transforms = {
    'train': transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                 transforms.ToTensor(), transforms.Normalize(mean, std)]),
    'test': transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)]),
}
image_datasets = {
    'train': CIFAR100(root=None, train=True, download=False, transform=data_transforms['train'], n=2048),
    'test': CIFAR100(root=None, download=False, transform=data_transforms['test'], n=512),
}
dataloaders = {x: torch.utils.data.DataLoader(image_datasets[x], batch_size=64, shuffle=(x == 'train'),
                                              num_workers=0) for x in ['train', 'test']}
dataset_sizes = {x: len(image_datasets[x]) for x in ['train', 'test']}
device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")


def conv_bn(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


model = nn.Sequential(conv_bn(3, 64), nn.MaxPool2d(2), conv_bn(64, 128), nn.MaxPool2d(2),
                      conv_bn(128, 256), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, 100)).to(device)


def train_model(model, criterion, optimizer, scheduler, num_epochs=25):
    since = time.time()
    best_model_wts, best_acc = copy.deepcopy(model.state_dict()), 0.0
    for epoch in range(num_epochs):
        print('Epoch {}/{}'.format(epoch, num_epochs - 1))
        for phase in ['train', 'test']:
            if phase == 'train':
                model.train()  # Set model to training mode
            else:
                model.eval()   # Set model to evaluate mode
            running_loss, running_corrects = 0.0, 0
            for inputs, labels in dataloaders[phase]:
                inputs, labels = inputs.to(device), labels.to(device)
                optimizer.zero_grad()
                with torch.set_grad_enabled(phase == 'train'):
                    outputs = model(inputs)
                    _, preds = torch.max(outputs, 1)
                    loss = criterion(outputs, labels)
                    if phase == 'train':
                        loss.backward()
                        optimizer.step()
                running_loss += loss.item() * inputs.size(0)
                running_corrects += torch.sum(preds == labels.data).item()
            if phase == 'train':
                scheduler.step()
            epoch_loss = running_loss / dataset_sizes[phase]
            epoch_acc = running_corrects / dataset_sizes[phase]
            print('{} Loss: {:.4f} Acc: {:.4f}'.format(phase, epoch_loss, epoch_acc))
            if phase == 'test' and epoch_acc > best_acc:
                best_acc, best_model_wts = epoch_acc, copy.deepcopy(model.state_dict())
    print('Training complete in {:.0f}s, best test Acc: {:4f}'.format(time.time() - since, best_acc))
    model.load_state_dict(best_model_wts)
    return model


criterion = nn.CrossEntropyLoss()
optimizer_ft = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
exp_lr_scheduler = lr_scheduler.StepLR(optimizer_ft, step_size=7, gamma=0.1)
model = train_model(model, criterion, optimizer_ft, exp_lr_scheduler, num_epochs=25)
