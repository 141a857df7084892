"""The locally trained tokenizer: determinism, digits, special tokens, chat template, byte-level coverage."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import UserError
from grpo.models.tokenizer import REASONING_TOKENS, SPECIAL_TOKENS, train_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer()


def test_same_arguments_give_the_same_tokenizer(tokenizer):
    again = train_tokenizer()
    assert again.backend_tokenizer.to_str() == tokenizer.backend_tokenizer.to_str()
    assert again.get_vocab() == tokenizer.get_vocab()


def test_extra_corpus_changes_the_vocabulary(tokenizer):
    extra = ["supercalifragilisticexpialidocious " * 50]
    assert train_tokenizer(extra_corpus=extra).get_vocab() != tokenizer.get_vocab()


def test_vocabulary_has_exactly_the_requested_size(tokenizer):
    assert len(tokenizer) == 1024
    assert len(train_tokenizer(vocab_size=600)) == 600
    assert max(tokenizer.get_vocab().values()) == 1023


@pytest.mark.parametrize("vocab_size", [10, 262])
def test_too_small_vocabulary_is_a_user_error(vocab_size):
    with pytest.raises(UserError, match="too small"):
        train_tokenizer(vocab_size=vocab_size)


def test_vocabulary_larger_than_the_corpus_allows_is_a_user_error():
    with pytest.raises(UserError, match="extra_corpus"):
        train_tokenizer(vocab_size=50_000)


@settings(max_examples=200, deadline=None)
@given(number=st.integers(min_value=0, max_value=10**30))
def test_every_digit_is_its_own_token(tokenizer, number):
    text = f"x = {number}"
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"])
    digit_tokens = [t for t in tokens if any(c.isdigit() for c in t)]
    assert digit_tokens == list(str(number))


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=80))
def test_any_text_round_trips(tokenizer, text):
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_special_and_reasoning_tokens_have_fixed_ids(tokenizer):
    ids = tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS + REASONING_TOKENS)
    assert ids == list(range(7))
    assert (tokenizer.pad_token, tokenizer.eos_token, tokenizer.bos_token) == ("<|endoftext|>", "<|im_end|>", None)
    assert tokenizer.unk_token is None


def test_reserved_tokens_are_single_tokens_anywhere_in_text(tokenizer):
    text = "so<think>x</think>y<answer>5</answer><|im_end|>"
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"])
    for reserved in ["<think>", "</think>", "<answer>", "</answer>", "<|im_end|>"]:
        assert reserved in tokens
    assert not any("<|" in t or "</" in t for t in tokens if t not in SPECIAL_TOKENS + REASONING_TOKENS)


def test_decoding_drops_special_tokens_but_keeps_reasoning_tags(tokenizer):
    ids = tokenizer("<think> 2+2=4 </think> <answer> 4 </answer><|im_end|><|endoftext|>")["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "<think> 2+2=4 </think> <answer> 4 </answer>"


def test_no_token_is_added_around_the_text(tokenizer):
    assert tokenizer("hi")["input_ids"] == tokenizer.encode("hi", add_special_tokens=False)


def test_chat_template_is_chatml(tokenizer):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+3?"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert text == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2+3?<|im_end|>\n"
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt == text + "<|im_start|>assistant\n"


def test_chat_template_round_trips_a_finished_conversation(tokenizer):
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "<think> hm </think> Hello"}]
    ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False)
    assert tokenizer.convert_ids_to_tokens(ids[:1]) == ["<|im_start|>"]
    assert tokenizer.decode(ids) == ("<|im_start|>user\nHi<|im_end|>\n"
                                     "<|im_start|>assistant\n<think> hm </think> Hello<|im_end|>\n")
