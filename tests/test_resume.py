"""Exact resume, kills at random moments, atomic writes and safe loading (issue: reliability)."""
from __future__ import annotations

import errno
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import forkcli
import pytest
import torch

from cifarlab.checkpoint import CheckpointError, load_checkpoint, load_weights, save_checkpoint
from cifarlab.io import write_text
from cifarlab.models import build_model
from cifarlab.runlog import TIMING_KEYS

# 3 epochs of 8 steps, a checkpoint every 3 steps: BN, dropout and augmentation all draw random numbers
ARGS = ["--preset", "c10-cnn", "--set", "data.train_subset=512", "--set", "data.val_size=200",
        "--set", "data.test_subset=200", "--set", "train.epochs=3", "--set", "train.batch_size=64",
        "--set", "augment.crop_pad=2", "--set", "augment.flip=true", "--set", "model.dropout=0.2",
        "--set", "train.checkpoint_every_steps=3", "--quiet"]
STEPS = 3 * 8


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "cifarlab", "train", *args]


def _env(data_root):
    return {**os.environ, "CIFARLAB_DATA": str(data_root), "OMP_NUM_THREADS": "2"}


def _metrics(folder: Path) -> list[dict]:
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(l).items() if k not in TIMING_KEYS} for l in lines]


def _weights(folder: Path) -> dict:
    return load_checkpoint(folder / "last.pt")["model"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory, data_root):
    """The uninterrupted run (through `python -m cifarlab`, as a user starts it) and its wall time as a
    forked process, the scale for the kill times below."""
    out = tmp_path_factory.mktemp("straight") / "run"
    fresh = subprocess.Popen(_cli(*ARGS, "--out", str(out)), env=_env(data_root), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    forkcli.warm()  # meanwhile (both mostly import modules, one core each)
    assert fresh.wait() == 0, fresh.stderr.read().decode()[-4000:]
    t0 = time.perf_counter()  # the scale for the kill times: on a machine where nothing else runs
    assert forkcli.run(["train", *ARGS, "--out", str(out / "again")], data_root) == 0
    return out, time.perf_counter() - t0


def _wait_for(pred, timeout=120):
    t0 = time.time()
    while not pred():
        if time.time() - t0 > timeout:
            raise TimeoutError
        time.sleep(0.02)


def _assert_same_run(a: Path, b: Path):
    assert _metrics(a) == _metrics(b)
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    sa, sb = (json.loads((f / "summary.json").read_text()) for f in (a, b))
    assert sa["test_acc"] == sb["test_acc"] and sa["test_loss"] == sb["test_loss"]


def test_sigkill_in_epoch_2_then_resume_is_identical(straight, tmp_path, data_root):
    out = tmp_path / "run"
    p = forkcli.start(["train", *ARGS, "--out", str(out)], data_root)
    _wait_for(lambda: (out / "metrics.jsonl").is_file())
    time.sleep(0.3)
    p.kill()
    p.join()
    assert len(_metrics(out)) < 3, "the run finished before it was killed"
    assert forkcli.run(["train", "--resume", str(out), "--quiet"], data_root) == 0
    _assert_same_run(straight[0], out)
    _assert_same_run(straight[0], straight[0] / "again")  # a forked run is the same run as a fresh one


def test_kill_between_the_epoch_checkpoint_and_its_metrics_line_resumes_exactly(straight, tmp_path, data_root):
    """last.pt of the final epoch is written, the process dies before metrics.jsonl gets that epoch's line
    (and before the test evaluation): the resume has no step left to train and must still write it."""
    out = tmp_path / "run"
    shutil.copytree(straight[0], out, ignore=shutil.ignore_patterns("again"))
    lines = (out / "metrics.jsonl").read_text().splitlines(keepends=True)
    (out / "metrics.jsonl").write_text("".join(lines[:-1]))
    (out / "summary.json").unlink()
    assert forkcli.run(["train", "--resume", str(out), "--quiet"], data_root) == 0
    _assert_same_run(straight[0], out)


def test_sigterm_checkpoints_says_how_to_resume(straight, tmp_path, data_root):
    out, err = tmp_path / "run", tmp_path / "stderr.txt"
    p = forkcli.start(["train", *ARGS, "--out", str(out)], data_root, log=err)
    _wait_for(lambda: (out / "metrics.jsonl").is_file())
    p.terminate()
    p.join(120)
    assert p.exitcode == 130, err.read_text()
    assert f"cifarlab train --resume {out}" in err.read_text()
    assert load_checkpoint(out / "last.pt")["progress"]["step"] > 0
    assert forkcli.run(["train", "--resume", str(out), "--quiet"], data_root) == 0
    _assert_same_run(straight[0], out)


def test_twenty_random_kills_leave_a_valid_folder_and_resume_exactly(straight, tmp_path, data_root):
    """SIGKILL at 20 random moments of a run's life (start-up, steps, checkpoint writes, validation, the
    test evaluation), each drawn as a fraction of what is left of the straight run's wall time on this
    machine."""
    wall, err, out = straight[1], tmp_path / "stderr.txt", tmp_path / "run"
    rnd, kills, killed_with_checkpoint = random.Random(0), 0, 0
    while kills < 20:
        resume = (out / "last.pt").is_file()
        args = ["train", "--resume", str(out), "--quiet"] if resume else ["train", *ARGS, "--out", str(out),
                                                                           "--overwrite"]
        left = 1 - load_checkpoint(out / "last.pt")["progress"]["step"] / STEPS if resume else 1
        p = forkcli.start(args, data_root, log=err)
        p.join(rnd.uniform(0.05, 1.0) * wall * max(left, 0.2))
        if p.exitcode is not None:  # finished: start over so that every kill lands in a live run
            assert p.exitcode == 0, (args, err.read_text())
            shutil.rmtree(out)
            continue
        p.kill()
        p.join()
        kills += 1
        if (out / "last.pt").is_file():
            killed_with_checkpoint += 1
            state = load_checkpoint(out / "last.pt")
            assert state["progress"]["epoch"] <= 3
        if (out / "metrics.jsonl").is_file():
            _metrics(out)  # every line parses
    assert killed_with_checkpoint >= 10, "most kills should land after a checkpoint, in the training"
    last = ["--resume", str(out), "--quiet"] if (out / "last.pt").is_file() else [*ARGS, "--out", str(out),
                                                                                    "--overwrite"]
    assert forkcli.run(["train", *last], data_root, log=err) == 0, err.read_text()
    _assert_same_run(straight[0], out)


def test_full_disk_during_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"model": {"w": torch.ones(3)}})

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr("cifarlab.io.os.fsync", no_space)
    with pytest.raises(OSError, match=r"could not write .*last.pt.*No space left.*previous version.*intact"):
        save_checkpoint(path, {"model": {"w": torch.zeros(3)}})
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "pwned"))


