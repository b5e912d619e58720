"""`cifarlab report STUDY_DIR` for a tune study: optimisation history, parameter importances, the Pareto
front (Optuna's matplotlib views) and a markdown table of the top trials, written to STUDY_DIR/tune.md.
Nothing is trained; the study is read from its storage (tune.json names it)."""
from __future__ import annotations

import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ..errors import ConfigError
from ..io import read_json, write_jsonl, write_text
from ..viz import markdown_table, save_figure

TOP = 10  # rows of the top-trials table


def is_tune_study(path: Path) -> bool:
    return path.is_dir() and (path / "tune.json").is_file()


def load_tune_study(root: Path, storage: str | None = None) -> optuna.Study:
    """The study recorded in root/tune.json; `storage` replaces a URL recorded without its password."""
    info = read_json(root / "tune.json")
    url = storage or info["storage"]
    if ":***@" in url:
        raise ConfigError(f"{root / 'tune.json'}: the storage URL was recorded without its password; pass "
                          "--storage postgresql://USER:PASSWORD@HOST/DB")
    recorded = Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None
    if storage is None and recorded is not None and not recorded.is_file() and (root / "study.db").is_file():
        url = f"sqlite:///{(root / 'study.db').resolve()}"  # the folder was moved or cloned elsewhere
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=info["study"], storage=url)


def top_trials_table(study: optuna.Study, n: int = TOP) -> str:
    """Complete trials, best first (multi-objective: the Pareto front first, then by accuracy)."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    front = {t.number for t in study.best_trials} if done and len(study.directions) > 1 else set()
    done.sort(key=lambda t: (t.number not in front, -t.user_attrs.get("val_acc", 0.0)))
    keys = sorted({k for t in done for k in t.params})
    header = ["trial", "val top-1 %", "train s", *keys, *(["Pareto"] if front else [])]
    rows = [[t.number, f"{t.user_attrs['val_acc']:.2f}", f"{t.user_attrs['train_time']:.1f}",
             *(_fmt(t.params.get(k, "—")) for k in keys), *(["yes" if t.number in front else ""] if front else [])]
            for t in done[:n]]
    return markdown_table(header, rows)


def export_trials(study: optuna.Study, path: Path) -> int:
    """Every trial as one JSON line: number, state, params, objective values and what the trial recorded
    (validation top-1, training seconds, config hash, per-epoch scores, its run folder)."""
    trials = study.get_trials(deepcopy=False)
    write_jsonl(path, [{"study": study.study_name, "number": t.number, "state": t.state.name, "params": t.params,
                        "values": t.values, "user_attrs": t.user_attrs,
                        "retry_of": t.system_attrs.get("failed_trial")} for t in trials])
    return len(trials)


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _figure(plot, path: Path, **kwargs) -> bool:
    """One Optuna matplotlib view saved as PNG; False when the study cannot give it yet (too few trials)."""
    try:  # Optuna draws with pyplot: matplotlib's own backend choice (Agg without a display) is left alone
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib views experimental
            ax = plot(**kwargs)
    except (ValueError, RuntimeError, ZeroDivisionError):
        return False
    fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
    save_figure(fig, path)
    import matplotlib.pyplot as plt

    plt.close(fig)  # pyplot keeps every figure it made until closed
    return True


def _figures(study: optuna.Study, figs: Path) -> list[str]:
    from optuna.visualization import matplotlib as ovm

    multi = len(study.directions) > 1
    target = {"target": lambda t: t.values[0], "target_name": "val top-1 %"} if multi else {}
    made = []
    if _figure(ovm.plot_optimization_history, figs / "history.png", study=study, **target):
        made.append("![optimisation history](figures/history.png)")
    if _figure(ovm.plot_intermediate_values, figs / "intermediate.png", study=study) and not multi:
        made.append("![validation accuracy per epoch, pruned trials included](figures/intermediate.png)")
    if _figure(ovm.plot_param_importances, figs / "importances.png", study=study, **target):
        made.append("![parameter importances (fANOVA)](figures/importances.png)")
    if multi and _figure(ovm.plot_pareto_front, figs / "pareto.png", study=study,
                         target_names=["val top-1 %", "train s"]):
        made.append("![Pareto front: accuracy vs training time](figures/pareto.png)")
    return made


def report_tune(root: Path, storage: str | None = None, table_only: bool = False) -> str:
    """Render root/tune.md (+ figures/) from the study's storage; with table_only, return the table only."""
    study = load_tune_study(root, storage)
    table = top_trials_table(study)
    if table_only:
        return table
    export_trials(study, root / "trials.jsonl")
    states = [t.state for t in study.get_trials(deepcopy=False)]
    counts = ", ".join(f"{sum(s == st for s in states)} {st.name.lower()}" for st in TrialState
                       if any(s == st for s in states))
    md = [f"# Tune study: {study.study_name}", "",
          f"Trials: {counts}. Objective: {', '.join(d.name.lower() for d in study.directions)} "
          f"({'validation top-1, training seconds' if len(study.directions) > 1 else 'validation top-1'}); "
          "the test split is not used. Best preset: `best.yaml`.", "",
          "## Top trials", "", table, "", *_figures(study, root / "figures")]
    write_text(root / "tune.md", "\n".join(md) + "\n")
    return (root / "tune.md").read_text()
