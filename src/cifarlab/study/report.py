"""A study's report: table, verdicts, observations, figures (study.md / study.csv / study.json).

Verdicts ("improvement, keep it" / "regression") are decided on validation accuracy; test accuracy is
reported beside them and never decides anything.
"""
from __future__ import annotations

import sys
from pathlib import Path

from ..io import read_json, write_json, write_text
from ..viz import (csv_text, fmt_ms, markdown_table, mean_std, plot_bars, plot_curves, plot_val_overlay,
                   selected_train_acc)
from .best import best_model_section
from .spec import Study, collect, load_study, missing_runs, study_runs

GAP_OVERFIT = 15.0  # train − val gap (points) above which a run is called overfitting
UNDERFIT_TRAIN = 60.0  # train accuracy (%) below which, with a gap under 5 points, a run is underfitting
NOISE_PTS = 0.5  # |Δ val| (points) within which a single-seed change is "within noise"

OBSERVATION_RULES = f"""Observations are generated from the numbers, on the validation split only:
- *overfitting* when train − val > {GAP_OVERFIT:g} points → next: more augmentation or regularization;
- *underfitting* when train accuracy < {UNDERFIT_TRAIN:g}% and the gap < 5 points → next: more epochs or capacity;
- Δ val vs the compared experiment is an *improvement* / *regression* when it exceeds the noise level,
  else *within noise*. Noise: with ≥ 2 seeds on both sides, 2 × the standard error of the difference of
  means; with one seed, {NOISE_PTS:g} points (about two seed-to-seed standard deviations of the seed CNN).
- Δ test is reported, never used to decide: the test split only measures the choices made on validation.
- train and val accuracy are those of the epoch selected on validation (the one the test numbers belong
  to); train accuracy is the running accuracy on augmented batches, so with strong augmentation it can
  sit below validation accuracy."""

HEADER = ["Exp ID", "change", "hyper-parameters", "finished", "train acc %", "val acc %", "test acc %",
          "train−val gap", "training time", "params", "Δ val vs", "Δ test", "observations"]


def delta(row: dict, ref: dict | None, key: str) -> tuple[float, float, str] | None:
    """(Δ mean of `key` vs ref, its standard error, verdict) or None without both sides."""
    if ref is None or not row["runs"] or not ref["runs"]:
        return None
    a = [r["summary"][key] for r in row["runs"]]
    b = [r["summary"][key] for r in ref["runs"]]
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    d = ma - mb
    if len(a) > 1 and len(b) > 1:
        se = (sa ** 2 / len(a) + sb ** 2 / len(b)) ** 0.5
        noise = 2 * se
    else:
        se, noise = 0.0, NOISE_PTS
    verdict = "improvement" if d > noise else "regression" if d < -noise else "within noise"
    return d, se, verdict


def observe(train_acc: float, val_acc: float, delta_val) -> str:
    gap = train_acc - val_acc
    notes = []
    if gap > GAP_OVERFIT:
        notes.append(f"overfitting (gap {gap:.1f} > {GAP_OVERFIT:g}); next: augment or regularize")
    elif train_acc < UNDERFIT_TRAIN and gap < 5:
        notes.append(f"underfitting (train {train_acc:.1f}%, gap {gap:.1f}); next: train longer or add capacity")
    if delta_val is not None:
        d, _, verdict = delta_val
        notes.append(f"{verdict} on val ({d:+.2f} pts)" + ("; keep it" if verdict == "improvement" else
                                                           "; revert or rethink" if verdict == "regression" else
                                                           "; not worth its cost unless cheaper"))
    return "; ".join(notes) or "no issue flagged"


def _hp(diff: dict) -> str:
    short = {"train.epochs": "ep", "train.batch_size": "bs", "optim.lr": "lr", "optim.name": "opt"}
    return ", ".join(f"{short.get(k, k)}={v}" for k, v in diff.items())


def _fmt_delta(d, compare: str | None) -> str:
    if d is None:
        return "—"
    return f"{d[0]:+.2f}" + (f" ± {d[1]:.2f}" if d[1] else "") + (f" (vs {compare})" if compare else "")


def _experiment(row: dict, ref: dict | None) -> tuple[list, dict | None]:
    """One table row and one study.json record for an experiment."""
    exp, runs = row["exp"], row["runs"]
    if not runs:
        return [exp.id, exp.description, _hp(row["diff"]), "not run", *["—"] * 9], None
    s = [r["summary"] for r in runs]
    tr = [selected_train_acc(x) for x in s]
    va, te = [x["val_acc"] for x in s], [x["test_acc"] for x in s]
    d_val, d_test = delta(row, ref, "val_acc"), delta(row, ref, "test_acc")
    obs = observe(mean_std(tr)[0], mean_std(va)[0], d_val)
    finished = max(x["date"] for x in s)
    time_s = mean_std([x["train_time_s"] for x in s])[0]
    cells = [exp.id, exp.description, _hp(row["diff"]), finished[:16].replace("T", " "), fmt_ms(tr),
             fmt_ms(va), fmt_ms(te), f"{mean_std(tr)[0] - mean_std(va)[0]:.1f}", f"{time_s / 60:.1f} min",
             f"{s[0]['params']:,}", _fmt_delta(d_val, exp.compare), _fmt_delta(d_test, None), obs]
    record = {"id": exp.id, "description": exp.description, "overrides": exp.overrides, "preset": exp.preset,
              "compare": exp.compare, "seeds": [x["seed"] for x in s], "train_acc": tr, "val_acc": va,
              "test_acc": te, "test_top5": [x["test_top5"] for x in s],
              "train_time_s": [x["train_time_s"] for x in s], "params": s[0]["params"],
              "delta_val": None if d_val is None else d_val[0],
              "delta_test": None if d_test is None else d_test[0],
              "verdict": None if d_val is None else d_val[2], "observations": obs,
              "hardware": s[0]["hardware"], "torch": s[0]["torch"], "date": finished}
    return cells, record


