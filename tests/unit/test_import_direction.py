"""Imports follow the data, one way: common <- sandbox <- rewards <- grpo <- pipelines (the stages, the runner
and the `grpo` command line at the top). A lower package never imports a higher one, not even lazily inside a
function, and inside a package no modules import each other in a circle.

Read from the source with `ast`, so a violation fails here before it can become an import-time cycle."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ["common", "sandbox", "rewards", "grpo", "pipelines"]  # each may import only those before it


def modules(root: Path = ROOT) -> dict[str, Path]:
    found = {}
    for package in LAYERS:
        for path in (root / package).rglob("*.py"):
            name = ".".join(path.relative_to(root).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def import_edges(found: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the modules of ours it imports (the longest known prefix of each imported name)."""
    def ours(name: str) -> str | None:
        parts = name.split(".")
        for end in range(len(parts), 0, -1):
            if ".".join(parts[:end]) in found:
                return ".".join(parts[:end])
        return None

    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in found.items():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                module = ours(target)
                if module and module != name:
                    edges[name].add(module)
    return edges


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    layer = {package: i for i, package in enumerate(LAYERS)}
    return sorted(f"{a} imports {b}" for a, targets in edges.items() for b in targets
                  if layer[b.split(".")[0]] > layer[a.split(".")[0]])


def cycles_within_packages(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, following only imports inside a package."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w.split(".")[0] != v.split(".")[0]:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return components


def test_no_package_imports_a_higher_one():
    assert upward_imports(import_edges(modules())) == []


def test_no_modules_of_a_package_import_each_other_in_a_circle():
    assert cycles_within_packages(import_edges(modules())) == []


def test_the_checks_catch_an_upward_import_and_a_circle(tmp_path):
    """The checks themselves can fail: on a small tree with one violation of each kind."""
    files = {
        "common/__init__.py": "", "sandbox/__init__.py": "", "rewards/__init__.py": "", "grpo/__init__.py": "",
        "pipelines/__init__.py": "",
        "rewards/score.py": "def f():\n    from grpo.driver import RLLoop  # lazy, still upward\n",
        "grpo/driver.py": "import grpo.loop\n",
        "grpo/loop.py": "from grpo.driver import RLLoop\nfrom rewards.score import f  # downward: fine\n",
        "pipelines/cli.py": "import grpo.driver, rewards.score, sandbox, common\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    edges = import_edges(modules(tmp_path))
    assert upward_imports(edges) == ["rewards.score imports grpo.driver"]
    assert cycles_within_packages(edges) == [["grpo.driver", "grpo.loop"]]


@pytest.mark.parametrize("package", LAYERS)
def test_every_layer_exists(package):
    assert (ROOT / package / "__init__.py").is_file()
