"""The README's doctor example: `cifarlab doctor run --brief examples/buggy_train.py`, run as a user would
(a subprocess, the real CLI), its output recorded with the command, the machine and the script's hash.

    python benchmarks/doctor_example.py     # -> benchmarks/results/doctor_example.json

`make readme` puts the script and this report into README.md; tests/test_pages.py checks that the
committed script is the one the record was made from and that the doctor still finds the same codes.
"""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from cifarlab.bench import CpuShare
from cifarlab.io import write_text
from cifarlab.runtime import probe

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "examples/buggy_train.py"
COMMAND = ["cifarlab", "doctor", "run", "--brief", SCRIPT]
OUT = ROOT / "benchmarks/results/doctor_example.json"


def codes(report: str) -> dict[str, list[str]]:
    """severity -> codes, from the brief report's finding lines."""
    out: dict[str, list[str]] = {"error": [], "warning": [], "info": []}
    for sev, code in re.findall(r"^(error|warning|info)\s+\[([a-z0-9-]+)\]", report, flags=re.M):
        out[sev].append(code)
    return out


def main() -> int:
    share = CpuShare().start()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "cifarlab", *COMMAND[1:]], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        print(proc.stdout, proc.stderr, file=sys.stderr)
        return 2
    report = proc.stdout.rstrip("\n")
    rec = {"command": " ".join(COMMAND), "exit_code": proc.returncode, "output": report, "codes": codes(report),
           "wall_s": round(wall, 1), **share.fields(), **probe().record(), "torch": torch.__version__,
           "script_sha256": hashlib.sha256((ROOT / SCRIPT).read_bytes()).hexdigest(),
           "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "recorded_by": "python benchmarks/doctor_example.py"}
    write_text(OUT, json.dumps(rec, indent=1) + "\n")
    print(report)
    print(f"wrote {OUT.relative_to(ROOT)} ({wall:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
