"""The training loop: train(cfg) -> RunResult.

Reads as a story: prepare the run folder, assemble the run (pipeline.build), build the optimizer,
(resume), then per epoch train -> validate -> select on validation (the selected weights kept in memory)
-> checkpoint; finally evaluate the selected weights once on the test split and write the summary.
"""
from __future__ import annotations

import copy
import random
import shutil
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import data as data_mod
from . import distributed
from .augment import Augmenter, Normalizer
from .checkpoint import load_checkpoint, load_weights, save_checkpoint
from .config import Config, OptimConfig, from_dict, to_yaml
from .distributed import Dist
from .errors import Interrupted, NonFiniteLoss, RunError
from .evaluate import metrics_from_logits, predict
from .io import write_json, write_text
from .models import count_params
from .optim import Lookahead, build_optimizer, lr_at, set_lr, torch_lr_wd
from .pipeline import Pipeline, build, seed_everything
from .runlog import env_info, epoch_line, log, write_metrics
from .runtime import Runtime, eval_runtime, pick_device
from .viz import plot_curves

DATA_INIT_IMAGES = 5000  # un-augmented training images a model's data_init sees (whitening statistics)

__all__ = ["train", "train_step", "train_one_epoch", "RunResult", "RunError", "NonFiniteLoss", "Interrupted",
           "seed_everything"]


@dataclass
class Progress:
    """Everything besides weights and optimizer that a resumed run needs to continue exactly."""
    epoch: int = 0  # completed epochs
    step: int = 0  # completed optimizer steps
    best_val: float = -1.0  # best validation top-1, percent
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since best_val improved (early stopping)
    skipped_steps: int = 0  # steps skipped for a non-finite loss
    history: list[dict] = field(default_factory=list)  # one metrics record per completed epoch
    # mid-epoch position (only in step checkpoints): batch index and the running sums
    in_epoch: dict | None = None


@dataclass
class RunResult:
    summary: dict
    history: list[dict]
    model: nn.Module
    out_dir: Path | None


# ---------------------------------------------------------------- run folder

def prepare_out_dir(out: Path | None, resume: bool, overwrite: bool) -> None:
    if out is None:
        return
    if resume:
        if not (out / "last.pt").is_file():
            raise RunError(f"--resume {out}: no last.pt there; nothing to resume")
        return
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise RunError(f"output folder {out} exists and is not empty; pass --resume to continue "
                           "that run, --overwrite to replace it, or choose another --out")
        if not (out / "config.yaml").exists():
            raise RunError(f"--overwrite refused: {out} does not look like a cifarlab run folder "
                           "(no config.yaml); remove it yourself or choose another --out")
        _clear_run_folder(out)
    out.mkdir(parents=True, exist_ok=True)


def _clear_run_folder(out: Path) -> None:
    """Empty a run folder, config.yaml last: killed half-way, it is still recognisably a run folder
    that --overwrite may replace (a folder without config.yaml is refused)."""
    for child in out.iterdir():
        if child.name != "config.yaml":
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    (out / "config.yaml").unlink()


# ---------------------------------------------------------------- randomness

def rng_state(loader_gen: torch.Generator, aug_gen: torch.Generator, all_cuda: bool = True) -> dict:
    np_state = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
             "loader": loader_gen.get_state(), "augment": aug_gen.get_state()}
    if aug_gen.device.type == "cuda" and all_cuda:  # torchrun: each rank's own device (Dist.rng_states)
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, loader_gen: torch.Generator, aug_gen: torch.Generator,
                  all_cuda: bool = True) -> None:
    random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in state["python"]))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    loader_gen.set_state(state["loader"])
    aug_gen.set_state(state["augment"])
    if "cuda" in state and aug_gen.device.type == "cuda" and all_cuda:
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------- signals

@contextmanager
def stop_on_signals():
    """SIGINT/SIGTERM set a flag; the loop finishes its step, checkpoints and stops."""
    flag = {"signal": None}
    def handler(signum, _frame):
        flag["signal"] = signal.Signals(signum).name
    old = {}
    try:
        for s in (signal.SIGINT, signal.SIGTERM):
            old[s] = signal.signal(s, handler)
    except ValueError:  # not the main thread: no signal handling
        pass
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# ---------------------------------------------------------------- the loop

