import math

import pytest
import torch

from cifarlab.config import OptimConfig
from cifarlab.models import build_model
from cifarlab.optim import build_optimizer, lr_at, param_groups


def test_constant_with_warmup():
    cfg = OptimConfig(lr=0.1, schedule="constant", warmup_epochs=1)
    assert lr_at(0, 100, cfg, 10) == pytest.approx(0.01)
    assert lr_at(9, 100, cfg, 10) == pytest.approx(0.1)
    assert lr_at(99, 100, cfg, 10) == pytest.approx(0.1)


def test_cosine_endpoints_and_midpoint():
    cfg = OptimConfig(lr=1.0, schedule="cosine", final_lr_frac=0.0)
    assert lr_at(0, 101, cfg, 10) == pytest.approx(1.0)
    assert lr_at(50, 101, cfg, 10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 50 / 101)))
    assert lr_at(101, 101, cfg, 10) == pytest.approx(0.0, abs=1e-12)


def test_onecycle_rises_then_falls():
    cfg = OptimConfig(lr=0.4, schedule="onecycle", onecycle_pct=0.25, final_lr_frac=0.0)
    lrs = [lr_at(s, 100, cfg, 10) for s in range(100)]
    peak = lrs.index(max(lrs))
    assert peak == 24 and max(lrs) == pytest.approx(0.4)
    assert all(a < b for a, b in zip(lrs[:peak], lrs[1:peak + 1]))
    assert all(a > b for a, b in zip(lrs[peak:-1], lrs[peak + 1:]))
    assert lrs[-1] < 0.01


def test_no_weight_decay_on_norm_and_bias():
    model = build_model("cnn", 10)
    decay, no_decay = param_groups(model, 5e-4)
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert no_decay["weight_decay"] == 0.0
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


@pytest.mark.parametrize("name,cls", [("adam", "Adam"), ("adamw", "AdamW"), ("sgd", "SGD")])
def test_optimizers(name, cls):
    opt = build_optimizer(build_model("mlp", 10), OptimConfig(name=name))
    assert type(opt).__name__ == cls
    if name == "sgd":
        assert opt.defaults["nesterov"] is True


def test_decay_norm_bias_decays_every_parameter_like_a_bare_adam():
    model = build_model("cnn", 10)
    opt = build_optimizer(model, OptimConfig(weight_decay=5e-4, decay_norm_bias=True))
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {id(p) for p in model.parameters()}
    # with zero gradients only the decay term moves parameters: BN scales shrink here, not by default
    for decay_all, moves in ((True, True), (False, False)):
        m = build_model("cnn", 10)
        o = build_optimizer(m, OptimConfig(weight_decay=5e-4, decay_norm_bias=decay_all))
        bn = next(x for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d))
        before = bn.weight.detach().clone()
        for p in m.parameters():
            p.grad = torch.zeros_like(p)
        o.step()
        assert (not torch.equal(bn.weight, before)) == moves
