"""The bug zoo: a correct seed-style pipeline, and copies with one classic bug planted in each."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from cifarlab.cli import main
from cifarlab.config import make_config, preset_names
from cifarlab.doctor import CHECKS, diagnose, diagnose_preset

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
TRAIN_TF = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
TEST_TF = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])


class PILCifar(Dataset):
    """torchvision-style dataset: .data is (N, 32, 32, 3) uint8, items go through PIL transforms."""
    def __init__(self, x_uint8, y, transform):
        self.data = x_uint8.permute(0, 2, 3, 1).numpy()
        self.targets = y.tolist()
        self.transform = transform

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.data[i])), self.targets[i]


class SeedMLP(nn.Module):
    def __init__(self, in_features=3 * 32 * 32, final_relu=False, collapse=False):
        super().__init__()
        self.fc1 = nn.Linear(in_features, 512)
        self.bn1 = nn.BatchNorm1d(512)
        self.fc2 = nn.Linear(512, 256)
        self.bn2 = nn.BatchNorm1d(256)
        self.fc3 = nn.Linear(256, 10)
        self.drop = nn.Dropout(0.3)
        self.final_relu, self.collapse = final_relu, collapse

    def forward(self, x):
        x = x.view(x.size(0), -1)
        x = self.drop(F.relu(self.bn1(self.fc1(x))))
        x = self.bn2(self.fc2(x))
        x = self.drop(x if self.collapse else F.relu(x))
        x = self.fc3(x)
        return F.relu(x) if self.final_relu else x


class SeedCNN(nn.Module):
    def __init__(self, flat=64 * 8 * 8, sqrt_input=False):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2))
        self.fc1 = nn.Linear(flat, 512)
        self.bn = nn.BatchNorm1d(512)
        self.fc2 = nn.Linear(512, 10)
        self.sqrt_input = sqrt_input

    def forward(self, x):
        if self.sqrt_input:
            x = torch.sqrt(x)
        x = self.features(x).flatten(1)
        return self.fc2(F.relu(self.bn(self.fc1(x))))


def train_step(model, images, labels, loss_fn, optimizer):
    model.train()
    optimizer.zero_grad()
    loss = loss_fn(model(images), labels)
    loss.backward()
    optimizer.step()
    return loss


def evaluate(model, loader, loss_fn):
    model.eval()
    correct = total = 0
    loss_sum = 0.0
    with torch.no_grad():
        for images, labels in loader:
            out = model(images)
            loss_sum += loss_fn(out, labels).item() * len(labels)
            correct += (out.argmax(1) == labels).sum().item()
            total += len(labels)
    return loss_sum / total, correct / total


def no_zero_grad_step(model, images, labels, loss_fn, optimizer):
    model.train()
    loss = loss_fn(model(images), labels)  # optimizer.zero_grad() missing
    loss.backward()
    optimizer.step()
    return loss


def no_train_mode_step(model, images, labels, loss_fn, optimizer):
    optimizer.zero_grad()  # model.train() missing
    loss = loss_fn(model(images), labels)
    loss.backward()
    optimizer.step()
    return loss


def no_step(model, images, labels, loss_fn, optimizer):
    model.train()
    optimizer.zero_grad()
    loss = loss_fn(model(images), labels)
    loss.backward()  # optimizer.step() missing
    return loss


def no_eval_mode_evaluate(model, loader, loss_fn):
    correct = total = 0  # model.eval() missing
    with torch.no_grad():
        for images, labels in loader:
            correct += (model(images).argmax(1) == labels).sum().item()
            total += len(labels)
    return 0.0, correct / total


@pytest.fixture(scope="module")
def slices(c10):
    return c10.train_x[:1024], c10.train_y[:1024], c10.test_x[:512], c10.test_y[:512]


def pipeline(slices, model="mlp", **bug):
    """The correct pipeline, with at most one planted bug (keyword)."""
    xtr, ytr, xte, yte = slices
    torch.manual_seed(0)
    train_tf = bug.get("train_tf", TRAIN_TF)
    test_tf = bug.get("test_tf", TEST_TF)
    train_ds = PILCifar(xtr, ytr, train_tf)
    test_ds = PILCifar(xte, yte, test_tf)
    eval_ds = PILCifar(xtr[:512], ytr[:512], test_tf) if bug.get("eval_on_train") else test_ds
    net = bug.get("net") or (SeedMLP() if model == "mlp" else SeedCNN())
    return dict(model=net, loss_fn=bug.get("loss_fn", nn.CrossEntropyLoss()),
                optimizer=torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=5e-4),
                train_loader=DataLoader(train_ds, batch_size=64, shuffle=True),
                eval_loader=DataLoader(eval_ds, batch_size=256), num_classes=10,
                train_step=bug.get("train_step", train_step), evaluate=bug.get("evaluate", evaluate))


def big_last_layer():
    net = SeedMLP()
    with torch.no_grad():
        net.fc3.weight.mul_(60)
    return net


ZOO = {
    "input-normalization": lambda: dict(train_tf=T.Compose([T.ToTensor(), T.Normalize(MEAN, (0.01, 0.01, 0.01))])),
    "eval-augmented": lambda: dict(test_tf=TRAIN_TF),
    "shape-mismatch": lambda: dict(net=SeedMLP(in_features=1024)),
    "shape-mismatch/cnn": lambda: dict(net=SeedCNN(flat=64 * 16 * 16)),
    "activation-before-loss": lambda: dict(net=SeedMLP(final_relu=True)),
    "linear-collapse": lambda: dict(net=SeedMLP(collapse=True)),
    "loss-output-mismatch": lambda: dict(loss_fn=nn.NLLLoss()),
    "eval-on-train": lambda: dict(eval_on_train=True),
    "missing-zero-grad": lambda: dict(train_step=no_zero_grad_step),
    "train-mode": lambda: dict(train_step=no_train_mode_step),
    "eval-mode": lambda: dict(evaluate=no_eval_mode_evaluate),
    "init-loss": lambda: dict(net=big_last_layer()),
    "cannot-overfit": lambda: dict(train_step=no_step),
    "nonfinite": lambda: dict(net=SeedCNN(sqrt_input=True)),
}
WARNING_CODES = {"init-loss"}


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_correct_seed_pipeline_has_no_error(slices, model):
    report = diagnose(**pipeline(slices, model), budget_s=10)  # fit/run may end inconclusive: a warning
    assert report.ok, str(report)
    assert set(report.checks_run) == set(CHECKS)


@pytest.mark.parametrize("name", list(ZOO))
def test_planted_bug_is_flagged(slices, name):
    code = name.split("/")[0]
    # the planted bug's check (after the two that decide whether the pipeline runs); full runs of every
    # check on buggy pipelines are in test_doctor_corpus.py
    report = diagnose(**pipeline(slices, **ZOO[name]()), checks=dict.fromkeys(["shape-mismatch", "step-error", code]))
    severity = "warning" if code in WARNING_CODES else "error"
    assert code in report.codes(severity), str(report)
    finding = next(f for f in report.findings if f.code == code)
    assert finding.fix and finding.message


def test_shape_mismatch_names_the_layer(slices):
    report = diagnose(**pipeline(slices, net=SeedMLP(in_features=1024)))
    msg = next(f.message for f in report.findings if f.code == "shape-mismatch")
    assert "fc1" in msg and "1024" in msg and "3072" in msg


def test_callers_model_optimizer_and_rng_unchanged(slices):
    p = pipeline(slices, "cnn")
    p["optimizer"].zero_grad()
    p["train_step"](p["model"], *next(iter(p["train_loader"])), p["loss_fn"], p["optimizer"])
    model_before = copy.deepcopy(p["model"].state_dict())
    opt_before = copy.deepcopy(p["optimizer"].state_dict())
    rng_before = torch.get_rng_state()
    p["model"].eval()
    diagnose(**p, budget_s=2)  # every check runs; the budgeted ones need not finish for this
    assert not p["model"].training
    for k, v in model_before.items():
        assert torch.equal(v, p["model"].state_dict()[k]), k
    after = p["optimizer"].state_dict()
    assert opt_before["param_groups"] == after["param_groups"]
    for k, st in opt_before["state"].items():
        for name, t in st.items():
            assert torch.equal(torch.as_tensor(t), torch.as_tensor(after["state"][k][name]))
    assert torch.equal(rng_before, torch.get_rng_state())


def test_real_cifar100_test_duplicates_reported_as_info(c100):
    full = dict(model=SeedMLP(), loss_fn=nn.CrossEntropyLoss(), num_classes=100)
    full["model"].fc3 = nn.Linear(256, 100)
    full["optimizer"] = torch.optim.Adam(full["model"].parameters(), 1e-3)
    full["train_loader"] = DataLoader(PILCifar(c100.train_x, c100.train_y, TRAIN_TF), batch_size=64, shuffle=True)
    full["eval_loader"] = DataLoader(PILCifar(c100.test_x, c100.test_y, TEST_TF), batch_size=500)
    report = diagnose(**full, checks=["eval-on-train", "duplicates"])
    dup = [f for f in report.findings if f.code == "duplicates"]
    assert dup and dup[0].severity == "info" and dup[0].message.startswith("10 of 10000"), str(report)
    assert report.ok


@pytest.mark.parametrize("preset", preset_names())
def test_every_preset_passes_the_doctor_clean(preset, data_root):
    """cifarlab's own pipeline, with its own train step and evaluation, has no error, and no warning other
    than a budget running out (a small budget here keeps the suite fast on large presets)."""
    checks = [c for c in CHECKS if c not in ("cannot-overfit", "diverges")]  # budgeted: inconclusive at 3 s anyway
    cfg = make_config(preset)
    # the wide FastNets at 16 channels a stage, ResNet-9 (fixed widths) at batch 16: the pipeline's wiring is
    # what is checked, not width or batch size
    narrow = []
    if cfg.model.name == "fastnet":
        narrow = [f"model.widths={','.join('16' for _ in cfg.model.widths.split(','))}"]
    elif cfg.model.name == "resnet9":
        narrow = ["train.batch_size=16"]
    report = diagnose_preset(preset, narrow, data_dir=data_root, budget_s=3, checks=checks)
    assert not report.codes("error"), str(report)
    assert all(f.message.startswith("inconclusive") for f in report.findings if f.severity == "warning"), str(report)


def test_doctor_cli_on_presets_and_script(tmp_path, capsys, data_root):
    # --budget bounds every check together: the budgeted ones end as inconclusive info, never as errors
    assert main(["doctor", "--preset", "c10-mlp", "--data-dir", str(data_root), "--budget", "2"]) == 0, \
        capsys.readouterr().out
    script = tmp_path / "pipe.py"
    script.write_text(
        "import torch\nfrom torch import nn\n"
        "from cifarlab.doctor import preset_pipeline\n"
        "def pipeline():\n"
        "    p = preset_pipeline('c10-mlp')\n"
        "    p['loss_fn'] = nn.NLLLoss()\n"
        "    return p\n")
    assert main(["doctor", "--script", str(script), "--budget", "2"]) == 1
    assert "[loss-output-mismatch]" in capsys.readouterr().out


def test_optimizer_params_sees_stale_copies_partial_sets_and_storage_views(slices):
    """optimizer-params: an optimizer built on a copy of the model is an error, one missing some tensors a
    warning, and one holding 2-D views of the conv filters' storage (as Muon does) is fine."""
    p = pipeline(slices, model="cnn")
    net = p["model"]
    stale = dict(p, optimizer=torch.optim.Adam(copy.deepcopy(net).parameters(), lr=1e-3))
    assert diagnose(**stale, checks=["optimizer-params"]).codes("error") == {"optimizer-params"}
    params = list(net.parameters())
    partial = dict(p, optimizer=torch.optim.Adam(params[1:], lr=1e-3))
    assert diagnose(**partial, checks=["optimizer-params"]).codes("warning") == {"optimizer-params"}
    assert any(q.dim() == 4 for q in params)
    views = [q.detach().view(q.shape[0], -1) if q.dim() == 4 else q for q in params]  # same storage
    viewed = dict(p, optimizer=torch.optim.SGD(views, lr=0.1))
    assert not diagnose(**viewed, checks=["optimizer-params"]).findings
