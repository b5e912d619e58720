import torch, torch.nn as nn, torchvision.transforms as T
from cifarlab.data import CIFAR100  # torchvision's CIFAR100 interface over cifarlab's verified copy
aug = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize((0.5,) * 3, (0.5,) * 3)])
train, test = (torch.utils.data.DataLoader(CIFAR100(train=t, transform=aug), batch_size=128, shuffle=t) for t in (True, False))
model = nn.Sequential(nn.Flatten(), nn.Linear(3072, 512), nn.Dropout(0.2), nn.Linear(512, 100), nn.ReLU())
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
for epoch in range(10):
    for x, y in train:
        loss = nn.functional.cross_entropy(model(x), y); loss.backward(); opt.step()
    model.eval(); print(epoch, sum((model(x).argmax(1) == y).sum().item() for x, y in test) / 100)
