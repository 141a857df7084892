"""Prompt templates (question -> prompt text) and the R1 completion format (reasoning, answer -> target text).

A recipe names its template; every template is called as `template(question, tokenizer)` so the RL loop,
SFT and eval build prompts the same way.
"""

from __future__ import annotations

from typing import Any, Callable

# DeepSeek-R1 (arXiv 2501.12948), Table 1, word for word.
R1_ZERO_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with the "
    "answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> "
    "tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. "
    "User: {prompt}. Assistant:"
)

_TAGS = ("<think>", "</think>", "<answer>", "</answer>")


def format_r1_zero(question: str) -> str:
    """The R1-Zero prompt for `question`."""
    return R1_ZERO_TEMPLATE.format(prompt=question)


def format_r1_completion(reasoning: str, answer: str) -> str:
    """"<think> {reasoning} </think> <answer> {answer} </answer>": one think block, then one answer block.

    Raises ValueError when either part contains one of the tags, since the text would then hold more blocks
    than the strict format reward accepts.
    """
    for name, part in (("reasoning", reasoning), ("answer", answer)):
        for tag in _TAGS:
            if tag in part:
                raise ValueError(f"{name} contains {tag!r}; it must be plain text: {part!r}")
    return f"<think> {reasoning} </think> <answer> {answer} </answer>"


def apply_chat(tokenizer: Any, question: str, system: str | None = None) -> str:
    """The tokenizer's chat template applied to [system, user] with the assistant turn opened.

    A tokenizer without a chat template (base models, the tiny test tokenizers) gets the R1-Zero prompt
    instead, preceded by `system` on its own line when one is given.
    """
    if getattr(tokenizer, "chat_template", None):
        messages = ([{"role": "system", "content": system}] if system is not None else [])
        messages.append({"role": "user", "content": question})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    prompt = format_r1_zero(question)
    return prompt if system is None else f"{system}\n{prompt}"


def r1_zero_prompt(question: str, tokenizer: Any = None) -> str:
    """Template "r1_zero": the R1-Zero prompt; the tokenizer is not needed."""
    return format_r1_zero(question)


def chat_prompt(question: str, tokenizer: Any) -> str:
    """Template "chat": the tokenizer's chat template, no system message."""
    return apply_chat(tokenizer, question, None)


def plain_prompt(question: str, tokenizer: Any = None) -> str:
    """Template "plain": the question as it is."""
    return question


TEMPLATES: dict[str, Callable[[str, Any], str]] = {
    "r1_zero": r1_zero_prompt,
    "chat": chat_prompt,
    "plain": plain_prompt,
}