def test_malicious_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "marker"
    bad = tmp_path / "evil.pt"
    torch.save({"format": "cifarlab-checkpoint-v1", "model": {}, "x": _Evil(str(marker))}, bad)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_checkpoint(bad)
    assert not marker.exists()


def test_wrong_architecture_or_class_count_names_both(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"config": {"model": {"name": "cnn"}}, "num_classes": 10,
                           "model": build_model("cnn", 10).state_dict()})
    state = load_checkpoint(path)
    with pytest.raises(CheckpointError, match=r"cnn with 10 classes.*cnn with 100 classes"):
        load_weights(build_model("cnn", 100), state, path, target="cnn with 100 classes")
    with pytest.raises(CheckpointError, match=r"cnn with 10 classes.*mlp with 10 classes"):
        load_weights(build_model("mlp", 10), state, path, target="mlp with 10 classes")


def test_truncated_checkpoint_clear_error(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"model": build_model("mlp", 10).state_dict()})
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="c.pt: not a readable checkpoint"):
        load_checkpoint(path)


def test_atomic_text_write_replaces_whole_file(tmp_path):
    f = tmp_path / "a.txt"
    write_text(f, "one")
    write_text(f, "two")
    assert f.read_text() == "two" and len(list(tmp_path.iterdir())) == 1


def test_a_run_killed_while_writing_its_first_file_can_start_again(tmp_path):
    """A kill between the temporary write of config.yaml and its rename leaves only the temporary file:
    the folder counts as empty (a user's other files still make it refused)."""
    from cifarlab.runfolder import prepare_out_dir

    out = tmp_path / "run"
    out.mkdir()
    (out / ".config.yaml.1234.abcd1234.tmp").write_text("half")
    prepare_out_dir(out, resume=False, overwrite=False)
    assert list(out.iterdir()) == []
    (out / ".config.yaml.1234.abcd1234.tmp").write_text("half")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(Exception, match="exists and is not empty"):
        prepare_out_dir(out, resume=False, overwrite=False)
    assert (out / "notes.txt").read_text() == "mine"


def test_overwrite_killed_half_way_can_be_overwritten_again(tmp_path, monkeypatch):
    """A kill while --overwrite empties the old folder must not leave a folder --overwrite refuses."""
    from cifarlab.runfolder import prepare_out_dir

    out = tmp_path / "run"
    (out / "figures").mkdir(parents=True)
    for name in ("config.yaml", "best.pt", "last.pt", "metrics.jsonl", "figures/a.png"):
        (out / name).write_text("x")
    real_unlink, calls = Path.unlink, []

    def dying_unlink(self, *a, **k):
        calls.append(self.name)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")  # stands in for SIGKILL in the middle of the deletion
        return real_unlink(self, *a, **k)

    monkeypatch.setattr(Path, "unlink", dying_unlink)
    with pytest.raises(KeyboardInterrupt):
        prepare_out_dir(out, resume=False, overwrite=True)
    monkeypatch.setattr(Path, "unlink", real_unlink)
    assert (out / "config.yaml").is_file() and len(list(out.iterdir())) > 1
    prepare_out_dir(out, resume=False, overwrite=True)
    assert out.is_dir() and not any(out.iterdir())