@dataclass
class Engine:
    """The objects one run trains with; built once, passed to the epoch function."""
    cfg: Config
    rt: Runtime
    model: nn.Module
    optimizer: torch.optim.Optimizer
    loader: data_mod.DeviceLoader
    augment: Augmenter
    loader_gen: torch.Generator
    aug_gen: torch.Generator
    total_steps: int
    pipe: Pipeline
    lr_unit: float = 1.0  # torch lr per unit of optim.lr (optim.per_1024 converts)
    lookahead: Lookahead | None = None
    step_model: nn.Module | None = None  # what the train step calls: the model, or its torch.compile
    best_weights: dict | None = None  # state_dict of the epoch selected on validation (in memory)
    board: Any = None  # tblog.Board with log.tensorboard, else None (tblog is then never imported)
    dist: Dist = field(default_factory=Dist)  # torchrun: this process's rank (world 1: a plain run)

    def checkpoint_state(self, progress: Progress) -> dict:
        """The resumable state (with W > 1 a collective: every rank calls it, rank 0 saves it)."""
        rng = rng_state(self.loader_gen, self.aug_gen, all_cuda=self.dist.world == 1)
        return {"config": self.cfg.to_dict(), "num_classes": self.pipe.num_classes,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "progress": progress.__dict__.copy(), "rng": rng, "device": self.rt.device.type,
                "world_size": self.dist.world, **self.dist.rank_states(self.rank_buffers(), progress.in_epoch),
                **({"lookahead": self.lookahead.state_dict()} if self.lookahead else {})}

    def save_last(self, out: Path, progress: Progress) -> None:
        state = self.checkpoint_state(progress)
        if self.dist.is_main:
            save_checkpoint(out / "last.pt", state)
        self.dist.barrier()  # no rank stops (or gets stopped by torchrun) before the checkpoint is written

    def rank_buffers(self) -> list[torch.Tensor]:
        """Floating-point buffers (BatchNorm running statistics) of the model and of Lookahead's slow copy:
        per rank under torchrun without train.sync_bn, averaged over the ranks at every epoch end."""
        modules = [self.model, *([self.lookahead.slow] if self.lookahead else [])]
        return [b for m in modules for b in m.buffers() if b.is_floating_point()]


