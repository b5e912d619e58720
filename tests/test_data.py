import pickle
import shutil

import numpy as np
import pytest
import torch

from cifarlab import data
from cifarlab.data import DataError, DeviceLoader, stratified_split


def test_cifar100_read_and_verified_genuine(c100):
    assert c100.train_x.shape == (50000, 3, 32, 32) and c100.train_x.dtype == torch.uint8
    assert c100.test_x.shape == (10000, 3, 32, 32)
    assert torch.equal(c100.train_y.bincount(), torch.full((100,), 500))
    assert torch.equal(c100.test_y.bincount(), torch.full((100,), 100))
    assert c100.train_y[:10].tolist() == [19, 29, 0, 11, 1, 86, 90, 28, 23, 31]
    assert len(c100.classes) == 100 and c100.classes[0] == "apple"
    assert len(c100.coarse_classes) == 20 and c100.train_coarse.max() == 19
    # every fine class maps to exactly one superclass
    pairs = torch.unique(c100.train_y * 100 + c100.train_coarse)
    assert len(pairs) == 100
    assert c100.verification.startswith("genuine")


def test_cifar10_read_and_called_unverified(c10):
    assert c10.train_x.shape == (50000, 3, 32, 32)
    assert torch.equal(c10.test_y.bincount(), torch.full((10,), 1000))
    assert c10.train_y[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert c10.classes[0] == "airplane" and c10.classes[-1] == "truck"
    # the shared copy has 98 JPEG-filled images: it must not be called genuine
    assert c10.verification.startswith("unverified")


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_normalization_constants_match_real_training_images(name, request):
    ds = request.getfixturevalue("c10" if name == "cifar10" else "c100")
    mean, std = data.channel_stats(ds.train_x)
    np.testing.assert_allclose(mean, ds.spec.mean, atol=5e-4)
    np.testing.assert_allclose(std, ds.spec.std, atol=5e-4)


def _copy_c10(root, tmp_path):
    dst = tmp_path / "cifar-10-batches-py"
    shutil.copytree(root / "cifar-10-batches-py", dst)
    return dst


def test_missing_folder_names_folder_and_fix(tmp_path):
    with pytest.raises(DataError, match=r"cifar-100-python.*(train|test|meta)") as e:
        data.load("cifar100", tmp_path / "nowhere", allow_download=False)
    assert "CIFARLAB_DATA" in str(e.value) and "nowhere" in str(e.value)


def test_truncated_file_names_the_file(synthetic_root, tmp_path):
    dst = _copy_c10(synthetic_root, tmp_path)
    blob = (dst / "data_batch_3").read_bytes()
    (dst / "data_batch_3").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="data_batch_3.*truncated or corrupt"):
        data.load("cifar10", tmp_path, allow_download=False)


def _rewrite(path, **changes):
    with open(path, "rb") as f:
        d = pickle.load(f, encoding="bytes")
    for k, v in changes.items():
        d[k.encode()] = v
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=2)


def test_wrong_shape_and_dtype(synthetic_root, tmp_path):
    dst = _copy_c10(synthetic_root, tmp_path)
    _rewrite(dst / "data_batch_1", data=np.zeros((60, 1024), np.uint8))
    with pytest.raises(DataError, match=r"data_batch_1.*uint8 of shape \(N, 3072\)"):
        data.load("cifar10", tmp_path, allow_download=False)
    dst = _copy_c10(synthetic_root, tmp_path / "b")
    _rewrite(dst / "test_batch", data=np.zeros((100, 3072), np.float32))
    with pytest.raises(DataError, match="test_batch.*uint8"):
        data.load("cifar10", tmp_path / "b", allow_download=False)


def test_labels_out_of_range(synthetic_root, tmp_path):
    dst = _copy_c10(synthetic_root, tmp_path)
    _rewrite(dst / "data_batch_2", labels=[10] * 60)
    with pytest.raises(DataError, match=r"data_batch_2.*labels out of range \[0, 10\)"):
        data.load("cifar10", tmp_path, allow_download=False)


def test_malicious_data_pickle_refused(synthetic_root, tmp_path):
    dst = _copy_c10(synthetic_root, tmp_path)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))
    with open(dst / "data_batch_1", "wb") as f:
        pickle.dump({b"data": Evil()}, f)
    with pytest.raises(DataError, match="data_batch_1"):
        data.load("cifar10", tmp_path, allow_download=False)
    assert not marker.exists()


