"""`cifarlab ablate STUDY --shard I/N`: shards split a study's runs disjointly, only a complete study gets
its report, and `cifarlab report` assembles the same table as an unsharded run."""
import pytest

from cifarlab.cli import main
from cifarlab.config import ConfigError
from cifarlab.study.report import report_study
from cifarlab.study.run import parse_shard, run_study, shard_of

STUDY = """
name: sharded
description: three quick experiments split over two shards
seeds: 1
x-small: &small {data.val_size: 100, train.epochs: 1, train.batch_size: 64}
experiments:
  - {id: A, description: MLP baseline, preset: c10-mlp, set: *small}
  - {id: B, description: + flip, preset: c10-mlp, set: {<<: *small, augment.flip: true}}
  - {id: C, description: + crop, preset: c10-mlp, set: {<<: *small, augment.crop_pad: 2}}
"""
# columns that differ between two trainings of the same configs (wall clock), not between results
CLOCK_COLUMNS = ("finished", "training time")


def _runs(folder):
    return sorted(p.name for p in (folder / "runs").iterdir())


def _table_without_clock(table_md: str) -> list[list[str]]:
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table_md.splitlines()]
    keep = [i for i, c in enumerate(rows[0]) if c not in CLOCK_COLUMNS]
    return [[row[i] for i in keep] for row in rows if not set(row[0]) <= {"-"}]


@pytest.fixture(scope="module")
def studies(tmp_path_factory, synthetic_root):
    d = tmp_path_factory.mktemp("shard")
    (d / "sharded.yaml").write_text(STUDY)
    whole = run_study(d / "sharded.yaml", out=d / "whole", data_dir=synthetic_root, quiet=True)
    split = d / "split"
    run_study(d / "sharded.yaml", out=split, data_dir=synthetic_root, quiet=True, shard=(1, 2))
    after_first = _runs(split), (split / "study.md").exists()
    run_study(d / "sharded.yaml", out=split, data_dir=synthetic_root, quiet=True, shard=(2, 2))
    return whole, split, after_first


def test_parse_shard_accepts_i_of_n_and_names_the_fix():
    assert parse_shard("1/2") == (1, 2) and parse_shard(" 3 / 3 ") == (3, 3)
    for bad in ("3/2", "0/2", "0/0", "1/0", "x", "1-2", "", "-1/2", "1/2/3"):
        with pytest.raises(ConfigError, match=r"--shard .*1 <= I <= N.*numbered from 1"):
            parse_shard(bad)


def test_shards_are_disjoint_and_cover_every_run_once():
    runs = [(e, s) for e in "ABCDE" for s in range(3)]
    for n in (1, 2, 3, 4, 20):
        parts = [shard_of(runs, (i, n)) for i in range(1, n + 1)]
        assert sorted(r for p in parts for r in p) == sorted(runs), n
        assert max(map(len, parts)) - min(map(len, parts)) <= 1  # balanced
    assert shard_of(runs, None) == runs


def test_sharded_study_trains_each_run_once_and_reports_like_unsharded(studies):
    whole, split, (runs_after_first, report_after_first) = studies
    assert [r.split("-")[0] for r in runs_after_first] == ["A", "C"]  # run k -> shard k mod 2 + 1
    assert not report_after_first  # the first shard leaves the report to the one that completes the study
    assert _runs(split) == _runs(whole)  # same config hashes: the same run folders, each trained once
    assert (split / "study.md").is_file()  # written by the shard that finished the study
    assert _table_without_clock(report_study(split, table_only=True)) == \
        _table_without_clock(report_study(whole, table_only=True))


def test_report_names_missing_runs_and_cli_rejects_bad_shard(studies, tmp_path, capsys):
    _, split, _ = studies
    partial = tmp_path / "partial"
    (partial / "runs").mkdir(parents=True)
    (partial / "study.yaml").write_text((split / "study.yaml").read_text())
    b_run = next(p for p in (split / "runs").iterdir() if p.name.startswith("B-"))
    (partial / "runs" / b_run.name).symlink_to(b_run)  # only shard 2/2's run is there
    assert main(["report", str(partial), "--table"]) == 0
    err = capsys.readouterr().err
    assert "2 of 3 runs" in err and "A-" in err and "C-" in err and b_run.name not in err
    assert "--shard" in err
    assert main(["ablate", str(split / "study.yaml"), "--shard", "3/2"]) == 2
    assert "--shard '3/2': expected I/N" in capsys.readouterr().err