def train_one_epoch(eng: Engine, progress: Progress, out: Path | None, stop_flag: dict,
                    show_bar: bool) -> dict:
    """One pass over the shuffled training split. Returns the epoch's train metrics."""
    cfg, model, opt = eng.cfg, eng.model, eng.optimizer
    st = progress.in_epoch or {"loader_rng": eng.loader_gen.get_state(), "batch": 0,
                               "loss_sum": 0.0, "correct": 0, "seen": 0, "time_s": 0.0}
    progress.in_epoch = None
    st = eng.dist.start_sums(st)
    eng.loader_gen.set_state(st["loader_rng"])  # replay this epoch's permutation on resume
    loss_sum = torch.tensor(st["loss_sum"], dtype=torch.float64, device=eng.rt.device)
    correct = torch.tensor(st["correct"], dtype=torch.int64, device=eng.rt.device)
    seen, t0, start_batch = st["seen"], time.perf_counter() - st["time_s"], st["batch"]
    bs = eng.loader.batch_size
    bar = _progress_bar(len(eng.loader) * bs, start_batch * bs, progress.epoch + 1, show_bar)
    if hasattr(model, "epoch_start"):
        model.epoch_start(progress.epoch)
        eng.step_model = eng.dist.rewrap(model, eng.step_model)
    check_every = cfg.train.finite_check_every
    bad = torch.zeros((), dtype=torch.bool, device=eng.rt.device)  # a non-finite loss since the last check
    for i, (idx, xb, yb) in enumerate(eng.loader.with_indices()):
        if i < start_batch:
            continue
        set_lr(opt, lr_at(progress.step, eng.total_steps, cfg.optim, len(eng.loader)), eng.lr_unit)
        inputs = eng.augment(xb, idx, progress.epoch)
        if eng.board is not None and i == start_batch:  # once per epoch, no host sync
            eng.board.keep_batch(inputs)
        inputs, yb = eng.dist.shard(inputs), eng.dist.shard(yb)  # torchrun: this rank's rows
        step_model = model if eng.step_model is None else eng.step_model  # `or` would call len() on it
        loss, logits, stepped = train_step(step_model, inputs, yb, opt, eng.rt, cfg.optim,
                                           check_finite=check_every == 1, all_finite=eng.dist.all_finite)
        if not stepped:
            _handle_nonfinite(cfg, progress, i)
            continue
        progress.step += 1
        if check_every > 1:  # no host sync per step: a flag on the device, read every N steps
            bad |= ~torch.isfinite(loss)
            if progress.step % check_every == 0 and eng.dist.any(bad):
                _handle_nonfinite(cfg, progress, i)
        if eng.lookahead is not None:
            eng.lookahead.step(progress.step)
        loss_sum += loss.detach().double() * len(yb)
        correct += (logits.argmax(1) == yb).sum()
        seen += len(yb)
        if bar is not None:
            bar.update(len(yb))
        every = cfg.train.checkpoint_every_steps
        stop = eng.dist.stop_requested(stop_flag, progress.step)
        if stop or (every and progress.step % every == 0 and out is not None):
            if check_every > 1 and eng.dist.any(bad):  # never save weights a non-finite step may have touched
                _handle_nonfinite(cfg, progress, i)
            progress.in_epoch = {"loader_rng": st["loader_rng"], "batch": i + 1,
                                 "loss_sum": loss_sum.item(), "correct": int(correct.item()),
                                 "seen": seen, "time_s": time.perf_counter() - t0}
            if out is not None:
                eng.save_last(out, progress)
            progress.in_epoch = None
            if stop:
                if bar is not None:
                    bar.close()
                where = f"resume with: {eng.dist.resume_command(out)}" if out else "no --out: not saved"
                raise Interrupted(f"{stop_flag['signal']} received: stopped after step {progress.step} "
                                  f"(epoch {progress.epoch + 1}, batch {i + 1}); {where}")
    if bar is not None:
        bar.close()
    if check_every > 1 and eng.dist.any(bad):  # before this epoch's weights are validated or saved
        _handle_nonfinite(cfg, progress, len(eng.loader) - 1)
    if eng.lookahead is not None and progress.step >= eng.total_steps:
        eng.lookahead.finish()  # the result is the slow (averaged) weights
    eng.dist.average_buffers(eng.rank_buffers())
    eng.dist.check_in_sync(model, progress.epoch + 1)
    if eng.rt.device.type == "cuda":
        torch.cuda.synchronize()
    time_s = time.perf_counter() - t0
    loss_sum, correct, seen = eng.dist.sum_sums(loss_sum, correct, seen)
    return {"train_loss": loss_sum.item() / max(seen, 1), "train_acc": correct.item() / max(seen, 1) * 100,
            "epoch_time_s": time_s, "images_per_s": seen / max(time_s, 1e-9)}


def train_step(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, optimizer: torch.optim.Optimizer,
               rt: Runtime, cfg: OptimConfig, check_finite: bool = True,
               all_finite=lambda loss: bool(torch.isfinite(loss))) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """One optimizer step. Returns (loss, logits, stepped); with check_finite (a host sync), a
    non-finite loss is not stepped; without, the caller checks the loss later. all_finite: how the
    check is made (torchrun: the ranks agree, Dist.all_finite)."""
    model.train()  # cheap, and makes "forgot model.train() after validation" impossible
    with rt.autocast():
        logits = model(inputs)
    loss = F.cross_entropy(logits.float(), labels, label_smoothing=cfg.label_smoothing)
    if check_finite and not all_finite(loss):
        return loss, logits, False
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip:
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    return loss, logits, True


def _handle_nonfinite(cfg: Config, progress: Progress, batch: int) -> None:
    where = f"epoch {progress.epoch + 1}, batch {batch + 1} (step {progress.step + 1})"
    if cfg.train.nonfinite == "skip":
        progress.skipped_steps += 1
        if progress.skipped_steps <= cfg.train.max_skipped_steps:
            return
        raise NonFiniteLoss(f"non-finite loss at {where}: {progress.skipped_steps} steps skipped, more "
                            f"than train.max_skipped_steps={cfg.train.max_skipped_steps}")
    if cfg.train.finite_check_every > 1:
        where = (f"within the {cfg.train.finite_check_every} steps before {where} "
                 "(train.finite_check_every)")
    raise NonFiniteLoss(f"non-finite loss (NaN/Inf) at {where}; lower optim.lr, set optim.grad_clip, "
                        "or train.nonfinite=skip. The last good checkpoint is kept.")


