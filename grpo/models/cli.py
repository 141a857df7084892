"""`grpo models make` and `grpo models list`: build tiny random models from presets, see what presets exist."""

from __future__ import annotations

import argparse
import json
from typing import Any

from common.errors import UserError
from grpo.models.factory import DTYPES, MODEL_PRESETS, build_config, count_parameters, make_model
from grpo.models.gguf_import import PACKAGED_MODELS, convert_gguf, packaged_gguf


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `models` command group."""
    models = subparsers.add_parser(
        "models", help="build randomly initialised Hugging Face models from presets (no hub needed)",
        description="Build randomly initialised model directories (config.json, model.safetensors, a "
        "tokenizer trained locally with a ChatML chat template) that transformers and vLLM load.")
    commands = models.add_subparsers(dest="models_command", metavar="SUBCOMMAND")
    commands.required = True

    make = commands.add_parser(
        "make", help="write a model directory from a preset",
        description="Write a model directory from a preset: same arguments, same files.")
    make.add_argument("name", choices=list(MODEL_PRESETS) + list(PACKAGED_MODELS), metavar="NAME",
                      help=f"preset: {', '.join(MODEL_PRESETS)} (see `grpo models list`), or a packaged "
                      f"pretrained model, converted from its GGUF file: {', '.join(PACKAGED_MODELS)}")
    make.add_argument("--out", required=True, metavar="DIR", help="output directory (must be new or empty)")
    make.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    make.add_argument("--vocab-size", type=int, default=None, metavar="N",
                      help="tokenizer and embedding size (default: the preset's, 1024)")
    make.add_argument("--dtype", choices=list(DTYPES), default="float32", help="weight dtype (default float32)")
    make.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                      help="override a config field, e.g. --set num_hidden_layers=4 --set q_lora_rank=null; "
                      "VALUE is read as JSON when it parses (numbers, true/false, null, lists), else as a "
                      "string; repeatable")
    make.set_defaults(func=_make)

    gguf = commands.add_parser(
        "import", help="convert a GGUF file to a Hugging Face model directory",
        description="Convert a GGUF file (llama, mistral, qwen2, qwen3; float or Q4/Q5/Q8/K-quant tensors, "
        "dequantized to float32) to a directory with config.json, model.safetensors, the tokenizer and its "
        "chat template. Needs the gguf package (pip install 'grpo-toolkit[real-model]').")
    gguf.add_argument("file", metavar="FILE.gguf", help="the GGUF file")
    gguf.add_argument("--out", required=True, metavar="DIR", help="output directory (must be new or empty)")
    gguf.set_defaults(func=_import)

    listing = commands.add_parser("list", help="list the presets and their parameter counts",
                                  description="List the presets, their architecture and parameter count "
                                  "(with the preset's vocabulary).")
    listing.set_defaults(func=_list)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """["num_hidden_layers=4", "q_lora_rank=null"] -> {"num_hidden_layers": 4, "q_lora_rank": None}."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set {item!r}: expected KEY=VALUE")
        try:
            overrides[key] = json.loads(text)
        except json.JSONDecodeError:
            overrides[key] = text
    return overrides


def _make(args: argparse.Namespace) -> int:
    if args.name in PACKAGED_MODELS:
        return _convert(packaged_gguf(args.name), args.out)
    out = make_model(args.name, args.out, seed=args.seed, vocab_size=args.vocab_size, dtype=args.dtype,
                     overrides=parse_overrides(args.overrides))
    record = json.loads((out / "grpo_model.json").read_text())
    print(f"wrote {args.name} ({record['num_parameters']:,} parameters, vocabulary {record['vocab_size']}) "
          f"to {out}")
    return 0


def _import(args: argparse.Namespace) -> int:
    return _convert(args.file, args.out)


def _convert(gguf_file, out_dir) -> int:
    out = convert_gguf(gguf_file, out_dir)
    record = json.loads((out / "grpo_model.json").read_text())
    print(f"wrote {record['architecture']} from {gguf_file} ({record['num_parameters']:,} parameters, float32) "
          f"to {out}")
    return 0


def _list(args: argparse.Namespace) -> int:
    print(f"{'preset':<18}{'architecture':<14}{'parameters':>14}")
    for name, preset in MODEL_PRESETS.items():
        print(f"{name:<18}{preset['model_type']:<14}{count_parameters(build_config(name)):>14,}")
    for name in PACKAGED_MODELS:
        print(f"{name}  (pretrained, converted from its GGUF file)")
    return 0
