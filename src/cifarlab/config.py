"""One config tree: frozen dataclasses, YAML presets, `--set a.b=v` overrides, validation.

Every field carries its unit or meaning in a trailing comment. Validation runs before any work starts
and every error names the key, the bad value and the valid choices.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .schema import config_hash

PRESET_DIR = Path(__file__).parent / "presets"


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "cifar100"  # cifar10 | cifar100
    val_size: int = 5000  # images held out of the training set for model selection; 0 = none
    split_seed: int = 0  # seed of the stratified validation hold-out (independent of the run seed)
    train_subset: int = 0  # use only the first N training images after the split (0 = all); for tests
    test_subset: int = 0  # score only the first N test images (0 = all); for tests, never for a result
    download: bool = True  # fetch the official archive when the files are missing


@dataclass(frozen=True)
class AugmentConfig:
    crop_pad: int = 0  # random translation in pixels (crop of a zero-padded image); 0 = off
    flip: bool = False  # random horizontal flip with p = 0.5
    rotate_deg: float = 0.0  # random rotation, uniform in ±degrees; 0 = off
    brightness: float = 0.0  # brightness factor uniform in [1-b, 1+b]
    contrast: float = 0.0  # contrast factor uniform in [1-c, 1+c]
    saturation: float = 0.0  # saturation factor uniform in [1-s, 1+s]
    cutout: int = 0  # side of a square zeroed (after normalization) at a random centre; 0 = off
    interpolation: str = "bilinear"  # resampling of rotated images: bilinear | nearest (torchvision's)
    geometry: str = "fused"  # with rotation: fused (one resample of the whole image) | sequential
    #                          (crop first, then rotate the 32x32 crop: torchvision's Compose order)
    jitter_order: str = "fixed"  # fixed (brightness, contrast, saturation) | random per image
    pad_mode: str = "zeros"  # crop_pad fills with: zeros | reflect (mirror about the edge pixel)
    flip_mode: str = "random"  # random (p = 0.5 per image and step) | alternate (each image flips on
    #                            every other epoch, starting from a random half: derandomized flip)
    lowres_side: int = 0  # progressive resizing: train at this side (pixels) first; 0 = off
    lowres_epochs: int = 0  # epochs trained at lowres_side before switching to 32


@dataclass(frozen=True)
class ModelConfig:
    name: str = "cnn"  # key of cifarlab.models.MODELS
    width: int = 1  # channel multiplier for the conv families (1 = the seed's widths)
    dropout: float = 0.0  # dropout probability before the classifier (mlp: in each hidden block); 0 = none
    widths: str = "64,256,256"  # fastnet: channels of its 3 conv groups, comma-separated
    depth: int = 2  # fastnet: convs per group (the first one pools)
    bn_momentum: float = 0.4  # fastnet: weight of each batch in BN running stats (torch convention)
    logit_scale: float = 0.111111  # fastnet: logits multiplied by this (1/9: softer early softmax)
    whiten: bool = True  # fastnet: stem = frozen PCA whitening of 2x2 patches (else a trained conv)
    dirac: bool = True  # fastnet: convs start as identity maps (Dirac init) on their first channels
    frozen_bn_scale: bool = True  # fastnet: BN scale fixed at 1; only the shift trains
    stem_bias_epochs: int = 3  # fastnet: epochs the whitening stem's bias trains before freezing


@dataclass(frozen=True)
class OptimConfig:
    name: str = "adam"  # adam | adamw | sgd (sgd uses Nesterov momentum)
    lr: float = 1e-3  # peak learning rate
    weight_decay: float = 5e-4  # L2 (adam, sgd) or decoupled (adamw); on weights only, see next key
    decay_norm_bias: bool = False  # also decay norm scales/shifts and biases (as a bare optimizer does)
    momentum: float = 0.9  # sgd momentum
    schedule: str = "constant"  # constant | cosine | onecycle
    warmup_epochs: float = 0.0  # linear warm-up from 0 to lr (cosine and constant); onecycle uses pct
    onecycle_pct: float = 0.25  # fraction of all steps spent rising to lr in onecycle
    final_lr_frac: float = 0.0  # lr at the last step as a fraction of peak (cosine, onecycle)
    label_smoothing: float = 0.0  # CrossEntropy label smoothing in [0, 1)
    grad_clip: float = 0.0  # max global grad norm; 0 = off
    per_1024: bool = False  # lr and weight_decay stated per 1,024 examples, decoupled from batch size
    #                         and momentum (sgd; airbench's convention; see optim.torch_lr_wd)
    norm_bias_lr_scale: float = 1.0  # lr multiplier for 1-d params (norm shifts/scales, biases)
    initial_lr_frac: float = 0.0  # onecycle: lr at step 0 as a fraction of peak
    lookahead_every: int = 0  # Lookahead/EMA: pull weights to a slow EMA every N steps; 0 = off
    lookahead_decay: float = 0.7738  # Lookahead: EMA decay at the end of training (0.95**5)
    muon_lr: float = 0.0  # Muon (torch.optim.Muon) for conv filters at this peak lr per step, following
    #                       the schedule; the other parameters keep optim.name; 0 = off (fastnet only)
    muon_momentum: float = 0.6  # Muon's Nesterov momentum


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 5  # passes over the training split
    batch_size: int = 128  # images per optimizer step
    eval_batch_size: int = 1000  # images per evaluation forward pass
    seed: int = 0  # seeds init, data order and augmentation
    early_stop_patience: int = 0  # stop after N epochs without a better val accuracy; 0 = off
    precision: str = "auto"  # auto (bf16 where supported) | bf16 | fp32
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    checkpoint_every_steps: int = 0  # extra resumable checkpoint every N steps; 0 = per epoch only
    nonfinite: str = "stop"  # stop | skip : what a NaN/Inf loss does
    max_skipped_steps: int = 10  # with nonfinite=skip, stop after this many skipped steps
    finite_check_every: int = 1  # steps between loss NaN/Inf checks (each check is a host sync on GPU);
    #                              a bad loss found late rolls back to the last checked state
    tta: int = 0  # test-time augmentation at evaluation: 0 none | 1 mirror | 2 mirror + 1-px translates
    compile: bool = False  # torch.compile the model (GPU; slower than eager on the CPUs measured)
    compile_mode: str = "default"  # with compile: torch.compile's mode; reduce-overhead replays the
    #                                train step's kernels as CUDA graphs (GPU), max-autotune also tunes them
    eval_precision: str = "fp32"  # final test evaluation: fp32 (reproducible anywhere) | train (the
    #                               training precision: bf16 autocast where used; what speed records time)
    max_steps: int = 0  # optimizer steps of the whole run when > 0 (fewer than epochs x steps per epoch: the
    #                     last epoch ends early; the schedule spans max_steps); what a --budget plan sets
    sync_bn: bool = False  # torchrun with N > 1 processes: BatchNorm statistics over the global batch (all
    #                        ranks) instead of each rank's batch_size/N images; no effect on a single process


@dataclass(frozen=True)
class LogConfig:
    """How a run is recorded besides its run folder's own files; never changes what is trained."""
    tensorboard: bool = False  # TensorBoard event files in <run dir>/tensorboard/ (pip install
    #                            'cifarlab[tensorboard]'): scalars, images, hyper-parameters


