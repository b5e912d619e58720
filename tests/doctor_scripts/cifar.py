"""torchvision.datasets.CIFAR10 / CIFAR100 for the doctor's script corpus: cifarlab's torchvision-style
datasets (no downloads in tests; the local copy is verified by cifarlab, not by torchvision's MD5s), cut to
the first images, enough for the audit's few batches and the doctor's checks, so that they load in < 1 s."""
from cifarlab import data

N_TRAIN, N_TEST = 2048, 512


class CIFAR10(data.CIFAR10):
    def __init__(self, root=None, train=True, transform=None, download=False, n=None):
        super().__init__(root, train, transform, n=n or (N_TRAIN if train else N_TEST))


class CIFAR100(data.CIFAR100):
    def __init__(self, root=None, train=True, transform=None, download=False, n=None):
        super().__init__(root, train, transform, n=n or (N_TRAIN if train else N_TEST))
