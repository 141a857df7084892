"""Loading a recipe: YAML -> dotted overrides -> validated `Recipe`, with errors a user can act on.

Every failure becomes a `UserError` whose message names the file, the YAML path of the bad value
(`stages[1] (grpo).algorithm.loss_type`) and, where there is a fixed set, the valid choices.
"""

from __future__ import annotations

import difflib
import re
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from grpo.config import Recipe
from common.errors import UserError


def load_recipe(path: str | Path, overrides: list[str] = ()) -> Recipe:
    """Read, override and validate a recipe. Relative paths inside it are resolved later, against its folder."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"recipe file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a recipe must be a mapping of keys (name, model, stages, ...), got {type(raw).__name__}")
    for item in overrides:
        apply_override(raw, item, source=path)
    recipe = validate_recipe(raw, source=path, base_dir=path.parent)
    check_paths(recipe, path.parent, source=path)
    return recipe


def looks_like_hub_id(value: str) -> bool:
    """'Qwen/Qwen2.5-Math-1.5B': a Hugging Face hub id, loaded by transformers and vLLM where a hub is reachable."""
    return re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", value) is not None


def check_paths(recipe: Recipe, base_dir: Path, source: str | Path = "<recipe>") -> None:
    """Model directories named in the recipe must exist; relative ones resolve against the recipe's folder."""
    if recipe.model.gguf is not None:
        gguf = Path(recipe.model.gguf) if Path(recipe.model.gguf).is_absolute() else base_dir / recipe.model.gguf
        if not gguf.is_file():
            raise UserError(f"{source}: model.gguf: no GGUF file at {gguf}")
    named = [("model.path", recipe.model.path)]
    for i, stage in enumerate(recipe.stages):
        refs = [stage.model] + list(getattr(stage, "models", []))
        named += [(f"stages[{i}] ({stage.name}).model", ref) for ref in refs if ref and not ref.startswith("@")]
    for where, value in named:
        if value is None or (where == "model.path" and looks_like_hub_id(value) and not (base_dir / value).exists()):
            continue
        folder = Path(value) if Path(value).is_absolute() else base_dir / value
        if not (folder / "config.json").is_file():
            raise UserError(f"{source}: {where}: no Hugging Face model directory (config.json) at {folder}")


def validate_recipe(raw: dict, source: str | Path = "<recipe>", base_dir: Path | None = None) -> Recipe:
    """Validate a raw recipe mapping; relative data files are checked against `base_dir` (the recipe's folder)."""
    try:
        return Recipe.model_validate(raw, context={"base_dir": base_dir} if base_dir else None)
    except ValidationError as exc:
        lines = [format_error(err, raw) for err in exc.errors()]
        noun = "error" if len(lines) == 1 else f"{len(lines)} errors"
        raise UserError(f"{source}: {noun} in recipe:\n  " + "\n  ".join(lines)) from None


# ----------------------------------------------------------------------------------------------- overrides

def apply_override(raw: dict, item: str, source: str | Path = "<recipe>") -> None:
    """Apply one `dotted.key=value` override in place. The value is parsed as YAML (`1e-4`, `true`, `[a, b]`).

    A list is indexed by position (`stages.1.steps=5`) or, for stages, by name (`stages.grpo.steps=5`).
    The key must exist in the recipe or be a field of the schema, so a typo is caught here too.
    """
    if "=" not in item:
        raise UserError(f"override '{item}' must look like dotted.key=value (e.g. stages.grpo.steps=5)")
    key, _, text = item.partition("=")
    parts = [p for p in key.strip().split(".")]
    if not key.strip() or any(not p for p in parts):
        raise UserError(f"override '{item}': empty key segment in '{key}'")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as exc:
        raise UserError(f"override '{item}': value is not valid YAML: {exc}") from None

    node: Any = raw
    walked: list[str] = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            index = _list_index(node, part, walked, item)
            if last:
                node[index] = value
                return
            node = node[index]
        elif isinstance(node, dict):
            if last:
                node[part] = value
                return
            if part not in node or node[part] is None:
                node[part] = {}
            node = node[part]
        else:
            where = ".".join(walked) or "<root>"
            raise UserError(f"override '{item}': '{where}' is a value ({node!r}), not a section with keys")
        walked.append(part)


