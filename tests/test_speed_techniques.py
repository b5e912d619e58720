"""The time-to-accuracy techniques, one behaviour each: per-1,024-example units, bias lr scale, the
triangular one-cycle start, Lookahead/EMA, reflect padding, alternating flip, progressive resizing,
test-time augmentation, the deferred finite check, and the fixed-schedule benchmark on a small run."""
import math

import pytest
import torch
from torch import nn

from cifarlab.augment import Augmenter, Normalizer, _translate_flip
from cifarlab.bench import CpuShare, bench_config, process_age_s
from cifarlab.config import ConfigError, OptimConfig, make_config
from cifarlab.errors import NonFiniteLoss
from cifarlab.evaluate import tta_logits
from cifarlab.optim import Lookahead, build_optimizer, kilo_examples, lr_at, set_lr, torch_lr_wd

FAST = {"model.name": "fastnet", "model.widths": "8,16,16", "optim.name": "sgd", "optim.per_1024": True,
        "optim.lr": 11.5, "optim.weight_decay": 0.0153, "optim.momentum": 0.85,
        "optim.norm_bias_lr_scale": 64.0, "optim.decay_norm_bias": True, "optim.schedule": "onecycle",
        "optim.initial_lr_frac": 0.2, "optim.lookahead_every": 5, "augment.crop_pad": 2,
        "augment.pad_mode": "reflect", "augment.flip": True, "augment.flip_mode": "alternate",
        "train.batch_size": 64, "train.eval_batch_size": 100, "train.tta": 2}


def test_per_1024_units_match_a_summed_loss_step():
    """lr L per 1,024 examples with a mean loss moves the weights exactly as torch SGD with lr L/kilo
    on the summed loss (airbench's form), weight decay included."""
    cfg = OptimConfig(name="sgd", lr=11.5, weight_decay=0.0153, momentum=0.85, per_1024=True)
    bs = 256
    lr, wd = torch_lr_wd(cfg, bs)
    kilo = kilo_examples(0.85)
    assert math.isclose(kilo, 1024 * (1 + 1 / 0.15))
    assert math.isclose(lr, 11.5 * bs / kilo) and math.isclose(wd, 0.0153 / 11.5)
    torch.manual_seed(0)
    x, y = torch.randn(bs, 5), torch.randint(0, 3, (bs,))
    a, b = nn.Linear(5, 3, bias=False), nn.Linear(5, 3, bias=False)
    b.load_state_dict(a.state_dict())
    opt_a = torch.optim.SGD(a.parameters(), lr=lr, momentum=0.85, nesterov=True, weight_decay=wd)
    opt_b = torch.optim.SGD(b.parameters(), lr=11.5 / kilo, momentum=0.85, nesterov=True,
                            weight_decay=0.0153 * bs / kilo / (11.5 / kilo))
    for _ in range(3):
        for model, opt, red in ((a, opt_a, "mean"), (b, opt_b, "sum")):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y, reduction=red).backward()
            opt.step()
    assert torch.allclose(a.weight, b.weight, atol=1e-6)


def test_bias_lr_scale_keeps_decay_per_step_and_set_lr_applies_it():
    cfg = make_config(None, FAST)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    opt = build_optimizer(model, cfg.optim, batch_size=512)
    w, b = opt.param_groups
    assert b["lr_scale"] == 64.0 and math.isclose(b["lr"], 64 * w["lr"])
    assert math.isclose(b["lr"] * b["weight_decay"], w["lr"] * w["weight_decay"])  # same decay per step
    set_lr(opt, 2.0, unit=0.5)
    assert w["lr"] == 1.0 and b["lr"] == 64.0


def test_onecycle_starts_at_initial_frac():
    cfg = OptimConfig(lr=1.0, schedule="onecycle", onecycle_pct=0.25, initial_lr_frac=0.2, final_lr_frac=0.07)
    lrs = [lr_at(s, 100, cfg, 10) for s in range(100)]
    assert 0.2 < lrs[0] < 0.25 and max(lrs) == pytest.approx(1.0) and lrs.index(max(lrs)) == 24
    assert lrs[-1] == pytest.approx(0.07)
    assert lr_at(0, 100, OptimConfig(lr=1.0, schedule="onecycle", onecycle_pct=0.25), 10) == pytest.approx(0.04)


