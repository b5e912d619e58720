"""The training engine: train(cfg) -> RunResult.

Reads as a story: prepare the run folder, assemble the run (pipeline.build), resume if asked, then per
epoch train -> validate -> select on validation (the selected weights kept in memory) -> checkpoint;
finally evaluate the selected weights once on the test split and write the summary.

The loop calls hooks (cifarlab.hooks) at fixed points: start, step, evaluate, epoch end, save. A hook
may re-plan the run's length (`Run.replan`) or stop it (`Run.request_stop`). A torchrun run differs from
a single-process run only in its `Dist` (cifarlab.distributed), the strategy that shards batches and
agrees across ranks; with one process every one of its calls is a no-op.
"""
from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
from .guard import handle_nonfinite, stop_on_signals
from .hooks import Hook, Hooks, ProgressLines
from .io import write_text
from .models import count_params
from .optim import Lookahead, lr_at, set_lr
from .pipeline import Pipeline, build, seed_everything
from .runfolder import epoch_summary, prepare_out_dir, timing_summary, write_results, write_stopped
from .runlog import env_info, epoch_line, log, write_metrics
from .runtime import fast_kernels, Runtime, eval_runtime, pick_device
from .trainstate import Progress, best_state, checkpoint_state, rank_buffers, restore, resume_train_config

DATA_INIT_IMAGES = 5000  # un-augmented training images a model's data_init sees (whitening statistics)
PROGRESS_EVERY_S = 30.0  # without a terminal (no progress bar): a progress line at least this often

__all__ = ["train", "train_step", "train_one_epoch", "Run", "RunResult", "Hook", "RunError", "NonFiniteLoss",
           "Interrupted", "seed_everything"]


@dataclass
class RunResult:
    summary: dict
    history: list[dict]
    model: nn.Module
    out_dir: Path | None


@dataclass
class EpochSums:
    """The current epoch's running sums: device tensors (no host sync per step) and a host count."""
    loss_sum: torch.Tensor
    correct: torch.Tensor
    seen: int
    t0: float  # perf_counter at the epoch's start (minus time already spent before a resume)


@dataclass
class Run:
    """One run: the objects it trains with and where it stands; what every hook receives."""
    cfg: Config
    pipe: Pipeline
    optimizer: torch.optim.Optimizer
    loader: data_mod.DeviceLoader
    augment: Augmenter
    loader_gen: torch.Generator
    aug_gen: torch.Generator
    dist: Dist
    hooks: Hooks
    out: Path | None = None
    quiet: bool = False
    lr_unit: float = 1.0
    lookahead: Lookahead | None = None
    progress: Progress | None = None
    step_model: nn.Module | None = None  # what the train step calls: the model, or its DDP / torch.compile
    best_weights: dict | None = None  # state_dict of the epoch selected on validation (in memory)
    board: Any = None  # tblog.Board with log.tensorboard, else None (tblog is then never imported)
    sums: EpochSums | None = None  # the current epoch's running sums (for progress hooks)
    bar: Any = None  # the tqdm bar of the current epoch (on a terminal), else None
    show_bar: bool = False
    last_loss: torch.Tensor | None = None  # the last step's loss (on the device)
    timing: dict = field(default_factory=dict)  # set-up seconds for the summary: data_s, init_s, compile_s

    @property
    def model(self) -> nn.Module:
        return self.pipe.model

    @property
    def rt(self) -> Runtime:
        return self.pipe.runtime

    @property
    def total_steps(self) -> int:
        """The run's length in optimizer steps: the config's, or what a hook re-planned."""
        planned = self.progress.planned_steps
        return planned if planned is not None else config_steps(self.cfg, len(self.loader))

    @property
    def epochs(self) -> int:
        """Epochs the run trains (the last one may end early when a re-planned length ends inside it)."""
        return math.ceil(self.total_steps / len(self.loader))

    def replan(self, *, total_steps: int | None = None, epochs: int | None = None) -> None:
        """Change the run's length (in steps, or whole epochs) from the next step on; never below the
        steps already done. The lr schedule and Lookahead follow; last.pt keeps the plan."""
        if (total_steps is None) == (epochs is None):
            raise ValueError("replan: give exactly one of total_steps and epochs")
        total = total_steps if total_steps is not None else epochs * len(self.loader)
        self.progress.planned_steps = max(int(total), self.progress.step, 1)
        self._follow_plan()

    def request_stop(self, reason: str) -> None:
        """End the run after the current step; the epoch is validated and saved, the test split evaluated."""
        self.progress.stop_reason = reason

    def _follow_plan(self) -> None:
        if self.lookahead is not None:
            self.lookahead.total = max(1, self.total_steps)

    def save_last(self) -> None:
        """last.pt (a collective under torchrun: every rank calls it, rank 0 writes)."""
        state = checkpoint_state(self)
        if self.dist.is_main:
            save_checkpoint(self.out / "last.pt", state)
            self.hooks.save(self, self.out / "last.pt")
        self.dist.barrier()  # no rank stops (or gets stopped by torchrun) before the checkpoint is written


