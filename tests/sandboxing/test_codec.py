"""The wire formats: frames and the exact-type value encoding."""

import math
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox.runtime import codec

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
hashables = st.recursive(scalars, lambda inner: st.tuples(inner, inner) | st.frozensets(inner), max_leaves=8)
values = st.recursive(
    scalars | st.binary() | st.complex_numbers(allow_nan=False),
    lambda inner: st.lists(inner) | st.tuples(inner, inner) | st.sets(hashables) | st.frozensets(hashables)
    | st.dictionaries(hashables, inner),
    max_leaves=20)


@given(values)
def test_round_trip_keeps_value_and_exact_types(value):
    decoded = codec.decode_value(codec.encode_value(value))
    assert decoded == value
    assert _types(decoded) == _types(value)


def _types(value):
    """The value's type tree, so that 1 vs 1.0 vs True and list vs tuple show up as differences."""
    if isinstance(value, (list, tuple)):
        return (type(value), [_types(v) for v in value])
    if isinstance(value, dict):
        return (dict, sorted((repr(_types(k)), repr(_types(v))) for k, v in value.items()))
    if isinstance(value, (set, frozenset)):
        return (type(value), sorted(repr(_types(v)) for v in value))
    return type(value)


def test_nan_survives():
    assert math.isnan(codec.decode_value(codec.encode_value(float("nan"))))


class AlwaysEqual:
    def __eq__(self, other):
        return True


class SneakyInt(int):
    def __eq__(self, other):
        return True


@pytest.mark.parametrize("value", [AlwaysEqual(), SneakyInt(3), [1, SneakyInt(2)], {"k": AlwaysEqual()},
                                   print, type, object()])
def test_anything_but_plain_data_is_refused(value):
    with pytest.raises(TypeError, match="not plain data"):
        codec.encode_value(value)


def test_nesting_is_bounded():
    deep = []
    for _ in range(codec.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(TypeError, match="deeper"):
        codec.encode_value(deep)
    with pytest.raises(ValueError, match="deeper"):
        codec.decode_value(deep)


@pytest.mark.parametrize("data", [{"tuple": 1}, {"set": [[1]]}, {"dict": [[1]]}, {"a": 1, "b": 2},
                                  {"evil": []}, {"bytes": 5}, {"complex": ["1", 2]}])
def test_malformed_encodings_are_refused(data):
    with pytest.raises(ValueError):
        codec.decode_value(data)


def test_frames_round_trip_and_detect_truncation():
    r, w = os.pipe()
    codec.write_frame(w, {"x": [1, 2.5, "é"]})
    assert codec.read_frame(r) == {"x": [1, 2.5, "é"]}
    os.write(w, b"\x00\x00\x00\x10{}")
    os.close(w)
    with pytest.raises(codec.FrameError, match="closed"):
        codec.read_frame(r)
    os.close(r)


def test_read_frame_deadline():
    r, w = os.pipe()
    with pytest.raises(TimeoutError):
        codec.read_frame(r, deadline=0.0)
    os.close(r)
    os.close(w)