def test_lookahead_pulls_toward_slow_weights_and_finishes_on_them():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    la = Lookahead(model, every=5, decay_max=0.5, total_steps=10)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
        model[1].running_mean.add_(1.0)
    la.step(4)  # not a multiple of 5: nothing happens
    assert torch.equal(model[0].bias, start["0.bias"] + 1)
    la.step(5)  # decay = 0.5 * (5/10)^3 = 0.0625: slow = start + 0.9375 * 1
    assert la.decay == pytest.approx(0.0625)
    assert torch.allclose(model[0].bias, start["0.bias"] + 0.9375)
    assert torch.allclose(model[1].running_mean, start["1.running_mean"] + 0.9375)  # buffers too
    with torch.no_grad():
        model[0].bias.add_(5.0)
    la.finish()
    assert torch.allclose(model[0].bias, start["0.bias"] + 0.9375)
    restored = Lookahead(model, every=5, decay_max=0.5, total_steps=10)
    restored.load_state_dict(la.state_dict())
    assert restored.decay == la.decay


def test_reflect_padding_never_zero_fills_and_random_flip_rng_order_is_kept():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 8, 8) + 1.0  # no zeros anywhere
    out = _translate_flip(x, 2, False, g, "cpu", reflect=True)
    assert (out > 0).all()
    zero = _translate_flip(x, 2, False, torch.Generator().manual_seed(0), "cpu")
    assert (zero == 0).any()
    # flip=True draws its mask after the shifts, as before the alternate mode existed
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a = _translate_flip(x, 2, True, g1, "cpu")
    dy, dx = torch.randint(-2, 3, (16,), generator=g2), torch.randint(-2, 3, (16,), generator=g2)
    mirror = torch.rand(16, generator=g2) < 0.5
    b = _translate_flip(x, 2, mirror, torch.Generator().manual_seed(3), "cpu")  # same shifts, given mask
    assert torch.equal(a, b) and mirror.any() and not mirror.all() and dy.shape == dx.shape


def test_alternate_flip_mirrors_each_image_on_every_other_epoch():
    cfg = make_config(None, {"augment.flip": True, "augment.flip_mode": "alternate"}).augment
    norm = Normalizer([0.5] * 3, [0.25] * 3, "cpu")
    aug = Augmenter(cfg, norm, torch.Generator().manual_seed(0), n_train=32)
    x = torch.randint(0, 256, (32, 3, 4, 4), dtype=torch.uint8)
    idx = torch.arange(32)
    e0, e1, e2 = aug(x, idx, 0), aug(x, idx, 1), aug(x, idx, 2)
    plain = norm(x)
    flipped0 = (e0 != plain).flatten(1).any(1)
    assert 8 < flipped0.sum() < 24  # about half the images start flipped
    assert torch.equal(e1, torch.where(flipped0[:, None, None, None], plain, plain.flip(-1)))
    assert torch.equal(e0, e2)
    with pytest.raises(ValueError, match="indices"):
        aug(x)


def test_progressive_resizing_only_in_its_epochs():
    cfg = make_config(None, {"augment.flip": True, "augment.lowres_side": 24, "augment.lowres_epochs": 2}).augment
    aug = Augmenter(cfg, Normalizer([0.5] * 3, [0.25] * 3, "cpu"), torch.Generator().manual_seed(0))
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    assert aug(x, epoch=1).shape[-1] == 24 and aug(x, epoch=2).shape[-1] == 32


