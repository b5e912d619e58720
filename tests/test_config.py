from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cifarlab.config import (ConfigError, apply_overrides, from_dict, load_preset, make_config,
                             parse_override, preset_names)


def test_every_preset_loads_and_has_a_description():
    assert {"c10-mlp", "c10-cnn", "c100-cnn-base", "c100-cnn-aug"} <= set(preset_names())
    for name in preset_names():
        cfg = load_preset(name)
        assert cfg.name == name and cfg.description


@pytest.mark.parametrize("name", ["c10-mlp", "c10-cnn", "c100-cnn-base", "c100-cnn-aug"])
def test_seed_presets_state_command_expectation_and_measured_time(name):
    """The header of each seed preset names its command, its target and the time its committed runs
    took (scripts/update_readme.py writes that line from results/NAME.jsonl)."""
    from cifarlab.config import PRESET_DIR
    from cifarlab.io import read_jsonl

    head = (PRESET_DIR / f"{name}.yaml").read_text().split("\n")
    assert f"# command:  cifarlab train --preset {name}" in head
    assert any(line.startswith("# expected: ") for line in head)
    time_line = next(line for line in head if line.startswith("# time: "))
    recs = read_jsonl(Path(__file__).parent.parent / "results" / f"{name}.jsonl")
    fastest = min(r["total_time_s"] for r in recs) / 60
    assert f"{fastest:.1f}" in time_line and f"n={len(recs)}" in time_line, time_line


def test_unknown_preset_lists_choices():
    with pytest.raises(ConfigError, match="unknown preset 'nope'.*c100-cnn-aug"):
        load_preset("nope")


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match="unknown config key 'optim.lrr'.*optim.lr"):
        make_config("c10-mlp", ["optim.lrr=0.1"])
    with pytest.raises(ConfigError, match="unknown key 'trian'"):
        from_dict({"trian": {}})


def test_unknown_model_lists_models():
    with pytest.raises(ConfigError, match="model.name.*valid models: mlp, cnn"):
        make_config(None, ["model.name=vgg"])


@pytest.mark.parametrize("override,match", [
    ("optim.lr=0", "optim.lr.*> 0"), ("optim.lr=-1", "optim.lr"), ("train.batch_size=0", "batch_size"),
    ("train.epochs=0", "train.epochs.*1..10000"), ("optim.label_smoothing=1.0", "label_smoothing"),
    ("optim.name=rmsprop", "optim.name.*adam, adamw, sgd"), ("data.dataset=mnist", "cifar10, cifar100"),
])
def test_out_of_range_values_fail_with_range(override, match):
    with pytest.raises(ConfigError, match=match):
        make_config(None, [override])


@pytest.mark.parametrize("override", ["train.epochs=abc", "train.epochs=2.5", "augment.flip=1",
                                      "optim.lr=[1]"])
def test_wrong_type(override):
    with pytest.raises(ConfigError):
        make_config(None, [override])


@pytest.mark.parametrize("text", ["optim.lr", "=3", "optim..lr=1", "optim lr=1", "a.b=: :"])
def test_malformed_override(text):
    with pytest.raises(ConfigError, match="malformed override|unknown config key"):
        apply_overrides(make_config(), [text])


def test_overrides_apply_and_int_accepted_for_float():
    cfg = make_config("c100-cnn-aug", ["optim.lr=2", "train.epochs=3", "augment.flip=false"])
    assert cfg.optim.lr == 2.0 and isinstance(cfg.optim.lr, float)
    assert cfg.train.epochs == 3 and cfg.augment.flip is False
    assert cfg.augment.crop_pad == 4  # untouched


@settings(deadline=None)  # the first example imports the model registry (torch): slow on a busy machine
@given(st.floats(min_value=1e-6, max_value=10, allow_nan=False), st.integers(1, 10000))
def test_override_roundtrip_property(lr, epochs):
    cfg = make_config(None, [f"optim.lr={lr!r}", f"train.epochs={epochs}"])
    assert cfg.optim.lr == pytest.approx(lr) and cfg.train.epochs == epochs
    assert make_config(None, {"optim.lr": lr, "train.epochs": epochs}).hash() == cfg.hash()


@settings(deadline=None)
@given(st.text(max_size=30))
def test_parse_override_never_crashes_unexpectedly(text):
    try:
        key, _ = parse_override(text)
        assert key and all(p.isidentifier() for p in key.split("."))
    except ConfigError:
        pass


def test_hash_is_stable_for_committed_study_runs_and_sees_new_keys():
    """Keys added later must not change the hash of a config that leaves them at their default:
    committed study folders are named by the hash of the config stored inside them."""
    runs = sorted((Path(__file__).parent.parent / "studies").glob("*/runs/*-s*"))
    assert runs
    for run in runs:
        cfg = from_dict(yaml.safe_load((run / "config.yaml").read_text()))
        assert run.name.rsplit("-", 2)[1] == cfg.hash(), run
    base = make_config(None)
    for key, value in (("augment.interpolation", "nearest"), ("augment.jitter_order", "random"),
                       ("optim.decay_norm_bias", True)):
        assert make_config(None, {key: value}).hash() != base.hash()