@dataclass(frozen=True)
class Config:
    name: str = "custom"  # preset name, shown in reports
    description: str = ""  # one line, shown by `cifarlab presets`
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """Short stable hash of everything that affects training (not name/description, not `log`); keys
        of later schema versions count only when they differ from their default (`schema`)."""
        d = self.to_dict()
        d.pop("name"), d.pop("description"), d.pop("log")  # log: how a run is recorded, not what it trains
        return config_hash(d)


CHOICES = {
    "data.dataset": ("cifar10", "cifar100"),
    "augment.interpolation": ("bilinear", "nearest"),
    "augment.jitter_order": ("fixed", "random"),
    "augment.geometry": ("fused", "sequential"),
    "augment.pad_mode": ("zeros", "reflect"),
    "augment.flip_mode": ("random", "alternate"),
    "train.tta": (0, 1, 2),
    "train.eval_precision": ("fp32", "train"),
    "train.compile_mode": ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
    "optim.name": ("adam", "adamw", "sgd"),
    "optim.schedule": ("constant", "cosine", "onecycle"),
    "train.precision": ("auto", "bf16", "fp32"),
    "train.nonfinite": ("stop", "skip"),
}

# key -> (predicate, human description of the valid range)
RANGES = {
    "data.val_size": (lambda v: 0 <= v < 50000, ">= 0 and < 50000"),
    "data.train_subset": (lambda v: v >= 0, ">= 0"),
    "data.test_subset": (lambda v: v >= 0, ">= 0"),
    "augment.crop_pad": (lambda v: 0 <= v <= 16, "0..16"),
    "augment.rotate_deg": (lambda v: 0 <= v <= 180, "0..180"),
    "augment.brightness": (lambda v: 0 <= v < 1, ">= 0 and < 1"),
    "augment.contrast": (lambda v: 0 <= v < 1, ">= 0 and < 1"),
    "augment.saturation": (lambda v: 0 <= v < 1, ">= 0 and < 1"),
    "augment.cutout": (lambda v: 0 <= v <= 32, "0..32"),
    "model.width": (lambda v: 1 <= v <= 16, "1..16"),
    "model.dropout": (lambda v: 0 <= v < 1, ">= 0 and < 1"),
    "optim.lr": (lambda v: 0 < v <= 100, "> 0 and <= 100"),
    "optim.weight_decay": (lambda v: v >= 0, ">= 0"),
    "optim.momentum": (lambda v: 0 <= v < 1, ">= 0 and < 1"),
    "optim.warmup_epochs": (lambda v: v >= 0, ">= 0"),
    "optim.onecycle_pct": (lambda v: 0 < v < 1, "> 0 and < 1"),
    "optim.final_lr_frac": (lambda v: 0 <= v <= 1, "0..1"),
    "optim.label_smoothing": (lambda v: 0 <= v < 1, ">= 0 and < 1"),
    "optim.grad_clip": (lambda v: v >= 0, ">= 0 (0 = off)"),
    "optim.norm_bias_lr_scale": (lambda v: 0 < v <= 1000, "> 0 and <= 1000"),
    "optim.initial_lr_frac": (lambda v: 0 <= v <= 1, "0..1"),
    "optim.lookahead_every": (lambda v: v >= 0, ">= 0 (0 = off)"),
    "optim.lookahead_decay": (lambda v: 0 <= v < 1, ">= 0 and < 1"),
    "optim.muon_lr": (lambda v: 0 <= v <= 10, ">= 0 and <= 10 (0 = off)"),
    "optim.muon_momentum": (lambda v: 0 <= v < 1, ">= 0 and < 1"),
    "augment.lowres_side": (lambda v: v == 0 or 16 <= v <= 32, "0 (off) or 16..32"),
    "augment.lowres_epochs": (lambda v: v >= 0, ">= 0"),
    "model.depth": (lambda v: 1 <= v <= 8, "1..8"),
    "model.bn_momentum": (lambda v: 0 < v <= 1, "> 0 and <= 1"),
    "model.logit_scale": (lambda v: v > 0, "> 0"),
    "model.stem_bias_epochs": (lambda v: v >= 0, ">= 0"),
    "train.finite_check_every": (lambda v: v >= 1, ">= 1"),
    "train.epochs": (lambda v: 1 <= v <= 10000, "1..10000"),
    "train.batch_size": (lambda v: 1 <= v <= 50000, "1..50000"),
    "train.eval_batch_size": (lambda v: 1 <= v <= 50000, "1..50000"),
    "train.early_stop_patience": (lambda v: v >= 0, ">= 0 (0 = off)"),
    "train.checkpoint_every_steps": (lambda v: v >= 0, ">= 0 (0 = off)"),
    "train.max_skipped_steps": (lambda v: v >= 1, ">= 1"),
    "train.max_steps": (lambda v: v >= 0, ">= 0 (0 = epochs x steps per epoch)"),
}


