"""The one place that decides device, precision and memory format, from one probe of the hardware.

`probe(device)` names the hardware class (what every speed record is grouped by): CUDA, MPS, or a CPU
with its instruction-set level as PyTorch dispatches it (`torch.backends.cpu.get_cpu_capability()`),
native bf16 (AVX512-BF16 or AMX) and AMX. Every speed choice reads that probe: autocast precision,
memory format and the Newton-Schulz precision of Muon (runtime.Runtime.ns_dtype).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
from dataclasses import dataclass

import torch

from .config import TrainConfig
from .errors import ConfigError

# Environment variables that make PyTorch and oneDNN use a lower instruction set than the CPU has
# (how an AVX2-only laptop is emulated on a newer CPU); a probe under them is marked emulated.
ISA_OVERRIDES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")


@dataclass(frozen=True)
class Hardware:
    """What a speed number depends on. `hw_class` groups records: cpu-avx2, cpu-avx512, cpu-avx512-bf16,
    cpu-amx-bf16, cuda, mps (README tables and preset headers never mix classes)."""
    hw_class: str
    name: str  # CPU model or GPU name
    isa: str  # get_cpu_capability() on a CPU ("AVX2", "AVX512", ...); the compute capability on CUDA
    bf16_native: bool  # bf16 arithmetic in hardware (AVX512-BF16 / AMX on a CPU; sm80+ GPUs; MPS: False)
    amx: bool
    cores: int  # CPU cores this process may run on
    threads: int  # torch intra-op threads
    emulated: bool  # an ISA override (ISA_OVERRIDES) lowers this CPU's level: the class is emulated

    def record(self) -> dict:
        """The fields every record carries."""
        return {"hw_class": self.hw_class, "hardware": self.describe(), "isa": self.isa,
                "bf16_native": self.bf16_native, "amx": self.amx, "cores": self.cores, "threads": self.threads,
                "isa_emulated": self.emulated}

    def describe(self) -> str:
        if self.hw_class.startswith("cpu"):
            emu = ", emulated" if self.emulated else ""
            return f"{self.name} ({self.hw_class}{emu}, {self.threads} threads)"
        return f"{self.name} ({self.hw_class})"


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    precision: str  # "bf16" | "fp32"
    memory_format: torch.memory_format
    hardware: str  # human description, recorded in summaries
    hw: Hardware | None = None

    @property
    def ns_dtype(self) -> torch.dtype:
        """Muon's Newton-Schulz precision: bf16 only where the hardware computes it natively (emulated
        bf16 matmuls were 22x slower than fp32 on an AVX2 CPU: benchmarks/results/fp32_step.jsonl)."""
        return torch.bfloat16 if self.hw is not None and self.hw.bf16_native else torch.float32

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 arithmetic (AVX512-BF16 or AMX), which autocast exploits."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def probe(device: torch.device | str = "cpu") -> Hardware:
    """The hardware class of `device` (a CPU probe reads PyTorch's dispatch level, so an ISA override
    is seen as the lower class it selects)."""
    device = torch.device(device)
    cores, threads = cpu_cores(), torch.get_num_threads()
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return Hardware("cuda", torch.cuda.get_device_name(device), f"sm{major}{minor}",
                        torch.cuda.is_bf16_supported(), False, cores, threads, emulated=False)
    if device.type == "mps":
        return Hardware("mps", f"Apple {platform.machine()} GPU (MPS)", "mps", False, False, cores, threads, emulated=False)
    isa = torch.backends.cpu.get_cpu_capability()
    bf16 = cpu_supports_bf16() and "AVX512" in isa  # an AVX2 override disables oneDNN's bf16 kernels too
    amx = bf16 and "amx_bf16" in cpu_flags() and os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in (
        "", "ALL", "AVX512_CORE_AMX", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16")
    # emulated: an override selects a lower level than this CPU has (an AVX-512 CPU run as AVX2)
    emulated = any(os.environ.get(k) for k in ISA_OVERRIDES) and "avx512f" in cpu_flags() and "AVX512" not in isa
    cls = "cpu-amx-bf16" if amx else "cpu-avx512-bf16" if bf16 else f"cpu-{isa.lower().replace('_', '')}"
    return Hardware(cls, cpu_name(), isa, bf16, amx, cores, threads, emulated)


def auto_device() -> torch.device:
    """cuda > mps > cpu."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _device(wanted: str) -> torch.device:
    if wanted == "auto":
        return auto_device()
    device = torch.device(wanted)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device={wanted!r} but CUDA is not available on this machine; "
                          "use --set train.device=auto or cpu")
    if device.type == "mps" and not mps_available():
        raise ConfigError(f"train.device={wanted!r} but MPS (Apple GPU) is not available on this machine; "
                          "use --set train.device=auto or cpu")
    return device


def memory_format_for(hw: Hardware, precision: str) -> torch.memory_format:
    """channels_last (NHWC) on CUDA and on every CPU class: the bf16 kernels want it, and in fp32 on an
    AVX2 Zen 3 the bare FastNet step was 1.26-1.31x faster in NHWC for all three widths, the seed CNN
    equal within noise (benchmarks/results/fp32_step.jsonl). MPS keeps NCHW: no measurement there yet."""
    return torch.contiguous_format if hw.hw_class == "mps" else torch.channels_last


def pick_device(cfg: TrainConfig) -> Runtime:
    """Device, precision and memory format for `cfg.device` / `cfg.precision`; ConfigError when the
    machine cannot honour them."""
    device = _device(cfg.device)
    hw = probe(device)
    if cfg.precision == "bf16" and not hw.bf16_native:
        raise ConfigError(f"train.precision=bf16 but {hw.describe()} lacks native bf16; "
                          "use --set train.precision=auto or fp32")
    precision = "bf16" if cfg.precision == "bf16" or (cfg.precision == "auto" and hw.bf16_native) else "fp32"
    return Runtime(device, precision, memory_format_for(hw, precision), hw.describe(), hw)


@contextlib.contextmanager
def fast_kernels(rt: Runtime):
    """For the duration of a run on CUDA: cuDNN autotuning (fixed input shapes make it pay), restored after,
    so a library call leaves the process's settings as it found them."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = before or rt.device.type == "cuda"
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def eval_runtime(cfg: TrainConfig, device: torch.device | str) -> Runtime:
    """Runtime of the final (and `cifarlab eval`'s) evaluation: fp32 by default, reproducible on any
    machine; with eval_precision=train the training precision on `device` (bf16 where supported:
    about 4x faster on a bf16 CPU, and what the speed records time)."""
    if cfg.eval_precision == "fp32":
        return fp32_runtime(device)
    return pick_device(dataclasses.replace(cfg, device=str(torch.device(device))))


def fp32_runtime(device: torch.device | str = "cpu") -> Runtime:
    """Runtime used for reproducible evaluation: fp32, in the device's memory format (channels_last on CPUs:
    1.4-1.6x the NCHW inference rate (median) on an AVX2 Zen 3, benchmarks/results/eval_speed.jsonl)."""
    device = torch.device(device)
    hw = probe(device)
    return Runtime(device, "fp32", memory_format_for(hw, "fp32"), hw.describe(), hw)
