"""Docstrings and comments name only files that exist: a reader who follows `grpo/rollout/engine.py` or
`environment.md` must find it in this repository."""

import ast
import importlib.util
import io
import re
import tokenize
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("common", "sandbox", "rewards", "grpo", "pipelines")
# A relative path with a folder (grpo/rollout/engine.py, tests/unit/), or any Markdown file name. A path
# inside a URL or after a placeholder (<run_dir>/recipe.yaml, runs/<name>/...) is not a repository path.
PATH = re.compile(r"(?<![\w./:<>~$-])((?:[A-Za-z_][\w.-]*/)+[\w.-]+\.(?:py|md|yaml|yml|json|toml|sh)|[\w.-]+\.md)"
                  r"(?![\w/<>-])")


def _texts(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every docstring and comment of a Python file, or of every comment of a YAML or TOML
    file."""
    source = path.read_text()
    if path.suffix in (".yaml", ".yml", ".toml"):
        return [(i, line.split("#", 1)[1]) for i, line in enumerate(source.splitlines(), 1) if "#" in line]
    texts = [(tok.start[0], tok.string) for tok in tokenize.generate_tokens(io.StringIO(source).readline)
             if tok.type == tokenize.COMMENT]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                texts.append((node.body[0].lineno, doc))
    return texts


def _exists(name: str, path: Path) -> bool:
    if name.endswith(".md") and "/" not in name:
        return any(p for p in REPO.rglob(name) if ".venv" not in p.parts and ".git" not in p.parts)
    # From the repository root, from the file's package (grpo/ for "rollout/engine.py") or its own folder.
    bases = [REPO, *[parent for parent in path.parents if REPO in parent.parents or parent == REPO]]
    if any((base / name).exists() for base in bases):
        return True
    # A file of an installed library, named from its top-level package (vllm/v1/sample/ops/...).
    top = name.split("/", 1)[0]
    spec = importlib.util.find_spec(top) if top not in PACKAGES and top.isidentifier() else None
    return bool(spec and spec.submodule_search_locations
                and any((Path(loc).parent / name).exists() for loc in spec.submodule_search_locations))


def _files() -> list[Path]:
    files = [p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))]
    return files + sorted((REPO / "recipes").rglob("*.yaml")) + [REPO / "pyproject.toml"]


def test_the_scan_reads_docstrings_and_comments_of_every_package():
    files = _files()
    assert {p.relative_to(REPO).parts[0] for p in files} >= {*PACKAGES, "recipes"}
    found = {m.group(1) for p in files for _, text in _texts(p) for m in PATH.finditer(text)}
    assert {"grpo/config.py", "pipelines/runner.py"} <= found  # the pattern does find paths


@pytest.mark.parametrize("text, names", [
    ("see grpo/rollout/engine.py and environment.md", ["grpo/rollout/engine.py", "environment.md"]),
    ("<run_dir>/recipe.yaml, runs/<name>/x.py, https://a.io/b/c.md, ~/.ray/auth.json", []),
])
def test_the_path_pattern(text, names):
    assert [m.group(1) for m in PATH.finditer(text)] == names


def test_docstrings_and_comments_name_only_files_that_exist():
    missing = [f"{p.relative_to(REPO)}:{line}: {m.group(1)}" for p in _files() for line, text in _texts(p)
               for m in PATH.finditer(text) if not _exists(m.group(1), p)]
    assert not missing, "docstrings or comments name files that do not exist:\n  " + "\n  ".join(missing)