def _sections() -> dict[str, type]:
    return {f.name: _resolve(f.type) for f in fields(Config) if f.name not in ("name", "description")}


def _resolve(type_name: str) -> type:
    # field types are strings under `from __future__ import annotations`
    return {"DataConfig": DataConfig, "AugmentConfig": AugmentConfig, "ModelConfig": ModelConfig,
            "OptimConfig": OptimConfig, "TrainConfig": TrainConfig, "LogConfig": LogConfig, "str": str,
            "int": int, "float": float, "bool": bool}[type_name]


def _coerce(key: str, value: Any, typ: type) -> Any:
    """Check `value` against the field type; ints are accepted where floats are expected."""
    ok = (isinstance(value, bool) if typ is bool else
          isinstance(value, (int, float)) and not isinstance(value, bool) if typ is float else
          isinstance(value, int) and not isinstance(value, bool) if typ is int else
          isinstance(value, typ))
    if not ok:
        raise ConfigError(f"config key '{key}': expected {typ.__name__}, got {value!r} "
                          f"({type(value).__name__})")
    return float(value) if typ is float else value


def from_dict(d: dict, *, source: str = "config") -> Config:
    """Build and validate a Config from a nested dict (YAML layout). Unknown keys are errors."""
    if not isinstance(d, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(d).__name__}")
    sections = _sections()
    top_keys = {"name", "description", *sections}
    kwargs: dict[str, Any] = {}
    for key, value in d.items():
        if key not in top_keys:
            raise ConfigError(f"{source}: unknown key '{key}'; valid keys: {', '.join(sorted(top_keys))}")
        if key in ("name", "description"):
            kwargs[key] = _coerce(key, value, str)
            continue
        cls = sections[key]
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{key}' must be a mapping of {cls.__name__} fields")
        valid = {f.name: f for f in fields(cls)}
        sub = {}
        for k, v in value.items():
            if k not in valid:
                raise ConfigError(f"{source}: unknown key '{key}.{k}'; valid keys in '{key}': "
                                  f"{', '.join(valid)}")
            sub[k] = _coerce(f"{key}.{k}", v, _resolve(valid[k].type))
        kwargs[key] = cls(**sub)
    cfg = Config(**kwargs)
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    """Raise ConfigError naming the key and the valid choices or range."""
    flat = flatten(cfg.to_dict())
    for key, choices in CHOICES.items():
        if flat[key] not in choices:
            raise ConfigError(f"config key '{key}': {flat[key]!r} is not one of "
                              f"{', '.join(map(str, choices))}")
    for key, (pred, desc) in RANGES.items():
        if not pred(flat[key]):
            raise ConfigError(f"config key '{key}': {flat[key]!r} is out of range; must be {desc}")
    _validate_fast_keys(cfg)
    from .models import MODELS  # local import: models import nothing from config

    if cfg.model.name not in MODELS:
        raise ConfigError(f"config key 'model.name': unknown model {cfg.model.name!r}; "
                          f"valid models: {', '.join(MODELS)}")


