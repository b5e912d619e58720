"""Data checks: input scale, randomness at evaluation, which images the evaluation really uses, and whether
both splits give a class the same label."""
from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import Subset

from .core import Check, Context, Finding, found, inconclusive, register
from .limits import (EVAL_ON_TRAIN_FRACTION, EVAL_REREAD_ITEMS, NORM_ERROR_MEAN, NORM_ERROR_PEAK,
                     NORM_ERROR_STD_HIGH, NORM_ERROR_STD_LOW, NORM_WARN_MEAN, NORM_WARN_STD,
                     OUTPUT_OVERLAP_FRACTION, TRAIN_HASH_BATCHES)
from .probes import batch_hashes, item_hashes


def check_input_normalization(ctx: Context) -> list[Finding]:
    xs = []
    for i, batch in enumerate(ctx.train_loader):
        xs.append(batch[0].float())
        if i >= 3:
            break
    x = torch.cat(xs)
    mean, std, peak = x.mean().item(), x.std().item(), x.abs().max().item()
    desc = f"training inputs have mean {mean:.3f}, std {std:.3f}, max |x| {peak:.1f}"
    if abs(mean) > NORM_ERROR_MEAN.value or std > NORM_ERROR_STD_HIGH.value or \
            std < NORM_ERROR_STD_LOW.value or peak > NORM_ERROR_PEAK.value:
        return [found("input-normalization", "error", desc + ": far from zero mean / unit variance "
                      "(the 'exploding input' of wrong normalization constants or raw 0-255 pixels)")]
    if abs(mean) > NORM_WARN_MEAN.value or not 1 / NORM_WARN_STD.value < std < NORM_WARN_STD.value:
        return [found("input-normalization", "warning", desc + ": inputs look un-normalized")]
    return []


def _reread(ds, n: int) -> tuple[int, int]:
    """(items that differ between two reads, items read) over n items spread over the dataset."""
    torch.manual_seed(0)  # deterministic verdict; the caller's RNG state is restored by diagnose()
    random.seed(0)
    np.random.seed(0)
    idx = np.linspace(0, len(ds) - 1, min(n, len(ds))).astype(int)
    differ = 0
    for i in idx:
        a, b = ds[int(i)][0], ds[int(i)][0]
        a, b = torch.as_tensor(np.asarray(a)), torch.as_tensor(np.asarray(b))
        differ += not (a.shape == b.shape and torch.equal(a, b))
    return differ, len(idx)


def _no_eval_loader(code: str) -> list[Finding]:
    return [inconclusive(code, "the script created no evaluation DataLoader the audit could see",
                         "needs the evaluation data as a DataLoader (or pass eval_loader to diagnose())")]


def check_eval_augmented(ctx: Context) -> list[Finding]:
    if ctx.eval_loader is None:
        return _no_eval_loader("eval-augmented")
    ds = getattr(ctx.eval_loader, "dataset", None)
    if ds is not None and hasattr(ds, "__getitem__") and hasattr(ds, "__len__") and len(ds) > 0:
        differ, n = _reread(ds, int(EVAL_REREAD_ITEMS.value))
        detail = f"{differ} of {n} evaluation items differ between two reads of the same index"
    else:  # a loader without an indexable dataset: one full pass, then the first batches of a second
        first = set(batch_hashes(ctx.eval_loader))
        second = batch_hashes(ctx.eval_loader, limit=2)
        differ, n = sum(h not in first for h in second), len(second)
        detail = f"{differ} of {n} images of a second pass over the eval loader are not in the first"
    if differ:
        return [found("eval-augmented", "error", detail + ": random augmentation is applied at evaluation")]
    return []


def check_eval_on_train(ctx: Context) -> list[Finding]:
    if ctx.eval_loader is None:
        return _no_eval_loader("eval-on-train")
    if ctx.eval_loader is ctx.train_loader:
        return [found("eval-on-train", "error", "the eval loader is the training loader")]
    eh, th = item_hashes(ctx.eval_loader), item_hashes(ctx.train_loader)
    if eh is not None and th is not None:
        train_set = set(th)
        overlap = sum(h in train_set for h in eh)
        ctx.cache["duplicates"] = (overlap, len(eh))
        if overlap / max(len(eh), 1) > EVAL_ON_TRAIN_FRACTION.value:
            return [found("eval-on-train", "error", f"{overlap} of {len(eh)} evaluation images are training "
                          "images (compared by content, through samplers and subsets)")]
        return []
    # no raw items reachable: compare what the loaders yield (meaningful when training is not augmented)
    eval_hashes = batch_hashes(ctx.eval_loader)
    train_hashes = set(batch_hashes(ctx.train_loader, limit=int(TRAIN_HASH_BATCHES.value)))
    frac = sum(h in train_hashes for h in eval_hashes) / max(len(eval_hashes), 1)
    if frac > OUTPUT_OVERLAP_FRACTION.value:
        return [found("eval-on-train", "error", f"{frac:.0%} of evaluation images also come out of the "
                      "training loader")]
    return [found("eval-on-train", "info", "the raw images behind the loaders are not reachable (no `.data`, "
                  "array attribute or file list on the dataset); compared loader outputs only, which cannot "
                  "match when training is augmented", "expose the un-transformed images as `dataset.data` to "
                  "let the doctor compare them")]


