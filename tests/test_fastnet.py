"""FastNet parts: whitening stem, identity init, frozen BN scale, stem-bias schedule, logit scaling."""
import torch
import torch.nn.functional as F

from cifarlab.models.fastnet import STEM_PATCH, FastNet, whitening_filters


def _correlated_images(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, 1, 32, 32, generator=g)
    smooth = F.avg_pool2d(F.pad(base, (1, 1, 1, 1), mode="replicate"), 3, stride=1)  # neighbours correlate
    mix = torch.tensor([[1.0], [0.8], [0.5]]).view(1, 3, 1, 1)  # channels correlate
    return smooth * mix + 0.05 * torch.randn(n, 3, 32, 32, generator=g)


def test_whitening_stem_decorrelates_patches():
    x = _correlated_images()
    n = 3 * STEM_PATCH ** 2
    w = whitening_filters(x, STEM_PATCH, eps=0.0, n=n)
    assert w.shape == (2 * n, 3, STEM_PATCH, STEM_PATCH)
    assert torch.allclose(w[:n], -w[n:])
    out = F.conv2d(x, w[:n]).permute(0, 2, 3, 1).reshape(-1, n).double()
    cov = out.T @ out / len(out)
    assert torch.allclose(cov, torch.eye(n, dtype=cov.dtype), atol=1e-3)


def test_data_init_sets_frozen_stem_and_bias_schedule():
    net = FastNet(10, widths=(8, 16, 16), stem_bias_epochs=2)
    before = net.stem.weight.clone()
    net.data_init(_correlated_images())
    assert not torch.equal(before, net.stem.weight)
    assert not net.stem.weight.requires_grad
    net.epoch_start(1)
    assert net.stem.bias.requires_grad
    net.epoch_start(2)
    assert not net.stem.bias.requires_grad


def test_dirac_init_passes_input_channels_through():
    net = FastNet(10, widths=(8, 16, 16), depth=2)
    conv = net.groups[1].convs[1]  # 16 -> 16
    x = torch.randn(2, 16, 6, 6)
    assert torch.allclose(conv(x), x, atol=1e-6)
    widen = net.groups[1].convs[0]  # 8 -> 16: the first 8 filters copy the input
    x8 = torch.randn(2, 8, 6, 6)
    assert torch.allclose(widen(x8)[:, :8], x8, atol=1e-6)
    assert FastNet(10, widths=(8, 16, 16), dirac=False).groups[1].convs[1](x).sub(x).abs().max() > 0.1


def test_bn_scale_frozen_and_logit_scale():
    net = FastNet(100, widths=(8, 16, 16), depth=3, logit_scale=0.5)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 9 and all(not m.weight.requires_grad and m.bias.requires_grad for m in norms)
    assert all(m.weight.requires_grad for m in FastNet(10, widths=(8, 16, 16), frozen_bn_scale=False)
               .modules() if isinstance(m, torch.nn.BatchNorm2d))
    x = torch.randn(4, 3, 32, 32)
    net.eval()
    logits = net(x)
    assert logits.shape == (4, 100)
    net.logit_scale = 1.0
    assert torch.allclose(net(x) * 0.5, logits, atol=1e-5)
    assert net(torch.randn(2, 3, 24, 24)).shape == (2, 100)  # any input side >= 16 (progressive resizing)
