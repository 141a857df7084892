"""Prompt templates (question -> prompt text) and the R1 completion format (reasoning, answer -> target text).

A recipe names its template; every stage builds its prompts with `prompt_renderer(template, tokenizer,
chat_template)`, so the RL loop, SFT, eval, rejection sampling and distillation build them the same way.
Where the tokenizer has a chat template (a real instruct model), the template's text becomes a user turn of
it with the assistant turn opened (`chat_template: auto`, the default; true / false force it on / off).
"""

from __future__ import annotations

from typing import Any, Callable, Literal, Union

from common.errors import UserError

# The toolkit's own tokenizers (grpo.models.tokenizer, for models built from presets): Qwen2.5's ChatML layout
# without its default system prompt (a tiny model has no use for one and every prompt would pay for it).
# `add_generation_prompt` opens the assistant turn for sampling.
TOOLKIT_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

ChatTemplateChoice = Union[Literal["auto"], bool]

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


def uses_chat_template(tokenizer: Any, chat_template: ChatTemplateChoice = "auto") -> bool:
    """Whether prompts go through the tokenizer's chat template.

    "auto": where the tokenizer has one, except the toolkit's own tokenizers: a model built from a preset is
    randomly initialised, so its template carries no learned meaning, and the tiny recipes train it on the
    bare R1-Zero prompt.
    """
    template = getattr(tokenizer, "chat_template", None)
    if chat_template == "auto":
        return bool(template) and template != TOOLKIT_CHAT_TEMPLATE
    if chat_template and not template:
        raise UserError("chat_template: true, but the model's tokenizer has no chat template; use auto or false")
    return bool(chat_template)


def prompt_renderer(template: str, tokenizer: Any, chat_template: ChatTemplateChoice = "auto"
                    ) -> Callable[[str], str]:
    """question -> prompt text of template `template` ("r1_zero", "chat", "plain"), put through the
    tokenizer's chat template as a user turn (assistant turn opened) where `uses_chat_template` says so.
    Template "chat" is the question alone in a user turn, whatever `chat_template` says."""
    text = TEMPLATES[template]
    if template == "chat" or not uses_chat_template(tokenizer, chat_template):
        return lambda question: text(question, tokenizer)
    return lambda question: tokenizer.apply_chat_template(
        [{"role": "user", "content": text(question, tokenizer)}], tokenize=False, add_generation_prompt=True)


def end_of_turn_ids(tokenizer: Any) -> list[int]:
    """Token ids that end a response: the chat template's end-of-turn token (ChatML's <|im_end|>, Llama 3's
    <|eot_id|>: the first token the template writes after an assistant message) and the tokenizer's EOS."""
    ids = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    if getattr(tokenizer, "chat_template", None):
        marker = "Zq7 marker"
        text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"},
                                              {"role": "assistant", "content": marker}], tokenize=False)
        after = text[text.index(marker) + len(marker):]
        following = tokenizer.encode(after, add_special_tokens=False)[:1] if after else []
        special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}))
        ids += [t for t in following if t in special]
    return sorted(set(ids))
