"""The doctor's checks for a last batch of one under batch-norm, frozen batch-norm whose statistics still move,
evaluation that builds autograd graphs, and class labels that differ between the splits — each planted in a
tiny pipeline of generated tensors (diagnose()) and, where the check reads the observed loop, in a tiny
script (`doctor run`); the correct variants stay silent."""
from __future__ import annotations

import textwrap
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from cifarlab.doctor import diagnose, run_script

PRE = ["shape-mismatch", "step-error"]


def _data(n: int, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 4, (n,), generator=g))


def _head_bn_net() -> nn.Module:
    """A conv net whose classifier has BatchNorm1d: a batch of one raises in train mode."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))


def _conv_bn_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 4))


def _pipe(model, train_loader=None, eval_loader=None, **kw) -> dict:
    return dict(model=model, loss_fn=nn.CrossEntropyLoss(),
                optimizer=torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01),
                train_loader=train_loader or DataLoader(_data(64), batch_size=16, shuffle=True),
                eval_loader=eval_loader or DataLoader(_data(32, seed=1), batch_size=16), num_classes=4, **kw)


# ---------------------------------------------------------------- bn-batch-of-one

def test_last_batch_of_one_under_batchnorm1d_is_an_error():
    report = diagnose(**_pipe(_head_bn_net(), DataLoader(_data(65), batch_size=16, shuffle=True)),
                      checks=PRE + ["bn-batch-of-one"])
    assert "bn-batch-of-one" in report.codes("error"), str(report)
    assert "Expected more than 1 value per channel" in str(report) and "65 images" in str(report)


def test_last_batch_of_one_on_feature_maps_warns_and_drop_last_is_clean():
    maps = diagnose(**_pipe(_conv_bn_net(), DataLoader(_data(65), batch_size=16)), checks=PRE + ["bn-batch-of-one"])
    assert maps.codes("warning") == {"bn-batch-of-one"} and maps.ok, str(maps)
    for loader in (DataLoader(_data(65), batch_size=16, drop_last=True), DataLoader(_data(66), batch_size=16)):
        report = diagnose(**_pipe(_head_bn_net(), loader), checks=PRE + ["bn-batch-of-one"])
        assert not report.findings, str(report)
    no_bn = nn.Sequential(nn.Flatten(), nn.Linear(192, 4))
    assert not diagnose(**_pipe(no_bn, DataLoader(_data(65), batch_size=16)), checks=PRE + ["bn-batch-of-one"]).findings


# ---------------------------------------------------------------- frozen-bn-updating and train-mode

class Finetune(nn.Module):
    """A frozen convolutional backbone (requires_grad=False, batch-norm included) and a trainable head."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(8, 4)
        for p in self.backbone.parameters():
            p.requires_grad = False

    def forward(self, x):
        return self.head(self.backbone(x))


def _frozen_bn_step(model, images, labels, loss_fn, optimizer):
    model.train()
    model.backbone.eval()  # the fix: the frozen part keeps its statistics
    optimizer.zero_grad()
    loss = loss_fn(model(images), labels)
    loss.backward()
    optimizer.step()
    return loss


def test_frozen_backbone_in_train_mode_is_an_error_and_its_eval_mode_is_not_a_train_mode_error():
    checks = PRE + ["frozen-bn-updating", "train-mode"]
    bad = diagnose(**_pipe(Finetune()), checks=checks)
    assert bad.codes("error") == {"frozen-bn-updating"} and not bad.codes("warning"), str(bad)
    assert "'backbone.1'" in str(bad)
    good = diagnose(**_pipe(Finetune(), train_step=_frozen_bn_step), checks=checks)
    assert not good.findings, str(good)  # all mode layers in eval while training: frozen on purpose
    trainable = Finetune()
    for p in trainable.backbone.parameters():
        p.requires_grad = True
    assert not diagnose(**_pipe(trainable), checks=checks).findings


# ---------------------------------------------------------------- eval-without-no-grad

