"""Every figure and table: matplotlib (imported lazily) and markdown/CSV text. Figures are drawn on an
explicit Agg canvas without pyplot, so the caller's matplotlib backend is never chosen or changed.

Imports only io: callers pass plain numbers and histories, never runs or studies.
"""
from __future__ import annotations

import io
from pathlib import Path

from .io import write_bytes


def _subplots(nrows: int = 1, ncols: int = 1, *, figsize, **kw):
    """(figure, axes) like pyplot.subplots, on its own Agg canvas: no pyplot, no global backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, **kw)


def save_figure(fig, path: Path) -> None:
    """PNG via an in-memory buffer, written atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    write_bytes(path, buf.getvalue())


def plot_curves(history: list[dict], path: Path, title: str = "") -> None:
    """Loss and accuracy, train vs validation, against epoch."""
    ep = [r["epoch"] for r in history]
    fig, (ax_l, ax_a) = _subplots(1, 2, figsize=(10, 3.8))
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


def time_range(times_s: list[float]) -> str:
    """'9.8 min' or '9.8–10.4 min' for a list of durations in seconds."""
    lo, hi = min(times_s) / 60, max(times_s) / 60
    return f"{lo:.1f} min" if len(times_s) == 1 or hi - lo < 0.05 else f"{lo:.1f}–{hi:.1f} min"


# ---------------------------------------------------------------- figures

def plot_val_overlay(curves: list[tuple[str, list[dict]]], path: Path, x_key: str = "epoch") -> None:
    """Validation accuracy of several runs (label, history) against epoch or cumulative training time."""
    fig, ax = _subplots(figsize=(7, 4.2))
    for label, h in curves:
        if not h or h[0].get("val_acc") is None:
            continue
        xs = [r["epoch"] for r in h] if x_key == "epoch" else \
            [sum(r["epoch_time_s"] for r in h[:i + 1]) / 60 for i in range(len(h))]
        ax.plot(xs, [r["val_acc"] for r in h], label=label)
    ax.set(xlabel="epoch" if x_key == "epoch" else "training time (min)", ylabel="val top-1 (%)",
           title=f"validation accuracy vs {'epoch' if x_key == 'epoch' else 'wall time'} (seed 0)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, path)


def plot_bars(labels: list[str], values: list[list[float]], path: Path, ylabel: str, title: str) -> None:
    """One bar per label: mean of its values with a standard-deviation error bar."""
    fig, ax = _subplots(figsize=(max(5, 0.9 * len(labels)), 4))
    stats = [mean_std(v) for v in values]
    ax.bar(labels, [m for m, _ in stats], yerr=[s for _, s in stats], capsize=4, color="#4c72b0")
    for i, (m, _) in enumerate(stats):
        ax.text(i, m + 0.5, f"{m:.1f}", ha="center", fontsize=8)
    ax.set(xlabel="experiment", ylabel=ylabel, title=title)
    ax.grid(axis="y", alpha=0.3)
    save_figure(fig, path)


def plot_per_class(per_class: list[float], names: list[str], path: Path) -> None:
    order = sorted(range(len(per_class)), key=lambda i: per_class[i])
    fig, ax = _subplots(figsize=(max(6, len(names) * 0.16), 4))
    ax.bar(range(len(order)), [per_class[i] for i in order], color="#55a868")
    ax.set_xticks(range(len(order)), [names[i] for i in order], rotation=90, fontsize=6)
    ax.set(ylabel="test top-1 (%)", title="per-class accuracy of the selected model (sorted)")
    save_figure(fig, path)


def plot_confusion(conf, names: list[str], path: Path, title: str) -> None:
    save_figure(confusion_figure(conf, names, title), path)


def confusion_figure(conf, names: list[str], title: str):
    """Row-normalized confusion matrix ([true][pred] counts) as a matplotlib figure."""
    import numpy as np

    c = np.asarray(conf, dtype=float)
    c = c / c.sum(1, keepdims=True).clip(min=1) * 100
    fig, ax = _subplots(figsize=(8, 7))
    im = ax.imshow(c, cmap="viridis")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7 if len(names) <= 20 else 4)
    ax.set_yticks(range(len(names)), names, fontsize=7 if len(names) <= 20 else 4)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(im, ax=ax, label="% of true class")
    return fig


