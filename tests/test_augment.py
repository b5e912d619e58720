from dataclasses import replace

import torch
import torchvision.transforms.functional as TF

from cifarlab.augment import (Augmenter, Normalizer, _affine, _brightness, _color_jitter, _contrast,
                              _saturation)
from cifarlab.config import AugmentConfig

MEAN, STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
SEED_AUG = AugmentConfig(crop_pad=4, flip=True, rotate_deg=15, brightness=0.2, contrast=0.2)


def _aug(cfg, seed=0):
    return Augmenter(cfg, Normalizer(MEAN, STD, "cpu"), torch.Generator().manual_seed(seed))


def test_shapes_and_same_seed_same_batch(syn100):
    x = syn100.train_x[:64]
    a, b = _aug(SEED_AUG)(x), _aug(SEED_AUG)(x)
    assert a.shape == (64, 3, 32, 32) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a, _aug(SEED_AUG, seed=1)(x))
    assert torch.isfinite(a).all()


def test_eval_path_has_no_randomness(syn100):
    norm = Normalizer(MEAN, STD, "cpu")
    x = syn100.test_x[:32]
    assert torch.equal(norm(x), norm(x))
    expected = (x.float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    torch.testing.assert_close(norm(x), expected)


def test_flip_and_translate_keep_each_image_with_its_own_label(syn100):
    """Each augmented image must be a shifted/mirrored copy of its own source image."""
    x = syn100.train_x[:48]
    out = _aug(AugmentConfig(crop_pad=2, flip=True))(x)
    base = Normalizer(MEAN, STD, "cpu")(x)
    for i in range(len(x)):
        found = False
        for src in (base[i], base[i].flip(-1)):
            for dy in range(-2, 3):
                for dx in range(-2, 3):
                    a = out[i][:, 2:-2, 2:-2]
                    b = src[:, 2 + dy:30 + dy, 2 + dx:30 + dx]
                    found |= torch.allclose(a, b)
        assert found, f"augmented image {i} does not come from source image {i}"


def test_translation_zero_fills_and_moves_content():
    x = torch.full((256, 3, 32, 32), 255, dtype=torch.uint8)
    out = _aug(AugmentConfig(crop_pad=4))(x.clone())
    zero_level = ((0 - torch.tensor(MEAN)) / torch.tensor(STD)).view(1, 3, 1, 1)
    is_fill = torch.isclose(out, zero_level.expand_as(out)).all(1)  # (B, H, W)
    assert is_fill.any() and not is_fill.all()
    assert is_fill.sum(dim=(1, 2)).max() <= 32 * 32 - 28 * 28


def test_color_jitter_and_rotation_change_pixels_within_range(syn100):
    x = syn100.train_x[:64]
    out = _aug(AugmentConfig(rotate_deg=30, brightness=0.4, contrast=0.4, saturation=0.4))(x)
    base = Normalizer(MEAN, STD, "cpu")(x)
    assert (out - base).abs().mean() > 0.05
    lo = ((0 - torch.tensor(MEAN)) / torch.tensor(STD)).min()
    hi = ((1 - torch.tensor(MEAN)) / torch.tensor(STD)).max()
    assert out.min() >= lo - 1e-5 and out.max() <= hi + 1e-5


def test_cutout_zeroes_a_square():
    x = torch.full((16, 3, 32, 32), 200, dtype=torch.uint8)
    out = _aug(AugmentConfig(cutout=8))(x)
    holes = (out == 0).all(1).sum(dim=(1, 2))
    assert (holes > 0).all() and (holes <= 64).all()


def test_nearest_rotation_copies_source_pixels_bilinear_mixes_them(syn100):
    """torchvision's RandomRotation default (nearest) never invents pixel values; bilinear does."""
    x = syn100.train_x[:32]
    cfg = AugmentConfig(crop_pad=4, flip=True, rotate_deg=15)
    near = _affine(x.float() / 255, 4, True, 15, torch.Generator().manual_seed(0), "cpu", "nearest")
    bil = _affine(x.float() / 255, 4, True, 15, torch.Generator().manual_seed(0), "cpu", "bilinear")
    for i in range(len(x)):
        source = set(x[i].flatten().tolist()) | {0}
        assert set((near[i] * 255).round().int().flatten().tolist()) <= source
    assert any(not set((bil[i] * 255).round().int().flatten().tolist()) <= set(x[i].flatten().tolist()) | {0}
               for i in range(len(x)))
    # the option reaches the augmenter: same seed, same geometry, only the resampling differs
    a = _aug(replace(cfg, interpolation="nearest"))(x)
    b = _aug(cfg)(x)
    assert not torch.equal(a, b) and (a - b).abs().mean() < 0.2


def test_jitter_ops_match_torchvision_functional(syn100):
    x = syn100.train_x[:16].float() / 255
    f = torch.linspace(0.8, 1.2, 16).view(16, 1, 1, 1)
    want_b = torch.stack([TF.adjust_brightness(x[i], float(f[i])) for i in range(16)])
    want_c = torch.stack([TF.adjust_contrast(x[i], float(f[i])) for i in range(16)])
    want_s = torch.stack([TF.adjust_saturation(x[i], float(f[i])) for i in range(16)])
    torch.testing.assert_close(_brightness(x.clone(), f), want_b)
    torch.testing.assert_close(_contrast(x.clone(), f), want_c, atol=1e-4, rtol=0)
    torch.testing.assert_close(_saturation(x.clone(), f), want_s, atol=1e-4, rtol=0)


def test_random_jitter_order_uses_both_orders_per_image(syn100):
    """Each image gets brightness->contrast or contrast->brightness with its own factors."""
    x = syn100.train_x[:256].float() / 255
    cfg = AugmentConfig(brightness=0.4, contrast=0.4, jitter_order="random")
    out = _color_jitter(x, cfg, torch.Generator().manual_seed(3), "cpu")
    g = torch.Generator().manual_seed(3)  # the factors are drawn first, one per op, in op order
    fb = (torch.rand(256, generator=g) * 0.8 + 0.6).view(-1, 1, 1, 1)
    fc = (torch.rand(256, generator=g) * 0.8 + 0.6).view(-1, 1, 1, 1)
    bc = _contrast(_brightness(x, fb), fc)
    cb = _brightness(_contrast(x, fc), fb)
    is_bc = torch.isclose(out, bc, atol=1e-6).flatten(1).all(1)
    is_cb = torch.isclose(out, cb, atol=1e-6).flatten(1).all(1)
    assert (is_bc | is_cb).all()
    differ = ~torch.isclose(bc, cb, atol=1e-6).flatten(1).all(1)
    assert (is_bc & differ).sum() > 30 and (is_cb & differ).sum() > 30  # they differ where clamping bites
    fixed = _color_jitter(x, replace(cfg, jitter_order="fixed"), torch.Generator().manual_seed(3), "cpu")
    torch.testing.assert_close(fixed, bc)


def _stats(batch: torch.Tensor) -> tuple[float, float, float]:
    """Mean, fraction of black (zero-fill) pixels, and sharpness: mean |horizontal neighbour step|."""
    black = (batch.sum(1) == 0).float().mean()
    sharp = (batch[..., 1:] - batch[..., :-1]).abs().mean()
    return float(batch.mean()), float(black), float(sharp)


def test_seed_exact_options_match_the_torchvision_pipeline(c100):
    """With the seed-exact options (the c100-cnn-aug preset + geometry=sequential) the augmented
    images (before normalization) have the statistics of the seed's torchvision pipeline
    (RandomCrop pad 4, flip, RandomRotation 15, ColorJitter 0.2/0.2 on PIL images). Bilinear
    resampling is measurably blurrier; the preset's fused geometry shows less zero fill."""
    import numpy as np
    from PIL import Image
    from torchvision import transforms as T

    from cifarlab.config import load_preset

    n = 1500
    x = c100.train_x[:n]
    tv = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.RandomRotation(15),
                    T.ColorJitter(brightness=0.2, contrast=0.2), T.PILToTensor()])
    torch.manual_seed(0)
    ref = torch.stack([tv(Image.fromarray(np.ascontiguousarray(img.permute(1, 2, 0).numpy())))
                       for img in x]).float() / 255

    identity = Normalizer((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "cpu")
    preset = load_preset("c100-cnn-aug").augment
    exact = replace(preset, geometry="sequential")
    ours = Augmenter(exact, identity, torch.Generator().manual_seed(0))(x)
    blurry = Augmenter(replace(exact, interpolation="bilinear"), identity,
                       torch.Generator().manual_seed(0))(x)
    fused = Augmenter(preset, identity, torch.Generator().manual_seed(0))(x)
    assert preset.geometry == "fused"
    (m_ref, b_ref, s_ref), (m, b, s) = _stats(ref), _stats(ours)
    assert abs(m - m_ref) < 0.01
    assert abs(b - b_ref) < 0.1 * b_ref  # zero-filled corners and borders
    assert abs(s - s_ref) < 0.03 * s_ref
    assert _stats(blurry)[2] < s_ref * 0.93  # bilinear resampling smooths every rotated image
    assert _stats(fused)[1] < b_ref * 0.9  # rotating the whole image brings back pixels the crop dropped
