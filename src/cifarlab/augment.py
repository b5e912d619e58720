"""Batched augmentation on the training device, with explicit randomness.

Every random parameter is drawn per sample from a `torch.Generator` passed in, so the same generator
state gives the same batch. The eval path (`normalize`) has no randomness at all.

Why not kornia: its augmentations draw parameters from the global RNG, which breaks exact resume
and makes "same seed, same batch" depend on unrelated code; these few ops are short in plain torch
and as fast (one gather or one grid_sample per batch).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .config import AugmentConfig


class Normalizer:
    """uint8 (B,3,H,W) -> float (B,3,H,W), (x/255 - mean) / std with per-dataset constants."""

    def __init__(self, mean, std, device, memory_format=torch.contiguous_format):
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1)
        self.memory_format = memory_format

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float().div_(255)
        return ((x - self.mean) / self.std).contiguous(memory_format=self.memory_format)


def _uniform(n, lo, hi, g, device):
    return torch.rand(n, generator=g, device=device) * (hi - lo) + lo


def _translate_flip(x: torch.Tensor, pad: int, mirror: torch.Tensor | bool, g, device,
                    reflect: bool = False) -> torch.Tensor:
    """Integer translation (a crop of the zero- or reflect-padded image) and mirror, exact, by one gather.
    mirror: True = flip each image with p = 0.5 (drawn after the shifts), False = none, or a (B,) bool
    tensor of the images to flip."""
    b, c, h, w = x.shape
    ar_h = torch.arange(h, device=device)
    ar_w = torch.arange(w, device=device)
    dy = torch.randint(-pad, pad + 1, (b,), generator=g, device=device) if pad else torch.zeros(
        b, dtype=torch.long, device=device)
    dx = torch.randint(-pad, pad + 1, (b,), generator=g, device=device) if pad else torch.zeros_like(dy)
    if not isinstance(mirror, torch.Tensor):
        mirror = (torch.rand(b, generator=g, device=device) < 0.5) if mirror else torch.zeros(
            b, dtype=torch.bool, device=device)
    rows = ar_h[None, :] + dy[:, None]  # (B, H) source row of each output row
    src_cols = torch.where(mirror[:, None], w - 1 - ar_w[None, :], ar_w[None, :])
    cols = src_cols + dx[:, None]  # (B, W)
    if reflect:  # mirror about the edge pixel (numpy/torch "reflect"), so nothing is zero-filled
        rows, cols = _reflect(rows, h), _reflect(cols, w)
    valid = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    flat = rows.clamp(0, h - 1)[:, :, None] * w + cols.clamp(0, w - 1)[:, None, :]  # (B, H, W)
    out = x.flatten(2).gather(2, flat.flatten(1)[:, None, :].expand(b, c, h * w)).view(b, c, h, w)
    return out if reflect else out * valid[:, None].to(out.dtype)


def _reflect(i: torch.Tensor, n: int) -> torch.Tensor:
    return torch.where(i < 0, -i, torch.where(i >= n, 2 * (n - 1) - i, i))


def _affine(x: torch.Tensor, pad: int, flip: bool, rotate_deg: float, g, device,
            mode: str = "bilinear", sequential: bool = False) -> torch.Tensor:
    """Rotation + translation + mirror as one resample (zero fill).

    Crop -> flip -> rotate compose into one affine map (the angle is symmetric, so mirror-then-rotate
    and rotate-then-mirror are equally likely). `sequential=False` ("fused") samples the whole source
    image, so the rotated corners show real pixels wherever the source has them. `sequential=True`
    replays torchvision's Compose exactly: the rotation only sees the 32x32 crop, so every output
    pixel whose rotated position falls outside the crop window is zero fill, as after a real crop.
    `mode="nearest"` copies source pixels as torchvision's RandomRotation does by default; bilinear
    mixes neighbours (a slight blur test images never see).
    """
    b, _, h, w = x.shape
    theta_rad = _uniform(b, -rotate_deg, rotate_deg, g, device) * (math.pi / 180)
    dy = torch.randint(-pad, pad + 1, (b,), generator=g, device=device).float() if pad else \
        torch.zeros(b, device=device)
    dx = torch.randint(-pad, pad + 1, (b,), generator=g, device=device).float() if pad else \
        torch.zeros(b, device=device)
    sx = torch.where(torch.rand(b, generator=g, device=device) < 0.5, -1.0, 1.0) if flip else \
        torch.ones(b, device=device)
    cos, sin = torch.cos(theta_rad), torch.sin(theta_rad)
    # output coords -> input coords (normalized, align_corners=False): mirror, rotate, shift
    mat = torch.stack([torch.stack([cos * sx, -sin, -dx * 2 / w], 1),
                       torch.stack([sin * sx, cos, -dy * 2 / h], 1)], 1)
    grid = F.affine_grid(mat, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)
    inside = None
    if sequential:  # undo the shift: position in the crop window, which must lie inside it
        window = grid + torch.stack([dx * 2 / w, dy * 2 / h], 1).view(b, 1, 1, 2)
        inside = (window.abs() <= 1).all(-1)
    return out if inside is None else out * inside[:, None].to(out.dtype)


def _gray(x: torch.Tensor) -> torch.Tensor:
    # ITU-R 601 luma, the weights torchvision's rgb_to_grayscale uses
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


def _brightness(x, f):
    return (x * f).clamp_(0, 1)


def _contrast(x, f):
    m = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    return (m + (x - m) * f).clamp_(0, 1)


def _saturation(x, f):
    gray = _gray(x)
    return (gray + (x - gray) * f).clamp_(0, 1)


def _color_jitter(x: torch.Tensor, cfg: AugmentConfig, g, device) -> torch.Tensor:
    """Brightness, contrast, saturation, each factor uniform in [1-a, 1+a] per sample.

    `jitter_order="fixed"` applies them in that order; "random" draws a permutation per image, as
    torchvision's ColorJitter does. Batched: at each position every op runs on the whole batch and
    each image keeps the result of its own op (k ops -> k*k cheap elementwise passes, no loop over
    images).
    """
    b = x.shape[0]
    ops = [(fn, amount) for fn, amount in ((_brightness, cfg.brightness), (_contrast, cfg.contrast),
                                           (_saturation, cfg.saturation)) if amount]
    if not ops:
        return x
    factors = [_uniform(b, 1 - a, 1 + a, g, device).view(b, 1, 1, 1) for _, a in ops]
    if cfg.jitter_order == "fixed" or len(ops) == 1:
        for (fn, _), f in zip(ops, factors):
            x = fn(x, f)
        return x
    order = torch.rand(b, len(ops), generator=g, device=device).argsort(dim=1)  # (B, k) permutation
    for pos in range(len(ops)):
        out = x
        for i, ((fn, _), f) in enumerate(zip(ops, factors)):
            out = torch.where((order[:, pos] == i).view(b, 1, 1, 1), fn(x, f), out)
        x = out
    return x


def _cutout(x: torch.Tensor, size: int, g, device) -> torch.Tensor:
    b, _, h, w = x.shape
    cy = torch.randint(0, h, (b,), generator=g, device=device)
    cx = torch.randint(0, w, (b,), generator=g, device=device)
    ys = torch.arange(h, device=device)[None, :]
    xs = torch.arange(w, device=device)[None, :]
    in_y = ((ys - cy[:, None]).abs() <= size // 2) if size % 2 else \
        (ys >= cy[:, None] - size // 2) & (ys < cy[:, None] + size // 2)
    in_x = ((xs - cx[:, None]).abs() <= size // 2) if size % 2 else \
        (xs >= cx[:, None] - size // 2) & (xs < cx[:, None] + size // 2)
    hole = in_y[:, :, None] & in_x[:, None, :]
    return x.masked_fill(hole[:, None], 0.0)


def is_identity(cfg: AugmentConfig) -> bool:
    return not (cfg.crop_pad or cfg.flip or cfg.rotate_deg or cfg.brightness or cfg.contrast
                or cfg.saturation or cfg.cutout)


class Augmenter:
    """Training transform: uint8 batch -> augmented, normalized float batch.

    `indices` (the batch's positions in the training split) and `epoch` (0-based) are needed by the
    alternating flip and by progressive resizing; `n_train` sizes the alternating flip's base mask.
    """

    def __init__(self, cfg: AugmentConfig, normalizer: Normalizer, generator: torch.Generator,
                 n_train: int = 0):
        self.cfg = cfg
        self.normalize = normalizer
        self.generator = generator
        self.flip_base = None
        if cfg.flip and cfg.flip_mode == "alternate":
            if n_train <= 0:
                raise ValueError("augment.flip_mode=alternate needs the training-split size (n_train)")
            # drawn once: image i is mirrored on even epochs iff flip_base[i], on odd epochs iff not
            self.flip_base = torch.rand(n_train, generator=generator, device=generator.device) < 0.5

    def mirror(self, indices: torch.Tensor | None, epoch: int) -> torch.Tensor | bool:
        """Which images of the batch to flip: True/False (random / none) or a (B,) bool tensor."""
        if self.flip_base is None:
            return self.cfg.flip
        if indices is None:
            raise ValueError("augment.flip_mode=alternate needs the batch's indices")
        return self.flip_base[indices] ^ bool(epoch % 2)

    def __call__(self, x_uint8: torch.Tensor, indices: torch.Tensor | None = None,
                 epoch: int = 0) -> torch.Tensor:
        cfg, g, dev = self.cfg, self.generator, x_uint8.device
        if is_identity(cfg):
            return self.normalize(x_uint8)
        x = x_uint8.float().div_(255)
        if cfg.rotate_deg:
            x = _affine(x, cfg.crop_pad, cfg.flip, cfg.rotate_deg, g, dev, cfg.interpolation,
                        cfg.geometry == "sequential")
        elif cfg.crop_pad or cfg.flip:
            x = _translate_flip(x, cfg.crop_pad, self.mirror(indices, epoch), g, dev,
                                reflect=cfg.pad_mode == "reflect")
        x = _color_jitter(x, cfg, g, dev)
        if cfg.lowres_side and epoch < cfg.lowres_epochs:
            x = F.interpolate(x, size=(cfg.lowres_side, cfg.lowres_side), mode="bilinear", antialias=True)
        x = self.normalize(x)
        if cfg.cutout:
            x = _cutout(x, cfg.cutout, g, dev)
        return x
