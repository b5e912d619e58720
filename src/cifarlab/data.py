"""CIFAR-10/100: locate, download (MD5), read, verify, split, and batch on the training device.

Data path: official "python version" pickles -> uint8 tensors (N, 3, 32, 32) + int64 labels ->
seeded stratified validation hold-out -> DeviceLoader (whole split on the device, shuffled batches).
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import ConfigError, DataError

ENV_VAR = "CIFARLAB_DATA"
DEFAULT_ROOT = Path.home() / ".cache" / "cifarlab"
# Optional file in a dataset folder, written by whoever made a non-official copy (see
# scripts/note_data_copy.py): {"train_sha256": ..., "test_sha256": ..., "note": "..."}. When the image
# arrays still match those checksums, the note is reported in the verification string.
NOTE_FILE = "cifarlab-note.json"
OFFICIAL_COUNTS = (50000, 10000)  # train, test images


@dataclass(frozen=True)
class Spec:
    name: str
    folder: str
    url: str
    archive_md5: str
    train_files: tuple[tuple[str, str], ...]  # (file, official md5)
    test_files: tuple[tuple[str, str], ...]
    meta_file: tuple[str, str]
    label_key: str
    num_classes: int
    mean: tuple[float, float, float]  # per-channel, over the 50k training images, in [0, 1]
    std: tuple[float, float, float]
    # SHA-256 of the decoded (N, 3072) uint8 `data` arrays of the genuine dataset (train, test)
    genuine_sha256: tuple[str, str] | None


SPECS = {
    "cifar10": Spec(
        name="cifar10", folder="cifar-10-batches-py",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        archive_md5="c58f30108f718f92721af3b95e74349a",
        train_files=(("data_batch_1", "c99cafc152244af753f735de768cd75f"),
                     ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
                     ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
                     ("data_batch_4", "634d18415352ddfa80567beed471001a"),
                     ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb")),
        test_files=(("test_batch", "40351d587109b95175f43aff81a1287e"),),
        meta_file=("batches.meta", "5ff9c542aee3614f3951f8cda6e48888"),
        label_key="labels", num_classes=10,
        mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
        genuine_sha256=None,  # not published for the decoded arrays; the file MD5s verify instead
    ),
    "cifar100": Spec(
        name="cifar100", folder="cifar-100-python",
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        archive_md5="eb9058c3a382ffc7106e4002c42a8d85",
        train_files=(("train", "16019d7e3df5f24257cddd939b257f8d"),),
        test_files=(("test", "f0ef6b0ae62326f3e7ffdfab6717acfc"),),
        meta_file=("meta", "7973b15100ade9c7d40fb424638fde48"),
        label_key="fine_labels", num_classes=100,
        mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762),
        genuine_sha256=("de64658905c6b161606e3649ddafce7cf86c7634a0cf9116d518e64ef46a33c5",
                        "83c56492b2c11211ad1bb2dbd4f2eef4170a0441e41a41f3039c3144b1f5a511"),
    ),
}


@dataclass
class CifarData:
    """A whole dataset in memory. Images uint8 (N, 3, 32, 32); labels int64 (N,)."""
    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list[str]
    train_coarse: torch.Tensor | None = None  # CIFAR-100 superclass labels
    test_coarse: torch.Tensor | None = None
    coarse_classes: list[str] | None = None
    verification: str = "unchecked"  # genuine (md5) | genuine (sha256) | unverified: ...
    sha256: tuple[str, str] = ("", "")

    @property
    def spec(self) -> Spec:
        return SPECS[self.name]

    @property
    def num_classes(self) -> int:
        return self.spec.num_classes


def resolve_root(data_dir: str | os.PathLike | None = None) -> Path:
    """--data-dir, else $CIFARLAB_DATA, else ~/.cache/cifarlab."""
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return DEFAULT_ROOT


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _spec(name: str) -> Spec:
    if name not in SPECS:
        raise DataError(f"unknown dataset {name!r}; valid datasets: {', '.join(SPECS)}")
    return SPECS[name]


def _all_files(spec: Spec) -> list[tuple[str, str]]:
    return [*spec.train_files, *spec.test_files, spec.meta_file]


def missing_files(name: str, root: Path) -> list[str]:
    spec = _spec(name)
    return [f for f, _ in _all_files(spec) if not (root / spec.folder / f).is_file()]


def download(name: str, root: Path) -> None:
    """Fetch the official archive, check its MD5, extract safely; nothing is left half-written."""
    spec = _spec(name)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as tmp:
        archive = Path(tmp) / Path(spec.url).name
        print(f"downloading {spec.url} -> {root}")
        urllib.request.urlretrieve(spec.url, archive)  # noqa: S310 (fixed https URL)
        got = _md5(archive)
        if got != spec.archive_md5:
            raise DataError(f"{archive.name}: MD5 {got} != official {spec.archive_md5}; "
                            "the download is corrupt, try again")
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        os.replace(Path(tmp) / spec.folder, root / spec.folder)


def ensure_files(name: str, root: Path, allow_download: bool = True) -> Path:
    spec = _spec(name)
    missing = missing_files(name, root)
    if missing and allow_download:
        try:
            download(name, root)
        except (OSError, urllib.error.URLError) as e:
            raise DataError(
                f"{name}: files missing in {root / spec.folder} ({', '.join(missing)}) and the download "
                f"from {spec.url} failed ({e}). Put the official 'python version' folder "
                f"'{spec.folder}/' there, or point --data-dir / ${ENV_VAR} at the folder that holds it."
            ) from None
        missing = missing_files(name, root)
    if missing:
        raise DataError(
            f"{name}: not found. Searched {root / spec.folder} for {', '.join(missing)}. Put the official "
            f"'python version' folder '{spec.folder}/' under {root}, point --data-dir or ${ENV_VAR} at "
            f"the folder that holds it, or allow the download (data.download=true).")
    return root / spec.folder


class _SafeUnpickler(pickle.Unpickler):
    """CIFAR pickles hold only dicts, lists, strings and numpy arrays; refuse anything else."""
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _read_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            d = _SafeUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise DataError(f"{path}: truncated or corrupt CIFAR file ({type(e).__name__}: {e}). "
                        "Delete it and materialize/download the dataset again.") from None
    if not isinstance(d, dict):
        raise DataError(f"{path}: expected a dict in a CIFAR pickle, got {type(d).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}


def _read_batch(path: Path, label_key: str, num_classes: int, coarse: bool
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    d = _read_pickle(path)
    for key in ("data", label_key):
        if key not in d:
            raise DataError(f"{path}: key '{key}' missing; not a CIFAR 'python version' file")
    x = d["data"]
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
        desc = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise DataError(f"{path}: 'data' must be uint8 of shape (N, 3072), got {desc}")
    y = np.asarray(d[label_key], dtype=np.int64)
    if y.shape != (x.shape[0],):
        raise DataError(f"{path}: {len(y)} labels for {x.shape[0]} images")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(f"{path}: labels out of range [0, {num_classes}): min {y.min()}, max {y.max()}")
    c = np.asarray(d["coarse_labels"], dtype=np.int64) if coarse and "coarse_labels" in d else None
    return x, y, c


def _read_split(folder: Path, files, spec: Spec):
    parts = [_read_batch(folder / f, spec.label_key, spec.num_classes, spec.name == "cifar100")
             for f, _ in files]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    c = np.concatenate([p[2] for p in parts]) if parts[0][2] is not None else None
    return x, y, c


def _verify(spec: Spec, folder: Path, x_train: np.ndarray, x_test: np.ndarray) -> tuple[str, tuple]:
    sha = (hashlib.sha256(x_train.tobytes()).hexdigest(), hashlib.sha256(x_test.tobytes()).hexdigest())
    if all(_md5(folder / f) == md5 for f, md5 in _all_files(spec)):
        return "genuine (official file MD5s)", sha
    if spec.genuine_sha256 and sha == spec.genuine_sha256:
        return "genuine (SHA-256 of the image arrays)", sha
    note = _copy_note(folder, sha)
    if note:
        return f"unverified: {note}", sha
    counts = (len(x_train), len(x_test))
    if counts != OFFICIAL_COUNTS:
        return (f"unverified: {counts[0]} train / {counts[1]} test images (official: "
                f"{OFFICIAL_COUNTS[0]} / {OFFICIAL_COUNTS[1]})"), sha
    return "unverified: neither the official file MD5s nor known image checksums match", sha


def _copy_note(folder: Path, sha: tuple[str, str]) -> str | None:
    """The note of NOTE_FILE in `folder` if its checksums are those of the arrays just read."""
    path = folder / NOTE_FILE
    if not path.is_file():
        return None
    try:
        d = json.loads(path.read_text())
        return str(d["note"]) if (d["train_sha256"], d["test_sha256"]) == sha else None
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: unreadable note ({e}); expected JSON with train_sha256, test_sha256, "
                        "note; fix or delete it") from None


def _class_names(folder: Path, spec: Spec) -> tuple[list[str], list[str] | None]:
    meta = _read_pickle(folder / spec.meta_file[0])
    def names(key):
        return [n.decode() if isinstance(n, bytes) else n for n in meta[key]]
    try:
        if spec.name == "cifar10":
            return names("label_names"), None
        return names("fine_label_names"), names("coarse_label_names")
    except KeyError as e:
        raise DataError(f"{folder / spec.meta_file[0]}: key {e} missing in the meta file") from None


_CACHE: dict[tuple[str, str], CifarData] = {}


def load(name: str = "cifar100", data_dir=None, allow_download: bool = True) -> CifarData:
    """Read and verify a whole dataset (cached per process)."""
    spec = _spec(name)
    root = resolve_root(data_dir)
    key = (name, str(root.resolve()))
    if key in _CACHE:
        return _CACHE[key]
    folder = ensure_files(name, root, allow_download)
    xtr, ytr, ctr = _read_split(folder, spec.train_files, spec)
    xte, yte, cte = _read_split(folder, spec.test_files, spec)
    for split, x in (("train", xtr), ("test", xte)):
        if len(x) == 0:
            raise DataError(f"{folder}: the {split} split has no images; a file is truncated or empty")
    classes, coarse_classes = _class_names(folder, spec)
    status, sha = _verify(spec, folder, xtr, xte)
    def t(a):
        return None if a is None else torch.from_numpy(a)
    data = CifarData(
        name=name, train_x=t(xtr).view(-1, 3, 32, 32), train_y=t(ytr),
        test_x=t(xte).view(-1, 3, 32, 32), test_y=t(yte), classes=classes,
        train_coarse=t(ctr), test_coarse=t(cte), coarse_classes=coarse_classes,
        verification=status, sha256=sha)
    _CACHE[key] = data
    return data


def stratified_split(labels: torch.Tensor, val_size: int, seed: int
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded stratified hold-out: returns (train_idx, val_idx), disjoint, sorted.

    Each class gives val_size // C images; the remainder comes from randomly chosen classes.
    """
    if val_size == 0:
        return torch.arange(len(labels)), torch.empty(0, dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    num_classes = int(labels.max()) + 1
    per_class = torch.full((num_classes,), val_size // num_classes)
    per_class[torch.randperm(num_classes, generator=g)[: val_size % num_classes]] += 1
    val = []
    for c in range(num_classes):
        idx = (labels == c).nonzero().squeeze(1)
        if per_class[c] > len(idx):
            raise ConfigError(f"val_size {val_size} asks {int(per_class[c])} images of class {c}, "
                             f"which has {len(idx)}")
        val.append(idx[torch.randperm(len(idx), generator=g)[: per_class[c]]])
    val_idx = torch.cat(val).sort().values
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[val_idx] = False
    return mask.nonzero().squeeze(1), val_idx


@dataclass
class Splits:
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def make_splits(data: CifarData, val_size: int, split_seed: int, train_subset: int = 0,
                test_subset: int = 0) -> Splits:
    train_idx, val_idx = stratified_split(data.train_y, val_size, split_seed)
    if train_subset:
        train_idx = train_idx[:train_subset]
    n_test = test_subset or len(data.test_y)
    return Splits(data.train_x[train_idx], data.train_y[train_idx], data.train_x[val_idx],
                  data.train_y[val_idx], data.test_x[:n_test], data.test_y[:n_test])


class DeviceLoader:
    """A whole split on one device; yields (uint8 images, labels) batches.

    shuffle=True draws a fresh permutation from `generator` each epoch and drops the last partial batch
    (so every step sees batch_size images); evaluation keeps every image in order.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device,
                 shuffle: bool = False, generator: torch.Generator | None = None):
        self.x = x.to(device)
        self.y = y.to(device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        if shuffle and len(x) < batch_size:
            raise ConfigError(f"training split has {len(x)} images, fewer than batch_size {batch_size}")

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.shuffle else -(-n // self.batch_size)

    def __iter__(self):
        for _, x, y in self.with_indices():
            yield x, y

    def with_indices(self):
        """Yields (indices into the split, images, labels); the same batches as iterating the loader."""
        n = len(self.x)
        order = (torch.randperm(n, generator=self.generator, device="cpu") if self.shuffle
                 else torch.arange(n)).to(self.x.device)
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            if self.shuffle:
                yield idx, self.x[idx], self.y[idx]
            else:
                sl = slice(i * self.batch_size, (i + 1) * self.batch_size)
                yield idx, self.x[sl], self.y[sl]


def channel_stats(x_uint8: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images scaled to [0, 1] (float64 accumulation)."""
    x = x_uint8.double().div_(255)
    return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).tolist()



class _TorchvisionStyle(torch.utils.data.Dataset):
    """torchvision's CIFAR dataset interface (`.data` (N, 32, 32, 3) uint8, `.targets`, `.classes`, PIL
    images through `transform`), read from cifarlab's verified copy ($CIFARLAB_DATA or `root`), so that a
    plain training script can use the same data as cifarlab. `n` keeps the first n images."""
    dataset = "cifar100"

    def __init__(self, root=None, train: bool = True, transform=None, target_transform=None,
                 download: bool = False, n: int | None = None):
        d = load(self.dataset, data_dir=root, allow_download=download)
        x, y = (d.train_x, d.train_y) if train else (d.test_x, d.test_y)
        self.data = x[:n].permute(0, 2, 3, 1).contiguous().numpy()
        self.targets = y[:n].tolist()
        self.classes = list(d.classes)
        self.train, self.transform, self.target_transform = train, transform, target_transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        from PIL import Image

        img, target = Image.fromarray(self.data[i]), self.targets[i]
        img = self.transform(img) if self.transform is not None else img
        return img, (self.target_transform(target) if self.target_transform is not None else target)


class CIFAR10(_TorchvisionStyle):
    dataset = "cifar10"


class CIFAR100(_TorchvisionStyle):
    dataset = "cifar100"
