"""SFT packing: pairs share rows without seeing each other, so a packed batch trains exactly like the pairs
one by one (the same per-token losses), with fewer padded tokens."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from grpo.data.tasks import generate_arithmetic, solution_trace
from grpo.data.templates import TEMPLATES, format_r1_completion
from pipelines.sft import collate, pack_pairs, tokenize_pairs


def _pairs(tokenizer, n: int):
    rows = generate_arithmetic(n, seed=5, difficulty=2)
    return tokenize_pairs(tokenizer, [TEMPLATES["plain"](r["question"], None) for r in rows],
                          [format_r1_completion(solution_trace(r), r["answer"]) for r in rows], 256)


def test_pack_pairs_keeps_every_pair_once_within_the_row_limit():
    pairs = [([7] * n, [-100] + [1] * (n - 1)) for n in (5, 9, 3, 8, 2, 6, 7, 1)]
    packed = pack_pairs(pairs, max_length=10, seed=0)
    assert all(len(ids) <= 10 and len(ids) == len(labels) == len(positions) for ids, labels, positions in packed)
    # Positions restart at 0 at each pair: the lengths read back from them are the pairs' lengths.
    lengths = sorted(len(chunk) for _, _, positions in packed for chunk in _runs(positions))
    assert lengths == sorted(len(ids) for ids, _ in pairs)
    assert len(packed) == 5  # 41 tokens, rows of 10: first fit uses 5 here (a row per pair would be 8)
    assert sum(labels.count(1) for _, labels, _ in packed) == sum(lab.count(1) for _, lab in pairs)


def _runs(positions: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for p in positions:
        if p == 0:
            runs.append([])
        runs[-1].append(p)
    return runs


def test_a_packed_batch_gives_the_same_token_losses_as_separate_pairs(tiny_qwen2_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen2_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen2_dir, dtype=torch.float32).eval()
    pairs = _pairs(tokenizer, 12)
    pad = tokenizer.pad_token_id

    def token_losses(batch):
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False).logits[:, :-1]
        labels = batch["labels"][:, 1:]
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels.clamp(min=0), reduction="none")
        return loss[labels != -100]

    with torch.no_grad():
        separate = torch.cat([token_losses(collate([p], pad, packed=False)) for p in pairs])
        packed_rows = pack_pairs(pairs, max_length=160, seed=0)
        assert len(packed_rows) < len(pairs) / 2
        packed = token_losses(collate(packed_rows, pad, packed=True))
        # The padded path too, to show padding of unequal rows does not leak either.
        padded = token_losses(collate(pairs, pad, packed=False))
    # Same multiset of token losses (the packed order differs): compare sorted values.
    assert packed.shape == separate.shape
    torch.testing.assert_close(packed.sort().values, separate.sort().values, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(padded.sort().values, separate.sort().values, atol=2e-5, rtol=1e-4)
    # A stale cross-pair attention would change the losses: check the test can see it.
    leaky = collate(packed_rows, pad, packed=True)
    leaky["position_ids"] = torch.arange(leaky["input_ids"].shape[1]).expand_as(leaky["input_ids"])
    with torch.no_grad():
        assert not torch.allclose(token_losses(leaky).sort().values, separate.sort().values, atol=1e-3)