def test_stratified_split_disjoint_seeded(c100):
    tr, va = stratified_split(c100.train_y, 5000, seed=0)
    assert len(va) == 5000 and len(tr) == 45000
    assert len(set(tr.tolist()) & set(va.tolist())) == 0
    assert torch.equal(c100.train_y[va].bincount(minlength=100), torch.full((100,), 50))
    tr2, va2 = stratified_split(c100.train_y, 5000, seed=0)
    assert torch.equal(va, va2)
    _, va3 = stratified_split(c100.train_y, 5000, seed=1)
    assert not torch.equal(va, va3)
    _, va_odd = stratified_split(c100.train_y, 250, seed=0)  # remainder spread over classes
    counts = c100.train_y[va_odd].bincount(minlength=100)
    assert len(va_odd) == 250 and counts.max() - counts.min() <= 1
    tr0, va0 = stratified_split(c100.train_y, 0, seed=0)
    assert len(va0) == 0 and len(tr0) == 50000


def test_subsets_slice_train_and_test_and_leave_the_hash_of_a_full_run(syn100):
    from cifarlab.config import make_config

    full = data.make_splits(syn100, 40, 0)
    part = data.make_splits(syn100, 40, 0, train_subset=100, test_subset=50)
    assert torch.equal(part.train_x, full.train_x[:100]) and torch.equal(part.val_y, full.val_y)
    assert torch.equal(part.test_x, full.test_x[:50]) and torch.equal(part.test_y, full.test_y[:50])
    base = make_config("c100-cnn-aug")
    assert make_config("c100-cnn-aug", {"data.test_subset": 0}).hash() == base.hash()
    assert make_config("c100-cnn-aug", {"data.test_subset": 50}).hash() != base.hash()


def test_device_loader_shuffles_and_keeps_pairs():
    x = torch.arange(100, dtype=torch.uint8).view(100, 1, 1, 1).expand(100, 3, 2, 2).contiguous()
    y = torch.arange(100)
    g = torch.Generator().manual_seed(0)
    loader = DeviceLoader(x, y, 32, torch.device("cpu"), shuffle=True, generator=g)
    batches = list(loader)
    assert len(batches) == 3 and all(len(b[1]) == 32 for b in batches)
    for xb, yb in batches:
        assert torch.equal(xb[:, 0, 0, 0].long(), yb)
    seen = torch.cat([b[1] for b in batches])
    assert len(set(seen.tolist())) == 96
    assert not torch.equal(seen, torch.arange(96))
    ev = DeviceLoader(x, y, 32, torch.device("cpu"))
    assert torch.equal(torch.cat([b[1] for b in ev]), y)


def test_synthetic_set_loads_through_the_normal_path_as_unverified(syn10, syn100):
    assert syn10.train_x.shape == (300, 3, 32, 32) and syn100.test_x.shape == (200, 3, 32, 32)
    assert syn100.coarse_classes and len(syn100.coarse_classes) == 20
    for ds in (syn10, syn100):
        assert ds.verification.startswith("unverified") and "train / " in ds.verification


def test_copy_note_names_a_known_copy_and_bad_notes_fail_clearly(synthetic_root, tmp_path):
    import json

    dst = _copy_c10(synthetic_root, tmp_path)
    ds = data.load("cifar10", tmp_path, allow_download=False)
    (dst / data.NOTE_FILE).write_text(json.dumps({"train_sha256": ds.sha256[0], "test_sha256": ds.sha256[1],
                                                  "note": "a test copy"}))
    data._CACHE.clear()
    assert data.load("cifar10", tmp_path, allow_download=False).verification == "unverified: a test copy"
    (dst / data.NOTE_FILE).write_text("{not json")
    data._CACHE.clear()
    with pytest.raises(DataError, match="cifarlab-note.json.*unreadable note"):
        data.load("cifar10", tmp_path, allow_download=False)


def test_torchvision_style_datasets_serve_the_verified_copy(c100, data_root):
    import torchvision.transforms as T
    from PIL import Image

    from cifarlab.data import CIFAR100

    test = CIFAR100(root=data_root, train=False, transform=T.ToTensor(), target_transform=lambda t: t + 1000)
    assert len(test) == 10000 and test.data.shape == (10000, 32, 32, 3) and test.classes == c100.classes
    x, y = test[7]
    assert x.shape == (3, 32, 32) and y == int(c100.test_y[7]) + 1000
    assert torch.equal((x * 255).round().to(torch.uint8), c100.test_x[7])  # the same pixels, channel order kept
    raw = CIFAR100(root=data_root, train=True, n=5)
    assert len(raw) == 5 and isinstance(raw[0][0], Image.Image) and raw.targets == c100.train_y[:5].tolist()
