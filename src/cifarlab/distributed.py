"""torchrun / DistributedDataParallel: one process per device, the global batch split among them.

`torchrun --nproc-per-node=N -m cifarlab train ...` starts N processes with WORLD_SIZE, RANK and
LOCAL_RANK in their environment; `setup()` reads them and returns this process's `Dist`. Without
torchrun, or with one process, `Dist` has world size 1 and every method is the plain single-process
path (no process group, no wrapper, no collective): the 1-process torchrun run is the plain run.

How a run with W processes relates to the single-process run with the same config:
- `train.batch_size` is the global batch B; rank r trains on rows [r*B/W, (r+1)*B/W) of every global
  batch. Every rank draws the same permutation (loader generator) and augments the whole global batch
  with the same augmentation generator, then keeps its rows: the ranks' inputs together are exactly
  the single-process batch, and every generator state is independent of W (exact resume, also with
  another W). The cost is W x the augmentation work, a small part of a step.
- DDP averages the gradients: the gradient of the mean loss over the global batch.
- BatchNorm statistics are per rank (over B/W images) unless train.sync_bn (over the global batch:
  torch's SyncBatchNorm on GPUs, `GlobalBatchNorm` on CPUs). Per-rank running statistics are
  averaged over the ranks at the end of every epoch (they never feed back into training); a mid-epoch
  checkpoint saves each rank's own, with its generator and running sums, so resume is bit for bit.
- Validation: each rank evaluates a strided shard and the sums are all-reduced, so every rank sees the
  same numbers and takes the same decisions (best epoch, early stopping). The final test evaluation
  runs on rank 0 alone (it writes test_predictions.json); its summary and the selected weights are
  broadcast. Rank 0 alone writes files and logs.
- Randomness inside the model (dropout) draws from the global torch generator, seeded per rank.
- After every epoch the ranks compare a SHA-256 of their weights and stop with a RunError if they
  differ; the summary records the digests.
"""
from __future__ import annotations

import gc
import hashlib
import inspect
import os
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.distributed as tdist
import torch.nn.functional as F
from torch import nn

from .config import Config, TrainConfig
from .errors import ConfigError, RunError
from .evaluate import Metrics, evaluate, predict

SUM_KEYS = ("loss_sum", "correct", "seen")  # an epoch's running sums (trainstate.Progress.in_epoch)
STOP_SYNC_STEPS = 10  # with W > 1, the ranks agree on a SIGINT/SIGTERM every this many steps (a CPU
#                       all-reduce, no device sync); one rank must not stop while the others step on


