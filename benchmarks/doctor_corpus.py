"""Run the doctor on every pipeline of the real-code corpus (tests/doctor_corpus/) and record the result.

    python benchmarks/doctor_corpus.py [--out benchmarks/results/doctor_corpus.json]

A bug is caught when its diagnosed code is reported as an error; a false alarm is any error on a
known-correct pipeline. Times are this process's CPU seconds (what the doctor's budgets count) and wall
seconds; `contended` is true when the 1-minute load average exceeded the core count at the start or the
end (other jobs on the machine stretch the wall time, not the CPU time).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import doctor_corpus as corpus  # noqa: E402
from doctor_corpus.common import Data  # noqa: E402

from cifarlab import data  # noqa: E402
from cifarlab.doctor import diagnose  # noqa: E402
from cifarlab.io import write_json  # noqa: E402
from cifarlab.runlog import env_info  # noqa: E402
from cifarlab.runtime import cpu_name  # noqa: E402


def _busy() -> bool:
    return os.getloadavg()[0] > (os.cpu_count() or 1)


def run_entry(name: str, d: Data) -> dict:
    m = corpus.load(name)
    torch.manual_seed(0)
    report = diagnose(**m.pipeline(d))
    errors = sorted(report.codes("error"))
    rec = {"name": name, "source": m.SOURCE, "bug": m.BUG, "expect": m.EXPECT, "errors": errors,
           "warnings": sorted(report.codes("warning")), "cpu_s": round(report.cpu_s, 1),
           "time_s": round(report.time_s, 1)}
    if m.EXPECT:
        rec["caught"] = m.EXPECT in errors
        rec["known_miss"] = getattr(m, "KNOWN_MISS", None)
    else:
        rec["false_alarms"] = errors
    return rec


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/doctor_corpus.json"))
    p.add_argument("names", nargs="*", help="corpus entries (default: all)")
    a = p.parse_args()
    d = Data(data.load("cifar10", allow_download=False), data.load("cifar100", allow_download=False))
    contended = _busy()
    entries = []
    for name in a.names or corpus.NAMES:
        entries.append(run_entry(name, d))
        print(json.dumps(entries[-1]), flush=True)
    contended = contended or _busy()
    buggy = [e for e in entries if e["expect"]]
    correct = [e for e in entries if not e["expect"]]
    summary = {"buggy": len(buggy), "caught": sum(e["caught"] for e in buggy), "correct": len(correct),
               "false_alarms": sum(len(e["false_alarms"]) for e in correct),
               "correct_with_false_alarm": sum(bool(e["false_alarms"]) for e in correct),
               "max_cpu_s": max(e["cpu_s"] for e in entries), "max_time_s": max(e["time_s"] for e in entries),
               "total_cpu_s": round(sum(e["cpu_s"] for e in entries), 1), "contended": contended,
               **env_info(f"{cpu_name()} ({torch.get_num_threads()} threads)", "fp32")}
    print(json.dumps(summary))
    if not a.names:  # a partial run is printed, never recorded
        write_json(Path(a.out), {"summary": summary, "entries": entries})


if __name__ == "__main__":
    main()
