import torch

from cifarlab.augment import Augmenter, Normalizer
from cifarlab.config import AugmentConfig

MEAN, STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
SEED_AUG = AugmentConfig(crop_pad=4, flip=True, rotate_deg=15, brightness=0.2, contrast=0.2)


def _aug(cfg, seed=0):
    return Augmenter(cfg, Normalizer(MEAN, STD, "cpu"), torch.Generator().manual_seed(seed))


def test_shapes_and_same_seed_same_batch(c100):
    x = c100.train_x[:64]
    a, b = _aug(SEED_AUG)(x), _aug(SEED_AUG)(x)
    assert a.shape == (64, 3, 32, 32) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a, _aug(SEED_AUG, seed=1)(x))
    assert torch.isfinite(a).all()


def test_eval_path_has_no_randomness(c100):
    norm = Normalizer(MEAN, STD, "cpu")
    x = c100.test_x[:32]
    assert torch.equal(norm(x), norm(x))
    expected = (x.float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    torch.testing.assert_close(norm(x), expected)


def test_flip_and_translate_keep_each_image_with_its_own_label(c100):
    """Each augmented image must be a shifted/mirrored copy of its own source image."""
    x = c100.train_x[:48]
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


def test_color_jitter_and_rotation_change_pixels_within_range(c100):
    x = c100.train_x[:64]
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