def config_steps(cfg: Config, steps_per_epoch: int) -> int:
    """The run's length in optimizer steps as its config states it: train.epochs, cut at train.max_steps."""
    steps = cfg.train.epochs * steps_per_epoch
    return min(steps, cfg.train.max_steps) if cfg.train.max_steps else steps


# ---------------------------------------------------------------- train()

def train(cfg: Config | None, out: str | Path | None = None, data_dir=None, resume: bool = False,
          overwrite: bool = False, quiet: bool = False, progress_bar: bool | None = None,
          hooks: list[Hook] = ()) -> RunResult:
    """Train per `cfg`; write the run folder `out` (if given); return the summary and history.

    The test split is evaluated once, at the end, with the weights of the epoch selected on
    validation (kept in memory, so also without `out`). `hooks` (cifarlab.hooks.Hook) are called at the
    loop's fixed points and may re-plan or stop the run. Without a terminal (no progress bar) a progress
    line is printed at least every PROGRESS_EVERY_S seconds unless `quiet`.
    """
    out = Path(out) if out is not None else None
    if resume and out is None:
        raise RunError("resume needs the run folder (out=...)")
    dist = distributed.setup()  # torchrun: this process's rank (and the process group); else world 1
    run = None
    try:
        run = _start(cfg, out, data_dir, resume, overwrite, quiet, progress_bar, hooks, dist)
        with fast_kernels(run.rt):
            return _run(run)
    finally:  # also on an interrupt, a NaN stop or an error: no writer thread or process group left open
        if run is not None:
            if run.board is not None:
                run.board.writer.close()
            run.step_model = None  # the DDP wrapper holds the process group (distributed.teardown)
        distributed.teardown(dist)


def _start(cfg, out, data_dir, resume, overwrite, quiet, progress_bar, hooks, dist: Dist) -> Run:
    """The run folder, the config (a resumed run's own), the pipeline and the Run, resumed if asked."""
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
    show = ((not quiet) if progress_bar is None else progress_bar) and dist.is_main
    run = _assemble(pipe, dist, out, quiet, _hooks(hooks, show))
    _resume_or_init(run, resumed)
    run.step_model = dist.wrap(run.model)  # torchrun with W > 1: DistributedDataParallel; else None
    timing["init_s"] = time.perf_counter() - t_init
    run.board = _open_board(run)
    if cfg.train.compile:
        timing["compile_s"] = _compile(run)
    run.timing, run.show_bar = timing, show and sys.stdout.isatty()
    return run


def _hooks(user: list[Hook], show: bool) -> Hooks:
    """The user's hooks, plus progress lines where a progress would show but no terminal shows the bar."""
    lines = [ProgressLines(PROGRESS_EVERY_S)] if show and not sys.stdout.isatty() else []
    return Hooks([*user, *lines])


def _assemble(pipe: Pipeline, dist: Dist, out: Path | None, quiet: bool, hooks: Hooks) -> Run:
    """The Run over an assembled pipeline: generators, loader, augmenter, optimizer, Lookahead."""
    cfg = pipe.cfg
    pipe.model = dist.prepare_model(pipe.model, cfg.train)  # torchrun + train.sync_bn: global-batch BN
    dist.seed_ranks(cfg.train.seed)  # torchrun: one global generator per rank (dropout)
    loader_gen = torch.Generator().manual_seed(cfg.train.seed)
    aug_gen = torch.Generator(device=pipe.runtime.device).manual_seed(cfg.train.seed + 1)
    loader = pipe.train_loader(loader_gen)
    return Run(cfg, pipe, pipe.optimizer(), loader, pipe.augmenter(aug_gen), loader_gen, aug_gen, dist, hooks,
               out=out, quiet=quiet, lr_unit=pipe.lr_unit, lookahead=pipe.lookahead(config_steps(cfg, len(loader))),
               progress=Progress())


