"""The hardware probe and what it decides: device order, precision, memory format, Muon's NS precision;
and the fp32 Muon path (no bf16 anywhere on a CPU without native bf16; matches a float64 reference)."""
import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from cifarlab import runtime
from cifarlab.config import OptimConfig, TrainConfig
from cifarlab.optim import Muon, MuonFilters, build_optimizer, set_lr


def _fake_cpu(monkeypatch, isa: str, bf16: bool, flags=("avx2",)):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: isa)
    monkeypatch.setattr(runtime, "cpu_supports_bf16", lambda: bf16)
    monkeypatch.setattr(runtime, "cpu_flags", lambda: set(flags))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runtime, "mps_available", lambda: False)


@pytest.mark.parametrize("isa,bf16,flags,cls", [
    ("AVX2", False, ("avx2",), "cpu-avx2"),
    ("AVX512", False, ("avx512f",), "cpu-avx512"),
    ("AVX512", True, ("avx512f", "avx512_bf16"), "cpu-avx512-bf16"),
    ("AVX512", True, ("avx512f", "amx_bf16"), "cpu-amx-bf16"),
])
def test_cpu_class_decides_precision_and_newton_schulz_dtype(monkeypatch, isa, bf16, flags, cls):
    _fake_cpu(monkeypatch, isa, bf16, flags)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    rt = runtime.pick_device(TrainConfig())
    assert rt.hw.hw_class == cls and rt.device.type == "cpu"
    assert rt.precision == ("bf16" if bf16 else "fp32")
    assert rt.ns_dtype == (torch.bfloat16 if bf16 else torch.float32)
    assert rt.memory_format == torch.channels_last
    assert rt.hw.record()["hw_class"] == cls and cls in rt.hardware
    if not bf16:
        with pytest.raises(runtime.ConfigError, match="lacks native bf16"):
            runtime.pick_device(TrainConfig(precision="bf16"))


def test_an_isa_override_on_an_avx512_cpu_is_recorded_as_emulated(monkeypatch):
    _fake_cpu(monkeypatch, "AVX2", True, ("avx512f", "amx_bf16"))  # what ATEN_CPU_CAPABILITY=avx2 gives
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    hw = runtime.probe("cpu")
    assert hw.hw_class == "cpu-avx2" and hw.emulated and not hw.bf16_native and "emulated" in hw.describe()


def test_auto_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    _fake_cpu(monkeypatch, "AVX2", False)
    assert runtime.auto_device().type == "cpu"
    monkeypatch.setattr(runtime, "mps_available", lambda: True)
    assert runtime.auto_device().type == "mps"
    rt = runtime.pick_device(TrainConfig())  # MPS: fp32, NCHW, fp32 Newton-Schulz (unmeasured there)
    assert (rt.device.type, rt.precision, rt.memory_format, rt.ns_dtype) == \
        ("mps", "fp32", torch.contiguous_format, torch.float32)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "NVIDIA H200")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    rt = runtime.pick_device(TrainConfig())
    assert (rt.device.type, rt.precision, rt.memory_format, rt.ns_dtype, rt.hw.hw_class) == \
        ("cuda", "bf16", torch.channels_last, torch.bfloat16, "cuda")


def test_an_absent_mps_or_cuda_is_a_config_error(monkeypatch):
    _fake_cpu(monkeypatch, "AVX2", False)
    for dev in ("mps", "cuda"):
        with pytest.raises(runtime.ConfigError, match=f"train.device='{dev}'"):
            runtime.pick_device(TrainConfig(device=dev))


class _DtypeLog(TorchDispatchMode):
    """Records the dtype of every tensor an aten op takes or returns."""

    def __init__(self):
        super().__init__()
        self.dtypes = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in torch.utils._pytree.tree_leaves((args, kwargs, out)):
            if isinstance(t, torch.Tensor):
                self.dtypes.add(t.dtype)
        return out


def _fastnet():
    from cifarlab.models.fastnet import FastNet

    torch.manual_seed(0)
    return FastNet(10, widths=(8, 16, 16)).to(memory_format=torch.channels_last)


