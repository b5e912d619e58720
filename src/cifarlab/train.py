"""The training loop: train(cfg) -> RunResult.

Reads as a story: prepare the run folder, load and split the data, build model and optimizer, (resume),
then per epoch train -> validate -> select on validation -> checkpoint; finally evaluate the selected
weights once on the test split and write the summary.
"""
from __future__ import annotations

import random
import shutil
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import data as data_mod
from .augment import Augmenter, Normalizer
from .checkpoint import load_checkpoint, load_weights, save_checkpoint, write_json, write_text
from .config import Config, OptimConfig, from_dict, to_yaml
from .evaluate import evaluate, metrics_from_logits, predict
from .models import build_model, count_params
from .optim import build_optimizer, lr_at, set_lr
from .runlog import env_info, epoch_line, log, write_metrics
from .runtime import Runtime, fp32_runtime, pick_device


class RunError(RuntimeError):
    """A run that cannot start or continue; the message says why and what to do."""


class NonFiniteLoss(RunError):
    pass


class Interrupted(RunError):
    pass


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

def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state(loader_gen: torch.Generator, aug_gen: torch.Generator) -> dict:
    np_state = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
             "loader": loader_gen.get_state(), "augment": aug_gen.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, loader_gen: torch.Generator, aug_gen: torch.Generator) -> None:
    random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in state["python"]))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    loader_gen.set_state(state["loader"])
    aug_gen.set_state(state["augment"])
    if "cuda" in state and torch.cuda.is_available():
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

    def checkpoint_state(self, progress: Progress) -> dict:
        return {"config": self.cfg.to_dict(), "num_classes": _num_classes(self.cfg),
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "progress": progress.__dict__.copy(), "rng": rng_state(self.loader_gen, self.aug_gen)}


def _num_classes(cfg: Config) -> int:
    return data_mod.SPECS[cfg.data.dataset].num_classes


def train_one_epoch(eng: Engine, progress: Progress, out: Path | None, stop_flag: dict,
                    show_bar: bool) -> dict:
    """One pass over the shuffled training split. Returns the epoch's train metrics."""
    cfg, model, opt = eng.cfg, eng.model, eng.optimizer
    st = progress.in_epoch or {"loader_rng": eng.loader_gen.get_state(), "batch": 0,
                               "loss_sum": 0.0, "correct": 0, "seen": 0, "time_s": 0.0}
    progress.in_epoch = None
    eng.loader_gen.set_state(st["loader_rng"])  # replay this epoch's permutation on resume
    loss_sum = torch.tensor(st["loss_sum"], dtype=torch.float64, device=eng.rt.device)
    correct = torch.tensor(st["correct"], dtype=torch.int64, device=eng.rt.device)
    seen, t0, start_batch = st["seen"], time.perf_counter() - st["time_s"], st["batch"]
    bs = eng.loader.batch_size
    bar = _progress_bar(len(eng.loader) * bs, start_batch * bs, progress.epoch + 1, show_bar)
    for i, (xb, yb) in enumerate(eng.loader):
        if i < start_batch:
            continue
        set_lr(opt, lr_at(progress.step, eng.total_steps, cfg.optim, len(eng.loader)))
        loss, logits, stepped = train_step(model, eng.augment(xb), yb, opt, eng.rt, cfg.optim)
        if not stepped:
            _handle_nonfinite(cfg, progress, i)
            continue
        progress.step += 1
        loss_sum += loss.detach().double() * len(yb)
        correct += (logits.argmax(1) == yb).sum()
        seen += len(yb)
        if bar is not None:
            bar.update(len(yb))
        every = cfg.train.checkpoint_every_steps
        if stop_flag["signal"] or (every and progress.step % every == 0 and out is not None):
            progress.in_epoch = {"loader_rng": st["loader_rng"], "batch": i + 1,
                                 "loss_sum": loss_sum.item(), "correct": int(correct.item()),
                                 "seen": seen, "time_s": time.perf_counter() - t0}
            if out is not None:
                save_checkpoint(out / "last.pt", eng.checkpoint_state(progress))
            progress.in_epoch = None
            if stop_flag["signal"]:
                if bar is not None:
                    bar.close()
                where = f"resume with: cifarlab train --resume {out}" if out else "no --out: not saved"
                raise Interrupted(f"{stop_flag['signal']} received: stopped after step {progress.step} "
                                  f"(epoch {progress.epoch + 1}, batch {i + 1}); {where}")
    if bar is not None:
        bar.close()
    if eng.rt.device.type == "cuda":
        torch.cuda.synchronize()
    time_s = time.perf_counter() - t0
    return {"train_loss": loss_sum.item() / max(seen, 1), "train_acc": correct.item() / max(seen, 1) * 100,
            "epoch_time_s": time_s, "images_per_s": seen / max(time_s, 1e-9)}