def _resume_or_init(run: Run, resumed: dict | None) -> None:
    """A resumed run's state from last.pt; a new run's data-dependent initialisation."""
    if resumed is not None:
        note = run.dist.check_resume(resumed.get("world_size", 1), run.cfg, run.model, run.out)
        run.progress = restore(run, resumed, run.out / "last.pt")
        if run.dist.is_main:  # a kill between last.pt and the epoch's metrics line: the checkpoint holds the truth
            write_metrics(run.out / "metrics.jsonl", run.progress.history)
        run._follow_plan()
        log(f"resuming {run.out} after epoch {run.progress.epoch}, step {run.progress.step}"
            + (f"; {note}" if note else ""), run.quiet)
    elif hasattr(run.model, "data_init"):  # e.g. fastnet's whitening stem, from un-augmented images
        pipe = run.pipe
        run.model.data_init(pipe.normalize(pipe.splits.train_x[:DATA_INIT_IMAGES].to(pipe.runtime.device)))


def _run(run: Run) -> RunResult:
    """Train the planned epochs, then evaluate the selected weights on the test split (rank 0)."""
    cfg, rt, sp, dist = run.cfg, run.rt, run.pipe.splits, run.dist
    n_params = count_params(run.model)
    log(f"{cfg.name}: {cfg.model.name} ({n_params:,} params) on {cfg.data.dataset} "
        f"[{len(sp.train_y)} train / {len(sp.val_y)} val / {len(sp.test_y)} test] | "
        f"{rt.hardware}, {rt.precision}", run.quiet)
    t_start = time.perf_counter() - sum(r["epoch_time_s"] for r in run.progress.history)
    run.hooks.start(run)
    with stop_on_signals() as stop_flag:
        status = train_epochs(run, stop_flag)
    total_s = time.perf_counter() - t_start
    # rank 0 evaluates the test split once and writes; every rank gets its summary and selected weights
    summary = dist.on_main(lambda: _finish(run, status, total_s, n_params))
    dist.share_weights(run.model)
    dist.barrier()  # no rank tears the group down while another still receives
    if run.board is not None:
        run.board.close(summary)
        run.board = None
    return RunResult(summary, run.progress.history, run.model, run.out)


# ---------------------------------------------------------------- the loop

def train_epochs(run: Run, stop_flag: dict) -> str:
    """Epochs until the plan is done, early stopping or a hook's stop; returns the run's status."""
    p, patience = run.progress, run.cfg.train.early_stop_patience
    try:
        while p.epoch < run.epochs and p.stop_reason is None:
            if patience and p.bad_epochs >= patience:
                break
            rec = {"epoch": p.epoch + 1, **train_one_epoch(run, stop_flag)}
            rec["lr"], rec["step"] = run.optimizer.param_groups[0]["lr"], p.step
            _validate_and_select(run, rec)
            p.epoch = rec["epoch"]
            p.history.append(rec)
            run.hooks.epoch_end(run, rec)
            run.dist.agree_plan(p)
            run._follow_plan()
            _epoch_records(run, rec)
    except NonFiniteLoss as e:
        if run.dist.is_main:  # every rank stops here together (the finite checks are agreed)
            write_stopped(run.out, f"stopped: {e}", p.epoch, p.skipped_steps)
        raise
    return _status(run)


def _epoch_records(run: Run, rec: dict) -> None:
    """last.pt, metrics.jsonl, TensorBoard and the log line of a finished epoch."""
    if run.out is not None:
        run.save_last()
        if run.dist.is_main:
            write_metrics(run.out / "metrics.jsonl", run.progress.history)
    if run.board is not None:
        run.board.epoch(rec)
    log(epoch_line(rec, run.epochs), run.quiet)
    patience = run.cfg.train.early_stop_patience
    if patience and run.progress.bad_epochs >= patience:
        log(f"early-stopped after epoch {rec['epoch']} (no val improvement for {patience} epochs)", run.quiet)