def study_table(study: Study, root: Path, n_seeds: int) -> tuple[list[dict], list[list], list[dict]]:
    """(rows with runs, table cells, study.json records) from the stored run folders; writes nothing."""
    rows = collect(study, root, n_seeds)
    by_id = {r["exp"].id: r for r in rows}
    table, records = [], []
    for row in rows:
        cells, rec = _experiment(row, by_id.get(row["exp"].compare))
        table.append(cells)
        if rec is not None:
            records.append(rec)
    return rows, table, records


def _figures(rows: list[dict], figs: Path) -> None:
    done = [r for r in rows if r["runs"]]
    curves = [(f"{r['exp'].id} {r['exp'].description[:40]}", r["runs"][0]["history"]) for r in done]
    plot_val_overlay(curves, figs / "val_vs_epoch.png", "epoch")
    plot_val_overlay(curves, figs / "val_vs_time.png", "time")
    plot_bars([r["exp"].id for r in done], [[x["summary"]["val_acc"] for x in r["runs"]] for r in done],
              figs / "val_bars.png", "val top-1 (%)", "validation accuracy per experiment (mean ± std)")
    for row in done:
        plot_curves(row["runs"][0]["history"], figs / f"curves_{row['exp'].id}.png",
                    title=f"{row['exp'].id}: {row['exp'].description}")


def write_study_report(study: Study, root: Path, n_seeds: int, data_dir=None) -> dict:
    """Write study.md, study.csv, study.json and figures/ from the stored runs (nothing is trained)."""
    rows, table, records = study_table(study, root, n_seeds)
    figs = root / "figures"
    done = [r for r in rows if r["runs"]]
    if done:
        _figures(rows, figs)
    best_md = best_model_section(done, figs, data_dir) if done else ""
    hw = sorted({r["hardware"] for r in records})
    md = [f"# Study: {study.name}", "", study.description, "",
          f"Generated by `cifarlab ablate {study.path}` (seeds per experiment: {n_seeds}); "
          f"hardware: {', '.join(hw) or '—'}; torch {records[0]['torch'] if records else '—'}.", "",
          markdown_table(HEADER, table), "", OBSERVATION_RULES, "",
          "![validation accuracy vs epoch](figures/val_vs_epoch.png)",
          "![validation accuracy vs time](figures/val_vs_time.png)",
          "![validation accuracy per experiment](figures/val_bars.png)", "", best_md]
    conclusion = root / "conclusion.md"
    if conclusion.is_file():
        md += ["## Conclusion", "", conclusion.read_text()]
    write_text(root / "study.md", "\n".join(md) + "\n")
    write_text(root / "study.csv", csv_text(HEADER, table))
    write_json(root / "study.json", {"study": study.name, "seeds": n_seeds, "experiments": records})
    return {"rows": table, "records": records, "table_md": markdown_table(HEADER, table)}


def is_study(path: Path) -> bool:
    return path.suffix in (".yaml", ".yml") or (path.is_dir() and any(
        (path / f).is_file() for f in ("study.json", "study.yaml")))


def report_study(path: Path, table_only: bool = False, data_dir=None) -> str:
    """Re-render a study (its YAML or its folder) from the stored runs; with table_only, only print the
    table and write nothing."""
    yaml_path = path if path.suffix in (".yaml", ".yml") else _study_yaml_for(path)
    study = load_study(yaml_path)
    root = path.with_suffix("") if path.suffix else path
    n = read_json(root / "study.json")["seeds"] if (root / "study.json").is_file() else study.seeds
    missing = missing_runs(study, root, n)
    if missing:
        print(f"warning: {study.name}: {len(missing)} of {len(study_runs(study, n))} runs (seeds per experiment: "
              f"{n}) are not finished in {root / 'runs'}: {', '.join(missing)}; the table shows only finished runs. "
              f"Train them with `cifarlab ablate {yaml_path} --out {root}` (or its missing --shard I/N)",
              file=sys.stderr)
    if table_only:
        return markdown_table(HEADER, study_table(study, root, n)[1])
    write_study_report(study, root, n, data_dir)
    return (root / "study.md").read_text()


def _study_yaml_for(folder: Path) -> Path:
    for cand in (folder.with_suffix(".yaml"), folder / "study.yaml"):
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"{folder}: cannot find the study YAML beside it ({folder}.yaml)")
