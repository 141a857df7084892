"""Format rewards for the R1 layout: "<think> reasoning </think> <answer> answer </answer>".

"format" is strict (DeepSeek-R1's format reward): exactly one think block, then exactly one answer block,
nothing before, between (but whitespace) or after, no tag nested in another, neither block empty.
"tag_count" gives partial credit while a policy is still learning the layout: 0.25 for each of the four
tags that appears exactly once.

Both are robust to prompts that already open the think block (R1-distill chat templates end the prompt
with "<think>\\n"): the completion is then read as if it began with that "<think>".
"""

from __future__ import annotations

import re
from typing import Any, Callable

from rewards.registry import DetailedReward, RewardOutput, register_reward

TAGS = ("<think>", "</think>", "<answer>", "</answer>")
_TAG = re.compile(r"</?(?:think|answer)>")


def think_opened(prompt: Any, think_opened_in_prompt: bool | None) -> bool:
    """Whether the completion continues a think block the prompt opened: the option if set, else whether
    a text prompt ends with "<think>" (a chat-message prompt cannot tell; set the option)."""
    if think_opened_in_prompt is not None:
        return think_opened_in_prompt
    return isinstance(prompt, str) and prompt.rstrip().endswith("<think>")


def check_r1_format(completion: str, opened: bool = False) -> RewardOutput:
    """Strict R1 format: 1.0 with reason "ok", else 0.0 with the first problem found as the reason."""
    text = "<think>" + completion if opened else completion
    tags = [(m.group(), m.start(), m.end()) for m in _TAG.finditer(text)]
    names = [t for t, _, _ in tags]
    if names != list(TAGS):
        for tag in TAGS:
            if names.count(tag) == 0:
                return RewardOutput(0.0, f"missing {tag}")
            if names.count(tag) > 1:
                return RewardOutput(0.0, f"repeated or nested {tag}")
        return RewardOutput(0.0, "tags out of order")
    (_, _, think_start), (_, think_end, think_close), (_, _, answer_start), (_, answer_end, answer_close) = tags
    if text[: tags[0][1]].strip():
        return RewardOutput(0.0, "text before <think>")
    if text[think_close : tags[2][1]].strip():
        return RewardOutput(0.0, "text between </think> and <answer>")
    if text[answer_close:].strip():
        return RewardOutput(0.0, "text after </answer>")
    if not text[think_start:think_end].strip():
        return RewardOutput(0.0, "empty think block")
    if not text[answer_start:answer_end].strip():
        return RewardOutput(0.0, "empty answer block")
    return RewardOutput(1.0, "ok")


def count_tags(completion: str, opened: bool = False) -> RewardOutput:
    """R1 tag count: 0.25 for each of the four tags that appears exactly once (the reason lists the
    tags that do not)."""
    text = "<think>" + completion if opened else completion
    names = [m.group() for m in _TAG.finditer(text)]
    off = [tag for tag in TAGS if names.count(tag) != 1]
    reason = "ok" if not off else "not exactly once: " + " ".join(off)
    return RewardOutput(0.25 * (len(TAGS) - len(off)), reason)


class FormatReward(DetailedReward):
    """A format check applied to each completion.

    Column `prompt` (optional): a text prompt ending with "<think>" means the think block is already open.
    Option `think_opened_in_prompt` (bool): says so explicitly, overriding the prompt check.
    """

    def __init__(self, check: Callable[[str, bool], RewardOutput]) -> None:
        self.check = check
        self.__doc__ = f"{check.__doc__}\n\n{FormatReward.__doc__}"

    def score_with_details(
        self,
        completions: list[str],
        prompt: list[Any] | None = None,
        think_opened_in_prompt: bool | None = None,
        **columns: Any,
    ) -> list[RewardOutput]:
        prompts = prompt if prompt is not None else [None] * len(completions)
        return [self.check(c, think_opened(p, think_opened_in_prompt)) for c, p in zip(completions, prompts)]


r1_format = register_reward("format")(FormatReward(check_r1_format))
tag_count = register_reward("tag_count")(FormatReward(count_tags))