def parse_widths(text: str) -> tuple[int, ...]:
    """'64,256,256' -> (64, 256, 256); ConfigError unless 1..6 positive ints."""
    try:
        widths = tuple(int(w) for w in str(text).split(","))
    except ValueError:
        widths = ()
    if not 1 <= len(widths) <= 6 or min(widths) < 1:
        raise ConfigError(f"config key 'model.widths': {text!r} is not a comma-separated list of 1 to 6 "
                          "positive channel counts, e.g. 64,256,256")
    return widths


def _validate_fast_keys(cfg: Config) -> None:
    parse_widths(cfg.model.widths)
    from .models import MODEL_OPTIONS  # local import: models import nothing from config

    reads = MODEL_OPTIONS.get(cfg.model.name, ())
    default = ModelConfig()
    for key in MODEL_OPTIONS["fastnet"]:
        if key not in reads and getattr(cfg.model, key) != getattr(default, key):
            raise ConfigError(f"config key 'model.{key}': model {cfg.model.name!r} does not read it "
                              "(fastnet only); remove the key or use model.name=fastnet")
    if cfg.train.compile_mode != "default" and not cfg.train.compile:
        raise ConfigError(f"config key 'train.compile_mode': {cfg.train.compile_mode!r} needs train.compile=true "
                          "(the mode is torch.compile's); set both or remove the mode")
    if cfg.optim.per_1024 and cfg.optim.name != "sgd":
        raise ConfigError("config key 'optim.per_1024': only for optim.name=sgd (the per-1,024-example "
                          f"units assume SGD with momentum); got optim.name={cfg.optim.name!r}")
    if cfg.optim.muon_lr and cfg.model.name != "fastnet":
        raise ConfigError("config key 'optim.muon_lr': Muon here keeps each conv filter at a fixed norm, "
                          "which is sound only where BatchNorm follows every conv (model.name=fastnet); got "
                          f"model.name={cfg.model.name!r}; set optim.muon_lr=0")
    if cfg.train.nonfinite == "skip" and cfg.train.finite_check_every > 1:
        raise ConfigError("config key 'train.finite_check_every': train.nonfinite=skip must check every "
                          "step (a bad step is only skippable when it is caught before it is applied); "
                          "set train.finite_check_every=1 or train.nonfinite=stop")
    if cfg.augment.flip_mode == "alternate" and cfg.augment.rotate_deg:
        raise ConfigError("config key 'augment.flip_mode': alternate is not implemented together with "
                          "augment.rotate_deg; use flip_mode=random or rotate_deg=0")


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _number(raw: str) -> int | float | None:
    """Python's number syntax; PyYAML alone would read '1e-3' (no dot) as a string."""
    for conv in (int, float):
        try:
            return conv(raw)
        except ValueError:
            pass
    return None


