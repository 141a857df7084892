"""`grpo explain PATH [RECIPE]`: what a recipe option is, read from the schema (grpo/config.py).

A path is dotted from the top of a recipe (`seed`, `stages.rl.rollout.temperature`: a stage is named by its
type, or in a given recipe also by its name or index), or starts at a stage's own key (`learner.precision`
is looked up in every stage type that has a `learner`). A field prints its type and bounds, default, choices
and description; a section prints its description and its keys. An unknown key is a UserError that lists
the valid keys at that level.
"""

from __future__ import annotations

import difflib
import json
import typing
from pathlib import Path
from typing import Any

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from common.errors import UserError
from grpo.config import Recipe, RegistryChoice, Stage

STAGE_TYPES: dict[str, type[BaseModel]] = {
    typing.get_args(model.model_fields["type"].annotation)[0]: model
    for model in typing.get_args(typing.get_args(Stage)[0])
}
_NO_VALUE = object()  # no recipe given, or the recipe does not hold the key


def explain(path: str, recipe: str | Path | None = None) -> str:
    """The text `grpo explain` prints for `path` (see the module docstring); with `recipe`, also the value
    that recipe gives the option."""
    from grpo.recipe import load_recipe  # grpo.recipe imports the schema too; only this function needs it

    parts = [p for p in path.strip().split(".") if p]
    if not parts:
        raise UserError(f"explain: give a dotted path, e.g. stages.rl.rollout.temperature; top-level keys: "
                        f"{', '.join(Recipe.model_fields)}")
    raw = load_recipe(recipe).model_dump(mode="json") if recipe is not None else _NO_VALUE
    if parts[0] in Recipe.model_fields:
        return _resolve(Recipe, parts, "", raw)
    if parts[0] in STAGE_TYPES:
        return _resolve(Recipe, ["stages", *parts], "", raw)
    owners = [tag for tag, model in STAGE_TYPES.items() if parts[0] in model.model_fields]
    if not owners:
        stage_keys = sorted({key for model in STAGE_TYPES.values() for key in model.model_fields})
        raise UserError(f"explain: unknown key '{parts[0]}' at the top of the recipe; valid keys: "
                        f"{', '.join(Recipe.model_fields)}; or a stage type ({', '.join(STAGE_TYPES)}); or a "
                        f"key of a stage: {', '.join(stage_keys)}")
    texts: dict[str, list[str]] = {}  # the same option in several stage types is printed once
    for tag in owners:
        text = _resolve(Recipe, ["stages", tag, *parts], "", _NO_VALUE)
        texts.setdefault(text.replace(f"stages.{tag}.", "stages.<type>.", 1), []).append(tag)
    return "\n\n".join(text.replace("stages.<type>.", f"stages.{'|'.join(tags)}.", 1) if len(tags) > 1
                       else text.replace("stages.<type>.", f"stages.{tags[0]}.", 1)
                       for text, tags in texts.items())


def _resolve(model: type[BaseModel], parts: list[str], where: str, raw: Any) -> str:
    key, rest = parts[0], parts[1:]
    if key not in model.model_fields:
        close = difflib.get_close_matches(key, list(model.model_fields), n=1)
        raise UserError(f"explain: unknown key '{key}' at {where or 'the top of the recipe'}"
                        + (f" (did you mean '{close[0]}'?)" if close else "")
                        + f"; valid keys: {', '.join(model.model_fields)}")
    field = model.model_fields[key]
    here = f"{where}.{key}" if where else key
    value = raw.get(key, _NO_VALUE) if isinstance(raw, dict) else _NO_VALUE
    if model is Recipe and key == "stages":
        return _stages(field, rest, here, value)
    inner = _section(field.annotation)
    if rest and isinstance(value, list) and rest[0].isdigit():  # a list of sections: an index picks one
        index = int(rest[0])
        value, rest = (value[index] if index < len(value) else _NO_VALUE), rest[1:]
        here = f"{here}.{index}"
    if not rest:
        return _describe(here, field, inner, value)
    if inner is None:
        raise UserError(f"explain: {here} is a value ({_type_text(field.annotation)}), with no keys below it; "
                        f"'{'.'.join(rest)}' does not exist")
    if rest[0].isdigit():
        rest = rest[1:]
        if not rest:
            return _describe(here, field, inner, _NO_VALUE)
    return _resolve(inner, rest, here, value)