@dataclass
class Dist:
    """This process's place in a torchrun job (world 1: a plain run)."""
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # setup() created the process group (teardown() destroys it)
    device: torch.device = torch.device("cpu")  # this rank's training device (train_config())
    sync_bn: bool = False  # BatchNorm converted to global-batch statistics
    digests: list[str] = field(default_factory=list)  # per-rank weight SHA-256 after the last epoch
    _grad_flags: tuple = ()  # requires_grad of each parameter when the DDP wrapper was built
    _sums: dict | None = None  # this rank's running sums from a mid-epoch checkpoint (restore_ranks)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ------------------------------------------------------------ set-up

    def train_config(self, tc: TrainConfig) -> TrainConfig:
        """tc with this rank's device: cuda / auto (with GPUs) -> cuda:LOCAL_RANK under torchrun."""
        if self.world > 1 and tc.device.startswith("cuda:"):
            raise ConfigError(f"config key 'train.device': {tc.device!r} under torchrun; each process uses "
                              "cuda:LOCAL_RANK: set train.device=cuda (or auto) and pick the GPUs with "
                              "CUDA_VISIBLE_DEVICES")
        if self.world > 1 and tc.device in ("auto", "cuda") and torch.cuda.is_available():
            if self.local_rank >= torch.cuda.device_count():
                raise ConfigError(f"LOCAL_RANK {self.local_rank} but {torch.cuda.device_count()} GPU(s) are "
                                  "visible: use at most one process per GPU (--nproc-per-node), or "
                                  "train.device=cpu")
            tc = replace(tc, device=f"cuda:{self.local_rank}")
        elif self.world > 1 and tc.device == "auto":
            tc = replace(tc, device="cpu")
        self.device = torch.device("cuda" if tc.device == "auto" and torch.cuda.is_available()
                                   else "cpu" if tc.device == "auto" else tc.device)
        return tc

    def check_batch(self, cfg: Config) -> None:
        if cfg.train.batch_size % self.world:
            raise ConfigError(f"config key 'train.batch_size': {cfg.train.batch_size} is the global batch and "
                              f"must split evenly among the {self.world} processes; use a multiple of "
                              f"{self.world}")

    def barrier(self) -> None:
        if self.world > 1:
            tdist.barrier()

    def local_first(self, fn) -> None:
        """With W > 1: fn() on each node's local rank 0 (e.g. a download) before the others go on."""
        if self.world == 1:
            return
        if self.local_rank == 0:
            fn()
        tdist.barrier()

    def prepare_model(self, model: nn.Module, tc: TrainConfig) -> nn.Module:
        """Convert BatchNorm to global-batch statistics (train.sync_bn); a no-op for world 1."""
        if self.world == 1 or not tc.sync_bn:
            return model
        self.sync_bn = True
        if self.device.type == "cuda":
            return nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return convert_global_bn(model)

    def seed_ranks(self, seed: int, step: int = 0) -> None:
        """A global torch generator per rank (dropout masks differ across ranks), from (seed, rank, step)."""
        if self.world > 1:
            torch.manual_seed(int(np.random.SeedSequence([seed, self.rank, step]).generate_state(1)[0]))

    def wrap(self, model: nn.Module) -> nn.Module | None:
        """The DDP wrapper the train step calls (None for world 1: the model itself is stepped)."""
        if self.world == 1:
            return None
        from torch.nn.parallel import DistributedDataParallel

        self._grad_flags = _grad_flags(model)
        # rank 0's weights reach every rank when the wrapper is built. Buffers are not synced at each
        # forward (a collective per step; they are averaged per epoch instead), and each rank keeps its
        # own through the construction (a resumed rank's running statistics, whatever the torch version)
        no_sync = ({"forward_sync_buffers": False}  # torch >= 2.14 names it so
                   if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
                   else {"broadcast_buffers": False})
        own = [b.detach().clone() for b in model.buffers()]
        ddp = DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                                      **no_sync)
        with torch.no_grad():
            for b, mine in zip(model.buffers(), own):
                b.copy_(mine)
        return ddp

    def rewrap(self, model: nn.Module, step_model: nn.Module | None) -> nn.Module | None:
        """A new wrapper when a model hook changed which parameters train (fastnet freezes its stem bias
        after a few epochs): DDP fixes the set of gradients it averages when it is built."""
        if self.world == 1 or _grad_flags(model) == self._grad_flags:
            return step_model
        ddp = self.wrap(model)
        return torch.compile(ddp) if hasattr(step_model, "_orig_mod") else ddp

    # ------------------------------------------------------------ the step

    def shard(self, t: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous rows of a global batch."""
        if self.world == 1:
            return t
        n = len(t) // self.world
        return t[self.rank * n:(self.rank + 1) * n]

    def all_finite(self, loss: torch.Tensor) -> bool:
        """Whether the loss is finite on every rank (one rank's NaN reaches all through the gradients)."""
        ok = torch.isfinite(loss)
        if self.world > 1:
            ok = ok.to(torch.int32)
            tdist.all_reduce(ok, op=tdist.ReduceOp.MIN)
        return bool(ok)

    def any(self, flag: torch.Tensor) -> bool:
        """Whether `flag` (a bool tensor) is set on any rank."""
        if self.world > 1:
            flag = flag.to(torch.int32)
            tdist.all_reduce(flag, op=tdist.ReduceOp.MAX)
        return bool(flag)

    def stop_requested(self, stop_flag: dict, step: int) -> bool:
        """Whether to stop for a signal now; with W > 1 decided jointly every STOP_SYNC_STEPS steps."""
        if self.world == 1:
            return bool(stop_flag["signal"])
        if step % STOP_SYNC_STEPS:
            return False
        seen = torch.tensor([int(bool(stop_flag["signal"]))])
        tdist.all_reduce(seen, op=tdist.ReduceOp.MAX)  # CPU tensor: gloo, no device sync
        if seen.item() and not stop_flag["signal"]:
            stop_flag["signal"] = "a signal on another rank"
        return bool(seen.item())

    def end_epoch(self, model: nn.Module, buffers: list[torch.Tensor], epoch: int, sums: tuple):
        """An epoch's end on every rank: BatchNorm statistics averaged, the weights checked equal, and the
        running sums (loss_sum, correct, seen) over all ranks returned."""
        if self.world == 1:
            return sums
        self._average_buffers(buffers)
        self._check_in_sync(model, epoch)
        return self._sum_sums(*sums)

    def agree_plan(self, progress) -> None:
        """Rank 0's run length and stop request (a hook's decision) on every rank."""
        if self.world == 1:
            return
        progress.planned_steps, progress.stop_reason = self.broadcast((progress.planned_steps, progress.stop_reason))

    def _sum_sums(self, loss_sum: torch.Tensor, correct: torch.Tensor, seen: int):
        """The epoch's running sums over all ranks."""
        t = torch.stack([loss_sum.double(), correct.double(), torch.tensor(float(seen), dtype=torch.float64,
                                                                             device=loss_sum.device)])
        tdist.all_reduce(t)
        return t[0], t[1].long(), int(t[2].item())

    def start_sums(self, st: dict) -> dict:
        """An epoch's starting running sums on this rank: its own from a mid-epoch checkpoint (restore_ranks);
        otherwise the checkpoint's (a single process's) belong to rank 0 and the others start at zero."""
        if self.world == 1:
            return st
        sums, self._sums = self._sums, None
        if sums is not None:
            return {**st, **sums}
        return st if self.is_main else {**st, **dict.fromkeys(SUM_KEYS, 0)}

    # ------------------------------------------------------------ state

    def _average_buffers(self, buffers: list[torch.Tensor]) -> None:
        """Average floating-point buffers (BatchNorm running statistics) over the ranks."""
        if self.sync_bn:
            return
        for b in buffers:
            tdist.all_reduce(b)
            b.div_(self.world)

    def _check_in_sync(self, model: nn.Module, epoch: int) -> None:
        """Every rank must hold the same weights; RunError naming the epoch when they do not."""
        self.digests = [""] * self.world
        tdist.all_gather_object(self.digests, weights_digest(model.state_dict()))
        if len(set(self.digests)) > 1:
            raise RunError(f"the {self.world} processes hold different weights after epoch {epoch} "
                           f"(SHA-256 {', '.join(d[:12] for d in self.digests)}); a bug in the distributed "
                           "path: please report it with the config")

    def rank_states(self, buffers: list[torch.Tensor], in_epoch: dict | None) -> dict:
        """What differs between the ranks, for the checkpoint (collective; {} for world 1): each rank's
        global torch (and CUDA) generator, its BatchNorm running statistics (per rank between epoch ends)
        and, mid-epoch, its running sums. Saved as they are, nothing averaged, so a resumed run continues
        bit for bit."""
        if self.world == 1:
            return {}
        mine = {"torch": torch.get_rng_state(), "buffers": [b.detach().cpu() for b in buffers],
                "sums": {k: in_epoch[k] for k in SUM_KEYS} if in_epoch else None}
        if self.device.type == "cuda":
            mine["cuda"] = torch.cuda.get_rng_state(self.device)
        states = [None] * self.world
        tdist.all_gather_object(states, mine)
        return {"ranks": states}

    @torch.no_grad()
    def restore_ranks(self, state: dict, buffers: list[torch.Tensor], seed: int, step: int) -> None:
        """This rank's part of a checkpoint (rank_states). From another world size (allowed only where
        the buffers agree, check_resume): fresh per-rank generators, and rank 0 carries the saved sums."""
        if self.world == 1:
            return
        ranks = state.get("ranks") or []
        if len(ranks) == self.world:
            mine = ranks[self.rank]
            torch.set_rng_state(mine["torch"])
            if "cuda" in mine and self.device.type == "cuda":
                torch.cuda.set_rng_state(mine["cuda"], self.device)
            for b, saved in zip(buffers, mine["buffers"]):
                b.copy_(saved)
            self._sums = mine["sums"]
            return
        self.seed_ranks(seed, step)
        if ranks and ranks[0]["sums"] is not None:  # mid-epoch, written by another number of ranks
            total = {k: sum(r["sums"][k] for r in ranks) for k in SUM_KEYS}
            self._sums = total if self.is_main else dict.fromkeys(SUM_KEYS, 0)

    def check_resume(self, saved_world: int, cfg: Config, model: nn.Module, where) -> str | None:
        """RunError when resuming with this world size would change what is trained: per-rank
        BatchNorm statistics over B/W images are part of the recipe. Otherwise a note for the log when
        the world size changed (None when it did not)."""
        if saved_world == self.world:
            return None
        b, has_bn = cfg.train.batch_size, any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())

        def bn_images(w):
            return b // w if w > 1 and has_bn and not cfg.train.sync_bn else b

        if bn_images(saved_world) != bn_images(self.world):
            how = ("cifarlab train --resume" if saved_world == 1 else
                   f"torchrun with {saved_world} processes in all (--nnodes x --nproc-per-node)")
            raise RunError(f"{where} was trained by {saved_world} process(es) with BatchNorm statistics over "
                           f"{bn_images(saved_world)} images each; {self.world} process(es) would make that "
                           f"{bn_images(self.world)} and change the recipe. Resume it with {how}, or train "
                           "with train.sync_bn=true (statistics over the global batch: any world size resumes)")
        return (f"resuming with {self.world} process(es) after {saved_world}: same global batch, data order, "
                "augmentation and schedule; sums in another order, so not bit-identical")

    # ------------------------------------------------------------ evaluation and rank 0's work

    @torch.inference_mode()
    def evaluate(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, normalize, runtime,
                 batch_size: int = 1000, tta: int = 0, confusion: bool = False) -> Metrics:
        """evaluate(); with W > 1 each rank predicts a strided shard and the sums are all-reduced."""
        if self.world == 1:
            return evaluate(model, x, y, normalize, runtime, batch_size, tta=tta, confusion=confusion)
        if len(x) < self.world:  # too few images to shard: rank 0's numbers for everyone
            return self.broadcast(evaluate(model, x, y, normalize, runtime, batch_size, tta=tta, confusion=confusion))
        xs, ys = x[self.rank::self.world], y[self.rank::self.world].to(runtime.device)
        logits = predict(model, xs, normalize, runtime, batch_size, tta)
        c = logits.shape[1]
        top = logits.topk(min(5, c), dim=1).indices
        sums = torch.stack([F.cross_entropy(logits.double(), ys, reduction="sum"), (top[:, 0] == ys).sum().double(),
                            (top == ys[:, None]).any(1).sum().double(),
                            torch.tensor(float(len(ys)), dtype=torch.float64, device=runtime.device)])
        tdist.all_reduce(sums)
        loss, top1, top5, n = sums.tolist()
        conf = None
        if confusion:
            counts = torch.bincount(ys * c + top[:, 0], minlength=c * c)
            tdist.all_reduce(counts)
            conf = counts.view(c, c).tolist()
        return Metrics(loss / n, top1 / n * 100, top5 / n * 100, int(n), conf)

    def on_main(self, fn):
        """fn() on rank 0 alone; its result (or its exception) reaches every rank."""
        if self.world == 1:
            return fn()
        box = [None]
        if self.is_main:
            try:
                box[0] = ("ok", fn())
            except Exception as e:  # noqa: BLE001 (re-raised on every rank)
                box[0] = ("error", e)
        tdist.broadcast_object_list(box, src=0)
        kind, value = box[0]
        if kind == "error":
            raise value
        return value

    def broadcast(self, obj):
        """Rank 0's value of a picklable object (CPU tensors only)."""
        return self.on_main(lambda: obj)

    def share_weights(self, model: nn.Module) -> None:
        """Rank 0's weights on every rank (after it selected and evaluated them)."""
        if self.world == 1:
            return
        state = self.broadcast({k: v.cpu() for k, v in model.state_dict().items()} if self.is_main else None)
        if not self.is_main:
            model.load_state_dict(state)

    def resume_command(self, out) -> str:
        if self.world == 1:
            return f"cifarlab train --resume {out}"
        nnodes = self.world // int(os.environ.get("LOCAL_WORLD_SIZE", self.world))
        return (f"torchrun --nnodes={nnodes} --nproc-per-node={os.environ.get('LOCAL_WORLD_SIZE', self.world)} "
                f"-m cifarlab train --resume {out}")

    def summary(self) -> dict:
        """What the summary records about the processes."""
        if self.world == 1:
            return {"world_size": 1}
        return {"world_size": self.world, "sync_bn": self.sync_bn, "rank_weights_sha256": self.digests}


def setup() -> Dist:
    """This process's Dist: from torchrun's environment, joining (or creating) the process group;
    world 1 without torchrun or with one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    owns = not tdist.is_initialized()
    if owns:
        cuda = torch.cuda.is_available()
        if cuda and local < torch.cuda.device_count():
            torch.cuda.set_device(local)
        # CUDA tensors go through NCCL, CPU tensors (and pickled objects) through gloo
        tdist.init_process_group(backend="cpu:gloo,cuda:nccl" if cuda else "gloo")
    return Dist(rank=rank, world=world, local_rank=local, owns_group=owns)


def teardown(d: Dist) -> None:
    """Destroy the process group setup() created, on every exit path of a run. The caller drops its DDP
    wrapper first: the wrapper's reducer holds the C++ process group, and destroy_process_group() only
    unregisters it, so with a wrapper still alive gloo's worker threads (and their pending work) would
    live on until the garbage collector happens to free the wrapper's reference cycle, possibly during
    interpreter shutdown, which aborts the process ("terminate called without an active exception").
    Collecting here frees the group while the interpreter is whole."""
    if d.owns_group and tdist.is_initialized():
        gc.collect()
        tdist.destroy_process_group()
        gc.collect()


def is_main_process() -> bool:
    """Rank 0 of a torchrun job, or a plain process (for the CLI's own printing)."""
    return os.environ.get("RANK", "0") == "0"


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state_dict: every parameter and buffer's name and bytes (default memory layout)."""
    h = hashlib.sha256()
    for name, t in state.items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _grad_flags(model: nn.Module) -> tuple:
    return tuple(p.requires_grad for p in model.parameters())


class _AllReduceSum(torch.autograd.Function):
    """Sum over the ranks that autograd differentiates through: the gradient of every rank's input is
    the sum over the ranks of the output gradients (each rank's loss uses the same sum)."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        t = t.clone()
        tdist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        tdist.all_reduce(grad)
        return grad


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm with training statistics over the global batch of all ranks, for CPU processes (torch's
    SyncBatchNorm runs on GPUs only). Two passes (mean, then centred squares), each one all-reduce that
    autograd differentiates through; evaluation is plain BatchNorm."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {x.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        all_reduce = _AllReduceSum.apply
        dims, shape = [d for d in range(x.dim()) if d != 1], [1, -1] + [1] * (x.dim() - 2)
        xf = x.float()
        local = torch.tensor([x.numel() // x.shape[1]], dtype=xf.dtype, device=x.device)
        sums = all_reduce(torch.cat([xf.sum(dims), local]))
        n = sums[-1].detach()
        mean = sums[:-1] / n
        centred = xf - mean.view(shape)
        var = all_reduce((centred * centred).sum(dims)) / n  # biased, as BatchNorm normalizes with
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                f = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach().to(self.running_mean), f)
                self.running_var.lerp_((var.detach() * n / max(float(n) - 1, 1.0)).to(self.running_var), f)
        return y.to(x.dtype)


def convert_global_bn(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm in `module` by a GlobalBatchNorm sharing its parameters and buffers."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        if module.affine:
            new.weight, new.bias = module.weight, module.bias  # the same Parameters (requires_grad kept)
        if module.track_running_stats:
            new.running_mean, new.running_var = module.running_mean, module.running_var
            new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, convert_global_bn(child))
    return module