def _status(run: Run) -> str:
    p, patience = run.progress, run.cfg.train.early_stop_patience
    if p.stop_reason is not None:
        return f"stopped early: {p.stop_reason}"
    if patience and p.bad_epochs >= patience:
        return f"early-stopped after epoch {p.epoch} (no val improvement for {patience} epochs)"
    return "completed"


def train_one_epoch(run: Run, stop_flag: dict) -> dict:
    """One pass over the shuffled training split (or up to the planned end). Returns its train metrics."""
    start_batch, loader_rng = _epoch_start(run)
    check_every = run.cfg.train.finite_check_every
    bad = torch.zeros((), dtype=torch.bool, device=run.rt.device)  # a non-finite loss since the last check
    for i, (idx, xb, yb) in enumerate(run.loader.with_indices()):
        if i < start_batch:
            continue
        if not _step(run, i, idx, xb, yb, start_batch):
            handle_nonfinite(run.cfg.train, run.progress, i)
            continue
        if check_every > 1:  # no host sync per step: a flag on the device, read every N steps
            bad |= ~torch.isfinite(run.last_loss)
            if run.progress.step % check_every == 0 and run.dist.any(bad):
                handle_nonfinite(run.cfg.train, run.progress, i)
        if run.hooks.step(run):
            run.dist.agree_plan(run.progress)
            run._follow_plan()
        _maybe_checkpoint(run, i, bad, loader_rng, stop_flag)
        if run.progress.step >= run.total_steps or run.progress.stop_reason is not None:
            break
    return _epoch_end(run, bad)


def _epoch_start(run: Run) -> tuple[int, torch.Tensor]:
    """The epoch's starting batch and running sums (a mid-epoch checkpoint's on resume), its data order,
    the model's epoch hook and the progress bar."""
    p = run.progress
    st = p.in_epoch or {"loader_rng": run.loader_gen.get_state(), "batch": 0,
                        "loss_sum": 0.0, "correct": 0, "seen": 0, "time_s": 0.0}
    p.in_epoch = None
    st = run.dist.start_sums(st)
    run.loader_gen.set_state(st["loader_rng"])  # replay this epoch's permutation on resume
    dev = run.rt.device
    run.sums = EpochSums(torch.tensor(st["loss_sum"], dtype=torch.float64, device=dev),
                         torch.tensor(st["correct"], dtype=torch.int64, device=dev), st["seen"],
                         time.perf_counter() - st["time_s"])
    bs = run.loader.batch_size
    run.bar = _progress_bar(len(run.loader) * bs, st["batch"] * bs, p.epoch + 1, run.show_bar)
    if hasattr(run.model, "epoch_start"):
        run.model.epoch_start(p.epoch)
        run.step_model = run.dist.rewrap(run.model, run.step_model)
    return st["batch"], st["loader_rng"]


def _step(run: Run, i: int, idx, xb, yb, start_batch: int) -> bool:
    """Schedule, augment, shard and step one batch; add to the running sums. False: not stepped."""
    cfg, p, opt = run.cfg, run.progress, run.optimizer
    set_lr(opt, lr_at(p.step, run.total_steps, cfg.optim, len(run.loader)), run.lr_unit)
    inputs = run.augment(xb, idx, p.epoch)
    if run.board is not None and i == start_batch:  # once per epoch, no host sync
        run.board.keep_batch(inputs)
    inputs, yb = run.dist.shard(inputs), run.dist.shard(yb)  # torchrun: this rank's rows
    step_model = run.model if run.step_model is None else run.step_model  # `or` would call len() on it
    loss, logits, stepped = train_step(step_model, inputs, yb, opt, run.rt, cfg.optim,
                                       check_finite=cfg.train.finite_check_every == 1,
                                       all_finite=run.dist.all_finite)
    if not stepped:
        return False
    p.step += 1
    run.last_loss = loss
    if run.lookahead is not None:
        run.lookahead.step(p.step)
    s = run.sums
    s.loss_sum += loss.detach().double() * len(yb)
    s.correct += (logits.argmax(1) == yb).sum()
    s.seen += len(yb)
    if run.bar is not None:
        run.bar.update(len(yb))
    return True


