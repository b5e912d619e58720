"""Structure rules: the import graph of src/cifarlab is acyclic (lazy imports inside functions
included), and the light commands do not import torch."""
import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "cifarlab"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """cifarlab modules imported anywhere in `path` (top level or inside functions)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [base] + [f"{base}.{a.name}" for a in node.names]  # `from . import data`
        else:
            continue
        for t in targets:
            while t and t not in modules:  # a name inside a module -> the module
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def import_graph() -> dict[str, set[str]]:
    files = [p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts]
    modules = {module_name(p) for p in files}
    return {module_name(p): imports_of(p, modules) for p in files}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_import_graph_is_acyclic_including_lazy_imports():
    graph = import_graph()
    assert {"cifarlab.engine", "cifarlab.pipeline", "cifarlab.study.report"} <= set(graph)
    # the parser sees function-level imports: the evaluation module imports the pipeline
    assert "cifarlab.pipeline" in graph["cifarlab.evaluate"]
    # the package __init__ is excluded from the cycle check as a target: it only re-exports lazily
    without_init = {m: {d for d in deps if d != "cifarlab"} for m, deps in graph.items()}
    assert find_cycle(without_init) is None, f"import cycle: {' -> '.join(find_cycle(without_init))}"


def test_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_light_commands_do_not_import_torch():
    code = ("import sys\nfrom cifarlab.cli import main\nmain(['presets'])\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch imported'\nprint('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr


# every function stays within a screen, the training loop's included (DESIGN.md)
MAX_LINES = 60


def test_no_function_over_60_lines():
    long = []
    for path in PKG.rglob("*.py"):
        mod = module_name(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_LINES:
                    long.append(f"{mod}.{node.name}: {n} lines")
    assert not long, long


def module_runs(stack: list[str]) -> dict[str, int]:
    """module -> how many separate times it is on a call stack (outermost first): engine -> data -> engine
    enters engine twice."""
    runs: dict[str, int] = {}
    for i, m in enumerate(stack):
        if i == 0 or stack[i - 1] != m:
            runs[m] = runs.get(m, 0) + 1
    return runs


def test_module_runs_counts_reentries():
    assert module_runs(["engine", "data", "engine", "io"]) == {"engine": 2, "data": 1, "io": 1}
    assert module_runs(["a", "a", "b", "a", "b", "a"])["a"] == 3


def test_a_training_run_enters_each_module_at_most_twice(data_root, tmp_path):
    """Followed call by call (every distinct call stack of a short real run with checkpoints, validation,
    selection and the test evaluation), no cifarlab module is entered more than twice: the engine calls out
    at fixed points, nothing calls back and forth."""
    from cifarlab.config import make_config
    from cifarlab.engine import train

    cfg = make_config("c100-micro", {"data.train_subset": 256, "data.val_size": 128, "train.epochs": 2,
                                     "train.batch_size": 64, "train.eval_batch_size": 128,
                                     "train.checkpoint_every_steps": 3,
                                     "data.test_subset": 500})
    worst: dict[str, tuple[int, tuple[str, ...]]] = {}
    seen: set = set()

    def profile(frame, event, arg):  # the global trace function: called on each new Python frame
        if not frame.f_globals.get("__name__", "").startswith("cifarlab"):
            return None
        key, f, codes = [], frame, []
        while f is not None:
            name = f.f_globals.get("__name__", "")
            if name.startswith("cifarlab"):
                key.append(name.removeprefix("cifarlab."))
                codes.append(f.f_code)
            f = f.f_back
        sig = tuple(codes)
        if sig in seen:
            return None
        seen.add(sig)
        stack = key[::-1]
        for m, n in module_runs(stack).items():
            if n > worst.get(m, (0,))[0]:
                worst[m] = (n, tuple(stack))
        return None  # no line events

    sys.settrace(profile)
    try:
        train(cfg, out=tmp_path / "run", data_dir=data_root, quiet=True)
    finally:
        sys.settrace(None)
    over = {m: v for m, v in worst.items() if v[0] > 2}
    assert not over, "\n".join(f"{m} entered {n}x: {' > '.join(s)}" for m, (n, s) in over.items())
    assert {"engine", "data", "io", "runfolder"} <= set(worst)  # the trace did follow the run
