"""Offline Weights & Biases runs for tests: the environment that keeps wandb off the network and out of the
user's settings, and a reader for the .wandb files it writes (wandb 0.31 reads them in its Go core only)."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest
import wandb
from wandb.proto import wandb_internal_pb2


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """wandb confined to tmp_path: offline, silent, no git or code capture, no crash reports, no user settings."""
    for name in ("WANDB_API_KEY", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_NAME", "WANDB_TAGS", "WANDB_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DISABLE_GIT": "true",
           "WANDB_DISABLE_CODE": "true", "WANDB_ERROR_REPORTING": "false", "WANDB_DIR": str(tmp_path),
           "WANDB_CONFIG_DIR": str(tmp_path / "config"), "WANDB_CACHE_DIR": str(tmp_path / "cache"),
           "WANDB_DATA_DIR": str(tmp_path / "data")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield tmp_path
    wandb.teardown()  # wandb keeps its settings (WANDB_DIR) in the process until torn down


def run_files(root: Path) -> list[Path]:
    """The .wandb files of the finished runs under `root`."""
    wandb.teardown()  # finish() can return before wandb's service has written the file out; this waits
    return sorted(root.glob("wandb/offline-run-*/run-*.wandb"))


def read_records(path: Path) -> list:
    """The Records of a .wandb file: a ':W&B' header, then LevelDB-style log blocks of 32 KiB whose records
    (crc32 of type + data, little-endian length, type: full, first, middle, last) carry wandb_internal Records.
    This is wandb's format spelled out; the checksums prove each record was read whole."""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, pos, pieces = [], 7, b""
    while pos + 7 <= len(data):
        left = 32 * 1024 - pos % (32 * 1024)
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if left < 7 or (kind == 0 and length == 0):  # the zero-filled end of a block
            pos += left
            continue
        chunk = data[pos + 7:pos + 7 + length]
        assert zlib.crc32(bytes([kind]) + chunk) == crc, f"bad checksum at byte {pos}"
        pieces += chunk
        pos += 7 + length
        if kind in (1, 4):  # full or last: a whole Record
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pieces)
            records.append(record)
            pieces = b""
    return records


def of_type(records, kind: str) -> list:
    return [getattr(r, kind) for r in records if r.WhichOneof("record_type") == kind]


def values(items) -> dict:
    """History or summary items (key, JSON value) as a dict."""
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}
