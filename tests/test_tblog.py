"""log.tensorboard: a short run on the synthetic data writes event files that TensorBoard reads back
(scalars and images per epoch, hyper-parameters with the final metrics); a missing package is a clear
error before any epoch."""
import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from cifarlab.cli import main
from cifarlab.config import ConfigError, make_config
from cifarlab.tblog import FINAL_METRICS, SCALARS
from cifarlab.engine import train

EPOCHS = 2
QUICK = ["data.val_size=100", f"train.epochs={EPOCHS}", "train.batch_size=64", "augment.crop_pad=2",
         "augment.flip=true", "augment.cutout=8"]


@pytest.fixture(scope="module")
def board(tmp_path_factory, synthetic_root):
    out = tmp_path_factory.mktemp("tb") / "run"
    result = train(make_config("c10-mlp", [*QUICK, "log.tensorboard=true"]), out=out, data_dir=synthetic_root,
                   quiet=True)
    acc = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc, result


def test_scalars_one_value_per_epoch_matching_metrics(board):
    acc, result = board
    for key, tag in SCALARS.items():
        events = acc.Scalars(tag)
        assert [e.step for e in events] == list(range(1, EPOCHS + 1)), tag
        for e, rec in zip(events, result.history):
            assert e.value == pytest.approx(rec[key], rel=1e-5), tag


def test_images_per_epoch_and_test_confusion(board):
    acc, _ = board
    grids = acc.Images("images/augmented_batch")
    assert [e.step for e in grids] == list(range(1, EPOCHS + 1))
    # 64 images of 32 px in an 8 x 8 grid with 2 px padding: (8 * 34 + 2) px square
    assert (grids[0].width, grids[0].height) == (8 * 34 + 2, 8 * 34 + 2)
    assert grids[0].encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n"
    assert grids[0].encoded_image_string != grids[1].encoded_image_string  # a fresh batch each epoch
    assert [e.step for e in acc.Images("confusion/val")] == list(range(1, EPOCHS + 1))
    assert len(acc.Images("confusion/test")) == 1


def test_hparams_hold_the_config_and_final_metrics(board):
    acc, result = board
    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hp = start.session_start_info.hparams
    assert hp["model.name"].string_value == "mlp"
    assert hp["train.epochs"].number_value == EPOCHS and hp["augment.flip"].number_value == 1  # torch: bool -> 1
    assert hp["config_hash"].string_value == result.summary["config_hash"]
    exp = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {m.name.tag for m in exp.metric_infos} == set(FINAL_METRICS.values())
    for key, tag in FINAL_METRICS.items():
        assert acc.Scalars(tag)[-1].value == pytest.approx(result.summary[key], rel=1e-5), tag


def test_log_section_leaves_the_config_hash_alone():
    assert make_config("c10-mlp", ["log.tensorboard=true"]).hash() == make_config("c10-mlp").hash()
    with pytest.raises(ConfigError, match="log.tensorboard.*expected bool"):
        make_config("c10-mlp", ["log.tensorboard=3"])


def test_missing_tensorboard_is_a_clear_error_before_training(tmp_path, synthetic_root, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import now raises ImportError
    out = tmp_path / "run"
    code = main(["train", "--preset", "c10-mlp", *(f"--set={kv}" for kv in QUICK), "--tensorboard",
                 "--out", str(out), "--data-dir", str(synthetic_root), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "log.tensorboard" in err and "pip install 'cifarlab[tensorboard]'" in err
    assert not (out / "metrics.jsonl").exists() and not (out / "last.pt").exists()  # no epoch ran
