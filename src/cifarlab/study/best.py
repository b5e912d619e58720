"""The study report's section on the model selected by validation: per-class accuracy, confusion,
most-confused pairs and misclassified test images, from its stored test predictions."""
from __future__ import annotations

from pathlib import Path

import torch

from .. import data as data_mod
from ..evaluate import metrics_from_logits
from ..io import read_json
from ..viz import markdown_table, mean_std, plot_confusion, plot_misclassified, plot_per_class


def _selected(done: list[dict]) -> tuple[dict, dict]:
    """(experiment row, run) with the best validation accuracy (mean over seeds, then best seed)."""
    best = max(done, key=lambda r: mean_std([x["summary"]["val_acc"] or 0 for x in r["runs"]])[0])
    return best, max(best["runs"], key=lambda x: x["summary"]["val_acc"] or 0)


def best_model_section(done: list[dict], figs: Path, data_dir) -> str:
    best, run = _selected(done)
    s = run["summary"]
    head = (f"## Selected model: {best['exp'].id} ({best['exp'].description})\n\nSelected by validation "
            f"accuracy ({s['val_acc']:.2f}%, seed {s['seed']}); its test top-1 is {s['test_acc']:.2f}%.\n")
    pred_file = run["dir"] / "test_predictions.json"
    if not pred_file.is_file():
        return head + "\n(no test_predictions.json in its run folder: per-class figures skipped)\n"
    try:
        ds = data_mod.load(best["cfg"].data.dataset, data_dir, allow_download=False)
    except data_mod.DataError as e:
        return head + f"\n(per-class figures skipped: {e})\n"
    pred = torch.tensor(read_json(pred_file)["pred"])
    if len(pred) != len(ds.test_y):
        return head + (f"\n(per-class figures skipped: {pred_file} holds {len(pred)} predictions, the test split "
                       f"found in {data_mod.resolve_root(data_dir)} has {len(ds.test_y)}; pass its data folder)\n")
    m = metrics_from_logits(torch.nn.functional.one_hot(pred, ds.num_classes).float(), ds.test_y, confusion=True)
    plot_per_class(m.per_class(), ds.classes, figs / "per_class.png")
    conf = torch.tensor(m.confusion)
    _confusion_figure(ds, conf, pred, figs / "confusion.png")
    plot_misclassified(ds.test_x, ds.test_y, pred, ds.classes, figs / "misclassified.png")
    return "\n".join([head, "![per-class accuracy](figures/per_class.png)",
                      "![confusion matrix](figures/confusion.png)", "",
                      "Most-confused class pairs (test set, both directions):", "",
                      _confused_pairs(conf, ds.classes), "",
                      "![misclassified test images](figures/misclassified.png)"])


def _confusion_figure(ds: data_mod.CifarData, conf: torch.Tensor, pred: torch.Tensor, path: Path) -> None:
    """Fine-class confusion; for CIFAR-100 the 20 superclasses instead (100x100 is unreadable)."""
    if not ds.coarse_classes:
        plot_confusion(conf.tolist(), ds.classes, path, "confusion matrix (row-normalized)")
        return
    f2c = torch.zeros(ds.num_classes, dtype=torch.long)
    f2c[ds.train_y] = ds.train_coarse
    n = len(ds.coarse_classes)
    cc = torch.zeros(n, n, dtype=torch.long)
    cc.index_put_((f2c[ds.test_y], f2c[pred]), torch.ones_like(ds.test_y), accumulate=True)
    plot_confusion(cc.tolist(), ds.coarse_classes, path, f"confusion between the {n} superclasses (row-normalized)")


def _confused_pairs(conf: torch.Tensor, classes: list[str], k: int = 10) -> str:
    off = conf.clone()
    off.fill_diagonal_(0)
    n = len(classes)
    pairs = (off + off.T).triu().flatten().topk(min(k, n * n))
    rows = [[classes[i // n], classes[i % n], int(v), int(off[i // n, i % n]), int(off[i % n, i // n])]
            for v, i in zip(pairs.values.tolist(), pairs.indices.tolist())]
    return markdown_table(["class A", "class B", "confusions", "A→B", "B→A"], rows)
