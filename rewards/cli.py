"""`grpo rewards score` (score a JSONL file of completions), `grpo rewards list`, `grpo rewards train-rm`.

Scoring a file before training shows what a reward will do with real outputs: one JSON line per input
row with the total, each component and each reason, and a summary (means, reason counts, errors) on
stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

from common.errors import UserError
from common.jsonl import read_json_objects
from rewards.compose import ComposedRewards, RewardComposer
from rewards.registry import available_rewards, get_reward
from rewards.spec import parse_reward_specs

SPEC_HELP = ('a registered reward name, "name:weight,name2:weight2", or a YAML/JSON file holding a list '
             "of {name, weight, kwargs}")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `rewards` command group (score, list)."""
    group = subparsers.add_parser("rewards", help="score completions with rewards; list the rewards",
                                  description="Try rewards on your own completions before training.")
    commands = group.add_subparsers(dest="rewards_command", metavar="SUBCOMMAND")
    commands.required = True

    p = commands.add_parser(
        "score", help="score a JSONL file of completions",
        description="Score each row of a JSONL file: the completion column plus any dataset columns the "
        "rewards read (answer, prompt, completion_length, ...). Writes one JSON line per row: line, "
        "total, components, reasons (and errors, if a reward failed on that row).")
    p.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    p.add_argument("--input", required=True, type=Path, help="JSONL file, one object per line")
    p.add_argument("--output", type=Path, help="where to write the scores (default: stdout)")
    p.add_argument("--completion-column", default="completion", help="column holding the completion text")
    p.set_defaults(func=_score)

    p = commands.add_parser("list", help="list the registered rewards", description="List registered rewards.")
    p.set_defaults(func=_list)

    p = commands.add_parser(
        "train-rm", help="train a Bradley-Terry reward model on preference pairs",
        description="Train a reward model (for the reward_model reward) from a causal-LM or reward-model "
        "directory on JSONL rows {prompt, chosen, rejected, margin?}; writes a directory to --out.")
    p.add_argument("--model", required=True, type=Path, help="starting model directory")
    p.add_argument("--data", required=True, type=Path, help="training pairs (JSONL)")
    p.add_argument("--eval-data", type=Path, help="held-out pairs (JSONL) for loss and accuracy after training")
    p.add_argument("--out", required=True, type=Path, help="where to write the trained reward model")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=1024, help="tokens; longer inputs are cut from the left")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_train_rm)


def read_rows(path: Path, completion_column: str) -> tuple[list[int], list[str], dict[str, list[Any]]]:
    """Line numbers, completions and the other columns of a JSONL file (blank lines skipped); every row
    must have every column."""
    if not path.is_file():
        raise UserError(f"input file {path} does not exist")
    rows: list[tuple[int, dict[str, Any]]] = []
    for number, row in read_json_objects(path):
        if not isinstance(row.get(completion_column), str):
            raise UserError(
                f"{path}: line {number}: no text column {completion_column!r} "
                f"(columns: {', '.join(row) or 'none'}; choose one with --completion-column)"
            )
        rows.append((number, row))
    if not rows:
        raise UserError(f"{path}: no rows")
    names = list(dict.fromkeys(key for _, row in rows for key in row if key != completion_column))
    for number, row in rows:
        missing = [name for name in names if name not in row]
        if missing:
            names_missing = ", ".join(map(repr, missing))
            raise UserError(f"{path}: line {number}: missing column(s) {names_missing} that other rows have")
    lines = [number for number, _ in rows]
    completions = [row[completion_column] for _, row in rows]
    return lines, completions, {name: [row[name] for _, row in rows] for name in names}


def _score(args: argparse.Namespace) -> int:
    specs = parse_reward_specs(args.spec)
    lines, completions, columns = read_rows(args.input, args.completion_column)
    with RewardComposer(specs) as composer:
        try:
            scored = composer(completions, columns)
        except UserError as exc:
            raise UserError(f"{args.input}: {exc}") from None
    errors_by_row: dict[int, list[dict[str, Any]]] = {}
    for error in scored.errors:
        record = {"reward": error["reward"], "error": error["error"]}
        errors_by_row.setdefault(error["index"], []).append(record)
    out: TextIO = args.output.open("w", encoding="utf-8") if args.output else sys.stdout
    try:
        for i in range(len(completions)):
            record = {"line": lines[i], **scored.sample(i)}
            if i in errors_by_row:
                record["errors"] = errors_by_row[i]
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    finally:
        if args.output:
            out.close()
    _summary(scored, len(completions))
    return 0


def _summary(scored: ComposedRewards, n: int) -> None:
    print(f"scored {n} completions; mean total {sum(scored.totals) / n:.4f}", file=sys.stderr)
    for name, scores in scored.components.items():
        reasons = Counter(r for r in scored.reasons[name] if r)
        counts = ", ".join(f"{reason} {count}" for reason, count in reasons.most_common())
        print(f"  {name}: mean {sum(scores) / n:.4f}" + (f" ({counts})" if counts else ""), file=sys.stderr)
    if scored.errors:
        first = scored.errors[0]["error"]
        print(f"  {len(scored.errors)} reward error(s), scored 0.0; first: {first}", file=sys.stderr)


def _list(args: argparse.Namespace) -> int:
    for name in available_rewards():
        doc = (getattr(get_reward(name), "__doc__", None) or "").strip()
        summary = " ".join(doc.split("\n\n")[0].split())  # the first paragraph, on one line
        print(f"{name:<22} {summary}")
    return 0


def _train_rm(args: argparse.Namespace) -> int:
    from rewards.reward_model import (
        RewardModel,
        RewardModelTraining,
        evaluate_pairs,
        load_preference_pairs,
        train_reward_model,
    )

    pairs = load_preference_pairs(args.data)
    held_out = load_preference_pairs(args.eval_data) if args.eval_data else None
    model = RewardModel(args.model, max_length=args.max_length)
    config = RewardModelTraining(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed)
    for record in train_reward_model(model, pairs, config):
        print(f"epoch {record['epoch']}: loss {record['loss']:.4f}, accuracy {record['accuracy']:.3f}")
    if held_out:
        metrics = evaluate_pairs(model, held_out, args.batch_size)
        print(f"held out ({len(held_out)} pairs): loss {metrics['loss']:.4f}, accuracy {metrics['accuracy']:.3f}")
    model.save(args.out)
    print(f"wrote {args.out}")
    return 0
