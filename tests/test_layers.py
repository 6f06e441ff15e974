"""The layout's rules: the torch boundary, the engine below judging, and no import cycles.

Imports are read from the source (every ``import`` at any depth, lazy ones too), so a
rule that a code path only rarely reaches is checked all the same; a subprocess with
torch, transformers, peft and ray made unimportable then imports every torch-free
module and runs every page for real.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from landscape_core import sweep
from landscape_core.spec.config import SweepSpec
from landscape_core.store.runs import Store

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "transformers", "peft", "ray", "accelerate", "bitsandbytes", "safetensors")
# Modules that must never reach torch, not even lazily.
TORCH_FREE = (
    "app",
    "pages",
    "landscape_core.errors",
    "landscape_core.hashing",
    "landscape_core.files",
    "landscape_core.basin",
    "landscape_core.supervisor",
    "landscape_core.submit",
    "landscape_core.spec",
    "landscape_core.plan",
    "landscape_core.store",
    "landscape_core.readers",
    "landscape_core.api",
    "landscape_core.defence.spec",
    "landscape_core.defence.report",
    "landscape_core.risk.spec",
    "landscape_core.risk.report",
    "landscape_core.risk.validation",
    "landscape_core.recipes.paper_risk_validation",
    "landscape_core.judging.verdict",
    "landscape_core.judging.keyword",
    "landscape_core.judging.patterns",
    "landscape_core.judging.refusal_v2",
    "landscape_core.judging.coherence",
    "landscape_core.judging.guard_formats",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    files = [*ROOT.glob("landscape_core/**/*.py"), *ROOT.glob("pages/*.py"), ROOT / "app.py"]
    return {_module_name(p): p for p in files}


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (``from a import b`` counts a and a.b)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _graph() -> dict[str, set[str]]:
    """Edges between the project's own modules (an import of a.b.c names module a.b.c)."""
    sources = _sources()
    return {name: {m for m in _imports(p) if m in sources} for name, p in sources.items()}


def _torch_free(name: str) -> bool:
    return any(name == t or name.startswith(t + ".") for t in TORCH_FREE)


def test_torch_free_modules_import_nothing_heavy_and_only_torch_free_modules():
    sources = _sources()
    problems = []
    for name, path in sources.items():
        if not _torch_free(name):
            continue
        for imported in sorted(_imports(path)):
            top = imported.split(".")[0]
            if top in HEAVY:
                problems.append(f"{name} imports {imported}")
            elif imported in sources and not _torch_free(imported):
                problems.append(f"{name} imports {imported}, which may load torch")
    assert not problems, "\n".join(problems)


def test_the_rule_would_catch_a_lazy_import(tmp_path):
    """The check reads imports inside functions too, so it can fail."""
    path = tmp_path / "x.py"
    path.write_text("def f():\n    import torch\n    from landscape_core.engine import models\n")
    assert {"torch", "landscape_core.engine", "landscape_core.engine.models"} <= _imports(path)


def test_engine_never_imports_judging():
    graph = _graph()
    bad = [
        f"{name} -> {target}"
        for name, targets in graph.items()
        if name.startswith("landscape_core.engine")
        for target in targets
        if target.startswith("landscape_core.judging")
    ]
    assert not bad, bad


def test_no_import_cycles():
    graph = _graph()
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> None:
        if node in path:
            raise AssertionError(" -> ".join([*path[path.index(node) :], node]))
        if node in done:
            return
        path.append(node)
        for target in sorted(graph[node]):
            visit(target)
        path.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)


def _package(module: str) -> str:
    """The package a module belongs to: ``landscape_core.X`` for anything under it."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "landscape_core" and len(parts) > 1 else parts[0]


def _package_graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, targets in _graph().items():
        for target in targets:
            if _package(name) != _package(target):
                edges.setdefault(_package(name), set()).add(_package(target))
    return edges


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path (first node repeated at the end), or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        path.append(node)
        for target in sorted(graph.get(node, ())):
            found = visit(target)
            if found:
                return found
        path.pop()
        done.add(node)
        return None

    return next((c for c in map(visit, sorted(graph)) if c), None)


def test_no_import_cycles_between_packages():
    """A feature's folder depends on the layers below it, never the other way round."""
    cycle = _cycle(_package_graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_package_rule_would_catch_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


VERBS = ("landscape_core.sweep", "landscape_core.worker", "landscape_core.defence.defend",
         "landscape_core.risk.preflight", "landscape_core.rescore")  # fmt: skip


def test_the_verbs_never_import_readers():
    """Writers share the basin maths with the readers; they never read through them."""
    graph = _graph()
    bad = [f"{v} -> {t}" for v in VERBS for t in graph[v] if t.startswith("landscape_core.readers")]
    assert not bad, bad


BLOCKED_RUN = """
import importlib, importlib.abc, json, os, sys


class Blocked(importlib.abc.MetaPathFinder):
    # `import torch` raises ImportError, and "torch" never enters sys.modules
    # (libraries such as scipy probe sys.modules for torch arrays)

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {heavy!r}:
            raise ImportError(f"{{name}} is blocked in this test")
        return None


sys.meta_path.insert(0, Blocked())
modules = json.loads(sys.argv[1])
for name in modules:
    importlib.import_module(name)
from streamlit.testing.v1 import AppTest
errors = {{}}
for page in sorted(os.listdir("pages")):
    if page.endswith("_page.py"):
        at = AppTest.from_file(os.path.join("pages", page), default_timeout=60)
        at.session_state["run_id"] = os.environ["RUN_ID"]
        at.run()
        if at.exception:
            errors[page] = [e.message for e in at.exception]
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r} and sys.modules[m])
print(json.dumps({{"errors": errors, "loaded": loaded}}))
"""


@pytest.fixture(scope="module")
def swept_store(tmp_path_factory, tiny_model_dir):
    """A store with one finished run of the tiny model, swept in this process."""
    store = Store.open(tmp_path_factory.mktemp("layers-store"))
    spec = SweepSpec.from_dict(
        {
            "model": {"kind": "local", "path": str(tiny_model_dir)},
            "prompts": {"source": "advbench", "limit": 2},
            "grid": [{"num": 3}],
            "generation": {"max_new_tokens": 3},
        }
    )
    return store, sweep.run(spec, store).run_id


def test_torch_free_modules_and_every_page_run_with_torch_unimportable(swept_store):
    store, run_id = swept_store
    modules = sorted(n for n in _sources() if _torch_free(n) and n.startswith("landscape_core"))
    env = {"LANDSCAPE_STORE": str(store.root), "RUN_ID": run_id, "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", BLOCKED_RUN.format(heavy=HEAVY), json.dumps(modules)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["errors"] == {}
    assert report["loaded"] == []
    assert len(modules) > 15  # the check really imported the layers
