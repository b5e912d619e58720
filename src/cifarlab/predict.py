"""`cifarlab predict`: top-k classes for image files of any format and size that Pillow reads.

How an image becomes the model's 32x32 input (`load_image`), in order:

1. Pillow opens the file; of an animated or multi-page file, the first frame. A JPEG larger than needed
   is decoded at a reduced scale by libjpeg (`Image.draft`, 1/2, 1/4 or 1/8, never below 64 px on the
   short side), which is what makes multi-megapixel photos cheap.
2. The EXIF orientation, if any, is applied (a phone photo is classified upright).
3. Colour becomes 8-bit RGB: greyscale is replicated, palettes are expanded, 16-bit greyscale is scaled
   by 255/65535, and pixels with transparency are composited over white.
4. `fit="crop"` (default): the largest centred square is cut out (the CIFAR photos are square, and this
   keeps shapes undistorted); `fit="squash"`: the whole image, aspect ratio not kept.
5. Resized to 32x32 by Pillow's bicubic filter, which antialiases: when shrinking, the filter widens with
   the scale factor, so every source pixel contributes (no aliasing from skipped pixels). An image that
   is already 32x32 is used as is, so a CIFAR image saved as PNG gives exactly the dataset's pixels.

Then, as in `cifarlab eval`: the checkpoint's dataset normalization, the model in eval mode in fp32,
batches of `batch_size`, softmax probabilities. Files are decoded on a few threads (Pillow releases the
GIL while decoding and resizing). A file that cannot be read gets its own error; the others still run.
"""
from __future__ import annotations

import csv
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .errors import ConfigError

SIZE = 32  # CIFAR images are 32x32
FITS = ("crop", "squash")
_DRAFT_MIN = 2 * SIZE  # keep at least this many pixels on the short side when JPEG decoding shrinks


@dataclass
class Prediction:
    path: str  # as given, or as found under a given directory
    top: list[tuple[str, int, float]] = field(default_factory=list)  # (class, index, probability), best first
    error: str | None = None  # why the file could not be classified; `top` is then empty

    def to_dict(self) -> dict:
        return {"path": self.path, "error": self.error,
                "top": [{"class": c, "index": i, "probability": round(p, 6)} for c, i, p in self.top]}


def image_suffixes() -> set[str]:
    """File name endings (lower case, with the dot) of every format this Pillow can open."""
    from PIL import Image

    Image.init()
    return {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


def find_images(inputs) -> list[tuple[str, str | None]]:
    """(path, error) for each input: files as given, directories walked (sorted, hidden names skipped)."""
    suffixes = image_suffixes()
    found: list[tuple[str, str | None]] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files = [os.path.join(d, f) for d, dirs, names in sorted(os.walk(p)) for f in sorted(names)
                     if not f.startswith(".") and Path(f).suffix.lower() in suffixes
                     and not any(part.startswith(".") for part in Path(d).relative_to(p).parts)]
            found += [(f, None) for f in files] or [(str(p), "no image files in this directory (looked "
                                                             "for the formats Pillow opens, e.g. .png, .jpg)")]
        elif p.is_file():
            found.append((str(p), None))
        else:
            found.append((str(p), "no such file or directory"))
    return found


def _to_rgb(img):
    from PIL import Image

    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):  # 16-bit greyscale (PNG, TIFF)
        a = np.asarray(img, dtype=np.float64) * (255 / 65535)
        img = Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8))
    elif img.mode == "F":  # float greyscale (TIFF): 0..1 if it fits, else 0..255
        a = np.asarray(img, dtype=np.float64)
        a = a * 255 if a.size and a.max() <= 1 else a
        img = Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    return img.convert("RGB")


def load_image(source, fit: str = "crop") -> torch.Tensor:
    """uint8 tensor (3, 32, 32) from a file path or a PIL image, prepared as the module docstring says."""
    from PIL import Image, ImageOps

    if fit not in FITS:
        raise ValueError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
    img = source if isinstance(source, Image.Image) else Image.open(source)
    if img.format == "JPEG" and not isinstance(source, Image.Image):
        img.draft("RGB", (_DRAFT_MIN, _DRAFT_MIN))
    img = _to_rgb(ImageOps.exif_transpose(img))
    w, h = img.size
    s = min(w, h)
    box = ((w - s) / 2, (h - s) / 2, (w + s) / 2, (h + s) / 2) if fit == "crop" else (0, 0, w, h)
    img = img.resize((SIZE, SIZE), Image.Resampling.BICUBIC, box=box)
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


