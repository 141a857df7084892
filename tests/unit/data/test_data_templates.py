"""Prompt templates and the R1 completion format."""

import re

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from common.errors import UserError
from grpo.data.templates import (R1_ZERO_TEMPLATE, TEMPLATES, TOOLKIT_CHAT_TEMPLATE, apply_chat, end_of_turn_ids,
                                 format_r1_completion, format_r1_zero, prompt_renderer, uses_chat_template)

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


def test_chat_template_choice():
    with_template, without = make_tokenizer(CHAT_TEMPLATE), make_tokenizer(None)
    assert uses_chat_template(with_template) and not uses_chat_template(without)
    assert not uses_chat_template(with_template, False)
    # The toolkit's own tokenizers (random-init presets) keep the bare prompt under auto.
    assert not uses_chat_template(make_tokenizer(TOOLKIT_CHAT_TEMPLATE))
    assert uses_chat_template(make_tokenizer(TOOLKIT_CHAT_TEMPLATE), True)
    with pytest.raises(UserError, match="chat_template: true, but the model's tokenizer has no chat template"):
        uses_chat_template(without, True)


def test_prompt_renderer_puts_the_r1_zero_prompt_in_a_user_turn():
    with_template, without = make_tokenizer(CHAT_TEMPLATE), make_tokenizer(None)
    assert prompt_renderer("r1_zero", with_template)("hello?") == f"<|user|>{format_r1_zero('hello?')}\n<|assistant|>"
    assert prompt_renderer("r1_zero", with_template, False)("hello?") == format_r1_zero("hello?")
    assert prompt_renderer("r1_zero", without)("hello?") == format_r1_zero("hello?")
    assert prompt_renderer("plain", with_template)("hello?") == "<|user|>hello?\n<|assistant|>"
    assert prompt_renderer("chat", with_template, False)("hello?") == "<|user|>hello?\n<|assistant|>"


def test_end_of_turn_ids_are_the_template_token_after_a_reply_and_eos():
    from grpo.models.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(512)  # ChatML: <|im_end|> closes a turn and is also its EOS
    assert end_of_turn_ids(tokenizer) == [tokenizer.convert_tokens_to_ids("<|im_end|>")]
    tokenizer.eos_token = "<|endoftext|>"
    assert end_of_turn_ids(tokenizer) == sorted(tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"]))
