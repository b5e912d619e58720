"""`cifarlab export`: ONNX (checked with onnxruntime against PyTorch) and safetensors round trips."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cifarlab import data as data_mod
from cifarlab.cli import main
from cifarlab.export import CLASS_NAMES, ExportError, export_model, export_onnx, load_bundle

ort = pytest.importorskip("onnxruntime", reason="pip install 'cifarlab[export]'")

CKPT = Path(__file__).resolve().parents[1] / "checkpoints" / "c100-cnn-aug.pt"
SAMPLE = 500  # test-split images compared between PyTorch and onnxruntime


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(CKPT)


@pytest.fixture(scope="module")
def sample(c100):
    idx = torch.randperm(len(c100.test_y), generator=torch.Generator().manual_seed(0))[:SAMPLE]
    return c100.test_x[idx]


def _torch_logits(bundle, x_uint8):
    """Logits the way `cifarlab eval` computes them (fp32, the dataset's Normalizer)."""
    from cifarlab.augment import Normalizer
    from cifarlab.evaluate import predict
    from cifarlab.runtime import fp32_runtime

    return predict(bundle.model, x_uint8, Normalizer(bundle.mean, bundle.std, "cpu"), fp32_runtime()).numpy()


@pytest.mark.parametrize("input_dtype", ["uint8", "float"])
def test_onnx_matches_pytorch_on_the_test_split(tmp_path, bundle, sample, input_dtype):
    path = export_onnx(bundle, tmp_path / "m.onnx", input_dtype)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = sample.numpy() if input_dtype == "uint8" else (sample.float() / 255).numpy()
    ref = _torch_logits(bundle, sample)
    got = np.concatenate([sess.run(["logits"], {"images": feed[i:i + 128]})[0] for i in range(0, SAMPLE, 128)])
    assert got.shape == (SAMPLE, 100) and got.dtype == np.float32
    assert np.abs(got - ref).max() <= 1e-4
    assert (got.argmax(1) == ref.argmax(1)).all()
    one = sess.run(["logits"], {"images": feed[:1]})[0]  # the batch axis is dynamic: 128, 116 and 1
    assert np.abs(one - ref[:1]).max() <= 1e-4

    inp = sess.get_inputs()[0]
    assert inp.shape[1:] == [3, 32, 32] and isinstance(inp.shape[0], str)
    assert inp.type == ("tensor(uint8)" if input_dtype == "uint8" else "tensor(float)")
    meta = sess.get_modelmeta().custom_metadata_map
    assert json.loads(meta["classes"]) == list(CLASS_NAMES["cifar100"])
    assert json.loads(meta["mean"]) == list(data_mod.SPECS["cifar100"].mean)
    assert json.loads(meta["std"]) == list(data_mod.SPECS["cifar100"].std)
    assert ("uint8 0..255" if input_dtype == "uint8" else "float32 0..1") in meta["input"]
    assert json.loads(meta["config"])["model"]["name"] == "cnn"


def test_safetensors_round_trip_and_predict_from_it(tmp_path, bundle, sample):
    from safetensors import safe_open

    shutil.copy(CKPT, tmp_path / "model.pt")
    assert main(["export", str(tmp_path / "model.pt"), "--format", "safetensors"]) == 0
    out = tmp_path / "model.safetensors"  # default --out: the checkpoint's stem
    with safe_open(out, "pt") as f:
        meta = f.metadata()
    assert json.loads(meta["classes"]) == list(CLASS_NAMES["cifar100"])
    assert json.loads(meta["summary"])["test_acc"] == bundle.summary["test_acc"]
    back = load_bundle(out)
    assert back.classes == bundle.classes and back.config == bundle.config
    assert np.array_equal(_torch_logits(back, sample[:64]), _torch_logits(bundle, sample[:64]))

    from PIL import Image

    from cifarlab.predict import predict_images

    Image.fromarray(sample[0].permute(1, 2, 0).numpy()).save(tmp_path / "x.png")
    assert predict_images(out, tmp_path / "x.png")[0].top == predict_images(bundle, tmp_path / "x.png")[0].top


def test_files_that_are_not_cifarlab_exports_are_refused(tmp_path, capsys):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, tmp_path / "other.safetensors")
    with pytest.raises(ExportError, match="no cifarlab metadata"):
        load_bundle(tmp_path / "other.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(ExportError, match="not a readable safetensors file"):
        load_bundle(tmp_path / "junk.safetensors")
    with pytest.raises(ExportError, match="overwrite its own source"):
        export_model(tmp_path / "other.safetensors", "safetensors")


def test_missing_extra_names_the_install_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` raise ImportError
    assert main(["export", str(CKPT), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert "'onnx'" in err and "pip install 'cifarlab[export]'" in err
    assert not (tmp_path / "m.onnx").exists()
