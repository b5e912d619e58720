"""Figures and tables from stored run files. matplotlib is imported lazily with the Agg backend."""
from __future__ import annotations

import io
import json
from pathlib import Path

from .checkpoint import write_bytes


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> None:
    """PNG via an in-memory buffer, written atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    write_bytes(path, buf.getvalue())


def plot_curves(history: list[dict], path: Path, title: str = "") -> None:
    """Loss and accuracy, train vs validation, against epoch."""
    plt = _plt()
    ep = [r["epoch"] for r in history]
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_l.plot(ep, [r["train_loss"] for r in history], "o-", label="train")
    ax_a.plot(ep, [r["train_acc"] for r in history], "o-", label="train (augmented, running)")
    if history and history[0].get("val_acc") is not None:
        ax_l.plot(ep, [r["val_loss"] for r in history], "s-", label="val")
        ax_a.plot(ep, [r["val_acc"] for r in history], "s-", label="val")
    ax_l.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax_a.set(xlabel="epoch", ylabel="top-1 accuracy (%)", title="accuracy")
    for ax in (ax_l, ax_a):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


# ---------------------------------------------------------------- numbers

def mean_std(xs: list[float]) -> tuple[float, float]:
    n = len(xs)
    if n == 0:
        return float("nan"), float("nan")
    m = sum(xs) / n
    return m, (sum((x - m) ** 2 for x in xs) / (n - 1)) ** 0.5 if n > 1 else 0.0


def fmt_ms(xs: list[float], digits: int = 2) -> str:
    m, s = mean_std(xs)
    if m != m:
        return "—"
    return f"{m:.{digits}f} ± {s:.{digits}f}" if len(xs) > 1 else f"{m:.{digits}f}"


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def csv_text(header: list[str], rows: list[list]) -> str:
    import csv

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


# ---------------------------------------------------------------- results/ (seed reproduction)

# The seed project's published figures and the targets it set (facts from its README).
SEED_REFERENCE = {
    "c10-mlp": ("51.67% test", "> 50% test", lambda r: r["test"] > 50),
    "c10-cnn": ("76.04% test", "> 75% test", lambda r: r["test"] > 75),
    "c100-cnn-base": ("train 76.19% / test 46.12%", "reproduce the overfitting gap (> 15 pts)",
                      lambda r: r["train"] - r["test"] > 15),
    "c100-cnn-aug": ("55.47% test", ">= 55.47% test", lambda r: r["test"] >= 55.47),
}


def time_range(times_s: list[float]) -> str:
    """'9.8 min' or '9.8–10.4 min' for a list of durations in seconds."""
    lo, hi = min(times_s) / 60, max(times_s) / 60
    return f"{lo:.1f} min" if len(times_s) == 1 or hi - lo < 0.05 else f"{lo:.1f}–{hi:.1f} min"


def results_table(folder: Path) -> str:
    """Markdown table of results/*.jsonl: mean ± std over seeds beside the seed project's figures."""
    from .runlog import read_jsonl

    header = ["preset", "n (seeds)", "train acc %", "val acc %", "test top-1 %", "test top-5 %",
              "time / run (min–max)", "seed project", "target", "met?"]
    rows = []
    for f in sorted(Path(folder).glob("*.jsonl")):
        recs = [r for r in read_jsonl(f) if r.get("test_acc") is not None]
        if not recs:
            continue
        preset = recs[0]["preset"]
        test = [r["test_acc"] for r in recs]
        train = [r["train_acc"] for r in recs]
        ref = SEED_REFERENCE.get(preset)
        verdict = "—"
        if ref:
            ok = ref[2]({"test": mean_std(test)[0], "train": mean_std(train)[0]})
            verdict = "yes" if ok else "**no**"
        rows.append([preset, f"{len(recs)} ({', '.join(str(r['seed']) for r in recs)})", fmt_ms(train),
                     fmt_ms([r["val_acc"] for r in recs]), fmt_ms(test),
                     fmt_ms([r["test_top5"] for r in recs]),
                     time_range([r["total_time_s"] for r in recs]),
                     ref[0] if ref else "—", ref[1] if ref else "—", verdict])
    if not rows:
        return f"no results in {folder}"
    recs0 = [r for f in sorted(Path(folder).glob("*.jsonl")) for r in read_jsonl(f)]
    hw = sorted({f"{r['hardware']}, {r['precision']}, torch {r['torch']}" for r in recs0})
    dates = sorted(r["date"][:10] for r in recs0)
    note = (f"\n\nMeasured on {'; '.join(hw)}; runs dated {dates[0]} to {dates[-1]}; commits "
            f"{', '.join(sorted({r['git_commit'] for r in recs0}))}. train acc = running accuracy on "
            "augmented batches in the last epoch; test = the epoch selected on validation. Wall times "
            "include stretches where the 2 cores were shared with other jobs (the fastest run is the "
            "closest to an idle machine); clean throughput is under Speed.")
    return markdown_table(header, rows) + note


# ---------------------------------------------------------------- figures for a study

def _plot_overlay(rows, path: Path, x_key: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for row in rows:
        if not row["runs"]:
            continue
        h = row["runs"][0]["history"]
        if h[0].get("val_acc") is None:
            continue
        xs = [r["epoch"] for r in h] if x_key == "epoch" else \
            [sum(r["epoch_time_s"] for r in h[:i + 1]) / 60 for i in range(len(h))]
        ax.plot(xs, [r["val_acc"] for r in h], label=f"{row['exp'].id} {row['exp'].description[:40]}")
    ax.set(xlabel="epoch" if x_key == "epoch" else "training time (min)", ylabel="val top-1 (%)",
           title=f"validation accuracy vs {'epoch' if x_key == 'epoch' else 'wall time'} (seed 0)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, path)


def _plot_test_bars(rows, path: Path) -> None:
    plt = _plt()
    done = [r for r in rows if r["runs"]]
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(done)), 4))
    stats = [mean_std([r["summary"]["test_acc"] for r in row["runs"]]) for row in done]
    ax.bar([row["exp"].id for row in done], [m for m, _ in stats], yerr=[s for _, s in stats], capsize=4,
           color="#4c72b0")
    for i, (m, _) in enumerate(stats):
        ax.text(i, m + 0.5, f"{m:.1f}", ha="center", fontsize=8)
    ax.set(xlabel="experiment", ylabel="test top-1 (%)", title="test accuracy per experiment (mean ± std)")
    ax.grid(axis="y", alpha=0.3)
    save_figure(fig, path)


def plot_per_class(per_class: list[float], names: list[str], path: Path) -> None:
    plt = _plt()
    order = sorted(range(len(per_class)), key=lambda i: per_class[i])
    fig, ax = plt.subplots(figsize=(max(6, len(names) * 0.16), 4))
    ax.bar(range(len(order)), [per_class[i] for i in order], color="#55a868")
    ax.set_xticks(range(len(order)), [names[i] for i in order], rotation=90, fontsize=6)
    ax.set(ylabel="test top-1 (%)", title="per-class accuracy of the selected model (sorted)")
    save_figure(fig, path)


def plot_confusion(conf, names: list[str], path: Path, title: str) -> None:
    plt = _plt()
    import numpy as np

    c = np.asarray(conf, dtype=float)
    c = c / c.sum(1, keepdims=True).clip(min=1) * 100
    fig, ax = plt.subplots(figsize=(8, 7))
    im = ax.imshow(c, cmap="viridis")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(im, ax=ax, label="% of true class")
    save_figure(fig, path)


def plot_misclassified(x_uint8, true, pred, names: list[str], path: Path, n: int = 24) -> None:
    plt = _plt()
    wrong = (true != pred).nonzero().squeeze(1)[:n].tolist()
    cols = 8
    fig, axes = plt.subplots((len(wrong) + cols - 1) // cols, cols, figsize=(cols * 1.5, 1.9 * (
        (len(wrong) + cols - 1) // cols)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong):
        ax.imshow(x_uint8[i].permute(1, 2, 0).numpy())
        ax.set_title(f"{names[int(true[i])]}\n→ {names[int(pred[i])]}", fontsize=6, color="#c44e52")
    fig.suptitle("misclassified test images (true → predicted)", fontsize=9)
    save_figure(fig, path)


# ---------------------------------------------------------------- study report

GAP_OVERFIT = 15.0  # train − test gap (points) above which a run is called overfitting
UNDERFIT_TRAIN = 60.0  # train accuracy (%) below which, with a gap under 5 points, a run is underfitting
NOISE_PTS = 0.5  # |Δ test| (points) within which a single-seed change is "within noise"

OBSERVATION_RULES = f"""Observations are generated from the numbers:
- *overfitting* when train − test > {GAP_OVERFIT:g} points → next: more augmentation or regularization;
- *underfitting* when train accuracy < {UNDERFIT_TRAIN:g}% and the gap < 5 points → next: more epochs or capacity;
- Δ test vs the compared experiment is an *improvement* / *regression* when it exceeds the noise level,
  else *within noise*. Noise: with ≥ 2 seeds on both sides, 2 × the standard error of the difference of
  means; with one seed, {NOISE_PTS:g} points (about two seed-to-seed standard deviations of the seed CNN).
- train accuracy is the running accuracy on augmented batches of the last epoch, so with strong
  augmentation it can sit below test accuracy."""


def _delta(row, ref) -> tuple[float, float, str] | None:
    if ref is None or not row["runs"] or not ref["runs"]:
        return None
    a = [r["summary"]["test_acc"] for r in row["runs"]]
    b = [r["summary"]["test_acc"] for r in ref["runs"]]
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    d = ma - mb
    if len(a) > 1 and len(b) > 1:
        se = (sa ** 2 / len(a) + sb ** 2 / len(b)) ** 0.5
        noise = 2 * se
    else:
        se, noise = 0.0, NOISE_PTS
    verdict = "improvement" if d > noise else "regression" if d < -noise else "within noise"
    return d, se, verdict


def observe(train_acc: float, test_acc: float, delta) -> str:
    gap = train_acc - test_acc
    notes = []
    if gap > GAP_OVERFIT:
        notes.append(f"overfitting (gap {gap:.1f} > {GAP_OVERFIT:g}); next: augment or regularize")
    elif train_acc < UNDERFIT_TRAIN and gap < 5:
        notes.append(f"underfitting (train {train_acc:.1f}%, gap {gap:.1f}); next: train longer or add capacity")
    if delta is not None:
        d, _, verdict = delta
        notes.append(f"{verdict} ({d:+.2f} pts)" + ("; keep it" if verdict == "improvement" else
                                                    "; revert or rethink" if verdict == "regression" else
                                                    "; not worth its cost unless cheaper"))
    return "; ".join(notes) or "no issue flagged"


def _hp(diff: dict) -> str:
    short = {"train.epochs": "ep", "train.batch_size": "bs", "optim.lr": "lr", "optim.name": "opt"}
    return ", ".join(f"{short.get(k, k)}={v}" for k, v in diff.items())


def write_study_report(study, root: Path, n_seeds: int, data_dir=None) -> dict:
    from .ablate import collect
    from .checkpoint import write_json, write_text

    rows = collect(study, root, n_seeds)
    by_id = {r["exp"].id: r for r in rows}
    header = ["Exp ID", "change", "hyper-parameters", "finished", "train acc %", "val acc %", "test acc %",
              "train−test gap", "training time", "params", "Δ test vs", "observations"]
    table, records = [], []
    for row in rows:
        exp, runs = row["exp"], row["runs"]
        if not runs:
            table.append([exp.id, exp.description, _hp(row["diff"]), "not run", *["—"] * 8])
            continue
        s = [r["summary"] for r in runs]
        tr, va, te = ([x[k] for x in s] for k in ("train_acc", "val_acc", "test_acc"))
        delta = _delta(row, by_id.get(exp.compare))
        dtxt = "—" if delta is None else (f"{delta[0]:+.2f}" + (f" ± {delta[1]:.2f}" if delta[1] else "")
                                          + f" (vs {exp.compare})")
        obs = observe(mean_std(tr)[0], mean_std(te)[0], delta)
        time_s = mean_std([x["train_time_s"] for x in s])[0]
        table.append([exp.id, exp.description, _hp(row["diff"]), max(x["date"] for x in s)[:16].replace("T", " "),
                      fmt_ms(tr), fmt_ms(va), fmt_ms(te), f"{mean_std(tr)[0] - mean_std(te)[0]:.1f}",
                      f"{time_s / 60:.1f} min", f"{s[0]['params']:,}", dtxt, obs])
        records.append({"id": exp.id, "description": exp.description, "overrides": exp.overrides,
                        "preset": exp.preset, "compare": exp.compare, "seeds": [x["seed"] for x in s],
                        "train_acc": tr, "val_acc": va, "test_acc": te,
                        "test_top5": [x["test_top5"] for x in s], "train_time_s": [x["train_time_s"] for x in s],
                        "params": s[0]["params"], "delta_test": None if delta is None else delta[0],
                        "verdict": None if delta is None else delta[2], "observations": obs,
                        "hardware": s[0]["hardware"], "torch": s[0]["torch"], "date": max(x["date"] for x in s)})
    figs = root / "figures"
    done = [r for r in rows if r["runs"]]
    if done:
        _plot_overlay(rows, figs / "val_vs_epoch.png", "epoch")
        _plot_overlay(rows, figs / "val_vs_time.png", "time")
        _plot_test_bars(rows, figs / "test_bars.png")
        for row in done:
            run = row["runs"][0]
            plot_curves(run["history"], figs / f"curves_{row['exp'].id}.png",
                        title=f"{row['exp'].id}: {row['exp'].description}")
    best_md = _best_model_section(done, figs, data_dir) if done else ""
    hw = sorted({r["hardware"] for r in records})
    md = [f"# Study: {study.name}", "", study.description, "",
          f"Generated by `cifarlab ablate {study.path}` (seeds per experiment: {n_seeds}); "
          f"hardware: {', '.join(hw) or '—'}; torch {records[0]['torch'] if records else '—'}.", "",
          markdown_table(header, table), "", OBSERVATION_RULES, "",
          "![validation accuracy vs epoch](figures/val_vs_epoch.png)",
          "![validation accuracy vs time](figures/val_vs_time.png)",
          "![test accuracy per experiment](figures/test_bars.png)", "", best_md]
    conclusion = root / "conclusion.md"
    if conclusion.is_file():
        md += ["## Conclusion", "", conclusion.read_text()]
    write_text(root / "study.md", "\n".join(md) + "\n")
    write_text(root / "study.csv", csv_text(header, table))
    write_json(root / "study.json", {"study": study.name, "seeds": n_seeds, "experiments": records})
    return {"rows": table, "records": records, "table_md": markdown_table(header, table)}


def _best_model_section(done, figs: Path, data_dir) -> str:
    """Per-class accuracy, confusion (CIFAR-100: 20 superclasses), confused pairs, misclassified grid."""
    import torch

    from . import data as data_mod
    from .evaluate import metrics_from_logits

    best = max(done, key=lambda r: mean_std([x["summary"]["val_acc"] or 0 for x in r["runs"]])[0])
    run = max(best["runs"], key=lambda x: x["summary"]["val_acc"] or 0)
    pred_file = run["dir"] / "test_predictions.json"
    head = (f"## Selected model: {best['exp'].id} ({best['exp'].description})\n\nSelected by validation "
            f"accuracy ({run['summary']['val_acc']:.2f}%, seed {run['summary']['seed']}); its test top-1 "
            f"is {run['summary']['test_acc']:.2f}%.\n")
    if not pred_file.is_file():
        return head + "\n(no test_predictions.json in its run folder: per-class figures skipped)\n"
    try:
        ds = data_mod.load(best["cfg"].data.dataset, data_dir, allow_download=False)
    except data_mod.DataError as e:
        return head + f"\n(per-class figures skipped: {e})\n"
    pred = torch.tensor(json.loads(pred_file.read_text())["pred"])
    true = ds.test_y
    onehot = torch.nn.functional.one_hot(pred, ds.num_classes).float()
    m = metrics_from_logits(onehot, true, confusion=True)
    plot_per_class(m.per_class(), ds.classes, figs / "per_class.png")
    conf = torch.tensor(m.confusion)
    out = [head, "![per-class accuracy](figures/per_class.png)"]
    if ds.coarse_classes:
        f2c = torch.zeros(ds.num_classes, dtype=torch.long)
        f2c[ds.train_y] = ds.train_coarse
        cc = torch.zeros(20, 20, dtype=torch.long)
        cc.index_put_((f2c[true], f2c[pred]), torch.ones_like(true), accumulate=True)
        plot_confusion(cc.tolist(), ds.coarse_classes, figs / "confusion.png",
                       "confusion between the 20 superclasses (row-normalized)")
    else:
        plot_confusion(conf.tolist(), ds.classes, figs / "confusion.png", "confusion matrix (row-normalized)")
    out.append("![confusion matrix](figures/confusion.png)")
    off = conf.clone()
    off.fill_diagonal_(0)
    pairs = (off + off.T).triu().flatten().topk(10)
    n = ds.num_classes
    prow = [[ds.classes[i // n], ds.classes[i % n], int(v), int(off[i // n, i % n]), int(off[i % n, i // n])]
            for v, i in zip(pairs.values.tolist(), pairs.indices.tolist())]
    out += ["", "Most-confused class pairs (test set, both directions):", "",
            markdown_table(["class A", "class B", "confusions", "A→B", "B→A"], prow), ""]
    plot_misclassified(ds.test_x, true, pred, ds.classes, figs / "misclassified.png")
    out.append("![misclassified test images](figures/misclassified.png)")
    return "\n".join(out)


def report_path(path: Path, table_only: bool = False) -> str:
    """Re-render a run folder, a study (YAML or folder) or a results folder from stored files."""
    from .runlog import read_jsonl

    path = Path(path)
    if path.suffix in (".yaml", ".yml") or (path.is_dir() and any(
            (path / f).is_file() for f in ("study.json", "study.yaml"))):
        from .ablate import load_study

        yaml_path = path if path.suffix in (".yaml", ".yml") else _study_yaml_for(path)
        study = load_study(yaml_path)
        root = path.with_suffix("") if path.suffix else path
        n = json.loads((root / "study.json").read_text())["seeds"] if (root / "study.json").is_file() else study.seeds
        res = write_study_report(study, root, n)
        return res["table_md"] if table_only else (root / "study.md").read_text()
    if path.is_dir() and (path / "metrics.jsonl").is_file():
        hist = read_jsonl(path / "metrics.jsonl")
        plot_curves(hist, path / "curves.png", title=path.name)
        s = json.loads((path / "summary.json").read_text()) if (path / "summary.json").is_file() else {}
        rows = [[r["epoch"], f"{r['train_loss']:.4f}", f"{r['train_acc']:.2f}",
                 "—" if r.get("val_acc") is None else f"{r['val_acc']:.2f}", f"{r['epoch_time_s']:.1f}"]
                for r in hist]
        tail = f"\n\ntest top-1 {s['test_acc']:.2f}%, loss {s['test_loss']:.4f}" if "test_acc" in s else ""
        return markdown_table(["epoch", "train loss", "train acc %", "val acc %", "time s"], rows) + tail
    if path.is_dir() and list(path.glob("*.jsonl")):
        return results_table(path)
    raise FileNotFoundError(f"{path}: not a run folder (metrics.jsonl), a study (YAML or folder with "
                            "study.yaml/study.json) or a results folder (*.jsonl)")


def _study_yaml_for(folder: Path) -> Path:
    for cand in (folder.with_suffix(".yaml"), folder / "study.yaml"):
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"{folder}: cannot find the study YAML beside it ({folder}.yaml)")