def _stages(field: FieldInfo, rest: list[str], here: str, stages: Any) -> str:
    if not rest:
        return _describe(here, field, None, _NO_VALUE, keys=list(STAGE_TYPES), keys_label="stage types")
    pick, rest = rest[0], rest[1:]
    chosen = None
    if isinstance(stages, list):
        chosen = next((s for s in stages if s.get("name") == pick), None)
        if chosen is None and pick.isdigit() and int(pick) < len(stages):
            chosen = stages[int(pick)]
    if chosen is not None:
        model, value = STAGE_TYPES[chosen["type"]], chosen
    elif pick in STAGE_TYPES:
        model, value = STAGE_TYPES[pick], _NO_VALUE
    else:
        names = ([f"{i} or {s['name']} ({s['type']})" for i, s in enumerate(stages)]
                 if isinstance(stages, list) else [])
        raise UserError(f"explain: unknown stage '{pick}' at {here}; valid: a stage type ({', '.join(STAGE_TYPES)})"
                        + (f", or a stage of the recipe: {', '.join(names)}" if names else ""))
    if not rest:
        return _describe(f"{here}.{pick}", None, model, value)
    return _resolve(model, rest, f"{here}.{pick}", value)


def _describe(here: str, field: FieldInfo | None, section: type[BaseModel] | None, value: Any, *,
              keys: list[str] | None = None, keys_label: str = "keys") -> str:
    lines = [here + (f"  (section {section.__name__})" if section is not None else "")]
    if field is not None:
        bounds = _bounds(field)
        lines.append(f"  type: {_type_text(field.annotation)}" + (f" ({bounds})" if bounds else ""))
        lines.append(f"  default: {_default(field)}")
        if choices := _choices(field):
            lines.append(f"  choices: {', '.join(_show(c) for c in choices)}")
    if value is not _NO_VALUE:
        lines.append(f"  value in the recipe: {_show(value)}")
    if field is not None and field.description:
        lines.append(f"  description: {field.description}")
    if section is not None:
        if section.__doc__ and section.__doc__ is not BaseModel.__doc__:
            lines.append(f"  about the section: {' '.join(section.__doc__.split())}")
        keys = list(section.model_fields)
    if keys:
        lines.append(f"  {keys_label}: {', '.join(keys)}")
    return "\n".join(lines)


def _section(annotation: Any) -> type[BaseModel] | None:
    """The schema section a field holds (also inside Optional[...] and list[...]), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        if (found := _section(arg)) is not None:
            return found
    return None


def _type_text(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_text(args[0])
    if origin is typing.Literal:
        return "choice"
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return " or ".join(_type_text(a) for a in args)
    if origin in (list, tuple):
        return f"list of {_type_text(args[0])}" if args else "list"
    if origin is dict or annotation is dict:
        return "mapping"
    if annotation is type(None):
        return "null"
    if annotation is Any:
        return "any"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"section ({annotation.__name__})"
    return getattr(annotation, "__name__", str(annotation))


def _bounds(field: FieldInfo) -> str:
    words = {annotated_types.Ge: (">=", "ge"), annotated_types.Gt: (">", "gt"), annotated_types.Le: ("<=", "le"),
             annotated_types.Lt: ("<", "lt")}
    out = []
    for item in field.metadata:
        if type(item) in words:
            sign, attr = words[type(item)]
            out.append(f"{sign} {getattr(item, attr)}")
        elif isinstance(item, annotated_types.MinLen):
            out.append(f"at least {item.min_length} item{'s' if item.min_length != 1 else ''}")
    return ", ".join(out)


def _choices(field: FieldInfo) -> list:
    for item in field.metadata:
        if isinstance(item, RegistryChoice):
            return list(item.registry)
    return _literals(field.annotation)


def _literals(annotation: Any) -> list:
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    return [value for arg in typing.get_args(annotation) for value in _literals(arg)]


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    return _show(value.model_dump(mode="json") if isinstance(value, BaseModel) else value)


def _show(value: Any) -> str:
    """A value as a recipe writes it: null, true, 1e-05, float32, [a, b], {key: value}."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return json.dumps(value)