def plot_misclassified(x_uint8, true, pred, names: list[str], path: Path, n: int = 24) -> None:
    wrong = (true != pred).nonzero().squeeze(1)[:n].tolist()
    cols = 8
    rows = max(1, (len(wrong) + cols - 1) // cols)  # one empty row when every image is right
    fig, axes = _subplots(rows, cols, figsize=(cols * 1.5, 1.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong):
        ax.imshow(x_uint8[i].permute(1, 2, 0).numpy())
        ax.set_title(f"{names[int(true[i])]}\n→ {names[int(pred[i])]}", fontsize=6, color="#c44e52")
    fig.suptitle("misclassified test images (true → predicted)", fontsize=9)
    save_figure(fig, path)


# ---------------------------------------------------------------- tables of stored records

def selected_train_acc(rec: dict) -> float:
    """Train accuracy of the epoch selected on validation. Older summaries and records held the
    last epoch's as train_acc and the selected one's as best_train_acc."""
    return rec["best_train_acc"] if "best_train_acc" in rec else rec["train_acc"]


# results/targets.json (optional): {"note": "...", "reference_column": "...", "targets": {PRESET: {"reference": "...",
#   "target": "...", "metric": "test" | "train" | "train-test", "op": ">" | ">=", "value": number}}}
_OPS = {">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


def _target_met(t: dict, train: float, test: float) -> bool:
    value = {"test": test, "train": train, "train-test": train - test}[t["metric"]]
    return _OPS[t["op"]](value, t["value"])


def results_table(folder: Path) -> str:
    """Markdown table of FOLDER/*.jsonl run records: mean ± std over seeds, beside the reference
    figures and targets of FOLDER/targets.json when present."""
    from .io import read_json, read_jsonl

    meta = read_json(Path(folder) / "targets.json") if (Path(folder) / "targets.json").is_file() else {}
    targets = meta.get("targets", {})
    header = ["preset", "n (seeds)", "train acc %", "val acc %", "test top-1 %", "test top-5 %",
              "time / run (min–max)", meta.get("reference_column", "reference"), "target", "met?"]
    rows, all_recs = [], []
    for f in sorted(Path(folder).glob("*.jsonl")):
        recs = [r for r in read_jsonl(f) if r.get("test_acc") is not None]
        if not recs:
            continue
        all_recs += recs
        train, test = [selected_train_acc(r) for r in recs], [r["test_acc"] for r in recs]
        t = targets.get(recs[0]["preset"])
        met = "—" if t is None else "yes" if _target_met(t, mean_std(train)[0], mean_std(test)[0]) else "**no**"
        rows.append([recs[0]["preset"], f"{len(recs)} ({', '.join(str(r['seed']) for r in recs)})",
                     fmt_ms(train), fmt_ms([r["val_acc"] for r in recs]), fmt_ms(test),
                     fmt_ms([r["test_top5"] for r in recs]), time_range([r["total_time_s"] for r in recs]),
                     t["reference"] if t else "—", t["target"] if t else "—", met])
    if not rows:
        return f"no results in {folder}"
    hw = sorted({f"{r['hardware']}, {r['precision']}, torch {r['torch']}" for r in all_recs})
    dates = sorted(r["date"][:10] for r in all_recs)
    note = (f"\n\nMeasured on {'; '.join(hw)}; runs dated {dates[0]} to {dates[-1]}; commits "
            f"{', '.join(sorted({r['git_commit'] for r in all_recs}))}. train, val and test accuracy are "
            "those of the epoch selected on validation (train: running accuracy on augmented batches).")
    return markdown_table(header, rows) + note + (f" {meta['note']}" if meta.get("note") else "")


def run_table(history: list[dict], summary: dict) -> str:
    """Per-epoch table of one run, with its test numbers when it has finished."""
    rows = [[r["epoch"], f"{r['train_loss']:.4f}", f"{r['train_acc']:.2f}",
             "—" if r.get("val_acc") is None else f"{r['val_acc']:.2f}", f"{r['epoch_time_s']:.1f}"]
            for r in history]
    tail = (f"\n\ntest top-1 {summary['test_acc']:.2f}%, loss {summary['test_loss']:.4f} (epoch "
            f"{summary.get('best_epoch', '?')}, selected on validation)" if "test_acc" in summary else "")
    return markdown_table(["epoch", "train loss", "train acc %", "val acc %", "time s"], rows) + tail


def plot_time_to_accuracy(points: list[dict], path: Path, title: str,
                          targets: list[tuple[float, float]] = ()) -> None:
    """Test top-1 against time (log scale). points: label, time_s, acc, time_sd, acc_sd, kind
    ("cifarlab" | "seed" | "peer"). Peers are drawn hollow: measured with their own scripts.
    targets: (time_s, acc) corners drawn in grey: a point up and to the left of one meets it."""
    style = {"cifarlab": dict(marker="o", color="C0"), "seed": dict(marker="s", color="C2"),
             "peer": dict(marker="D", color="C3", markerfacecolor="none")}
    fig, ax = _subplots(figsize=(7.5, 4.6))
    for t, a in targets:
        ax.plot([t, t, t / 3], [a + 2, a, a], color="0.6", linewidth=1)
        ax.annotate(f"target {a:g}% / {t:g} s", (t, a), textcoords="offset points", xytext=(-4, -10),
                    fontsize=6, color="0.45", ha="right")
    for p in points:
        ax.errorbar(p["time_s"], p["acc"], xerr=p.get("time_sd") or None, yerr=p.get("acc_sd") or None,
                    linestyle="none", capsize=2, markersize=7, **style[p["kind"]])
        ax.annotate(p["label"], (p["time_s"], p["acc"]), textcoords="offset points", xytext=(6, 4), fontsize=7)
    for kind, s in style.items():
        if any(p["kind"] == kind for p in points):
            ax.plot([], [], linestyle="none", label={"cifarlab": "cifarlab preset (mean ± std)",
                                                   "seed": "the reference pipeline / cifarlab before",
                                                   "peer": "peer, with its own script"}[kind], **s)
    ax.set_xscale("log")
    ax.set(xlabel="time (s): training + init + final evaluation", ylabel="test top-1 (%)", title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left")
    save_figure(fig, path)


def plot_accuracy_vs_budget(lines: dict[str, list[dict]], path: Path, title: str,
                            targets: dict[str, list[tuple[float, float]]] | None = None) -> None:
    """Test top-1 against the --budget asked (log scale), one line per hardware class. lines: class ->
    points with budget_s, acc, acc_sd; targets: class -> (budget_s, acc) marks drawn as crosses."""
    fig, ax = _subplots(figsize=(7.5, 4.6))
    for i, (cls, pts) in enumerate(sorted(lines.items())):
        pts = sorted(pts, key=lambda p: p["budget_s"])
        ax.errorbar([p["budget_s"] for p in pts], [p["acc"] for p in pts], yerr=[p.get("acc_sd") or 0 for p in pts],
                    marker="o", capsize=2, color=f"C{i}", label=cls)
        for t, a in (targets or {}).get(cls, []):
            ax.plot([t], [a], marker="x", color=f"C{i}", markersize=8, linestyle="none")
    ax.set_xscale("log")
    ax.set(xlabel="--budget (s): wall time of calibration + training + final evaluation", ylabel="test top-1 (%)",
           title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left", title="x: target", title_fontsize=7)
    save_figure(fig, path)