def parse_override(text: str) -> tuple[str, Any]:
    """'optim.lr=0.01' -> ('optim.lr', 0.01). Values are parsed as YAML scalars."""
    if not isinstance(text, str) or "=" not in text:
        raise ConfigError(f"malformed override {text!r}: expected KEY=VALUE, e.g. optim.lr=0.01")
    key, _, raw = text.partition("=")
    key = key.strip()
    if not key or any(not part.isidentifier() for part in key.split(".")):
        raise ConfigError(f"malformed override {text!r}: key must look like section.field, "
                          f"e.g. train.epochs=10")
    try:
        value = _number(raw.strip())
        if value is None:
            value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"malformed override {text!r}: value is not a YAML scalar ({e})") from None
    if isinstance(value, (dict, list)):
        raise ConfigError(f"malformed override {text!r}: value must be a scalar")
    return key, value


def apply_overrides(cfg: Config, overrides: list[str] | dict[str, Any]) -> Config:
    """Apply 'a.b=v' strings (or a {'a.b': v} dict); validates the result."""
    items = overrides.items() if isinstance(overrides, dict) else map(parse_override, overrides)
    d = cfg.to_dict()
    for key, value in items:
        parts = key.split(".")
        node = d
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                raise ConfigError(f"unknown config key '{key}'; valid keys: "
                                  f"{', '.join(sorted(flatten(cfg.to_dict())))}")
            node = node[p]
        if parts[-1] not in node or isinstance(node[parts[-1]], dict):
            raise ConfigError(f"unknown config key '{key}'; valid keys: "
                              f"{', '.join(sorted(flatten(cfg.to_dict())))}")
        node[parts[-1]] = value
    return from_dict(d, source="overrides")


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def preset_descriptions() -> dict[str, str]:
    """name -> one-line description, read from the YAML files without validating (no model import)."""
    return {name: str(load_yaml(PRESET_DIR / f"{name}.yaml").get("description", "")) for name in preset_names()}


def load_yaml(path: Path) -> dict:
    try:
        with open(path) as f:
            d = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    return d or {}


def load_preset(name: str) -> Config:
    """Load a preset by name (src/cifarlab/presets/NAME.yaml) or a path to a YAML file."""
    path = Path(name)
    if not (path.suffix in (".yaml", ".yml") and path.exists()):
        if name not in preset_names():
            raise ConfigError(f"unknown preset {name!r}; valid presets: {', '.join(preset_names())}")
        path = PRESET_DIR / f"{name}.yaml"
    d = preset_dict(path)
    d.setdefault("name", path.stem)
    return from_dict(d, source=str(path))


def preset_dict(path: Path, _seen: tuple[str, ...] = ()) -> dict:
    """A preset file's mapping with its `base:` chain resolved: the base preset's sections, then this
    file's keys over them (section by section, key by key). name/description are never inherited."""
    d = load_yaml(path)
    base = d.pop("base", None)
    if base is None:
        return d
    if not isinstance(base, str) or base not in preset_names():
        raise ConfigError(f"{path}: base {base!r} is not a preset; valid presets: {', '.join(preset_names())}")
    if base in _seen or base == path.stem:
        raise ConfigError(f"{path}: presets form a cycle through base: {' -> '.join((*_seen, path.stem, base))}")
    merged = {k: v for k, v in preset_dict(PRESET_DIR / f"{base}.yaml", (*_seen, path.stem)).items()
              if k not in ("name", "description")}
    for key, value in d.items():
        merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
    return merged


def make_config(preset: str | None = None, overrides: list[str] | dict | None = None) -> Config:
    cfg = load_preset(preset) if preset else Config()
    return apply_overrides(cfg, overrides) if overrides else cfg


def to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


__all__ = ["Config", "DataConfig", "AugmentConfig", "ModelConfig", "OptimConfig", "TrainConfig", "LogConfig",
           "ConfigError", "make_config", "load_preset", "preset_names", "apply_overrides",
           "parse_override", "from_dict", "validate", "replace", "to_yaml"]