def _maybe_checkpoint(run: Run, i: int, bad: torch.Tensor, loader_rng, stop_flag: dict) -> None:
    """A mid-epoch last.pt every train.checkpoint_every_steps, and on a signal (then Interrupted)."""
    p, every = run.progress, run.cfg.train.checkpoint_every_steps
    stop = run.dist.stop_requested(stop_flag, p.step)
    if not (stop or (every and p.step % every == 0 and run.out is not None)):
        return
    if run.cfg.train.finite_check_every > 1 and run.dist.any(bad):  # never save weights a non-finite step touched
        handle_nonfinite(run.cfg.train, p, i)
    s = run.sums
    p.in_epoch = {"loader_rng": loader_rng, "batch": i + 1, "loss_sum": s.loss_sum.item(),
                  "correct": int(s.correct.item()), "seen": s.seen, "time_s": time.perf_counter() - s.t0}
    if run.out is not None:
        run.save_last()
    p.in_epoch = None
    if stop:
        if run.bar is not None:
            run.bar.close()
        where = f"resume with: {run.dist.resume_command(run.out)}" if run.out else "no --out: not saved"
        raise Interrupted(f"{stop_flag['signal']} received: stopped after step {p.step} "
                          f"(epoch {p.epoch + 1}, batch {i + 1}); {where}")


def _epoch_end(run: Run, bad: torch.Tensor) -> dict:
    """Check the deferred finite flag, finish Lookahead at the planned end, reconcile the ranks, and
    return the epoch's train metrics."""
    p, s = run.progress, run.sums
    if run.bar is not None:
        run.bar.close()
    if run.cfg.train.finite_check_every > 1 and run.dist.any(bad):  # before the weights are validated or saved
        handle_nonfinite(run.cfg.train, p, len(run.loader) - 1)
    if run.lookahead is not None and (p.step >= run.total_steps or p.stop_reason is not None):
        run.lookahead.finish()  # the result is the slow (averaged) weights
    loss_sum, correct, seen = run.dist.end_epoch(run.model, rank_buffers(run), p.epoch + 1,
                                                  (s.loss_sum, s.correct, s.seen))
    if run.rt.device.type == "cuda":
        torch.cuda.synchronize()
    time_s = time.perf_counter() - s.t0
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


def _progress_bar(total: int, initial: int, epoch: int, show: bool):
    if not show:
        return None
    from tqdm import tqdm

    # disable=None: the bar shows on a terminal only, so logs and CI output stay one line per epoch
    return tqdm(total=total, initial=initial, desc=f"epoch {epoch}", unit="img", unit_scale=True,
                leave=False, dynamic_ncols=True, disable=None, mininterval=0.5)


# ---------------------------------------------------------------- set-up helpers

def _open_board(run: Run):
    """The run's TensorBoard writer (log.tensorboard), else None; the one place it is created."""
    if not run.cfg.log.tensorboard or not run.dist.is_main:
        return None
    from .tblog import Board

    data = run.pipe.data
    return Board(run.cfg, run.out, classes=data.classes, mean=data.spec.mean, std=data.spec.std,
                 test_y=run.pipe.splits.test_y, start_epoch=run.progress.epoch)