def test_without_native_bf16_no_tensor_on_the_optimizer_path_is_bf16(monkeypatch):
    _fake_cpu(monkeypatch, "AVX2", False)
    rt = runtime.pick_device(TrainConfig())
    model = _fastnet()
    opt = build_optimizer(model, OptimConfig(name="sgd", lr=0.1, muon_lr=0.2), 16, rt.ns_dtype)
    assert isinstance(opt.parts[0].opt, Muon)
    x = torch.randn(16, 3, 32, 32).contiguous(memory_format=rt.memory_format)
    y = torch.randint(0, 10, (16,))
    log = _DtypeLog()
    with log:
        for _ in range(2):  # the second step uses the momentum buffers the first wrote
            with rt.autocast():
                loss = nn.functional.cross_entropy(model(x).float(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert torch.float32 in log.dtypes and torch.bfloat16 not in log.dtypes
    # and the control: with bf16 NS (a bf16-native machine) torch.optim.Muon casts to bf16
    opt16 = build_optimizer(_fastnet(), OptimConfig(name="sgd", lr=0.1, muon_lr=0.2), 16, torch.bfloat16)
    assert isinstance(opt16.parts[0].opt, torch.optim.Muon)


def _reference_muon(w, grads, lr, momentum):
    """Muon in float64, one matrix, written out: Nesterov momentum, 5 quintic NS steps, lr*sqrt(max(1,r/c))."""
    a, b, c = 3.4445, -4.7750, 2.0315
    w, buf = w.double().clone(), torch.zeros_like(w, dtype=torch.float64)
    for g in grads:
        g = g.double()
        buf = momentum * buf + (1 - momentum) * g
        u = (1 - momentum) * g + momentum * buf
        x = u.T if u.shape[0] > u.shape[1] else u
        x = x / max(x.norm(), 1e-7)
        for _ in range(5):
            s = x @ x.T
            x = a * x + (b * s + c * s @ s) @ x
        x = x.T if u.shape[0] > u.shape[1] else x
        w = w - lr * max(1.0, w.shape[0] / w.shape[1]) ** 0.5 * x
    return w


@pytest.mark.parametrize("shape", [(16, 72), (40, 12), (32, 32)])
def test_fp32_muon_matches_a_float64_reference(shape):
    gen = torch.Generator().manual_seed(1)
    w0 = torch.randn(shape, generator=gen)
    grads = [torch.randn(shape, generator=gen) for _ in range(3)]
    p = nn.Parameter(w0.clone())
    opt = Muon([p], lr=0.05, momentum=0.6)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    want = _reference_muon(w0, grads, 0.05, 0.6)
    assert (p.detach().double() - want).abs().max() < 1e-5 * want.abs().max()
    assert not torch.equal(p.detach(), w0)


def test_fp32_muon_filters_keep_torch_muon_state_layout():
    """A checkpoint written by torch.optim.Muon (bf16 machine) resumes on an fp32 machine and back."""
    model = _fastnet()
    filters = model.filter_banks()
    for p in filters:
        p.grad = torch.randn_like(p)
    bf16 = MuonFilters(filters, 0.2, 0.6, 1.0, ns_dtype=torch.bfloat16)
    bf16.step()
    fp32 = MuonFilters(filters, 0.2, 0.6, 1.0, ns_dtype=torch.float32)
    fp32.load_state_dict(bf16.state_dict())
    set_lr(fp32, 0.2)
    bufs = [fp32.opt.state[m]["momentum_buffer"] for m in fp32.mats]
    assert len(bufs) == len(filters) and all(b.abs().sum() > 0 for b in bufs)
    assert fp32.state_dict()["param_groups"][0].keys() == bf16.state_dict()["param_groups"][0].keys()


def test_muon_keeps_its_ns_precision_through_deepcopy_and_pickle():
    """The doctor deep-copies (model, optimizer); torch's Optimizer pickles only its groups and state."""
    import copy
    import pickle
    p = nn.Parameter(torch.randn(8, 12))
    opt = Muon([p], lr=0.05, momentum=0.6, ns_dtype=torch.float64)
    for clone in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        assert clone.ns_dtype == torch.float64
        clone.param_groups[0]["params"][0].grad = torch.randn(8, 12)
        clone.step()


def test_pick_device_leaves_cudnn_settings_alone_and_a_run_restores_them(monkeypatch):
    before = torch.backends.cudnn.benchmark
    runtime.pick_device(TrainConfig(device="cpu"))
    assert torch.backends.cudnn.benchmark == before
    rt = runtime.Runtime(torch.device("cuda"), "bf16", torch.channels_last, "a GPU")
    with runtime.fast_kernels(rt):
        assert torch.backends.cudnn.benchmark
    assert torch.backends.cudnn.benchmark == before