def train_step(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, optimizer: torch.optim.Optimizer,
               rt: Runtime, cfg: OptimConfig) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """One optimizer step. Returns (loss, logits, stepped); a non-finite loss is not stepped."""
    model.train()  # cheap, and makes "forgot model.train() after validation" impossible
    with rt.autocast():
        logits = model(inputs)
    loss = F.cross_entropy(logits.float(), labels, label_smoothing=cfg.label_smoothing)
    if not torch.isfinite(loss):
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
          overwrite: bool = False, quiet: bool = False, progress_bar: bool | None = None) -> RunResult:
    """Train per `cfg`; write the run folder `out` (if given); return the summary and history."""
    out = Path(out) if out is not None else None
    if resume and out is None:
        raise RunError("resume needs the run folder (out=...)")
    prepare_out_dir(out, resume, overwrite)
    # CPU first: RNG states must stay CPU tensors; weights and optimizer state move on load
    resumed = load_checkpoint(out / "last.pt", map_location="cpu") if resume else None
    if resumed is not None:
        cfg = from_dict(resumed["config"], source=str(out / "last.pt"))
    show_bar = (not quiet) if progress_bar is None else progress_bar
    rt = pick_device(cfg.train)
    ds = data_mod.load(cfg.data.dataset, data_dir, cfg.data.download)
    if not ds.verification.startswith("genuine"):
        log(f"warning: {cfg.data.dataset} data is {ds.verification}", quiet)
    splits = data_mod.make_splits(ds, cfg.data.val_size, cfg.data.split_seed, cfg.data.train_subset)
    if out is not None:
        write_text(out / "config.yaml", to_yaml(cfg))

    seed_everything(cfg.train.seed)
    model = build_model(cfg.model.name, ds.num_classes, cfg.model.width, cfg.model.dropout)
    model = model.to(rt.device, memory_format=rt.memory_format)
    loader_gen = torch.Generator().manual_seed(cfg.train.seed)
    aug_gen = torch.Generator(device=rt.device).manual_seed(cfg.train.seed + 1)
    normalize = Normalizer(ds.spec.mean, ds.spec.std, rt.device, rt.memory_format)
    loader = data_mod.DeviceLoader(splits.train_x, splits.train_y, cfg.train.batch_size, rt.device,
                                   shuffle=True, generator=loader_gen)
    eng = Engine(cfg, rt, model, build_optimizer(model, cfg.optim), loader,
                 Augmenter(cfg.augment, normalize, aug_gen), loader_gen, aug_gen,
                 total_steps=cfg.train.epochs * len(loader))
    progress = Progress()
    if resumed is not None:
        progress = _restore(eng, resumed, out / "last.pt")
        log(f"resuming {out} after epoch {progress.epoch}, step {progress.step}", quiet)
    n_params = count_params(model)
    log(f"{cfg.name}: {cfg.model.name} ({n_params:,} params) on {cfg.data.dataset} "
        f"[{len(splits.train_y)} train / {len(splits.val_y)} val / {len(splits.test_y)} test] | "
        f"{rt.hardware}, {rt.precision}", quiet)

    status = "completed"
    t_start = time.perf_counter() - sum(r["epoch_time_s"] for r in progress.history)
    with stop_on_signals() as stop_flag:
        try:
            for epoch in range(progress.epoch + 1, cfg.train.epochs + 1):
                rec = {"epoch": epoch, **train_one_epoch(eng, progress, out, stop_flag, show_bar)}
                rec["lr"] = eng.optimizer.param_groups[0]["lr"]
                rec["step"] = progress.step
                _validate_and_select(eng, progress, splits, normalize, rec, out)
                progress.epoch = epoch
                progress.history.append(rec)
                if out is not None:
                    save_checkpoint(out / "last.pt", eng.checkpoint_state(progress))
                    write_metrics(out / "metrics.jsonl", progress.history)
                log(epoch_line(rec, cfg.train.epochs), quiet)
                patience = cfg.train.early_stop_patience
                if patience and progress.bad_epochs >= patience:
                    status = f"early-stopped after epoch {epoch} (no val improvement for {patience} epochs)"
                    log(status, quiet)
                    break
        except NonFiniteLoss as e:
            status = f"stopped: {e}"
            if out is not None:
                write_json(out / "summary.json", {"status": status, "epochs_run": progress.epoch,
                                                  "skipped_steps": progress.skipped_steps})
            raise
    total_s = time.perf_counter() - t_start
    summary = _finish(eng, progress, ds, splits, normalize, out, status, total_s, n_params, quiet)
    return RunResult(summary, progress.history, model, out)


