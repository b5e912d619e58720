"""torchrun / DistributedDataParallel on CPU processes (gloo), through the real entry point
`python -m torch.distributed.run --nproc-per-node=2 -m cifarlab train ...`, against single-process runs
of the same config (same global batch).

Stated tolerances:
- train.sync_bn=true: the 2-rank run computes what the single process computes (the same batches and
  augmentation, BatchNorm statistics over the global batch, gradients averaged); only sums run in
  another order. Every weight tensor agrees within SYNCED_REL (relative to the tensor's largest
  entry), losses within SYNCED_REL relative, accuracies within one image.
- without sync_bn, BatchNorm statistics are per rank (16 images instead of 32): a different recipe,
  not a rounding difference. It must still learn alike: val accuracy within PER_RANK_ACC points,
  final train loss within PER_RANK_LOSS relative.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import forkcli
import pytest
import torch
from torch import nn

from cifarlab.checkpoint import load_checkpoint
from cifarlab.config import make_config
from cifarlab.distributed import Dist, GlobalBatchNorm, convert_global_bn, weights_digest
from cifarlab.errors import ConfigError, RunError
from cifarlab.runlog import TIMING_KEYS
from cifarlab.engine import train

GUARD = Path(__file__).parent / "ddp_guard"  # sitecustomize: a rank other than 0 may not write the run folder
SYNCED_REL = 1e-4
PER_RANK_ACC = 15.0  # points (9 of the 60 validation images)
PER_RANK_LOSS = 0.05
TIMEOUT_S = 900  # generous: the test machine's 2 cores are shared

# tiny FastNet on the synthetic CIFAR-10 (240 train / 60 val / 100 test): 7 steps of 32 per epoch; exercises
# data_init (whitening), epoch_start (the stem bias freezes after epoch 1: DDP is rebuilt), Lookahead,
# alternating flip, mid-epoch checkpoints
SETS = ["data.val_size=60", "model.widths=8,16,16", "model.depth=1", "model.stem_bias_epochs=1",
        "optim.lookahead_every=2", "train.epochs=3", "train.batch_size=32", "train.eval_batch_size=100",
        "train.precision=fp32", "train.eval_precision=fp32", "train.checkpoint_every_steps=3"]
PRESET = "c10-fast"


def _args(*sets: str) -> list[str]:
    return ["--preset", PRESET, *(x for kv in [*SETS, *sets] for x in ("--set", kv)), "--quiet"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(data_root: Path, out: Path) -> dict:
    return {**os.environ, "CIFARLAB_DATA": str(data_root), "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([str(GUARD), os.environ.get("PYTHONPATH", "")]),
            "CIFARLAB_TEST_RANK0_ONLY": str(out)}


def _torchrun(args: list[str], log_dir: Path) -> list[str]:
    # --redirects 1: each rank's stdout goes to log_dir/<run>/attempt_0/<rank>/stdout.log
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--master-addr=127.0.0.1",
            f"--master-port={_free_port()}", f"--log-dir={log_dir}", "--redirects=1", "-m", "cifarlab",
            "train", *args]


def _launch(args: list[str], out: Path, data_root: Path, tmp: Path) -> subprocess.CompletedProcess:
    r = subprocess.run(_torchrun(args, tmp / "logs"), env=_env(data_root, out), capture_output=True, text=True,
                       timeout=TIMEOUT_S)
    assert r.returncode == 0, r.stderr[-4000:]
    return r


def _rank_stdout(log_dir: Path, rank: int) -> str:
    return "".join(p.read_text() for p in log_dir.glob(f"*/attempt_*/{rank}/stdout.log"))


def _metrics(out: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING_KEYS}
            for line in (out / "metrics.jsonl").read_text().splitlines()]


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def _weights(out: Path) -> dict:
    return load_checkpoint(out / "last.pt")["model"]


def _rel_diff(a: dict, b: dict) -> float:
    return max(((a[k].double() - b[k].double()).abs().max() / a[k].double().abs().max().clamp(min=1e-12)).item()
               for k in a if a[k].is_floating_point())


@pytest.fixture(scope="module")
def single(tmp_path_factory, synthetic_root):
    """The single-process reference (sync_bn has no effect with one process)."""
    out = tmp_path_factory.mktemp("single") / "run"
    train(make_config(PRESET, [*SETS, "train.sync_bn=true"]), out=out, data_dir=synthetic_root, quiet=True)
    return out


@pytest.fixture(scope="module")
def per_rank(tmp_path_factory, synthetic_root):
    tmp = tmp_path_factory.mktemp("per_rank")
    out = tmp / "run"
    _launch([*_args(), "--out", str(out)], out, synthetic_root, tmp)
    return out, tmp / "logs"


@pytest.fixture(scope="module")
def synced(tmp_path_factory, synthetic_root):
    tmp = tmp_path_factory.mktemp("synced")
    out = tmp / "run"
    _launch([*_args("train.sync_bn=true"), "--out", str(out)], out, synthetic_root, tmp)
    return out


def test_ranks_hold_the_same_weights_and_rank0_alone_writes(per_rank):
    out, logs = per_rank
    s = _summary(out)
    assert s["world_size"] == 2 and s["sync_bn"] is False
    digests = s["rank_weights_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert weights_digest(_weights(out)) == digests[0]  # the digests are of the weights that were saved
    # rank 1 writing anything under the run folder raises (ddp_guard), so the run succeeding shows it
    # wrote nothing; it also prints nothing
    assert "run folder:" in _rank_stdout(logs, 0)
    assert _rank_stdout(logs, 1) == ""
    assert load_checkpoint(out / "last.pt")["world_size"] == 2


def test_synced_bn_run_matches_the_single_process_run(synced, single):
    assert _rel_diff(_weights(single), _weights(synced)) < SYNCED_REL
    a, b = _metrics(single), _metrics(synced)
    assert len(a) == len(b) == 3
    for ra, rb in zip(a, b):
        for k in ("train_loss", "val_loss"):
            assert rb[k] == pytest.approx(ra[k], rel=SYNCED_REL), k
        assert abs(rb["val_acc"] - ra["val_acc"]) <= 100 / 60 + 1e-9
    sa, sb = _summary(single), _summary(synced)
    assert sb["test_loss"] == pytest.approx(sa["test_loss"], rel=SYNCED_REL)
    assert abs(sb["test_acc"] - sa["test_acc"]) <= 100 / sa["test_n"] + 1e-9
    assert sb["sync_bn"] is True and sa["world_size"] == 1


def test_per_rank_bn_run_learns_like_the_single_process_run(per_rank, single):
    a, b = _metrics(single)[-1], _metrics(per_rank[0])[-1]
    assert abs(a["val_acc"] - b["val_acc"]) <= PER_RANK_ACC
    assert b["train_loss"] == pytest.approx(a["train_loss"], rel=PER_RANK_LOSS)
    assert b["train_loss"] < _metrics(per_rank[0])[0]["train_loss"]  # it learns


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _rank_pid(agent: int, rank: int) -> int:
    for pid in _children(agent):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env:
            return pid
    raise LookupError(f"no rank {rank} under torchrun pid {agent}")


def _wait_for(pred, timeout=TIMEOUT_S):
    t0 = time.time()
    while not pred():
        if time.time() - t0 > timeout:
            raise TimeoutError
        time.sleep(0.02)


def test_sigterm_on_one_rank_stops_all_at_an_agreed_step_and_resume_is_exact(per_rank, tmp_path, synthetic_root):
    out = tmp_path / "run"
    env = _env(synthetic_root, out)
    p = subprocess.Popen(_torchrun([*_args(), "--out", str(out)], tmp_path / "logs"), env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: (out / "last.pt").is_file())  # the first mid-epoch checkpoint (step 3): training runs
    os.kill(_rank_pid(p.pid, 1), signal.SIGTERM)  # rank 0 gets no signal: the ranks agree every 10 steps
    _, err = p.communicate(timeout=TIMEOUT_S)
    assert p.returncode != 0
    state = load_checkpoint(out / "last.pt")
    assert state["progress"]["in_epoch"] is not None and state["progress"]["step"] % 10 == 0, state["progress"]
    assert f"a signal on another rank received: stopped after step {state['progress']['step']}" in err
    assert f"--nproc-per-node=2 -m cifarlab train --resume {out}" in err
    r = subprocess.run(_torchrun(["--resume", str(out), "--quiet"], tmp_path / "logs2"), env=env,
                       capture_output=True, text=True, timeout=TIMEOUT_S)
    assert r.returncode == 0, r.stderr[-4000:]
    straight = per_rank[0]
    assert _metrics(out) == _metrics(straight)
    a, b = _weights(out), _weights(straight)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _summary(out)["test_loss"] == _summary(straight)["test_loss"]


def test_resume_with_another_world_size_refused_for_per_rank_bn(per_rank, tmp_path, synthetic_root):
    out = tmp_path / "run"
    shutil.copytree(per_rank[0], out)
    with pytest.raises(RunError, match=r"trained by 2 process\(es\) with BatchNorm statistics over 16 images "
                                       r"each; 1 process\(es\) would make that 32.*train.sync_bn=true"):
        train(None, out=out, data_dir=synthetic_root, resume=True, quiet=True)


def test_single_process_run_resumes_on_2_ranks_with_synced_bn(single, tmp_path, synthetic_root):
    """World size 1 -> 2 is sound with sync_bn: the resumed run matches the uninterrupted one."""
    out = tmp_path / "run"
    env = _env(synthetic_root, out)
    # the single-process run: forked from tests/forkcli.py's server (torch already imported), one thread
    p = forkcli.start(["train", *_args("train.sync_bn=true"), "--out", str(out)], synthetic_root,
                      log=tmp_path / "single.log", threads=1)
    _wait_for(lambda: (out / "metrics.jsonl").is_file())
    p.kill()
    p.join()
    assert len(_metrics(out)) < 3, "the run finished before it was killed"
    r = subprocess.run(_torchrun(["--resume", str(out)], tmp_path / "logs"), env=env, capture_output=True,
                       text=True, timeout=TIMEOUT_S)
    assert r.returncode == 0, r.stderr[-4000:]
    assert "resuming with 2 process(es) after 1" in _rank_stdout(tmp_path / "logs", 0)
    assert _rel_diff(_weights(single), _weights(out)) < SYNCED_REL
    assert _summary(out)["world_size"] == 2


# ---------------------------------------------------------------- without processes

def test_global_batch_must_split_evenly():
    cfg = make_config(PRESET, [*SETS, "train.batch_size=33"])
    with pytest.raises(ConfigError, match=r"'train.batch_size': 33 is the global batch.*2 processes"):
        Dist(rank=1, world=2).check_batch(cfg)


def test_shards_of_the_ranks_make_up_the_global_batch():
    batch = torch.arange(32)
    parts = [Dist(rank=r, world=4).shard(batch) for r in range(4)]
    assert torch.equal(torch.cat(parts), batch) and all(len(p) == 8 for p in parts)
    assert Dist().shard(batch) is batch  # world 1: the plain path, untouched


def test_resume_rules_for_another_world_size():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    per_rank, synced = make_config(PRESET, SETS), make_config(PRESET, [*SETS, "train.sync_bn=true"])
    assert Dist(world=2).check_resume(2, per_rank, model, "run") is None
    with pytest.raises(RunError, match=r"trained by 4 process\(es\).*8 images.*2 process\(es\).*16"):
        Dist(world=2).check_resume(4, per_rank, model, "run")
    assert "after 4" in Dist(world=2).check_resume(4, synced, model, "run")
    assert "after 4" in Dist(world=2).check_resume(4, per_rank, nn.Linear(3, 4), "run")  # no BatchNorm


def test_a_gpu_index_under_torchrun_is_refused():
    cfg = make_config(PRESET, [*SETS, "train.device=cuda:1"])
    with pytest.raises(ConfigError, match="train.device.*CUDA_VISIBLE_DEVICES"):
        Dist(rank=0, world=2).train_config(cfg.train)


@pytest.fixture
def one_process_group():
    import torch.distributed as tdist

    tdist.init_process_group("gloo", store=tdist.HashStore(), rank=0, world_size=1)
    yield
    tdist.destroy_process_group()


def test_global_batchnorm_is_batchnorm_on_one_rank(one_process_group):
    torch.manual_seed(0)
    ref = nn.Sequential(nn.Conv2d(3, 6, 3), nn.BatchNorm2d(6, momentum=0.4), nn.ReLU(), nn.Flatten(),
                        nn.BatchNorm1d(6 * 6 * 6))
    with torch.no_grad():
        ref[1].weight.uniform_(0.5, 1.5), ref[1].bias.uniform_(-0.5, 0.5)
    glob = convert_global_bn(copy.deepcopy(ref))
    assert isinstance(glob[1], GlobalBatchNorm) and isinstance(glob[4], GlobalBatchNorm)
    x = torch.randn(10, 3, 8, 8)
    for model in (ref, glob):
        model.train()
        model(x).square().mean().backward()
    ya, yb = ref(x), glob(x)  # a second step: running statistics updated twice
    assert torch.allclose(ya, yb, atol=1e-5)
    for (name, a), b in zip(ref.named_parameters(), glob.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-5), name
    for (name, a), b in zip(ref.named_buffers(), glob.buffers()):
        assert torch.allclose(a.double(), b.double(), atol=1e-5), name
    ref.eval(), glob.eval()
    assert torch.allclose(ref(x), glob(x), atol=1e-5)