def _progress_bar(total: int, initial: int, epoch: int, show: bool):
    if not show:
        return None
    from tqdm import tqdm

    # disable=None: the bar shows on a terminal only, so logs and CI output stay one line per epoch
    return tqdm(total=total, initial=initial, desc=f"epoch {epoch}", unit="img", unit_scale=True,
                leave=False, dynamic_ncols=True, disable=None, mininterval=0.5)


# ---------------------------------------------------------------- train()

def train(cfg: Config, out: str | Path | None = None, data_dir=None, resume: bool = False,
          overwrite: bool = False, quiet: bool = False, progress_bar: bool | None = None,
          on_epoch=None) -> RunResult:
    """Train per `cfg`; write the run folder `out` (if given); return the summary and history.
    `on_epoch(record)` sees each epoch's metrics once they are saved (cifarlab tune reports and prunes
    there; an exception it raises stops the run with the epoch's checkpoint already written).

    The test split is evaluated once, at the end, with the weights of the epoch selected on
    validation (kept in memory, so also without `out`).
    """
    out = Path(out) if out is not None else None
    if resume and out is None:
        raise RunError("resume needs the run folder (out=...)")
    dist = distributed.setup()  # torchrun: this process's rank (and the process group); else world 1
    out = dist.broadcast(out)  # rank 0's folder: it alone writes files and logs
    dist.on_main(lambda: prepare_out_dir(out, resume, overwrite))
    quiet = quiet or not dist.is_main
    # CPU first: RNG states must stay CPU tensors; weights and optimizer state move on load
    resumed = dist.on_main(lambda: load_checkpoint(out / "last.pt", map_location="cpu")) if resume else None
    if resumed is not None:
        cfg = from_dict(resumed["config"], source=str(out / "last.pt"))
    dist.check_batch(cfg)
    runtime = pick_device(dist.train_config(resume_train_config(cfg, resumed, out) if resumed else cfg.train))
    t_data = time.perf_counter()
    dist.local_first(lambda: data_mod.ensure_files(cfg.data.dataset, data_mod.resolve_root(data_dir),
                                                   cfg.data.download))
    pipe = build(cfg, data_dir, runtime)
    timing = {"data_s": time.perf_counter() - t_data}
    if not pipe.data.verification.startswith("genuine"):
        log(f"warning: {cfg.data.dataset} data is {pipe.data.verification}", quiet)
    if out is not None and dist.is_main:
        write_text(out / "config.yaml", to_yaml(cfg))
    t_init = time.perf_counter()
    eng = _engine(pipe, dist)
    progress = Progress()
    if resumed is not None:
        note = dist.check_resume(resumed.get("world_size", 1), cfg, eng.model, out)  # another world size?
        progress = _restore(eng, resumed, out / "last.pt")
        log(f"resuming {out} after epoch {progress.epoch}, step {progress.step}" + (f"; {note}" if note else ""),
            quiet)
    elif hasattr(eng.model, "data_init"):  # e.g. fastnet's whitening stem, from un-augmented images
        eng.model.data_init(pipe.normalize(pipe.splits.train_x[:DATA_INIT_IMAGES].to(pipe.runtime.device)))
    eng.step_model = dist.wrap(eng.model)  # torchrun with W > 1: DistributedDataParallel; else None
    timing["init_s"] = time.perf_counter() - t_init
    eng.board = _open_board(eng, out, progress.epoch)
    if cfg.train.compile:
        timing["compile_s"] = _compile(eng)
    n_params = count_params(eng.model)
    sp, rt = pipe.splits, pipe.runtime
    log(f"{cfg.name}: {cfg.model.name} ({n_params:,} params) on {cfg.data.dataset} "
        f"[{len(sp.train_y)} train / {len(sp.val_y)} val / {len(sp.test_y)} test] | "
        f"{rt.hardware}, {rt.precision}", quiet)
    show_bar = ((not quiet) if progress_bar is None else progress_bar) and dist.is_main

    patience = cfg.train.early_stop_patience
    status = "completed"
    if patience and progress.bad_epochs >= patience:  # resuming a run that had already stopped early
        status = f"early-stopped after epoch {progress.epoch} (no val improvement for {patience} epochs)"
    t_start = time.perf_counter() - sum(r["epoch_time_s"] for r in progress.history)
    with stop_on_signals() as stop_flag:
        try:
            for epoch in range(progress.epoch + 1, cfg.train.epochs + 1):
                if status != "completed":
                    break
                rec = {"epoch": epoch, **train_one_epoch(eng, progress, out, stop_flag, show_bar)}
                rec["lr"] = eng.optimizer.param_groups[0]["lr"]
                rec["step"] = progress.step
                _validate_and_select(eng, progress, rec, out)
                progress.epoch = epoch
                progress.history.append(rec)
                if out is not None:
                    eng.save_last(out, progress)
                    if dist.is_main:
                        write_metrics(out / "metrics.jsonl", progress.history)
                if eng.board is not None:
                    eng.board.epoch(rec)
                log(epoch_line(rec, cfg.train.epochs), quiet)
                if on_epoch is not None:
                    on_epoch(rec)
                if patience and progress.bad_epochs >= patience:
                    status = f"early-stopped after epoch {epoch} (no val improvement for {patience} epochs)"
                    log(status, quiet)
                    break
        except NonFiniteLoss as e:
            status = f"stopped: {e}"
            if out is not None and dist.is_main:
                write_json(out / "summary.json", {"status": status, "epochs_run": progress.epoch,
                                                  "skipped_steps": progress.skipped_steps})
            raise
    total_s = time.perf_counter() - t_start
    # rank 0 evaluates the test split once and writes; every rank gets its summary and selected weights
    summary = dist.on_main(lambda: _finish(eng, progress, out, status, total_s, n_params, quiet, timing))
    dist.share_weights(eng.model)
    if eng.board is not None:
        eng.board.close(summary)
    distributed.teardown(dist)
    return RunResult(summary, progress.history, eng.model, out)