def test_tta_levels():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 5, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(tta_logits(model, x, 0), model(x))
        assert torch.allclose(tta_logits(model, x, 1), (model(x) + model(x.flip(-1))) / 2)
        pad = nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
        views = [x, x.flip(-1)]
        shifted = [pad[..., :8, :8], pad[..., :8, :8].flip(-1), pad[..., 2:, 2:], pad[..., 2:, 2:].flip(-1)]
        want = sum(model(v) for v in views) / 4 + sum(model(v) for v in shifted) / 8
        assert torch.allclose(tta_logits(model, x, 2), want, atol=1e-6)


def test_config_rejects_misplaced_fast_keys():
    with pytest.raises(ConfigError, match="model.widths"):
        make_config(None, {"model.widths": "8,x"})
    with pytest.raises(ConfigError, match="fastnet only"):
        make_config(None, {"model.name": "cnn", "model.depth": 3})
    with pytest.raises(ConfigError, match="per_1024"):
        make_config(None, {"optim.per_1024": True})
    with pytest.raises(ConfigError, match="finite_check_every"):
        make_config(None, {"train.nonfinite": "skip", "train.finite_check_every": 10})
    assert make_config(None, FAST).hash() != make_config(None, {**FAST, "model.depth": 3}).hash()


def test_deferred_finite_check_stops_within_n_steps(synthetic_root):
    from cifarlab.engine import train

    cfg = make_config(None, {"data.dataset": "cifar10", "data.val_size": 0, "model.name": "cnn",
                             "optim.name": "sgd", "optim.lr": 100.0, "train.batch_size": 30, "train.epochs": 2,
                             "train.finite_check_every": 4, "train.precision": "fp32"})
    with pytest.raises(NonFiniteLoss, match="within the 4 steps"):
        train(cfg, data_dir=synthetic_root, quiet=True)


def test_fastnet_fixed_schedule_bench_record(synthetic_root):
    from cifarlab.bench import run_one

    cfg = make_config(None, {**FAST, "data.dataset": "cifar10", "train.epochs": 2,
                             "train.eval_precision": "train", "train.finite_check_every": 3})
    assert bench_config(cfg, 5).data.val_size == 0 and bench_config(cfg, 5).train.seed == 5
    rec = run_one(cfg, 1, data_dir=synthetic_root)
    assert rec["n_train"] == 300 and rec["seed"] == 1 and rec["tta"] == 2
    assert 0 <= rec["test_acc"] <= 100 and 0 <= rec["test_acc_no_tta"] <= 100
    assert rec["clock_s"] == pytest.approx(rec["train_s"] + rec["init_s"] + rec["eval_s"], abs=0.02)
    # loading a 300-image synthetic set can take under a millisecond: the key is timed, not necessarily > 0
    assert rec["wall_s"] >= rec["clock_s"] - 0.02 and 0 <= rec["data_s"] <= rec["wall_s"] + 0.01
    assert rec["other_cpu_frac"] is None or 0 <= rec["other_cpu_frac"] <= 1
    assert process_age_s() > 0 and CpuShare().start().stop() is not None


def test_preset_base_inherits_section_by_section(tmp_path):
    from cifarlab.config import load_preset

    child = tmp_path / "child.yaml"
    child.write_text('description: "x"\nbase: c100-fast\nmodel: {widths: "8,16,16"}\ntrain: {epochs: 2}\n')
    cfg, base = load_preset(str(child)), load_preset("c100-fast")
    assert cfg.name == "child" and cfg.description == "x"
    assert cfg.model.widths == "8,16,16" and cfg.model.name == "fastnet"  # merged, not replaced
    assert cfg.train.epochs == 2 and cfg.train.tta == base.train.tta and cfg.optim == base.optim
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: no-such-preset\n")
    with pytest.raises(ConfigError, match="base 'no-such-preset' is not a preset"):
        load_preset(str(bad))


def _muon_model(memory_format):
    from cifarlab.models.fastnet import FastNet

    torch.manual_seed(0)
    return FastNet(10, widths=(8, 16, 16)).to(memory_format=memory_format)


