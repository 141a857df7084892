"""README.md's Layout section matches the tree: every path it names exists, and it names every module of the
five packages (common, sandbox, rewards, grpo, pipelines; __init__.py aside).

In the section's block a line that starts with a folder (`grpo/`, or indented, `  rollout/` under it) sets
where the names on it and on its continuation lines live; a name that is not there is looked up from the root."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("common", "sandbox", "rewards", "grpo", "pipelines")
NAME = re.compile(r"(?<![\w./`-])((?:[\w-]+/)*[\w-]+(?:\.(?:py|sh|toml)|/))(?![\w/])")


def layout_block(readme: str) -> list[str]:
    section = readme.split("\n## Layout\n", 1)[1]
    return section.split("```\n", 2)[1].splitlines()


def named_paths(lines: list[str]) -> set[str]:
    """Each name in the block, as a path from the root (folders end with /)."""
    folders: list[tuple[int, str]] = []  # (indent, path) of the enclosing folder lines
    found = set()
    for line in lines:
        indent = len(line) - len(line.lstrip())
        first = line.split()[0] if line.split() else ""
        is_folder_line = first.endswith("/") and indent < 4
        if is_folder_line:
            while folders and folders[-1][0] >= indent:
                folders.pop()
            folders.append((indent, (folders[-1][1] if folders else "") + first))
        here = folders[-1][1] if folders else ""
        for name in NAME.findall(line):
            if is_folder_line and name == first:
                found.add(here)
            elif (ROOT / here / name).exists():
                found.add(here + name)
            else:
                found.add(name)  # from the root (or missing: reported below)
    return found


def test_the_layout_names_only_what_exists_and_every_package_module():
    paths = named_paths(layout_block((ROOT / "README.md").read_text()))
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"README.md's layout names paths that do not exist: {missing}"
    modules = {str(path.relative_to(ROOT)) for package in PACKAGES for path in (ROOT / package).rglob("*.py")
               if path.name != "__init__.py"}
    unnamed = sorted(modules - paths)
    assert not unnamed, f"README.md's layout does not name these modules: {unnamed}"


def test_the_layout_parser_resolves_names_under_their_folder():
    lines = ["grpo/      the core: driver.py", "           recipe.py,", "  rollout/ engine.py (grpo/__init__.py)",
             "tests/     unit/"]
    assert named_paths(lines) == {"grpo/", "grpo/driver.py", "grpo/recipe.py", "grpo/rollout/",
                                  "grpo/rollout/engine.py", "grpo/__init__.py", "tests/", "tests/unit/"}
