"""Wire formats shared by the grader and the fork server.

- Frames: a 4-byte big-endian length, then UTF-8 JSON. Used on every pipe between processes.
- Values: a tagged JSON encoding of plain Python data that keeps exact types. JSON itself already keeps
  None, bool, int, float, str and list apart (`1`, `1.0` and `true` stay distinct); the other containers
  and bytes become one-key objects such as {"tuple": [...]}. Anything else (a class instance, a subclass
  of int, an object whose __eq__ always says yes) cannot be encoded, so it can never reach a comparison.

Decoding is strict: unknown tags, unhashable set members and nesting deeper than MAX_DEPTH are errors.
Standard library only: this module is also imported inside the sandbox.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time

MAX_DEPTH = 100
MAX_FRAME_BYTES = 1 << 30
_HEADER = struct.Struct(">I")


class FrameError(Exception):
    """A pipe closed in the middle of a frame, or a frame is malformed."""


def write_frame(fd: int, message: object) -> None:
    """Write one JSON frame to a file descriptor (blocking, all of it)."""
    data = json.dumps(message, separators=(",", ":")).encode()
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def read_exact(fd: int, size: int, deadline: float | None = None) -> bytes:
    """Read exactly `size` bytes. FrameError if the pipe closes first; TimeoutError if the monotonic-clock
    `deadline` (when given) passes first."""
    chunks, left = [], size
    while left:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError(f"no complete frame before the deadline ({left} of {size} bytes missing)")
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise FrameError(f"pipe closed with {left} of {size} bytes unread")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, deadline: float | None = None) -> object:
    """Read one JSON frame from a file descriptor (see read_exact for the deadline)."""
    (size,) = _HEADER.unpack(read_exact(fd, _HEADER.size, deadline))
    if size > MAX_FRAME_BYTES:
        raise FrameError(f"frame of {size} bytes is over the {MAX_FRAME_BYTES}-byte limit")
    return decode_frame(read_exact(fd, size, deadline))


def decode_frame(data: bytes) -> object:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise FrameError(f"malformed frame: {exc}") from None


def encode_value(value: object, depth: int = 0) -> object:
    """Plain Python data -> JSON-ready tagged form. TypeError for anything that is not plain data."""
    if depth > MAX_DEPTH:
        raise TypeError(f"value nested deeper than {MAX_DEPTH} levels")
    kind = type(value)  # exact type: subclasses (bool aside, which is its own type) are refused
    if value is None or kind in (bool, int, float, str):
        return value
    if kind is list:
        return [encode_value(item, depth + 1) for item in value]
    if kind in (tuple, set, frozenset):
        items = list(value)
        if kind is not tuple:
            # A set's iteration order is arbitrary; a canonical order makes encodings comparable.
            items.sort(key=repr)
        return {kind.__name__: [encode_value(item, depth + 1) for item in items]}
    if kind is dict:
        return {"dict": [[encode_value(k, depth + 1), encode_value(v, depth + 1)] for k, v in value.items()]}
    if kind is bytes:
        return {"bytes": value.hex()}
    if kind is complex:
        return {"complex": [value.real, value.imag]}
    raise TypeError(f"a value of type {kind.__qualname__} is not plain data and cannot leave the sandbox")


_SCALARS = (type(None), bool, int, float, str)


def decode_value(data: object, depth: int = 0) -> object:
    """The inverse of encode_value. ValueError for anything encode_value could not have produced."""
    if depth > MAX_DEPTH:
        raise ValueError(f"value nested deeper than {MAX_DEPTH} levels")
    if type(data) in _SCALARS:
        return data
    if type(data) is list:
        return [decode_value(item, depth + 1) for item in data]
    if type(data) is not dict or len(data) != 1:
        raise ValueError(f"not an encoded value: {str(data)[:80]}")
    ((tag, body),) = data.items()
    try:
        if tag in ("tuple", "set", "frozenset") and type(body) is list:
            items = [decode_value(item, depth + 1) for item in body]
            return {"tuple": tuple, "set": set, "frozenset": frozenset}[tag](items)
        if tag == "dict" and type(body) is list:
            pairs = [decode_value(pair, depth + 1) for pair in body]
            if not all(type(pair) is list and len(pair) == 2 for pair in pairs):
                raise ValueError("dict entries must be [key, value] pairs")
            return {key: val for key, val in pairs}
        if tag == "bytes" and type(body) is str:
            return bytes.fromhex(body)
        if tag == "complex" and type(body) is list and len(body) == 2:
            if not all(type(part) in (int, float) for part in body):
                raise ValueError("complex parts must be numbers")
            return complex(*body)
    except TypeError as exc:  # an unhashable set member or dict key
        raise ValueError(f"bad {tag} value: {exc}") from None
    raise ValueError(f"unknown value tag {tag!r}")