def test_muon_trains_filters_with_torch_muon_and_the_rest_with_sgd():
    from torch.optim._muon import DEFAULT_A, DEFAULT_B, DEFAULT_C, _zeropower_via_newtonschulz

    cfg = OptimConfig(**{k.split(".")[1]: v for k, v in FAST.items() if k.startswith("optim.")},
                      muon_lr=0.2, muon_momentum=0.6)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 3, 32, 32, generator=gen), torch.randint(0, 10, (16,), generator=gen)
    after = {}
    for fmt in (torch.contiguous_format, torch.channels_last):
        model = _muon_model(fmt)
        opt = build_optimizer(model, cfg, batch_size=16)
        muon_params = {id(p) for p in opt.parts[0].filters}
        sgd_params = {id(p) for g in opt.parts[1].param_groups for p in g["params"]}
        trainable = {id(p) for p in model.parameters() if p.requires_grad}
        assert muon_params == {id(p) for p in model.filter_banks()} and not muon_params & sgd_params
        assert muon_params | sgd_params == trainable  # the frozen whitening stem is in neither
        before = [p.detach().clone() for p in model.filter_banks()]
        nn.functional.cross_entropy(model(x.contiguous(memory_format=fmt)), y).backward()
        grads = [p.grad.detach().clone() for p in model.filter_banks()]
        set_lr(opt, cfg.lr, torch_lr_wd(cfg, 16)[0] / cfg.lr)  # the schedule's peak: Muon at muon_lr
        assert opt.parts[0].param_groups[0]["lr"] == pytest.approx(0.2)
        opt.step()
        after[fmt] = [p.detach().clone() for p in model.filter_banks()]
        for w0, g, w1 in zip(before, grads, after[fmt]):  # first step: momentum buffer = (1-m) * grad
            w0 = w0 * (w0.shape[0] ** 0.5 / w0.norm())  # rescaled to norm sqrt(out) before the step
            g = g.contiguous().view(len(g), -1)
            step = _zeropower_via_newtonschulz(g, (DEFAULT_A, DEFAULT_B, DEFAULT_C), 5, 1e-7).float()
            want = w0 - 0.2 * step.view_as(w0)
            # Newton-Schulz runs in bf16 (columns permuted when channels_last): equal up to ~2% of the step
            assert (w1.contiguous() - want).norm() < 0.04 * (want - w0).norm()
        opt.zero_grad()
        assert all(p.grad is None for p in model.parameters())
    # channels_last filters are viewed with their columns permuted: the same update up to bf16 rounding
    for a, b, w0 in zip(after[torch.contiguous_format], after[torch.channels_last], before):
        assert (a - b.contiguous()).norm() < 0.04 * (a - w0 * (w0.shape[0] ** 0.5 / w0.norm())).norm()


def test_muon_state_round_trips_and_is_refused_off_fastnet():
    cfg = OptimConfig(**{k.split(".")[1]: v for k, v in FAST.items() if k.startswith("optim.")}, muon_lr=0.2)
    model = _muon_model(torch.channels_last)
    opt = build_optimizer(model, cfg, batch_size=16)
    nn.functional.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3])).backward()
    opt.step()
    state = opt.state_dict()
    fresh = build_optimizer(model, cfg, batch_size=16)
    fresh.load_state_dict(state)
    bufs = [fresh.parts[0].opt.state[m]["momentum_buffer"] for m in fresh.parts[0].mats]
    assert len(bufs) == 6 and all(b.abs().sum() > 0 for b in bufs)
    with pytest.raises(ValueError, match="muon_lr"):  # a plain optimizer's state
        fresh.load_state_dict(build_optimizer(model, OptimConfig(name="sgd"), 16).state_dict())
    with pytest.raises(ConfigError, match="optim.muon_lr"):
        make_config(None, {"model.name": "cnn", "optim.muon_lr": 0.1})


