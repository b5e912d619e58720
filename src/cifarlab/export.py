"""What a trained model carries when it leaves cifarlab: class names, safetensors weights, ONNX graphs.

Both formats are self-describing, so a user needs neither cifarlab nor the CIFAR files to use them:

- **safetensors** (`.safetensors`): the model's state dict, and in the header metadata (strings only, as
  the format requires) `format`, `config` (JSON, the full training config), `classes` (JSON list),
  `mean` / `std` (JSON, per RGB channel on the 0..1 scale) and `summary` (JSON, the recorded result).
  `load_bundle` reads it back into the same model; `cifarlab predict` accepts it like a checkpoint.
- **ONNX** (`.onnx`): one graph from raw pixels to logits with cifarlab's evaluation preprocessing
  inside: input `images`, RGB NCHW (batch, 3, 32, 32), the batch dimension dynamic, either uint8
  0..255 (`input_dtype="uint8"`, the default: decoded image bytes go straight in) or float32 0..1
  (`input_dtype="float"`); the graph computes `(x / 255 - mean) / std` (uint8) or `(x - mean) / std`
  (float), then the network. Output `logits` (batch, classes), float32; softmax gives probabilities.
  The model's `metadata_props` hold `classes`, `mean`, `std`, `input`, `dataset`, `model`, `config`.
  Images must already be 32x32 RGB; `cifarlab.predict.load_image` documents the resizing cifarlab uses.

The ONNX graph comes from torch's own exporter (`torch.onnx.export(dynamo=True)`, torch's default since
2.9; the TorchScript exporter it replaced warns that it will be removed), which needs `onnxscript`. onnx,
onnxscript, onnxruntime and safetensors are the optional extra `pip install 'cifarlab[export]'`.
"""
from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

SAFETENSORS_FORMAT = "cifarlab-weights-v1"
INPUTS = ("uint8", "float")
FORMATS = ("onnx", "safetensors")
EXTRA = "pip install 'cifarlab[export]'"

# The official label names, in label order (batches.meta / meta of the CIFAR "python version" files);
# checkpoints store only the label indices. tests/test_predict.py checks them against the data files.
CLASS_NAMES = {
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    "cifar100": tuple("""
        apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly
        camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup
        dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower
        leopard lion lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange
        orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit
        raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail snake spider squirrel
        streetcar sunflower sweet_pepper table tank telephone television tiger tractor train trout tulip
        turtle wardrobe whale willow_tree wolf woman worm""".split()),
}


class ExportError(RuntimeError):
    """An export or a model file that cannot be made or read; the message names the file and the fix."""