def _load_one(item, fit):
    path, error = item
    if error:
        return None, error
    try:
        return load_image(path, fit), None
    except Exception as e:  # any decoder failure is this file's problem only; the message says which
        msg = str(e).splitlines()[0] if str(e) else ""
        return None, f"not readable as an image ({type(e).__name__}: {msg})"


def predict_images(model, inputs, top_k: int = 5, batch_size: int = 256, fit: str = "crop",
                   device: str = "cpu", workers: int | None = None) -> list[Prediction]:
    """Top-k classes for each image file (directories are walked), in input order.

    `model`: a checkpoint path (.pt), an exported .safetensors file, or an `export.Bundle`.
    `inputs`: a path or a list of paths (files or directories). An unreadable file gives a Prediction
    with `error` set; the others are still classified.
    """
    from .augment import Normalizer
    from .evaluate import predict
    from .export import Bundle, load_bundle
    from .runtime import fp32_runtime

    if top_k < 1 or batch_size < 1:
        raise ConfigError(f"top_k and batch_size must be at least 1, got {top_k} and {batch_size}")
    if fit not in FITS:
        raise ConfigError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
    b = model if isinstance(model, Bundle) else load_bundle(model, device)
    items = find_images([inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs))
    rt = fp32_runtime(device)
    normalize = Normalizer(b.mean, b.std, rt.device)
    k = min(top_k, len(b.classes))
    out: list[Prediction] = []
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    with ThreadPoolExecutor(workers or min(8, cores)) as pool:
        for i in range(0, len(items), batch_size):
            chunk = items[i:i + batch_size]
            loaded = list(pool.map(lambda it: _load_one(it, fit), chunk))
            ok = [x for x, _ in loaded if x is not None]
            if ok:
                probs = predict(b.model, torch.stack(ok), normalize, rt, batch_size).softmax(1)
                p, idx = probs.topk(k, dim=1)
                rows = iter(zip(p.tolist(), idx.tolist()))
            for (path, _), (x, err) in zip(chunk, loaded):
                if x is None:
                    out.append(Prediction(path, error=err))
                    continue
                ps, ids = next(rows)
                out.append(Prediction(path, [(b.classes[c], c, q) for q, c in zip(ps, ids)]))
    return out


def format_table(preds: list[Prediction]) -> str:
    """Human-readable: one row per readable image, the top classes with percentages."""
    rows = [p for p in preds if p.error is None]
    if not rows:
        return "no image could be classified"
    k = len(rows[0].top)
    name_w = max(len("image"), *(len(p.path) for p in rows))  # full paths: they are what the user typed
    cell_w = max(12, *(len(c) + 8 for p in rows for c, _, _ in p.top))
    lines = [f"{'image':<{name_w}}  " + "".join(f"{f'top-{r + 1}':<{cell_w}}" for r in range(k)).rstrip()]
    for p in rows:
        cells = "".join(f"{f'{c} {q * 100:.1f}%':<{cell_w}}" for c, _, q in p.top)
        lines.append(f"{p.path:<{name_w}}  {cells.rstrip()}")
    return "\n".join(lines)


def to_json(preds: list[Prediction]) -> str:
    return json.dumps([p.to_dict() for p in preds], indent=2)


def to_csv(preds: list[Prediction]) -> str:
    """One row per (image, rank); an unreadable image has one row with its error and no class."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "rank", "class", "index", "probability", "error"])
    for p in preds:
        if p.error is not None:
            w.writerow([p.path, "", "", "", "", p.error])
        for r, (c, i, q) in enumerate(p.top, 1):
            w.writerow([p.path, r, c, i, f"{q:.6f}", ""])
    return buf.getvalue()
