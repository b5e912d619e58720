"""The engine's hooks: re-planning the run's length, stopping it, progress lines without a terminal."""
import json
import re

import pytest
import torch

from cifarlab import engine
from cifarlab.checkpoint import load_checkpoint
from cifarlab.config import make_config
from cifarlab.engine import train
from cifarlab.hooks import Hook, ProgressLines
from cifarlab.optim import lr_at

# c10-mlp on the synthetic CIFAR-10: 200 training images, 6 steps of 32 per epoch; Lookahead on, so its
# ramp (which reads the run's total steps) is part of what must follow a new plan
SETS = ["data.val_size=100", "train.batch_size=32", "augment.crop_pad=2", "augment.flip=true",
        "optim.lookahead_every=2"]
STEPS_PER_EPOCH = 6


def _cfg(epochs: int):
    return make_config("c10-mlp", [*SETS, f"train.epochs={epochs}"])


def _history(result) -> list[dict]:
    return [{k: r[k] for k in ("epoch", "step", "lr", "train_loss", "val_acc")} for r in result.history]


class Replan(Hook):
    def __init__(self, at: str, **plan):
        self.at, self.plan = at, plan

    def on_start(self, run):
        if self.at == "start":
            run.replan(**self.plan)

    def on_epoch_end(self, run, rec):
        if self.at == f"epoch {rec['epoch']}":
            run.replan(**self.plan)


class LrLog(Hook):
    every_steps = 1

    def __init__(self):
        self.seen = []  # (step done, lr it ran with, total steps planned)

    def on_step(self, run):
        g = run.optimizer.param_groups[0]
        self.seen.append((run.progress.step, g["lr"] / run.lr_unit / g.get("lr_scale", 1.0), run.total_steps))


def test_replan_at_start_is_the_run_configured_that_long(synthetic_root):
    """A 4-epoch config re-planned to 2 epochs before its first step trains exactly the 2-epoch run:
    the lr schedule and Lookahead's ramp read the plan, not the config."""
    planned = train(_cfg(4), data_dir=synthetic_root, quiet=True, hooks=[Replan("start", epochs=2)])
    plain = train(_cfg(2), data_dir=synthetic_root, quiet=True)
    assert _history(planned) == _history(plain)
    for k, v in plain.model.state_dict().items():
        assert torch.equal(planned.model.state_dict()[k], v), k


def test_replan_at_an_epoch_end_changes_the_rest_of_the_schedule(synthetic_root, tmp_path):
    cfg, log = _cfg(4), LrLog()
    r = train(cfg, out=tmp_path / "run", data_dir=synthetic_root, quiet=True,
              hooks=[Replan("epoch 1", epochs=3), log])
    assert [h["epoch"] for h in r.history] == [1, 2, 3] and r.summary["status"] == "completed"
    for step, lr, total in log.seen:  # every step ran with the lr of the plan in force
        assert total == (4 if step <= STEPS_PER_EPOCH else 3) * STEPS_PER_EPOCH
        assert lr == pytest.approx(lr_at(step - 1, total, cfg.optim, STEPS_PER_EPOCH))
    assert load_checkpoint(tmp_path / "run" / "last.pt")["progress"]["planned_steps"] == 3 * STEPS_PER_EPOCH


def test_a_step_hook_can_end_the_run_inside_an_epoch(synthetic_root):
    class Shorten(Hook):
        every_steps = 4

        def on_step(self, run):
            run.replan(total_steps=8)

    r = train(_cfg(3), data_dir=synthetic_root, quiet=True, hooks=[Shorten()])
    assert [(h["epoch"], h["step"]) for h in r.history] == [(1, 6), (2, 8)]
    assert r.summary["test_n"] > 0


def test_a_hook_can_stop_the_run_and_the_test_split_is_still_evaluated(synthetic_root, tmp_path):
    class Budget(Hook):
        def on_epoch_end(self, run, rec):
            run.request_stop("time budget spent")

    r = train(_cfg(3), out=tmp_path / "run", data_dir=synthetic_root, quiet=True, hooks=[Budget()])
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["status"] == "stopped early: time budget spent" and s["epochs_run"] == 1
    assert r.summary["test_acc"] == s["test_acc"]
    resumed = train(None, out=tmp_path / "run", data_dir=synthetic_root, resume=True, quiet=True)
    assert resumed.summary["epochs_run"] == 1  # the stop is part of the saved state


def test_replan_needs_exactly_one_length(synthetic_root):
    with pytest.raises(ValueError, match="exactly one"):
        train(_cfg(1), data_dir=synthetic_root, quiet=True, hooks=[Replan("start", epochs=1, total_steps=3)])


def test_progress_lines_report_step_accuracy_rate_and_eta(synthetic_root):
    lines = []
    train(_cfg(2), data_dir=synthetic_root, quiet=True, hooks=[ProgressLines(every_s=0.0, print_fn=lines.append)])
    assert len(lines) == 2 * STEPS_PER_EPOCH  # an interval of 0: after every step
    pattern = (r"epoch (\d)/2 \| step (\d+)/12 \| train acc \d+\.\d\d%( \| val acc \d+\.\d\d%)? \| "
               r"\d+ img/s \| ETA \d\d:\d\d:\d\d \(\d+m\d\ds left\)")
    for i, line in enumerate(lines, 1):
        m = re.fullmatch(pattern, line)
        assert m and int(m[2]) == i, line
    assert "val acc" not in lines[0] and "val acc" in lines[-1]  # after the first validation


def test_without_a_terminal_train_prints_progress_lines(synthetic_root, capsys, monkeypatch):
    monkeypatch.setattr(engine, "PROGRESS_EVERY_S", 0.0)
    train(_cfg(1), data_dir=synthetic_root)  # pytest's captured stdout is not a terminal
    out = capsys.readouterr().out
    assert len(re.findall(r"^epoch 1/1 \| step \d+/6 .* ETA ", out, re.M)) == STEPS_PER_EPOCH
    monkeypatch.setattr(engine, "PROGRESS_EVERY_S", 3600.0)
    train(_cfg(1), data_dir=synthetic_root)
    assert "ETA" not in capsys.readouterr().out  # not before the interval has passed
