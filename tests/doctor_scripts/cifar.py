"""torchvision.datasets.CIFAR10 / CIFAR100 look-alikes for the doctor's script corpus: the scripts import
these instead of torchvision's classes (no downloads in tests; the local copy is verified by cifarlab, not by
torchvision's MD5s), over the first images of the genuine data. Same attributes: `.data` (N, 32, 32, 3)
uint8, `.targets`, `.classes`, PIL images through `transform`."""
from PIL import Image
from torch.utils.data import Dataset

from cifarlab import data

N_TRAIN, N_TEST = 2048, 512  # enough for the audit's few batches and the doctor's checks; loads in < 1 s


class CIFAR10(Dataset):
    name = "cifar10"

    def __init__(self, root=None, train=True, transform=None, download=False, n=None):
        d = data.load(self.name, data_dir=root, allow_download=False)
        x, y = (d.train_x, d.train_y) if train else (d.test_x, d.test_y)
        n = n or (N_TRAIN if train else N_TEST)
        self.data = x[:n].permute(0, 2, 3, 1).contiguous().numpy()
        self.targets = y[:n].tolist()
        self.classes = [str(i) for i in range(int(y.max()) + 1)]
        self.transform = transform

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        img = Image.fromarray(self.data[i])
        return (self.transform(img) if self.transform else img), self.targets[i]


class CIFAR100(CIFAR10):
    name = "cifar100"
