"""`doctor run` on every plain script of tests/doctor_scripts/ (unmodified training scripts modelled on
public code), with the doctor's full budgets; records what it reports.

    python benchmarks/doctor_run_corpus.py [--out benchmarks/results/doctor_run_corpus.json] [NAMES...]
    python benchmarks/doctor_run_corpus.py --dir tests/doctor_heldout --out benchmarks/results/doctor_run_heldout.json

--dir tests/doctor_heldout: scripts written by a separate helper that saw neither the doctor's code nor the
corpus, audited with the doctor as it stood (no change made for them): the "scripts you have not seen".

A bug is caught when the script's EXPECT code is reported as an error (as a warning where the script's
EXPECT_SEVERITY says so: a cost, not a wrong result; no script of the corpus uses it today); a false error is any error on a
correct script (c_*); warnings on correct scripts are counted separately (a warning should mean a likely
problem). Times: wall seconds of the whole audit (script + checks) and of the script's bounded run, and
this process's CPU seconds (all threads; unlike wall time, not stretched by other jobs on the machine).
"""
from __future__ import annotations

import argparse
import ast
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "tests" / "doctor_scripts"

from cifarlab.doctor import run_script  # noqa: E402
from cifarlab.io import write_json  # noqa: E402


def names(folder: Path = SCRIPTS) -> list[str]:
    return sorted(p.stem for p in folder.glob("[bc]_*.py"))


def constants(path: Path) -> dict:
    """SOURCE, EXPECT and EXPECT_SEVERITY of a script, read without running it."""
    out = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and \
                node.targets[0].id in ("SOURCE", "EXPECT", "EXPECT_SEVERITY"):
            out[node.targets[0].id] = ast.literal_eval(node.value)
    return out


def run_entry(name: str, folder: Path = SCRIPTS) -> dict:
    path = folder / f"{name}.py"
    const = constants(path)
    t0, c0 = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as cwd:
        report = run_script(path, [], cwd=cwd, quiet=True)
    rec = {"name": name, "source": const.get("SOURCE"), "expect": const.get("EXPECT"),
           "errors": sorted(report.codes("error")), "warnings": sorted(report.codes("warning")),
           "inconclusive": sorted({f.code for f in report.findings if f.inconclusive}),
           "crashed": report.crash is not None, "time_s": round(time.perf_counter() - t0, 1),
           "cpu_s": round(time.process_time() - c0, 1),  # all threads of this process: independent of other jobs
           "script_s": float(report.audit[0].rsplit(": ", 1)[1].split(" s")[0]), "check_cpu_s": round(report.cpu_s, 1)}
    if rec["expect"]:  # at the check's severity: an error, or a warning where the script says so
        rec["severity"] = const.get("EXPECT_SEVERITY", "error")
        rec["caught"] = rec["expect"] in rec[rec["severity"] + "s"]
    return rec


def summarize(entries: list[dict]) -> dict:
    buggy = [e for e in entries if e["expect"]]
    correct = [e for e in entries if not e["expect"]]
    return {"buggy": len(buggy), "caught": sum(e["caught"] for e in buggy), "correct": len(correct),
            "false_errors": sum(len(e["errors"]) for e in correct),
            "warnings_on_correct": sum(len(e["warnings"]) for e in correct),
            "max_time_s": max(e["time_s"] for e in entries), "total_time_s": round(sum(e["time_s"] for e in entries), 1)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/doctor_run_corpus.json"))
    p.add_argument("--dir", default=str(SCRIPTS), help="folder of [bc]_*.py scripts (default tests/doctor_scripts)")
    p.add_argument("names", nargs="*", help="scripts (default: all)")
    a = p.parse_args()
    folder = Path(a.dir).resolve()
    load0 = os.getloadavg()[0]
    entries = []
    for name in a.names or names(folder):
        entries.append(run_entry(name, folder))
        print(json.dumps(entries[-1]), flush=True)
    machine = {"command": " ".join(["python", *sys.argv]), "folder": str(folder.relative_to(ROOT)), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
               "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
               "python": sys.version.split()[0], "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "load_1min_start_end": [round(load0, 2), round(os.getloadavg()[0], 2)]}
    summary = {**summarize(entries), **machine}
    print(json.dumps(summary))
    if not a.names:  # a partial run is printed, never recorded
        write_json(Path(a.out), {"summary": summary, "entries": entries})


if __name__ == "__main__":
    main()
