"""Config hashes outlive new keys: the schema versions in cifarlab.schema."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cifarlab import schema
from cifarlab.config import Config, flatten, make_config

ROOT = Path(__file__).resolve().parents[1]


def _hashed_keys() -> set[str]:
    return {k for k in flatten(Config().to_dict()) if k not in ("name", "description") and not k.startswith("log.")}


def test_every_config_key_belongs_to_exactly_one_schema_version():
    added = [k for v in schema.VERSIONS for k in v.added]
    assert len(added) == len(set(added)), "a key is introduced by two versions"
    assert not schema.FIRST_KEYS & set(added)
    missing = _hashed_keys() - schema.FIRST_KEYS - set(added)
    assert not missing, f"new config keys need a schema.Version with their defaults: {sorted(missing)}"
    assert not (schema.FIRST_KEYS | set(added)) - _hashed_keys(), "a removed key is still listed"
    assert [v.number for v in schema.VERSIONS] == list(range(2, schema.CURRENT + 1))


def _tree() -> dict:
    tree = Config().to_dict()
    for key in ("name", "description", "log"):
        tree.pop(key)
    return tree


def test_a_config_written_before_a_key_existed_hashes_as_it_did():
    tree = _tree()
    full = schema.config_hash(tree)
    for version in reversed(schema.VERSIONS):  # strip the keys version by version, newest first
        for key in version.added:
            section, _, name = key.partition(".")
            tree[section].pop(name)
        assert schema.config_hash(tree) == full, version.number


@pytest.mark.parametrize("key", sorted(schema.ADDED))
def test_a_later_key_off_its_default_changes_the_hash(key):
    tree = _tree()
    section, _, name = key.partition(".")
    base = schema.config_hash(tree)
    default = tree[section][name]
    tree[section][name] = (not default) if isinstance(default, bool) else (
        default + 1 if isinstance(default, (int, float)) else f"{default}-other")
    assert schema.config_hash(tree) != base


def test_mlp_dropout_of_the_first_version():
    zero, legacy = (make_config("c10-mlp", {"model.dropout": p}) for p in (0.0, 0.3))
    tree = {"model": {"name": "mlp", "dropout": 0.3}}
    assert schema.canonical(tree)["model"] == {"name": "mlp", "dropout": 0.0}
    assert schema.canonical({"model": {"name": "mlp", "dropout": 0.0}})["model"]["dropout_zero"] is True
    assert zero.hash() != legacy.hash()


def _published():
    for path in sorted((ROOT / "results").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            r = json.loads(line)
            yield pytest.param(r["preset"], r["seed"], r["config_hash"], id=f"{path.stem}-s{r['seed']}")
    for path in sorted((ROOT / "checkpoints").glob("*.json")):
        r = json.loads(path.read_text())
        yield pytest.param(r["preset"], r["seed"], r["config_hash"], id=f"checkpoint-{path.stem}")


@pytest.mark.parametrize("preset,seed,recorded", list(_published()))
def test_published_records_keep_their_hash(preset, seed, recorded):
    assert make_config(preset, {"train.seed": seed}).hash() == recorded
