"""A byte-level BPE tokenizer trained here, on text the toolkit itself produces: no hub download.

Design choices, each because a reasoning model trained by RL depends on it:
- Byte level: any string is encodable (a policy may emit anything; a reward must be able to read it back).
- Digits are split one per token, as in Qwen2.5 and LLaMA: a model learning arithmetic sees the same
  digit tokens at every position instead of arbitrary multi-digit chunks.
- ChatML special tokens, as in Qwen2.5: "<|endoftext|>" (padding), "<|im_start|>", "<|im_end|>" (end of a
  chat turn, hence the eos). "<think>", "</think>", "<answer>", "</answer>" are single tokens but not
  special, so `decode(..., skip_special_tokens=True)` keeps them: format rewards look for them.
- Deterministic: the corpus is generated from fixed seeds and BPE training breaks count ties in a fixed
  order, so the same arguments give the same vocabulary (tests compare two trainings).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Iterator
from importlib import resources

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from grpo.data.tasks import ARITHMETIC_LEVELS, generate_arithmetic, generate_countdown, solution_trace
from grpo.data.templates import TOOLKIT_CHAT_TEMPLATE, format_r1_completion, format_r1_zero
from common.errors import UserError

PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = [PAD_TOKEN, IM_START, IM_END]
REASONING_TOKENS = ["<think>", "</think>", "<answer>", "</answer>"]

_RESERVED = re.compile("|".join(re.escape(token) for token in SPECIAL_TOKENS + REASONING_TOKENS))

# 256 byte symbols + the special and reasoning tokens must fit, with room for some merges.
MIN_VOCAB_SIZE = 256 + len(SPECIAL_TOKENS) + len(REASONING_TOKENS) + 1

# Hand-written text for what the generated tasks and the vendored data do not cover: Python (code rewards),
# the self-checking phrases of R1-style reasoning, a system prompt.
SNIPPETS = [
    "def add(a: int, b: int) -> int:\n    \"\"\"Return the sum of a and b.\"\"\"\n    return a + b\n",
    "def is_prime(n):\n    if n < 2:\n        return False\n    for i in range(2, int(n ** 0.5) + 1):\n"
    "        if n % i == 0:\n            return False\n    return True\n",
    "from typing import List\n\n\ndef sort_list(xs: List[int]) -> List[int]:\n    return sorted(xs)\n",
    "def check(candidate):\n    assert candidate([1, 2, 3]) == 6\n    assert candidate([]) == 0\n",
    "import math\n\nclass Solution:\n    def solve(self, s: str) -> str:\n        return s[::-1]\n",
    "Wait, let me check that again. That is not right: the remainder must be smaller than the divisor.",
    "Hmm, let me verify: if the answer were 12, the total would be 36, which matches. So the answer is 12.",
    "You are a helpful assistant. Please reason step by step, and put your final answer within \\boxed{}.",
]


def builtin_corpus() -> Iterator[str]:
    """The training text: R1-format traces of the synthetic tasks (grpo.data.tasks), in plain and chat
    layout; the vendored GSM8K and MATH-500 subsets (English word problems, LaTeX); SNIPPETS."""
    # Levels 1-5 only: level 0's one-digit questions hold nothing new, and the corpus (so every tiny model's
    # vocabulary) stays what it was before that level existed.
    rows = [row for level in ARITHMETIC_LEVELS if level >= 1
            for row in generate_arithmetic(200, seed=0, difficulty=level)]
    rows += generate_countdown(200, seed=0)
    for row in rows:
        completion = format_r1_completion(solution_trace(row), row["answer"])
        yield f"{format_r1_zero(row['question'])} {completion}{PAD_TOKEN}"
        yield f"{IM_START}user\n{row['question']}{IM_END}\n{IM_START}assistant\n{completion}{IM_END}\n"
    for path in sorted(resources.files("grpo.data").joinpath("fixtures").iterdir(), key=lambda p: p.name):
        if path.name.endswith(".jsonl"):
            for line in path.read_text(encoding="utf-8").splitlines():
                yield from (value for value in json.loads(line).values() if isinstance(value, str))
    yield from SNIPPETS


def train_tokenizer(vocab_size: int = 1024, extra_corpus: Iterable[str] = ()) -> PreTrainedTokenizerFast:
    """Train the byte-level BPE tokenizer on the built-in corpus (plus `extra_corpus`).

    The result has exactly `vocab_size` tokens: ids 0-2 are the special tokens, 3-6 the reasoning tags,
    then the 256 bytes, then the merges. The built-in corpus has text for about 4000; asking for more
    without `extra_corpus` raises UserError.
    """
    if vocab_size < MIN_VOCAB_SIZE:
        raise UserError(f"vocab_size={vocab_size} is too small: a byte-level tokenizer needs at least "
                        f"{MIN_VOCAB_SIZE} (256 bytes + {MIN_VOCAB_SIZE - 256} reserved tokens)")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        # Reserved first, so their ids do not depend on the corpus.
        special_tokens=SPECIAL_TOKENS + REASONING_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # The trainer does not know added tokens: cut them out of the text so no merge is spent on "<|" or "</".
    texts = itertools.chain(builtin_corpus(), extra_corpus)
    tokenizer.train_from_iterator((piece for text in texts for piece in _RESERVED.split(text)), trainer=trainer)
    # Added tokens are matched before the pre-tokenizer, so "<think>" is one token wherever it appears.
    tokenizer.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in SPECIAL_TOKENS])
    tokenizer.add_tokens([AddedToken(t, normalized=False, special=False) for t in REASONING_TOKENS])
    if len(tokenizer.get_vocab()) < vocab_size:
        raise UserError(f"vocab_size={vocab_size}: the corpus only has enough distinct text for "
                        f"{len(tokenizer.get_vocab())} tokens; ask for fewer or pass more text in extra_corpus")
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=IM_END,
        pad_token=PAD_TOKEN,
        bos_token=None,
        unk_token=None,
        chat_template=TOOLKIT_CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
    )