def test_compile_warmup_leaves_the_run_unchanged(synthetic_root, monkeypatch):
    """train.compile warms the compiled model up on a random batch, then restores weights, BN statistics
    and RNG: with dynamo's "eager" backend (the same plumbing without minutes of C++ builds on a CPU)
    the run must end on exactly the weights of an uncompiled run."""
    import functools

    from cifarlab.engine import train

    cfg = {**FAST, "data.dataset": "cifar10", "data.val_size": 0, "train.epochs": 1, "train.tta": 0}
    plain = train(make_config(None, cfg), data_dir=synthetic_root, quiet=True)
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    compiled = train(make_config(None, {**cfg, "train.compile": True}), data_dir=synthetic_root, quiet=True)
    assert compiled.summary["timing"]["compile_s"] > 0
    assert plain.summary["timing"].get("compile_s", 0) == 0
    for (name, a), b in zip(plain.model.state_dict().items(), compiled.model.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("preset", ["c100-gpu-fast", "c100-gpu-best", "c10-gpu-fast"])
def test_gpu_presets_train_on_the_cpu_at_small_scale(preset, data_root, monkeypatch):
    """The GPU presets as written (depth, schedule, Lookahead, deferred finite checks, compile, TTA) at
    small scale on a real CIFAR slice: narrow widths, 4,096 images, 2 epochs, 2,000 test images, compiled
    through dynamo's "eager" backend. They run end to end on a CPU and learn well above chance."""
    import functools

    from cifarlab.engine import train

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    cfg = make_config(preset, {"model.widths": "16,32,32", "data.train_subset": 4096, "train.epochs": 2,
                               "train.batch_size": 256, "train.eval_batch_size": 1000, "data.test_subset": 2000})
    assert cfg.train.compile and cfg.train.finite_check_every > 1
    s = train(cfg, data_dir=data_root, quiet=True).summary
    chance = 100 / (10 if cfg.data.dataset == "cifar10" else 100)
    assert s["status"] == "completed" and s["epochs_run"] == 2 and s["timing"]["compile_s"] > 0, s
    assert s["test_n"] == 2000, s
    assert s["test_acc"] > 2.5 * chance, s


def test_compile_mode_reaches_torch_compile_and_needs_compile(synthetic_root, monkeypatch):
    """train.compile_mode (reduce-overhead = CUDA graphs of the step on a GPU) is handed to torch.compile;
    without train.compile it is a config error naming the key."""
    from cifarlab.engine import train

    seen, real = [], torch.compile

    def recording_compile(model, **kw):
        seen.append(kw.get("mode", "default"))
        return real(model, backend="eager")  # same plumbing on a CPU, no C++ build

    monkeypatch.setattr(torch, "compile", recording_compile)
    cfg = {**FAST, "data.dataset": "cifar10", "data.val_size": 0, "train.epochs": 1, "train.tta": 0,
           "train.compile": True}
    train(make_config(None, {**cfg, "train.compile_mode": "reduce-overhead"}), data_dir=synthetic_root, quiet=True)
    train(make_config(None, cfg), data_dir=synthetic_root, quiet=True)
    assert seen == ["reduce-overhead", "default"]
    with pytest.raises(ConfigError, match="train.compile_mode.*train.compile=true"):
        make_config(None, {"train.compile_mode": "reduce-overhead"})
    with pytest.raises(ConfigError, match="train.compile_mode"):
        make_config(None, {"train.compile": True, "train.compile_mode": "fast"})


def test_timing_records_state_priority_and_pausing(monkeypatch):
    import os

    from cifarlab.bench import timing_conditions

    monkeypatch.delenv("CIFARLAB_OTHERS_PAUSED", raising=False)
    plain = CpuShare().start().fields()
    assert plain["others_paused"] == 0 and plain["nice"] == os.getpriority(os.PRIO_PROCESS, 0)
    assert plain["sched_policy"] == "SCHED_OTHER" and plain["other_cpu_frac"] is not None
    monkeypatch.setenv("CIFARLAB_OTHERS_PAUSED", "3")  # what benchmarks/quiet.sh sets
    assert timing_conditions()["others_paused"] == 3
    os.nice(1)  # this test process only; the record follows it
    assert timing_conditions()["nice"] == plain["nice"] + 1
