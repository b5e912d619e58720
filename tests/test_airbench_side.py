"""benchmarks/airbench_side_by_side.py, the parts that run without CUDA: cifarlab's CIFAR-10 written as
airbench's cache files, and the reading of airbench's printed results table."""
import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "airbench_side_by_side.py"


@pytest.fixture(scope="module")
def side():
    spec = importlib.util.spec_from_file_location("airbench_side_by_side", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _table(rows):
    """A results table laid out as airbench's print_columns lays it out (cells padded, '|' separated)."""
    cols = ["run   ", "epoch", "train_loss", "train_acc", "val_acc", "tta_val_acc", "total_time_seconds"]
    line = lambda cells: "".join(f"|  {c.rjust(len(h))}  " for c, h in zip(cells, cols)) + "|"
    head = line(cols)
    return "\n".join(["-" * len(head), head, "-" * len(head)] + [line(r) for r in rows])


def test_final_row_is_read_as_percent_and_seconds(side):
    text = _table([["0", "9", "2.0833", "0.9512", "0.9321", "", "2.4411"],
                   ["", "eval", "", "", "", "0.9403", "2.7034"]])
    assert side.parse_final_row(text) == {"tta_val_acc": pytest.approx(94.03), "clock_s": pytest.approx(2.7034)}


def test_output_without_an_eval_row_is_refused(side):
    with pytest.raises(ValueError, match="eval"):
        side.parse_final_row(_table([["0", "9", "2.0833", "0.9512", "0.9321", "", "2.4411"]]))


def test_cifar10_written_in_airbench_layout(side, synthetic_root, syn10, tmp_path):
    n = side.write_airbench_data(tmp_path / "cifar10", str(synthetic_root))
    train = torch.load(tmp_path / "cifar10" / "train.pt")
    test = torch.load(tmp_path / "cifar10" / "test.pt")
    assert n == len(syn10.train_y) and train["images"].dtype == torch.uint8
    assert train["images"].shape == (n, 32, 32, 3)  # NHWC, as torchvision's CIFAR10.data
    assert torch.equal(train["images"].permute(0, 3, 1, 2), syn10.train_x)
    assert torch.equal(test["labels"], syn10.test_y) and test["classes"] == list(syn10.classes)