def _validate_and_select(eng: Engine, progress: Progress, splits, normalize, rec: dict,
                         out: Path | None) -> None:
    """Validation metrics into `rec`; keep best-on-validation weights (last epoch when no val split)."""
    if len(splits.val_y):
        m = evaluate(eng.model, splits.val_x, splits.val_y, normalize, eng.rt, eng.cfg.train.eval_batch_size)
        rec.update(val_loss=m.loss, val_acc=m.top1, val_top5=m.top5)
        score = m.top1
    else:
        rec.update(val_loss=None, val_acc=None, val_top5=None)
        score = float(rec["epoch"])  # no validation: the latest epoch is "best"
    if score > progress.best_val:
        progress.best_val, progress.best_epoch, progress.bad_epochs = score, rec["epoch"], 0
        if out is not None:
            save_checkpoint(out / "best.pt", {"config": eng.cfg.to_dict(),
                                              "num_classes": _num_classes(eng.cfg),
                                              "model": eng.model.state_dict(), "epoch": rec["epoch"]})
    else:
        progress.bad_epochs += 1


def _restore(eng: Engine, state: dict, path: Path) -> Progress:
    load_weights(eng.model, state, path)
    eng.optimizer.load_state_dict(state["optimizer"])
    set_rng_state(state["rng"], eng.loader_gen, eng.aug_gen)
    return Progress(**state["progress"])


def _finish(eng: Engine, progress: Progress, ds, splits, normalize, out, status, total_s, n_params,
            quiet) -> dict:
    """Evaluate the selected weights once on the test split (fp32) and write summary + figures."""
    cfg = eng.cfg
    if out is not None and (out / "best.pt").is_file():
        best = load_checkpoint(out / "best.pt", map_location=eng.rt.device)
        load_weights(eng.model, best, out / "best.pt")
    model32 = eng.model.float().to(memory_format=torch.contiguous_format)
    rt32 = fp32_runtime(eng.rt.device)
    logits = predict(model32, splits.test_x, Normalizer(ds.spec.mean, ds.spec.std, rt32.device), rt32,
                     cfg.train.eval_batch_size)
    test = metrics_from_logits(logits, splits.test_y)
    last = progress.history[-1] if progress.history else {}
    best_rec = next((r for r in progress.history if r["epoch"] == progress.best_epoch), last)
    seen = sum(r["images_per_s"] * r["epoch_time_s"] for r in progress.history)
    train_time = sum(r["epoch_time_s"] for r in progress.history)
    summary = {
        "preset": cfg.name, "dataset": cfg.data.dataset, "model": cfg.model.name,
        "config_hash": cfg.hash(), "seed": cfg.train.seed, "status": status,
        "epochs_run": progress.epoch, "best_epoch": progress.best_epoch,
        "train_loss": last.get("train_loss"), "train_acc": last.get("train_acc"),
        "best_train_acc": best_rec.get("train_acc"),
        "val_acc": best_rec.get("val_acc"), "val_loss": best_rec.get("val_loss"),
        "test_acc": test.top1, "test_top5": test.top5, "test_loss": test.loss, "test_n": test.n,
        "params": n_params, "total_time_s": total_s, "train_time_s": train_time,
        "images_per_s": seen / max(train_time, 1e-9), "skipped_steps": progress.skipped_steps,
        "data_verification": ds.verification, "n_train": len(splits.train_y), "n_val": len(splits.val_y),
        **env_info(eng.rt.hardware, eng.rt.precision),
    }
    if out is not None:
        write_json(out / "summary.json", summary)
        write_json(out / "test_predictions.json", {"pred": logits.argmax(1).tolist()})
        if (out / "best.pt").is_file():  # the published form: weights + config + summary, no optimizer
            best["summary"] = summary
            save_checkpoint(out / "best.pt", {k: v for k, v in best.items() if k != "format"})
        from .report import plot_curves

        plot_curves(progress.history, out / "curves.png", title=f"{cfg.name} ({cfg.data.dataset})")
    log(f"test: top-1 {test.top1:.2f}%  top-5 {test.top5:.2f}%  loss {test.loss:.4f}  "
        f"(best epoch {progress.best_epoch}, {total_s:.0f}s)", quiet)
    return summary
