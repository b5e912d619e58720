"""Training state: where a run stands (Progress), its random generators, what last.pt holds and how a
resumed run gets it all back, so that it continues bit for bit.

Functions here take the engine's `Run` (duck-typed: cfg, model, optimizer, lookahead, loader_gen,
aug_gen, dist, pipe, rt) and never import the engine.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_weights
from .config import Config
from .errors import RunError


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
    # the run's length in optimizer steps when a hook re-planned it (Run.replan); None: the config's
    planned_steps: int | None = None
    stop_reason: str | None = None  # a hook's request to end the run (Run.request_stop)


# ---------------------------------------------------------------- randomness

def rng_state(loader_gen: torch.Generator, aug_gen: torch.Generator, all_cuda: bool = True) -> dict:
    """The process's global generators (Python, NumPy, torch CPU, CUDA) and the run's own two."""
    np_state = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
             "loader": loader_gen.get_state(), "augment": aug_gen.get_state()}
    if aug_gen.device.type == "cuda" and all_cuda:  # torchrun: each rank's own device (Dist.rank_states)
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, loader_gen: torch.Generator, aug_gen: torch.Generator,
                  all_cuda: bool = True) -> None:
    """Put back what rng_state() returned."""
    random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in state["python"]))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    loader_gen.set_state(state["loader"])
    aug_gen.set_state(state["augment"])
    if "cuda" in state and aug_gen.device.type == "cuda" and all_cuda:
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------- checkpoint contents

def rank_buffers(run) -> list[torch.Tensor]:
    """Floating-point buffers (BatchNorm running statistics) of the model and of Lookahead's slow copy:
    per rank under torchrun without train.sync_bn, averaged over the ranks at every epoch end."""
    modules = [run.model, *([run.lookahead.slow] if run.lookahead else [])]
    return [b for m in modules for b in m.buffers() if b.is_floating_point()]


def checkpoint_state(run) -> dict:
    """The resumable state (with W > 1 a collective: every rank calls it, rank 0 saves it)."""
    progress = run.progress
    rng = rng_state(run.loader_gen, run.aug_gen, all_cuda=run.dist.world == 1)
    return {"config": run.cfg.to_dict(), "num_classes": run.pipe.num_classes,
            "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
            "progress": progress.__dict__.copy(), "rng": rng, "device": run.rt.device.type,
            "world_size": run.dist.world, **run.dist.rank_states(rank_buffers(run), progress.in_epoch),
            **({"lookahead": run.lookahead.state_dict()} if run.lookahead else {})}


def best_state(run, epoch: int) -> dict:
    """best.pt's contents for the selected weights."""
    return {"config": run.cfg.to_dict(), "num_classes": run.pipe.num_classes, "model": run.best_weights,
            "epoch": epoch}


def restore(run, state: dict, path: Path) -> Progress:
    """Weights, optimizer, Lookahead, generators and per-rank state from a last.pt; returns its Progress."""
    load_weights(run.model, state, path)
    run.optimizer.load_state_dict(state["optimizer"])
    if run.lookahead is not None:
        run.lookahead.load_state_dict(state["lookahead"])
    set_rng_state(state["rng"], run.loader_gen, run.aug_gen, all_cuda=run.dist.world == 1)
    progress = Progress(**state["progress"])
    run.dist.restore_ranks(state, rank_buffers(run), run.cfg.train.seed, progress.step)  # torchrun
    return progress


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