def _list_index(node: list, part: str, walked: list[str], item: str) -> int:
    if part.lstrip("-").isdigit():
        index = int(part)
        if not -len(node) <= index < len(node):
            raise UserError(f"override '{item}': index {index} is out of range for '{'.'.join(walked)}' ({len(node)} items)")
        return index
    names = [entry.get("name") for entry in node if isinstance(entry, dict)]
    if part in names:
        return names.index(part)
    raise UserError(
        f"override '{item}': no item named '{part}' in '{'.'.join(walked)}'; "
        f"use an index 0..{len(node) - 1} or one of: {', '.join(str(n) for n in names)}"
    )


# ----------------------------------------------------------------------------------------------- messages

def format_error(err: dict, raw: dict) -> str:
    """One line for one pydantic error: YAML path, what is wrong, and the valid choices when there are some."""
    loc = list(err["loc"])
    where = _yaml_path(loc, raw)
    kind = err["type"]
    given = err.get("input")
    if kind == "extra_forbidden":
        fields = _fields_at(loc[:-1], raw)
        hint = _did_you_mean(str(loc[-1]), fields)
        return f"{where}: unknown key{hint}; valid keys here: {', '.join(fields)}"
    if kind == "missing":
        return f"{where}: required key is missing"
    if kind == "literal_error":
        return f"{where}: {given!r} is not a valid choice; choose one of: {err['ctx']['expected']}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tags = err.get("ctx", {}).get("expected_tags", "")
        return f"{where}: stage `type` {given.get('type') if isinstance(given, dict) else given!r} is not known; choose one of: {tags}"
    message = err["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"{where}: {message} (got {given!r})"
    return f"{where}: {message}"


def _yaml_path(loc: list, raw: dict) -> str:
    """('stages', 1, 'rl', 'algorithm', 'beta') -> 'stages[1] (grpo).algorithm.beta'.

    pydantic puts the discriminator tag of a tagged union into the location; it is not a YAML key, so drop it.
    """
    out = ""
    node: Any = raw
    skip_tag = False
    for part in loc:
        if skip_tag:
            skip_tag = False
            continue
        if isinstance(part, int):
            name = node[part].get("name") if isinstance(node, list) and isinstance(node[part], dict) else None
            out += f"[{part}]" + (f" ({name})" if name else "")
            node = node[part] if isinstance(node, list) else None
            skip_tag = out.startswith("stages") and out.count("[") == 1  # stages[i] is followed by its tag
            continue
        out += ("." if out else "") + str(part)
        node = node.get(part) if isinstance(node, dict) else None
    return out or "<recipe>"


def _fields_at(loc: list, raw: dict) -> list[str]:
    """The valid keys of the schema section at `loc` (discriminator tags and list indices followed)."""
    model: Any = Recipe
    node: Any = raw
    for part in loc:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) else None
            continue
        model = _field_model(model, part, node)
        node = node.get(part) if isinstance(node, dict) else None
        if model is None:
            return []
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def _field_model(model: Any, part: str, node: Any) -> Any:
    from grpo.config import Stage  # noqa: F401  (imported for the union's members)

    if isinstance(model, list):  # a union of stage models: `part` is the discriminator tag
        for member in model:
            if member.model_fields["type"].annotation == typing.Literal[part]:
                return member
        return None
    if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
        return None
    return _unwrap(model.model_fields[part].annotation)


def _unwrap(annotation: Any) -> Any:
    """Optional[X] / list[X] / Annotated[Union[...]] -> X, or the list of union members."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _unwrap(args[0])
    if origin in (list, tuple):
        return _unwrap(args[0])
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if len(models) == 1:
            return models[0]
        return models or None
    return annotation


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