def _evaluate_with_grad(model, loader, loss_fn):
    model.eval()
    correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in loader)
    return 0.0, correct / len(loader.dataset)


def test_evaluation_with_gradients_on_warns():
    bad = diagnose(**_pipe(_conv_bn_net(), evaluate=_evaluate_with_grad), checks=PRE + ["eval-without-no-grad"])
    assert bad.codes("warning") == {"eval-without-no-grad"} and bad.ok, str(bad)
    good = diagnose(**_pipe(_conv_bn_net()), checks=PRE + ["eval-without-no-grad"])
    assert not good.findings, str(good)


SCRIPT = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

g = torch.Generator().manual_seed(0)
x, y = torch.randn(160, 3, 8, 8, generator=g), torch.randint(0, 4, (160,), generator=g)
train = DataLoader(TensorDataset(x[:128], y[:128]), batch_size=16, shuffle=True)
test = DataLoader(TensorDataset(x[128:], y[128:]), batch_size=16)
backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten())
for p in backbone.parameters():
    p.requires_grad = {trainable}
model = nn.Sequential(backbone, nn.Dropout(0.2), nn.Linear(8, 4))
opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05)
for epoch in range(20):
    model.train()
    {freeze}
    for xb, yb in train:
        opt.zero_grad()
        nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()
    model.eval()
    {no_grad}
        acc = sum((model(xb).argmax(1) == yb).sum().item() for xb, yb in test)
"""


def _script(tmp_path: Path, trainable: bool, freeze: str, no_grad: str) -> Path:
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(SCRIPT).format(trainable=trainable, freeze=freeze, no_grad=no_grad))
    return path


def test_doctor_run_sees_frozen_bn_in_train_mode_and_evaluation_with_gradients(tmp_path):
    checks = PRE + ["frozen-bn-updating", "eval-without-no-grad", "train-mode"]
    bad = run_script(_script(tmp_path, False, "pass", "if True:"), [], cwd=tmp_path, quiet=True, checks=checks)
    assert bad.codes("error") == {"frozen-bn-updating"} and bad.codes("warning") == {"eval-without-no-grad"}, str(bad)
    good = run_script(_script(tmp_path, False, "backbone.eval()", "with torch.no_grad():"), [], cwd=tmp_path,
                      quiet=True, checks=checks)
    assert not good.findings, str(good)


# ---------------------------------------------------------------- label-mapping

class Named(Dataset):
    """Generated images of named classes; each split maps the names it contains to labels on its own."""

    def __init__(self, names: list[str], seed: int, class_to_idx: dict | None = None):
        g = torch.Generator().manual_seed(seed)
        self.names = names
        self.data = torch.randn(len(names), 3, 8, 8, generator=g)
        self.class_to_idx = class_to_idx or {c: i for i, c in enumerate(sorted(set(names)))}
        self.classes = sorted(self.class_to_idx, key=self.class_to_idx.get)

    def __len__(self):
        return len(self.names)

    def __getitem__(self, i):
        return self.data[i], self.class_to_idx[self.names[i]]


def test_splits_that_label_a_class_differently_are_an_error():
    train_names = ["ant", "bee", "cat", "dog"] * 16
    train = Named(train_names, 0)
    missing_bee = Named(["ant", "cat", "dog"] * 8, 1)  # per-split mapping: cat 2 -> 1, dog 3 -> 2
    bad = diagnose(**_pipe(_conv_bn_net(), DataLoader(train, batch_size=16),
                           DataLoader(Subset(missing_bee, range(20)), batch_size=8)), checks=["label-mapping"])
    assert "label-mapping" in bad.codes("error"), str(bad)
    assert "'cat' is 2 in training, 1 in evaluation" in str(bad) and "bee" in str(bad)
    shared = Named(["ant", "cat", "dog"] * 8, 1, class_to_idx=train.class_to_idx)
    good = diagnose(**_pipe(_conv_bn_net(), DataLoader(train, batch_size=16), DataLoader(shared, batch_size=8)),
                    checks=["label-mapping"])
    assert not good.findings, str(good)
