"""Prompt templates and the R1 completion format."""

import re

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from grpo.data.templates import (R1_ZERO_TEMPLATE, TEMPLATES, apply_chat, format_r1_completion,
                                 format_r1_zero)

# Copied from design.md (DeepSeek-R1, Table 1).
DESIGN_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The "
    "assistant first thinks about the reasoning process in the mind and then provides the user with the answer. "
    "The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
    "respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. User: {prompt}. "
    "Assistant:"
)
# One think block, then one answer block, nothing else: what a strict format reward accepts.
STRICT_FORMAT = re.compile(r"<think>((?:(?!</?think>|</?answer>).)*)</think> <answer>((?:(?!</?think>|</?answer>).)*)</answer>",
                           re.DOTALL)
CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def make_tokenizer(chat_template: str | None) -> PreTrainedTokenizerFast:
    backend = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")
    tokenizer.chat_template = chat_template
    return tokenizer


def test_r1_zero_template_is_the_published_text():
    assert R1_ZERO_TEMPLATE == DESIGN_TEMPLATE
    prompt = format_r1_zero("What is 37 + 48?")
    assert prompt == DESIGN_TEMPLATE.replace("{prompt}", "What is 37 + 48?")
    assert prompt.endswith("User: What is 37 + 48?. Assistant:")


def test_r1_zero_keeps_braces_in_questions():
    assert "User: Solve {x | x > 0}. Assistant:" in format_r1_zero("Solve {x | x > 0}")


def test_r1_completion_is_one_think_block_then_one_answer_block():
    completion = format_r1_completion("7+8=15, write 5 carry 1. 3+4+1=8. So 85.", "85")
    assert completion == "<think> 7+8=15, write 5 carry 1. 3+4+1=8. So 85. </think> <answer> 85 </answer>"
    match = STRICT_FORMAT.fullmatch(completion)
    assert match and match[2].strip() == "85"
    assert STRICT_FORMAT.fullmatch(format_r1_completion("line one\nline two", "\\frac{1}{2}"))


@pytest.mark.parametrize("reasoning, answer", [("a </think> b", "1"), ("a", "<answer> 1"), ("<think>", "1"),
                                               ("a", "1 </answer>")])
def test_r1_completion_refuses_parts_holding_tags(reasoning, answer):
    with pytest.raises(ValueError, match="contains"):
        format_r1_completion(reasoning, answer)


def test_apply_chat_uses_the_tokenizer_template_with_the_assistant_turn_open():
    tokenizer = make_tokenizer(CHAT_TEMPLATE)
    assert apply_chat(tokenizer, "hello?", "Be brief.") == "<|system|>Be brief.\n<|user|>hello?\n<|assistant|>"
    assert apply_chat(tokenizer, "hello?", None) == "<|user|>hello?\n<|assistant|>"


def test_apply_chat_falls_back_to_r1_zero_without_a_template():
    tokenizer = make_tokenizer(None)
    assert apply_chat(tokenizer, "hello?", None) == format_r1_zero("hello?")
    assert apply_chat(tokenizer, "hello?", "Be brief.") == "Be brief.\n" + format_r1_zero("hello?")


def test_templates_registry():
    assert set(TEMPLATES) == {"r1_zero", "chat", "plain"}
    with_template, without = make_tokenizer(CHAT_TEMPLATE), make_tokenizer(None)
    assert TEMPLATES["r1_zero"]("hello?", with_template) == format_r1_zero("hello?")
    assert TEMPLATES["chat"]("hello?", with_template) == "<|user|>hello?\n<|assistant|>"
    assert TEMPLATES["chat"]("hello?", without) == format_r1_zero("hello?")
    assert TEMPLATES["plain"]("hello?", with_template) == "hello?"