def resume_train_config(cfg: Config, state: dict, out: Path):
    """cfg.train with the device the checkpoint was written on: the generators' states only fit there,
    and exact resume needs the same kind of device. A clear RunError when that device is unavailable."""
    saved = state.get("device") or ("cuda" if state["rng"]["augment"].numel() == 16 else "cpu")
    wanted = cfg.train.device
    if wanted != "auto" and torch.device(wanted).type != saved:
        raise RunError(f"{out} was trained on {saved} but its config asks for train.device={wanted}; "
                       "a run resumes exactly only on the kind of device that started it")
    if saved == "cuda" and not torch.cuda.is_available():
        raise RunError(f"{out} was trained on a CUDA GPU and this machine has none; resume it on a GPU "
                       "machine, or start a new run here")
    return replace(cfg.train, device=wanted if wanted != "auto" else saved)


def _engine(pipe: Pipeline, dist: Dist) -> Engine:
    cfg, rt = pipe.cfg, pipe.runtime
    pipe.model = dist.prepare_model(pipe.model, cfg.train)  # torchrun + train.sync_bn: global-batch BN
    dist.seed_ranks(cfg.train.seed)  # torchrun: one global generator per rank (dropout)
    loader_gen = torch.Generator().manual_seed(cfg.train.seed)
    aug_gen = torch.Generator(device=rt.device).manual_seed(cfg.train.seed + 1)
    loader = pipe.train_loader(loader_gen)
    total = cfg.train.epochs * len(loader)
    lookahead = (Lookahead(pipe.model, cfg.optim.lookahead_every, cfg.optim.lookahead_decay, total)
                 if cfg.optim.lookahead_every else None)
    return Engine(cfg, rt, pipe.model, build_optimizer(pipe.model, cfg.optim, cfg.train.batch_size), loader,
                  pipe.augmenter(aug_gen), loader_gen, aug_gen, total_steps=total, pipe=pipe,
                  lr_unit=torch_lr_wd(cfg.optim, cfg.train.batch_size)[0] / cfg.optim.lr, lookahead=lookahead,
                  dist=dist)