def check_duplicates(ctx: Context) -> list[Finding]:
    if "duplicates" not in ctx.cache:
        return []
    n, total = ctx.cache["duplicates"]
    if 0 < n <= total * EVAL_ON_TRAIN_FRACTION.value:
        return [found("duplicates", "info", f"{n} of {total} evaluation images are exact copies of training "
                      "images")]
    return []


def _class_index(loader) -> dict[str, int] | None:
    """Class name -> label of a loader's dataset (through Subset chains): its `class_to_idx`, else the
    position in its `classes` list (the torchvision convention); None when it names no classes."""
    ds = getattr(loader, "dataset", None)
    while isinstance(ds, Subset):
        ds = ds.dataset
    mapping = getattr(ds, "class_to_idx", None)
    if isinstance(mapping, dict) and mapping and all(isinstance(v, (int, np.integer)) for v in mapping.values()):
        return {str(k): int(v) for k, v in mapping.items()}
    classes = getattr(ds, "classes", None)
    if isinstance(classes, (list, tuple)) and classes and all(isinstance(c, str) for c in classes):
        return {c: i for i, c in enumerate(classes)}
    return None


def check_label_mapping(ctx: Context) -> list[Finding]:
    if ctx.eval_loader is None:
        return _no_eval_loader("label-mapping")
    train, ev = _class_index(ctx.train_loader), _class_index(ctx.eval_loader)
    if train is None or ev is None:
        return []  # nothing names the classes: nothing to compare
    shared = sorted(train.keys() & ev.keys())
    moved = [c for c in shared if train[c] != ev[c]]
    if not moved:
        return []
    c = moved[0]
    extra = sorted(train.keys() ^ ev.keys())
    return [found("label-mapping", "error", f"{len(moved)} of {len(shared)} classes have a different label in "
                  f"the evaluation data than in the training data (e.g. '{c}' is {train[c]} in training, "
                  f"{ev[c]} in evaluation)" + (f"; classes in only one split: {', '.join(extra[:5])}" if extra
                                               else "") + ": evaluation scores predictions against the wrong "
                  "classes")]


FAMILY = "data"
register(Check(
    "input-normalization", FAMILY, check_input_normalization, "error / warning",
    "mean, std and max |x| over the first 4 training batches",
    "error: |mean| > NORM_ERROR_MEAN, std > NORM_ERROR_STD_HIGH, std < NORM_ERROR_STD_LOW or max > "
    "NORM_ERROR_PEAK; warning: |mean| > NORM_WARN_MEAN or std outside 1/NORM_WARN_STD – NORM_WARN_STD",
    "inputs deliberately scaled differently ([-1, 1] passes; [0, 1] warns; raw 0–255 is an error)",
    "normalize with the dataset's per-channel mean and std of images scaled to [0, 1] after ToTensor "
    "(CIFAR-10 (0.4914, 0.4822, 0.4465) / (0.2470, 0.2435, 0.2616))", needs_model=False))
register(Check(
    "eval-augmented", FAMILY, check_eval_augmented, "error",
    "EVAL_REREAD_ITEMS items of the eval dataset, spread over it, each read twice under a fixed seed "
    "(deterministic verdict); loaders without an indexable dataset: a second pass looked up in the first",
    "any item that differs", "none for deterministic transforms; shuffled eval loaders pass",
    "give the evaluation data its own transform with no randomness (ToTensor + Normalize), also for a "
    "validation split taken from the training set (random_split shares the training transform)",
    needs_model=False))
register(Check(
    "eval-on-train", FAMILY, check_eval_on_train, "error / info",
    "the raw items each loader reads — through its sampler (SubsetRandomSampler indices), Subset chains, "
    "and the dataset's `.data`, any array attribute with one row per item, or its file list — compared "
    "by content; without raw items, loader outputs (info that augmentation hides matches)",
    "> EVAL_ON_TRAIN_FRACTION overlap (raw) or > OUTPUT_OVERLAP_FRACTION (outputs)",
    "a validation set that intentionally reuses training images",
    "evaluate on the held-out test split (train=False) or a validation split disjoint from training",
    needs_model=False))
register(Check(
    "duplicates", FAMILY, check_duplicates, "info",
    "exact duplicates between training and evaluation raw items", "0 < count ≤ EVAL_ON_TRAIN_FRACTION",
    "none: it reports a property of the data (10 in CIFAR-100's test set)",
    "nothing to fix in the pipeline: report accuracy knowing the data set has these copies",
    needs_model=False))
register(Check(
    "label-mapping", FAMILY, check_label_mapping, "error / info",
    "the class name -> label mapping of the training and evaluation datasets (`class_to_idx`, else the order "
    "of `classes`), through Subset chains",
    "any class name with a different label in the two splits",
    "datasets whose `classes` list is not in label order",
    "build one class -> index mapping (from the training set, or from the union of all splits' classes) and "
    "use it for every split", needs_model=False))
