"""Library calls leave the calling process as they found it: its random generators, matplotlib backend
and umask; an interrupted train() closes what it opened; concurrent appends lose no record; the CLI
shows a bug's traceback instead of calling it a user error."""
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cifarlab import engine, evaluate_checkpoint, predict_images
from cifarlab.cli import main
from cifarlab.config import make_config
from cifarlab.engine import train
from cifarlab.hooks import Hook

SRC = str(Path(__file__).resolve().parents[1] / "src")
QUICK = ["data.val_size=100", "train.epochs=1", "train.batch_size=32"]


def _states():
    np_state = np.random.get_state()
    return random.getstate(), (np_state[0], np_state[1].tolist(), *np_state[2:]), torch.get_rng_state().tolist()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, synthetic_root):
    out = tmp_path_factory.mktemp("fx") / "run"
    train(make_config("c10-mlp", QUICK), out=out, data_dir=synthetic_root, quiet=True)
    return out


def test_evaluate_checkpoint_keeps_the_callers_generators(run_dir, synthetic_root):
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    before = _states()
    evaluate_checkpoint(run_dir / "best.pt", data_dir=synthetic_root)
    assert _states() == before


def test_predict_images_keeps_the_callers_generators(run_dir, tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "black.png")
    torch.manual_seed(7)
    before = _states()
    assert predict_images(run_dir / "best.pt", tmp_path)[0].error is None
    assert _states() == before


def _python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": SRC, **env})


def test_figures_leave_the_matplotlib_backend_alone(tmp_path):
    code = ("import matplotlib\nmatplotlib.use('svg')\nfrom cifarlab.viz import plot_curves\n"
            "h = [{'epoch': 1, 'train_loss': 1.0, 'train_acc': 50.0, 'val_loss': 1.1, 'val_acc': 45.0}]\n"
            f"plot_curves(h, {str(tmp_path / 'c.png')!r})\nprint(matplotlib.get_backend())")
    r = _python(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "svg" and (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_importing_io_leaves_the_umask_alone_and_files_follow_it(tmp_path):
    code = ("import os\ncalls = []\nreal = os.umask\nos.umask = lambda m: calls.append(m) or real(m)\n"
            "import cifarlab.io as io\nos.umask = real\nassert not calls, calls\nos.umask(0o027)\n"
            f"io.write_text({str(tmp_path / 'f.txt')!r}, 'x')\n"
            f"print(oct(os.stat({str(tmp_path / 'f.txt')!r}).st_mode & 0o777))")
    r = _python(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0o640"


def test_two_processes_appending_at_once_lose_no_record(tmp_path):
    path = tmp_path / "records.jsonl"
    code = ("import sys\nfrom cifarlab.io import append_jsonl\n"
            f"for i in range(500):\n    append_jsonl({str(path)!r}, {{'writer': sys.argv[1], 'i': i, 'pad': 'x' * 200}})")
    procs = [subprocess.Popen([sys.executable, "-c", code, w], env={**os.environ, "PYTHONPATH": SRC})
             for w in ("a", "b")]
    assert all(p.wait(timeout=300) == 0 for p in procs)
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    for w in ("a", "b"):
        assert [r["i"] for r in recs if r["writer"] == w] == list(range(500))


class Interrupt(Hook):
    every_steps = 2

    def on_start(self, run):
        self.board = run.board

    def on_step(self, run):
        raise KeyboardInterrupt


def test_an_interrupted_run_closes_its_writer_and_tears_down(synthetic_root, tmp_path, monkeypatch):
    torn = []
    real = engine.distributed.teardown
    monkeypatch.setattr(engine.distributed, "teardown", lambda d: torn.append(d) or real(d))
    hook = Interrupt()
    with pytest.raises(KeyboardInterrupt):
        train(make_config("c10-mlp", [*QUICK, "log.tensorboard=true"]), out=tmp_path / "run",
              data_dir=synthetic_root, quiet=True, hooks=[hook])
    assert hook.board.writer.all_writers is None  # SummaryWriter.close() ran: its thread is gone
    assert len(torn) == 1


def test_a_compiled_run_resumes_bit_for_bit(synthetic_root, tmp_path, monkeypatch):
    """With dropout (the global generator) and the warm-up on forked generators, a compiled run stopped
    mid-epoch and resumed ends with the uninterrupted run's weights (dynamo's eager backend: no compiler)."""
    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda m, **kw: real(m, backend="eager"))
    cfg = make_config("c10-mlp", ["data.val_size=100", "train.epochs=2", "train.batch_size=32", "model.dropout=0.3",
                                  "train.compile=true", "train.checkpoint_every_steps=4"])

    class StopAt(Hook):
        every_steps = 5

        def on_step(self, run):
            raise KeyboardInterrupt  # after step 5: last.pt is the step-4 checkpoint

    straight = train(cfg, data_dir=synthetic_root, quiet=True)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, out=tmp_path / "run", data_dir=synthetic_root, quiet=True, hooks=[StopAt()])
    resumed = train(None, out=tmp_path / "run", data_dir=synthetic_root, resume=True, quiet=True)
    for k, v in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[k], v), k


def test_the_cli_shows_a_bugs_traceback_but_a_config_error_cleanly(monkeypatch, capsys):
    assert main(["train", "--preset", "c10-mlp", "--set", "train.epochs=-1"]) == 2
    assert capsys.readouterr().err.startswith("error: ")

    def bug(*a, **k):
        raise ValueError("a bug, not a user error")
    monkeypatch.setattr(engine, "train", bug)
    with pytest.raises(ValueError, match="a bug"):
        main(["train", "--preset", "c10-mlp", "--out", "unused"])