def _open_board(eng: Engine, out: Path | None, start_epoch: int):
    """The run's TensorBoard writer (log.tensorboard), else None; the one place it is created."""
    if not eng.cfg.log.tensorboard or not eng.dist.is_main:
        return None
    from .tblog import Board

    data = eng.pipe.data
    return Board(eng.cfg, out, classes=data.classes, mean=data.spec.mean, std=data.spec.std,
                 test_y=eng.pipe.splits.test_y, start_epoch=start_epoch)


def _compile(eng: Engine) -> float:
    """torch.compile the train step's model (in train.compile_mode) and warm it up on a random batch;
    the model's weights, BN statistics and the RNG states are restored afterwards (in place: CUDA graphs
    keep pointing at the same storage). Returns the warm-up seconds."""
    t0 = time.perf_counter()
    mode = eng.cfg.train.compile_mode
    eng.step_model = torch.compile(eng.model if eng.step_model is None else eng.step_model,
                                   **({} if mode == "default" else {"mode": mode}))
    saved, rng = copy.deepcopy(eng.model.state_dict()), torch.get_rng_state()
    x = torch.randint(0, 256, (eng.loader.batch_size // eng.dist.world, 3, 32, 32), dtype=torch.uint8,
                      device=eng.rt.device)  # one rank's rows under torchrun
    eng.step_model.train()
    with eng.rt.autocast():
        eng.step_model(eng.pipe.normalize(x)).float().sum().backward()
    eng.model.load_state_dict(saved)
    eng.model.zero_grad(set_to_none=True)
    torch.set_rng_state(rng)
    if eng.rt.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def _validate_and_select(eng: Engine, progress: Progress, rec: dict, out: Path | None) -> None:
    """Validation metrics into `rec`; keep best-on-validation weights (last epoch when no val split)
    in memory, and in best.pt when the run has a folder."""
    splits = eng.pipe.splits
    if len(splits.val_y):
        # torchrun: each rank a shard, sums all-reduced (the same numbers and decisions on every rank)
        m = eng.dist.evaluate(eng.model, splits.val_x, splits.val_y, eng.pipe.normalize, eng.rt,
                              eng.cfg.train.eval_batch_size, tta=eng.cfg.train.tta, confusion=eng.cfg.log.tensorboard)
        if eng.board is not None:
            eng.board.keep_confusion(m.confusion)
        rec.update(val_loss=m.loss, val_acc=m.top1, val_top5=m.top5)
        score = m.top1
    else:
        rec.update(val_loss=None, val_acc=None, val_top5=None)
        score = float(rec["epoch"])  # no validation: the latest epoch is "best"
    if score > progress.best_val:
        progress.best_val, progress.best_epoch, progress.bad_epochs = score, rec["epoch"], 0
        eng.best_weights = copy.deepcopy(eng.model.state_dict())
        if out is not None and eng.dist.is_main:
            save_checkpoint(out / "best.pt", {"config": eng.cfg.to_dict(), "num_classes": eng.pipe.num_classes,
                                              "model": eng.best_weights, "epoch": rec["epoch"]})
    else:
        progress.bad_epochs += 1


def _restore(eng: Engine, state: dict, path: Path) -> Progress:
    load_weights(eng.model, state, path)
    eng.optimizer.load_state_dict(state["optimizer"])
    if eng.lookahead is not None:
        eng.lookahead.load_state_dict(state["lookahead"])
    set_rng_state(state["rng"], eng.loader_gen, eng.aug_gen, all_cuda=eng.dist.world == 1)
    progress = Progress(**state["progress"])
    eng.dist.restore_ranks(state, eng.rank_buffers(), eng.cfg.train.seed, progress.step)  # torchrun
    return progress


def _select_weights(eng: Engine, progress: Progress, out: Path | None) -> dict | None:
    """Load the weights selected on validation into eng.model; return them as a best.pt dict."""
    if eng.best_weights is not None:  # selected in this process
        eng.model.load_state_dict(eng.best_weights)
        return {"config": eng.cfg.to_dict(), "num_classes": eng.pipe.num_classes,
                "model": eng.best_weights, "epoch": progress.best_epoch}
    if out is not None and (out / "best.pt").is_file():  # selected before a resume
        best = load_checkpoint(out / "best.pt", map_location=eng.rt.device)
        load_weights(eng.model, best, out / "best.pt")
        return {k: v for k, v in best.items() if k != "format"}
    return None


def _finish(eng: Engine, progress: Progress, out, status, total_s, n_params, quiet, timing: dict) -> dict:
    """Evaluate the selected weights once on the test split (fp32 unless train.eval_precision=train,
    with train.tta) and write summary + figures."""
    cfg, pipe = eng.cfg, eng.pipe
    best = _select_weights(eng, progress, out)
    t_eval = time.perf_counter()
    rt_eval = eval_runtime(cfg.train, eng.rt.device)
    model = eng.model.to(memory_format=rt_eval.memory_format)
    if rt_eval.precision == "fp32":
        model = model.float()
    normalize = Normalizer(pipe.data.spec.mean, pipe.data.spec.std, rt_eval.device, rt_eval.memory_format)
    logits = predict(model, pipe.splits.test_x, normalize, rt_eval, cfg.train.eval_batch_size, cfg.train.tta)
    test = metrics_from_logits(logits, pipe.splits.test_y)
    timing["eval_s"] = time.perf_counter() - t_eval
    plain = test if not cfg.train.tta else metrics_from_logits(
        predict(model, pipe.splits.test_x, normalize, rt_eval, cfg.train.eval_batch_size), pipe.splits.test_y)
    summary = {"preset": cfg.name, "dataset": cfg.data.dataset, "model": cfg.model.name,
               "config_hash": cfg.hash(), "seed": cfg.train.seed, "status": status,
               **epoch_summary(progress.history, progress.best_epoch),
               "test_acc": test.top1, "test_top5": test.top5, "test_loss": test.loss, "test_n": test.n,
               "test_acc_no_tta": plain.top1, "eval_precision": rt_eval.precision, "tta": cfg.train.tta,
               "device": eng.rt.device.type, **eng.dist.summary(),
               "params": n_params, **_timing(progress.history, total_s), "skipped_steps": progress.skipped_steps,
               "data_verification": pipe.data.verification, "n_train": len(pipe.splits.train_y),
               "n_val": len(pipe.splits.val_y), **env_info(eng.rt.hardware, eng.rt.precision),
               "timing": {**timing, "train_s": sum(r["epoch_time_s"] for r in progress.history)}}
    if out is not None:
        write_json(out / "summary.json", summary)
        write_json(out / "test_predictions.json", {"pred": logits.argmax(1).tolist()})
        if best is not None:  # the published form: weights + config + summary, no optimizer
            save_checkpoint(out / "best.pt", {**best, "summary": summary})
        plot_curves(progress.history, out / "curves.png", title=f"{cfg.name} ({cfg.data.dataset})")
    log(f"test: top-1 {test.top1:.2f}%  top-5 {test.top5:.2f}%  loss {test.loss:.4f}  "
        f"(best epoch {progress.best_epoch}, {total_s:.0f}s)", quiet)
    return summary


def epoch_summary(history: list[dict], best_epoch: int) -> dict:
    """Train and validation numbers of the selected epoch (the one the test numbers belong to), and
    the last epoch's under last_epoch_* keys."""
    last = history[-1] if history else {}
    sel = next((r for r in history if r["epoch"] == best_epoch), last)
    return {"epochs_run": len(history), "best_epoch": best_epoch,
            "train_loss": sel.get("train_loss"), "train_acc": sel.get("train_acc"),
            "val_acc": sel.get("val_acc"), "val_loss": sel.get("val_loss"),
            "last_epoch_train_loss": last.get("train_loss"), "last_epoch_train_acc": last.get("train_acc"),
            "last_epoch_val_acc": last.get("val_acc")}


def _timing(history: list[dict], total_s: float) -> dict:
    seen = sum(r["images_per_s"] * r["epoch_time_s"] for r in history)
    train_time = sum(r["epoch_time_s"] for r in history)
    return {"total_time_s": total_s, "train_time_s": train_time, "images_per_s": seen / max(train_time, 1e-9)}
