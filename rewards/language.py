"""Language consistency (DeepSeek-R1): the share of the reasoning's words written in the target language.

R1-Zero's reasoning drifted between Chinese and English; R1 added a reward equal to the proportion of
target-language words in the chain of thought. Words are told apart by Unicode script, which is what
that drift looks like and needs no model: a Han character counts as one word (Chinese is not spaced),
a run of letters of an alphabetic script as one word. Consequences worth knowing:
- languages sharing a script are not told apart (English and French are both Latin);
- math is not language: LaTeX ($...$, \\(...\\), \\[...\\], commands), code blocks and numbers are removed
  first, and single letters of alphabetic scripts (variables such as x or pi's pi) are not counted;
- reasoning without a single countable word scores 0.0 (reason "no_words"), so the reward cannot be
  earned by writing nothing.
"""

from __future__ import annotations

import re
from typing import Any

from common.errors import UserError
from rewards.registry import DetailedReward, RewardOutput, register_reward

# Script -> character class. CJK scripts count per character, alphabetic ones per run of letters.
_SCRIPTS = {
    "han": r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff",
    "kana": r"\u3040-\u30ff",
    "hangul": r"\uac00-\ud7af\u1100-\u11ff\u3130-\u318f",
    "latin": r"A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f",  # without × and ÷
    "cyrillic": r"\u0400-\u04ff",
    "greek": r"\u0370-\u03ff",
    "arabic": r"\u0600-\u06ff",
    "hebrew": r"\u0590-\u05ff",
    "devanagari": r"\u0900-\u097f",
    "thai": r"\u0e00-\u0e7f",
}
_PER_CHARACTER = ("han", "kana")
_WORD = re.compile(
    "|".join(
        f"(?P<{name}>[{chars}]{'' if name in _PER_CHARACTER else '{2,}'})" for name, chars in _SCRIPTS.items()
    )
)
# Target language -> the scripts its words are written in.
LANGUAGE_SCRIPTS = {
    "en": {"latin"}, "fr": {"latin"}, "de": {"latin"}, "es": {"latin"}, "it": {"latin"}, "pt": {"latin"},
    "zh": {"han"}, "ja": {"han", "kana"}, "ko": {"hangul", "han"}, "ru": {"cyrillic"}, "uk": {"cyrillic"},
    "el": {"greek"}, "ar": {"arabic"}, "he": {"hebrew"}, "hi": {"devanagari"}, "th": {"thai"},
}
# Math and code: block spans are cut with str.find (a lazy DOTALL regex would rescan the rest of the text
# for every unclosed opener, quadratic on adversarial input); the inline forms below are linear regexes.
_BLOCK_SPANS = (("```", "```"), ("$$", "$$"), ("\\(", "\\)"), ("\\[", "\\]"))
_INLINE_NOT_LANGUAGE = re.compile(r"\$[^$\n]*\$|\\[A-Za-z]+|<[^<>\n]{1,20}>")


def _without_spans(text: str, opener: str, closer: str) -> str:
    """`text` with every opener...closer span replaced by a space; an unclosed span runs to the end."""
    parts = []
    pos = 0
    while (start := text.find(opener, pos)) >= 0:
        parts.append(text[pos:start] + " ")
        end = text.find(closer, start + len(opener))
        pos = len(text) if end < 0 else end + len(closer)
    parts.append(text[pos:])
    return "".join(parts)


def strip_math_and_code(text: str) -> str:
    """`text` without code blocks, LaTeX (display, inline, commands) and short tags."""
    for opener, closer in _BLOCK_SPANS:
        text = _without_spans(text, opener, closer)
    return _INLINE_NOT_LANGUAGE.sub(" ", text)


def reasoning_text(completion: str) -> str:
    """The part of a completion that is reasoning: inside <think>...</think> when there is such a block
    (up to the end if it is never closed), else the whole completion."""
    start = completion.find("<think>")
    end = completion.find("</think>")
    if end >= 0:
        return completion[start + len("<think>") if 0 <= start < end else 0 : end]
    return completion[start + len("<think>") :] if start >= 0 else completion


def language_share(text: str, target: str) -> RewardOutput:
    """Share of the words of `text` written in the scripts of language `target` (0.0 to 1.0)."""
    if target not in LANGUAGE_SCRIPTS:
        raise UserError(f"unknown target language {target!r}; known: {', '.join(sorted(LANGUAGE_SCRIPTS))}")
    counts: dict[str, int] = {}
    for match in _WORD.finditer(strip_math_and_code(text)):
        counts[match.lastgroup] = counts.get(match.lastgroup, 0) + 1  # type: ignore[index]
    total = sum(counts.values())
    if total == 0:
        return RewardOutput(0.0, "no_words")
    in_target = sum(n for script, n in counts.items() if script in LANGUAGE_SCRIPTS[target])
    share = in_target / total
    reason = "consistent" if in_target == total else "mixed"
    return RewardOutput(share, reason, {"words": total, "scripts": counts})


class LanguageConsistency(DetailedReward):
    """DeepSeek-R1's language consistency: the share (0.0-1.0) of the reasoning's words in the target language.

    The reasoning is the <think> block, else the whole completion; words are told apart by script.

    Option `target` (default "en"): a language code, see LANGUAGE_SCRIPTS. (Deliberately not read from a
    dataset column: a column named "language" often means something else, e.g. a programming language.)
    Reasons: consistent, mixed, no_words.
    """

    def score_with_details(self, completions: list[str], target: str = "en", **columns: Any) -> list[RewardOutput]:
        return [language_share(reasoning_text(c), target) for c in completions]


language_consistency = register_reward("language_consistency")(LanguageConsistency())
