"""Write cifarlab-note.json into a dataset folder that is a known, non-official copy.

    python scripts/note_data_copy.py DATA_ROOT        (run by `make data`)

data.py reports such a copy as "unverified: <note>" while its image arrays still match the checksums
below; the project history lives here, not in the package.
"""
from __future__ import annotations

import sys
from pathlib import Path

from cifarlab import data
from cifarlab.io import write_json

# (dataset, train SHA-256, test SHA-256) -> note. SHA-256 of the decoded (N, 3072) uint8 arrays.
KNOWN_COPIES = {
    ("cifar10", "ab0df3e66f541a31c0e719243b9edc7b0e42d844972229a04216cfb0704456dc",
     "ac91a5aa2e3be4731e61951be9d8ad850e0cb18986f1e34c19fefcec95ee1763"):
        "the shared lossless store: genuine except 98 JPEG-filled images",
}


def main(root: Path) -> None:
    for (name, train_sha, test_sha), note in KNOWN_COPIES.items():
        folder = root / data.SPECS[name].folder
        if data.missing_files(name, root) or (folder / data.NOTE_FILE).is_file():
            continue
        ds = data.load(name, root, allow_download=False)
        if ds.sha256 == (train_sha, test_sha):
            write_json(folder / data.NOTE_FILE, {"train_sha256": train_sha, "test_sha256": test_sha, "note": note})
            print(f"{folder}: noted as '{note}'")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else data.resolve_root())
