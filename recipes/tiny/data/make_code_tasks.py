"""Writes code_tasks.jsonl: small, verifiable Python function tasks for the tiny code-RL recipe.

Each row: question (the task), answer (the function name: the loaders need one; the code reward reads tests), tests (function-call
cases judged by the sandbox) and completion (a correct solution in the R1 format, for the cold start).
Run: .venv/bin/python recipes/tiny/data/make_code_tasks.py
"""

import json
import random
from pathlib import Path

KINDS = [
    ("add", "returns x plus {k}", "return x + {k}", lambda x, k: x + k),
    ("sub", "returns x minus {k}", "return x - {k}", lambda x, k: x - k),
    ("mul", "returns x times {k}", "return x * {k}", lambda x, k: x * k),
    ("mod", "returns x modulo {k}", "return x % {k}", lambda x, k: x % k),
]


def main() -> None:
    rng = random.Random(0)
    rows = []
    for i in range(300):
        kind, text, body, fn = KINDS[i % len(KINDS)]
        k = rng.randint(2, 9)
        name = f"{kind}_{k}"
        inputs = [[rng.randint(0, 99)] for _ in range(4)]
        code = f"def {name}(x):\n    {body.format(k=k)}\n"
        rows.append({
            "question": f"Write a Python function {name}(x) that {text.format(k=k)}.",
            "answer": name,  # the loaders need an answer column; the code reward reads `tests`
            "tests": {"fn_name": name, "inputs": inputs, "outputs": [fn(a[0], k) for a in inputs]},
            "completion": f"<think> {text.format(k=k)} </think> <answer>\n```python\n{code}```\n</answer>",
        })
    out = Path(__file__).with_name("code_tasks.jsonl")
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
