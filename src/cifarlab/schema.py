"""Versions of the config schema, so that a config hash outlives new keys.

A config hash (`Config.hash`) names everything that affects training; study folders, result records and
published checkpoints are keyed by it. Each schema version lists the keys it added with the default they
were added with. While a key holds that default it is left out of the hash, so a config written before the
key existed hashes exactly as it did then. Adding a config field means adding it to a new `Version` here;
`tests/test_schema.py` fails on a field that no version introduces.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Version:
    number: int
    summary: str
    added: dict[str, Any]  # dotted key -> its default when it was added


# keys of version 1 (the first release); every later key belongs to exactly one later version
FIRST_KEYS = frozenset({
    "data.dataset", "data.val_size", "data.split_seed", "data.train_subset", "data.download",
    "augment.crop_pad", "augment.flip", "augment.rotate_deg", "augment.brightness", "augment.contrast",
    "augment.saturation", "augment.cutout", "model.name", "model.width", "model.dropout", "optim.name",
    "optim.lr", "optim.weight_decay", "optim.momentum", "optim.schedule", "optim.warmup_epochs",
    "optim.onecycle_pct", "optim.final_lr_frac", "optim.label_smoothing", "optim.grad_clip", "train.epochs",
    "train.batch_size", "train.eval_batch_size", "train.seed", "train.early_stop_patience", "train.precision",
    "train.device", "train.checkpoint_every_steps", "train.nonfinite", "train.max_skipped_steps",
})

VERSIONS = (
    Version(2, "augmentation order and interpolation; weight decay on norm and bias as an option",
            {"augment.interpolation": "bilinear", "augment.jitter_order": "fixed", "augment.geometry": "fused",
             "optim.decay_norm_bias": False}),
    Version(3, "the fast recipes: FastNet, Muon, Lookahead, test-time augmentation, compile",
            {"augment.pad_mode": "zeros", "augment.flip_mode": "random", "augment.lowres_side": 0,
             "augment.lowres_epochs": 0, "model.widths": "64,256,256", "model.depth": 2,
             "model.bn_momentum": 0.4, "model.logit_scale": 0.111111, "model.whiten": True,
             "model.dirac": True, "model.frozen_bn_scale": True, "model.stem_bias_epochs": 3,
             "optim.per_1024": False, "optim.norm_bias_lr_scale": 1.0, "optim.initial_lr_frac": 0.0,
             "optim.lookahead_every": 0, "optim.lookahead_decay": 0.7738, "train.finite_check_every": 1,
             "train.tta": 0, "train.compile": False, "train.eval_precision": "fp32", "optim.muon_lr": 0.0,
             "optim.muon_momentum": 0.6, "train.sync_bn": False, "train.compile_mode": "default"}),
    Version(4, "time budgets: a step cap under the epoch schedule", {"train.max_steps": 0}),
    Version(5, "a slice of the test split for quick tests", {"data.test_subset": 0}),
)
CURRENT = VERSIONS[-1].number
ADDED = {key: default for v in VERSIONS for key, default in v.added.items()}

# Version 1's MLP read model.dropout=0 as 0.3; its records store 0.0 for what trained with 0.3. An MLP with
# 0.3 therefore hashes as 0.0, and a real 0.0 carries a marker so that it differs from them.
MLP_V1_DROPOUT = 0.3


def canonical(tree: dict) -> dict:
    """The hashed form of a config tree (sections of keys; name, description and log already removed)."""
    out = {section: dict(values) for section, values in tree.items()}
    for key, default in ADDED.items():
        section, _, name = key.partition(".")
        if name in out.get(section, {}) and out[section][name] == default:
            del out[section][name]
    model = out.get("model", {})
    if model.get("name") == "mlp":
        if model["dropout"] == MLP_V1_DROPOUT:
            model["dropout"] = 0.0
        elif model["dropout"] == 0.0:
            model["dropout_zero"] = True
    return out


def config_hash(tree: dict) -> str:
    blob = json.dumps(canonical(tree), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