def require(module: str, purpose: str):
    """Import an optional dependency or fail with the command that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise ExportError(f"{purpose} needs the Python package '{package}', which is not installed; "
                          f"install the optional extra: {EXTRA}") from None


@dataclass(frozen=True)
class Bundle:
    """A model ready for inference with everything needed to feed it and name its outputs."""

    model: nn.Module  # eval mode, fp32
    config: object  # cifarlab.config.Config
    classes: tuple[str, ...]
    mean: tuple[float, float, float]  # per RGB channel, 0..1 scale
    std: tuple[float, float, float]
    summary: dict | None  # the recorded training result, if the file has one
    source: Path


def load_bundle(path: str | Path, device: str = "cpu") -> Bundle:
    """Load a cifarlab checkpoint (.pt) or an exported .safetensors file for inference."""
    from . import data as data_mod

    path = Path(path)
    if path.suffix == ".safetensors":
        model, cfg, summary = _read_safetensors(path)
        model = model.to(device)
    else:
        from .pipeline import load_model

        model, cfg, state = load_model(path, device)
        summary = state.get("summary")
    spec = data_mod.SPECS[cfg.data.dataset]
    return Bundle(model.float().eval(), cfg, CLASS_NAMES[cfg.data.dataset], tuple(spec.mean),
                  tuple(spec.std), summary, path)


def _metadata(b: Bundle) -> dict[str, str]:
    return {"classes": json.dumps(list(b.classes)), "mean": json.dumps(list(b.mean)),
            "std": json.dumps(list(b.std)), "dataset": b.config.data.dataset, "model": b.config.model.name,
            "config": json.dumps(b.config.to_dict()), "summary": json.dumps(b.summary)}


def export_safetensors(b: Bundle, out: str | Path) -> Path:
    """Write the weights with config, class names and normalization in the header metadata."""
    st = require("safetensors.torch", "safetensors export")
    from .io import write_bytes

    tensors = {k: v.detach().cpu().contiguous() for k, v in b.model.state_dict().items()}
    write_bytes(out, st.save(tensors, metadata={"format": SAFETENSORS_FORMAT, **_metadata(b)}))
    return Path(out)


def _read_safetensors(path: Path):
    st = require("safetensors.torch", f"reading {path}")
    from safetensors import safe_open

    from . import data as data_mod
    from .checkpoint import load_weights
    from .pipeline import checkpoint_config, new_model

    if not path.is_file():
        raise ExportError(f"model file not found: {path}")
    try:
        with safe_open(path, "pt") as f:
            meta = f.metadata() or {}
        tensors = st.load_file(path)
    except Exception as e:  # safetensors raises its own error types for truncated or foreign files
        raise ExportError(f"{path}: not a readable safetensors file ({str(e).splitlines()[0]})") from None
    if meta.get("format") != SAFETENSORS_FORMAT:
        raise ExportError(f"{path}: no cifarlab metadata (format {SAFETENSORS_FORMAT!r}); export it with "
                          "`cifarlab export CHECKPOINT --format safetensors`")
    cfg = checkpoint_config({"config": json.loads(meta["config"])}, path)
    num_classes = data_mod.SPECS[cfg.data.dataset].num_classes
    model = new_model(cfg, num_classes)
    state = {"model": tensors, "config": cfg.to_dict(), "num_classes": num_classes}
    load_weights(model, state, path, target=f"{cfg.model.name} with {num_classes} classes")
    return model, cfg, json.loads(meta.get("summary", "null"))


class Deployed(nn.Module):
    """The network with cifarlab's evaluation preprocessing in front: RGB pixels in, logits out.

    Computes exactly what `augment.Normalizer` does before the network at evaluation.
    """

    def __init__(self, b: Bundle, input_dtype: str = "uint8"):
        super().__init__()
        if input_dtype not in INPUTS:
            raise ValueError(f"input_dtype must be one of {', '.join(INPUTS)}, got {input_dtype!r}")
        self.net, self.uint8 = b.model, input_dtype == "uint8"
        self.register_buffer("mean", torch.tensor(b.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(b.std).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (B, 3, 32, 32) -> logits (B, C)
        x = images.float() / 255 if self.uint8 else images
        return self.net((x - self.mean) / self.std)


def export_onnx(b: Bundle, out: str | Path, input_dtype: str = "uint8") -> Path:
    """Write an ONNX graph (preprocessing inside, dynamic batch) with classes and mean/std in metadata."""
    onnx = require("onnx", "ONNX export")
    require("onnxscript", "ONNX export (torch.onnx's exporter)")
    from .io import write_bytes

    wrapped = Deployed(b, input_dtype).cpu().eval()
    example = torch.zeros(2, 3, 32, 32, dtype=torch.uint8 if input_dtype == "uint8" else torch.float32)
    program = torch.onnx.export(wrapped, (example,), dynamo=True, external_data=False, verbose=False,
                                input_names=["images"], output_names=["logits"],
                                dynamic_shapes=({0: torch.export.Dim("batch")},))
    proto = program.model_proto
    described = "float32 0..1" if input_dtype == "float" else "uint8 0..255"
    meta = {**_metadata(b), "input": f"images: RGB NCHW (batch, 3, 32, 32) {described}; "
                                     "output logits (batch, classes)", "producer": "cifarlab"}
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    write_bytes(out, proto.SerializeToString())
    return Path(out)


def export_model(checkpoint: str | Path, format: str, out: str | Path | None = None,
                 input_dtype: str = "uint8") -> Path:
    """`cifarlab export`: write CHECKPOINT as ONNX or safetensors; `out` defaults to the same stem."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    require("onnx" if format == "onnx" else "safetensors", f"{format} export")  # before loading anything
    out = Path(out) if out else Path(checkpoint).with_suffix(f".{format}")
    if out.resolve() == Path(checkpoint).resolve():
        raise ExportError(f"{out}: the export would overwrite its own source; pass --out")
    b = load_bundle(checkpoint)
    if format == "onnx":
        return export_onnx(b, out, input_dtype)
    return export_safetensors(b, out)
