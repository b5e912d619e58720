"""`cifarlab predict` / `predict_images`: image preparation, batching, per-file errors, output formats."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cifarlab.cli import main
from cifarlab.export import CLASS_NAMES, load_bundle
from cifarlab.predict import find_images, load_image, predict_images

CKPT = Path(__file__).resolve().parents[1] / "checkpoints" / "c100-cnn-aug.pt"


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(CKPT)


def test_class_names_match_the_data_files(c10, c100):
    assert list(CLASS_NAMES["cifar10"]) == c10.classes
    assert list(CLASS_NAMES["cifar100"]) == c100.classes


def test_cifar_images_saved_as_png_give_the_evaluation_logits(tmp_path, bundle, c100):
    from cifarlab.augment import Normalizer
    from cifarlab.evaluate import predict
    from cifarlab.runtime import fp32_runtime

    x = c100.test_x[:40]
    for i, img in enumerate(x):
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(tmp_path / f"{i:03d}.png")
    assert all(torch.equal(load_image(tmp_path / f"{i:03d}.png"), x[i]) for i in range(len(x)))
    preds = predict_images(bundle, tmp_path, top_k=3, batch_size=16)  # 3 batches, the last one short
    probs = predict(bundle.model, x, Normalizer(bundle.mean, bundle.std, "cpu"), fp32_runtime()).softmax(1)
    assert [p.path for p in preds] == [str(tmp_path / f"{i:03d}.png") for i in range(len(x))]
    for p, row in zip(preds, probs):
        q, idx = row.topk(3)
        assert [i for _, i, _ in p.top] == idx.tolist()
        assert [c for c, _, _ in p.top] == [bundle.classes[i] for i in idx.tolist()]
        assert np.allclose([v for _, _, v in p.top], q.tolist(), atol=1e-6)
    acc = np.mean([p.top[0][1] == int(y) for p, y in zip(preds, c100.test_y[:40])])
    assert acc > 0.3  # the published model is ~55% top-1; a broken pipeline would be near 1%


def _exif_rotated(path):
    """64x64, top half white, bottom half black, stored with EXIF orientation 3 (display rotated 180°)."""
    a = np.zeros((64, 64, 3), np.uint8)
    a[:32] = 255
    exif = Image.Exif()
    exif[0x0112] = 3
    Image.fromarray(a).save(path, exif=exif)


def test_load_image_prepares_each_kind_of_file(tmp_path):
    _exif_rotated(tmp_path / "rot.jpg")
    x = load_image(tmp_path / "rot.jpg").float()
    assert x[:, :12].mean() < 30 and x[:, -12:].mean() > 225  # shown upright: black on top

    Image.new("RGBA", (50, 70), (0, 0, 0, 0)).save(tmp_path / "clear.png")  # transparent black
    assert torch.equal(load_image(tmp_path / "clear.png"), torch.full((3, 32, 32), 255, dtype=torch.uint8))

    Image.fromarray(np.full((40, 30), 65535, np.uint16)).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    assert torch.equal(load_image(tmp_path / "g16.png"), torch.full((3, 32, 32), 255, dtype=torch.uint8))

    wide = np.zeros((32, 96, 3), np.uint8)
    wide[:, :32, 0] = 255
    wide[:, 32:64, 1] = 255
    wide[:, 64:, 2] = 255
    Image.fromarray(wide).save(tmp_path / "wide.png")
    crop = load_image(tmp_path / "wide.png", fit="crop")
    assert torch.equal(crop, torch.tensor([0, 255, 0], dtype=torch.uint8).view(3, 1, 1).expand(3, 32, 32))
    squash = load_image(tmp_path / "wide.png", fit="squash").float()
    assert squash[0, :, :8].mean() > 200 and squash[2, :, -8:].mean() > 200  # red left, blue right

    big = np.random.default_rng(0).integers(0, 256, (600, 800, 3), dtype=np.uint8)
    Image.fromarray(big).save(tmp_path / "big.jpg", quality=90)
    assert load_image(tmp_path / "big.jpg").shape == (3, 32, 32)
    with pytest.raises(ValueError, match="fit must be one of crop, squash"):
        load_image(tmp_path / "big.jpg", fit="stretch")


def _mixed_folder(root: Path) -> None:
    rng = np.random.default_rng(1)
    (root / "sub").mkdir()
    (root / ".hidden").mkdir()
    Image.fromarray(rng.integers(0, 256, (37, 53, 4), dtype=np.uint8)).save(root / "odd.png")  # RGBA
    Image.fromarray(rng.integers(0, 256, (120, 90), dtype=np.uint8)).convert("P").save(root / "sub/pal.gif")
    Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8)).save(root / "sub/grey.bmp")
    Image.fromarray(rng.integers(0, 256, (300, 200, 3), dtype=np.uint8)).save(root / "sub/photo.jpg")
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    png = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(png, format="PNG")
    (root / "truncated.png").write_bytes(png.getvalue()[:200])
    (root / "notes.txt").write_text("not an image, and not picked up from a folder")
    Image.new("RGB", (8, 8)).save(root / ".hidden/skip.png")
    Image.new("RGB", (8, 8)).save(root / ".skip.png")


def test_folders_are_walked_and_bad_files_fail_alone(tmp_path, bundle):
    _mixed_folder(tmp_path)
    found = [Path(p).relative_to(tmp_path).as_posix() for p, _ in find_images([tmp_path])]
    assert found == ["corrupt.jpg", "odd.png", "truncated.png", "sub/grey.bmp", "sub/pal.gif", "sub/photo.jpg"]
    (tmp_path / "empty").mkdir()
    preds = predict_images(bundle, [tmp_path, tmp_path / "missing.png", tmp_path / "empty"], top_k=4)
    by = {Path(p.path).name: p for p in preds}
    assert {n for n, p in by.items() if p.error} == {"corrupt.jpg", "truncated.png", "missing.png", "empty"}
    assert "not readable as an image" in by["corrupt.jpg"].error
    assert "no such file" in by["missing.png"].error and "no image files" in by["empty"].error
    for name in ("odd.png", "pal.gif", "grey.bmp", "photo.jpg"):
        p = by[name]
        assert len(p.top) == 4 and p.error is None
        probs = [q for _, _, q in p.top]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6


def test_cli_table_json_csv_and_exit_code(tmp_path, capsys):
    _mixed_folder(tmp_path)
    good = tmp_path / "odd.png"
    assert main(["predict", str(CKPT), str(good), "--top-k", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["image", "top-1", "top-2"] and out[1].startswith(str(good))

    assert main(["predict", str(CKPT), str(tmp_path), "--json"]) == 1
    cap = capsys.readouterr()
    rows = json.loads(cap.out)
    assert len(rows) == 6 and sum(r["error"] is not None for r in rows) == 2
    assert all(len(r["top"]) == 5 for r in rows if r["error"] is None)
    assert "corrupt.jpg" in cap.err and "2 of 6 inputs failed" in cap.err

    assert main(["predict", str(CKPT), str(good), str(tmp_path / "corrupt.jpg"), "--csv", "--top-k", "3"]) == 1
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["rank"] for r in table] == ["1", "2", "3", ""] and table[3]["error"]
    assert table[0]["class"] in CLASS_NAMES["cifar100"] and 0 < float(table[0]["probability"]) <= 1


def test_bad_arguments_are_refused(tmp_path, bundle):
    with pytest.raises(ValueError, match="top_k"):
        predict_images(bundle, tmp_path, top_k=0)
    assert main(["predict", str(tmp_path / "nope.pt"), str(tmp_path)]) == 2