def _compile(run: Run) -> float:
    """torch.compile the train step's model (in train.compile_mode) and warm it up on a random batch.
    Weights and BN statistics are restored afterwards in place (CUDA graphs keep pointing at the same
    storage), and the warm-up draws from forked generators (CPU and every CUDA device), so a resumed
    compiled run continues bit for bit. Returns the warm-up seconds."""
    t0 = time.perf_counter()
    mode = run.cfg.train.compile_mode
    run.step_model = torch.compile(run.model if run.step_model is None else run.step_model,
                                   **({} if mode == "default" else {"mode": mode}))
    saved = copy.deepcopy(run.model.state_dict())
    devices = list(range(torch.cuda.device_count())) if run.rt.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        x = torch.randint(0, 256, (run.loader.batch_size // run.dist.world, 3, 32, 32), dtype=torch.uint8,
                          device=run.rt.device)  # one rank's rows under torchrun
        run.step_model.train()
        with run.rt.autocast():
            run.step_model(run.pipe.normalize(x)).float().sum().backward()
    run.model.load_state_dict(saved)
    run.model.zero_grad(set_to_none=True)
    if run.rt.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


# ---------------------------------------------------------------- selection and the end

def _validate_and_select(run: Run, rec: dict) -> None:
    """Validation metrics into `rec`; keep best-on-validation weights (last epoch when no val split)
    in memory, and in best.pt when the run has a folder."""
    splits, p = run.pipe.splits, run.progress
    if len(splits.val_y):
        # torchrun: each rank a shard, sums all-reduced (the same numbers and decisions on every rank)
        m = run.dist.evaluate(run.model, splits.val_x, splits.val_y, run.pipe.normalize, run.rt,
                              run.cfg.train.eval_batch_size, tta=run.cfg.train.tta, confusion=run.cfg.log.tensorboard)
        if run.board is not None:
            run.board.keep_confusion(m.confusion)
        rec.update(val_loss=m.loss, val_acc=m.top1, val_top5=m.top5)
        score = m.top1
    else:
        rec.update(val_loss=None, val_acc=None, val_top5=None)
        score = float(rec["epoch"])  # no validation: the latest epoch is "best"
    run.hooks.evaluate(run, rec)
    if score > p.best_val:
        p.best_val, p.best_epoch, p.bad_epochs = score, rec["epoch"], 0
        run.best_weights = copy.deepcopy(run.model.state_dict())
        if run.out is not None and run.dist.is_main:
            save_checkpoint(run.out / "best.pt", best_state(run, rec["epoch"]))
    else:
        p.bad_epochs += 1


def _select_weights(run: Run) -> dict | None:
    """Load the weights selected on validation into the model; return them as a best.pt dict."""
    if run.best_weights is not None:  # selected in this process
        run.model.load_state_dict(run.best_weights)
        return best_state(run, run.progress.best_epoch)
    best_pt = run.out / "best.pt" if run.out is not None else None
    if best_pt is not None and best_pt.is_file():  # selected before a resume
        best = load_checkpoint(best_pt, map_location=run.rt.device)
        load_weights(run.model, best, best_pt)
        return {k: v for k, v in best.items() if k != "format"}
    return None


def _finish(run: Run, status: str, total_s: float, n_params: int) -> dict:
    """Evaluate the selected weights once on the test split (fp32 unless train.eval_precision=train,
    with train.tta) and write summary + figures."""
    cfg, pipe, p = run.cfg, run.pipe, run.progress
    best = _select_weights(run)
    t_eval = time.perf_counter()
    rt_eval = eval_runtime(cfg.train, run.rt.device)
    model = run.model.to(memory_format=rt_eval.memory_format)
    if rt_eval.precision == "fp32":
        model = model.float()
    normalize = Normalizer(pipe.data.spec.mean, pipe.data.spec.std, rt_eval.device, rt_eval.memory_format)
    logits = predict(model, pipe.splits.test_x, normalize, rt_eval, cfg.train.eval_batch_size, cfg.train.tta)
    test = metrics_from_logits(logits, pipe.splits.test_y)
    run.timing["eval_s"] = time.perf_counter() - t_eval
    plain = test if not cfg.train.tta else metrics_from_logits(
        predict(model, pipe.splits.test_x, normalize, rt_eval, cfg.train.eval_batch_size), pipe.splits.test_y)
    summary = {"preset": cfg.name, "dataset": cfg.data.dataset, "model": cfg.model.name,
               "config_hash": cfg.hash(), "seed": cfg.train.seed, "status": status,
               **epoch_summary(p.history, p.best_epoch),
               "test_acc": test.top1, "test_top5": test.top5, "test_loss": test.loss, "test_n": test.n,
               "test_acc_no_tta": plain.top1, "eval_precision": rt_eval.precision, "tta": cfg.train.tta,
               "device": run.rt.device.type, **run.dist.summary(),
               "params": n_params, **timing_summary(p.history, total_s), "skipped_steps": p.skipped_steps,
               "data_verification": pipe.data.verification, "n_train": len(pipe.splits.train_y),
               "n_val": len(pipe.splits.val_y), **env_info(run.rt.hardware, run.rt.precision),
               "timing": {**run.timing, "train_s": sum(r["epoch_time_s"] for r in p.history)}}
    write_results(run.out, summary, logits.argmax(1).tolist(), best, p.history,
                  title=f"{cfg.name} ({cfg.data.dataset})")
    log(f"test: top-1 {test.top1:.2f}%  top-5 {test.top5:.2f}%  loss {test.loss:.4f}  "
        f"(best epoch {p.best_epoch}, {total_s:.0f}s)", run.quiet)
    return summary
