"""`python -m cifarlab.doctor SCRIPT [ARGS...]`: the same as `cifarlab doctor run SCRIPT [ARGS...]`."""
from __future__ import annotations

import sys

from ..cli import main

if __name__ == "__main__":
    raise SystemExit(main(["doctor", "run", *sys.argv[1:]]))
