"""GGUF import without a real model: unsupported files fail with errors that name what is wrong, the cache key
follows the file, and a cached conversion is not redone."""

import os
from pathlib import Path

import gguf  # the real-model extra; scripts/setup.sh installs it for the tests
import numpy as np
import pytest

from common.errors import UserError
from grpo.models import gguf_import
from grpo.models.gguf_import import cache_key, cached_conversion, inspect_gguf, packaged_gguf
from grpo.recipe import load_recipe


def write_gguf(path: Path, architecture: str = "llama", tensors: dict | None = None) -> Path:
    writer = gguf.GGUFWriter(str(path), architecture)
    for name, array in (tensors or {"token_embd.weight": np.zeros((4, 8), dtype=np.float32)}).items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_plain_llama_file_is_accepted(tmp_path):
    assert inspect_gguf(write_gguf(tmp_path / "m.gguf")) == ("llama", {"F32": 1})


def test_unsupported_architecture_is_named(tmp_path):
    with pytest.raises(UserError, match=r"architecture 'rwkv6' is not supported; supported: llama"):
        inspect_gguf(write_gguf(tmp_path / "m.gguf", architecture="rwkv6"))


def test_unsupported_tensor_type_is_named(tmp_path):
    path = write_gguf(tmp_path / "m.gguf", tensors={"a": np.zeros((4, 8), dtype=np.float32),
                                                   "b": np.zeros((4, 8), dtype=np.float64)})
    with pytest.raises(UserError, match=r"quantization type\(s\) F64 \(1 tensors\) not supported; supported: F32"):
        inspect_gguf(path)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(UserError, match="GGUF file .*nope.gguf"):
        inspect_gguf(tmp_path / "nope.gguf")
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf file at all")
    with pytest.raises(UserError, match="not a readable GGUF file"):
        inspect_gguf(tmp_path / "junk.gguf")


def test_cache_key_follows_size_and_mtime(tmp_path):
    path = write_gguf(tmp_path / "m.gguf")
    key = cache_key(path)
    assert key.startswith("m-") and cache_key(path) == key
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
    touched = cache_key(path)
    assert touched != key
    with path.open("ab") as f:
        f.write(b"\0" * 32)
    assert cache_key(path) not in (key, touched)


def test_a_cached_conversion_is_not_redone(tmp_path, monkeypatch):
    monkeypatch.setenv("GRPO_CACHE_DIR", str(tmp_path / "cache"))
    path = write_gguf(tmp_path / "m.gguf")
    calls = []

    def fake_convert(src, out):  # the real conversion is tests/integration/test_real_model.py's
        calls.append(src)
        Path(out).mkdir(parents=True)
        (Path(out) / "grpo_model.json").write_text("{}")
        return Path(out)

    monkeypatch.setattr(gguf_import, "convert_gguf", fake_convert)
    first = cached_conversion(path)
    assert cached_conversion(path) == first and len(calls) == 1
    assert first == tmp_path / "cache" / "gguf" / cache_key(path)
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_unsupported_file_fails_before_the_cache_is_touched(tmp_path, monkeypatch):
    monkeypatch.setenv("GRPO_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(UserError, match="architecture 'bert'"):
        cached_conversion(write_gguf(tmp_path / "m.gguf", architecture="bert"))
    assert not (tmp_path / "cache").exists()


def test_packaged_models(monkeypatch):
    with pytest.raises(UserError, match="unknown packaged model 'gpt-9'; valid: smollm2-135m-instruct"):
        packaged_gguf("gpt-9")
    monkeypatch.setitem(gguf_import.PACKAGED_MODELS, "ghost", ("no_such_module_x", "g.gguf", "pip install ghost"))
    with pytest.raises(UserError, match="package no_such_module_x is not installed.*pip install ghost"):
        packaged_gguf("ghost")


def test_recipe_model_sources(tmp_path):
    stage = "stages: [{name: e, type: eval, data: {source: 'task:arithmetic', n: 2}, rewards: [{name: exact_match}]}]"
    (tmp_path / "pkg.yaml").write_text(f"name: p\nmodel: {{package: smollm2-135m-instruct}}\n{stage}\n")
    assert load_recipe(tmp_path / "pkg.yaml").model.package == "smollm2-135m-instruct"
    (tmp_path / "bad.yaml").write_text(f"name: p\nmodel: {{package: smollm3}}\n{stage}\n")
    with pytest.raises(UserError, match="model.package: 'smollm3' is not a valid choice.*'smollm2-135m-instruct'"):
        load_recipe(tmp_path / "bad.yaml")
    (tmp_path / "gguf.yaml").write_text(f"name: p\nmodel: {{gguf: missing.gguf}}\n{stage}\n")
    with pytest.raises(UserError, match="model.gguf: no GGUF file at .*missing.gguf"):
        load_recipe(tmp_path / "gguf.yaml")
    (tmp_path / "two.yaml").write_text(f"name: p\nmodel: {{gguf: m.gguf, make: tiny-qwen2}}\n{stage}\n")
    with pytest.raises(UserError, match="exactly one of .*got make, gguf"):
        load_recipe(tmp_path / "two.yaml")


def test_cli_import_and_make_of_a_packaged_model(tmp_path, monkeypatch, capsys):
    from grpo.models import cli
    from pipelines.cli import main

    converted = []

    def fake_convert(src, out):  # the real conversion: tests/integration/test_real_model.py
        converted.append(Path(src))
        Path(out).mkdir(parents=True)
        (Path(out) / "grpo_model.json").write_text(
            '{"architecture": "llama", "num_parameters": 1234}')
        return Path(out)

    monkeypatch.setattr(cli, "convert_gguf", fake_convert)
    source = write_gguf(tmp_path / "m.gguf")
    assert main(["models", "import", str(source), "--out", str(tmp_path / "a")]) == 0
    assert "wrote llama from" in capsys.readouterr().out and converted == [source]
    monkeypatch.setattr(cli, "packaged_gguf", lambda name: source if name == "smollm2-135m-instruct" else None)
    assert main(["models", "make", "smollm2-135m-instruct", "--out", str(tmp_path / "b")]) == 0
    assert converted == [source, source]
