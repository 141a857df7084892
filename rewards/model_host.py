"""Where a model-backed reward's model lives: loaded once in this process, or in a Ray actor of its own.

Ray stays at the edge: the scorer classes (RewardModel, Judge) are plain classes; with `ray_actor` the same
class is wrapped by `ray.remote` (so it can hold a GPU apart from the policy) and called the same way.

torch, transformers and ray are imported only when a model is used: `import rewards`, which registers
every built-in, must stay light (the math checker's worker processes import the package too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common.errors import UserError

DTYPE_NAMES = ("float32", "bfloat16", "float16")


def check_model_dir(path: str | Path) -> None:
    """A UserError unless `path` is a Hugging Face model directory."""
    if not (Path(path) / "config.json").is_file():
        raise UserError(f"{path} is not a model directory (no config.json)")


def torch_dtype(name: str) -> Any:
    """The torch dtype called `name` (one of DTYPE_NAMES), or a UserError listing them."""
    if name not in DTYPE_NAMES:
        raise UserError(f"unknown dtype {name!r}; valid: {', '.join(DTYPE_NAMES)}")
    import torch

    return getattr(torch, name)


class ModelHost:
    """One instance of `cls` per distinct constructor arguments, in-process or as a Ray actor."""

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self._instances: dict[tuple, Any] = {}

    def call(self, method: str, init: dict[str, Any], ray_actor: bool, num_gpus: float, *args: Any) -> Any:
        """`instance.method(*args)` on the instance built from `init` (built on first use)."""
        key = (ray_actor, num_gpus, tuple(sorted(init.items())))
        if key not in self._instances:
            self._instances[key] = self._make(init, ray_actor, num_gpus)
        instance = self._instances[key]
        if not ray_actor:
            return getattr(instance, method)(*args)
        import ray

        return ray.get(getattr(instance, method).remote(*args))

    def _make(self, init: dict[str, Any], ray_actor: bool, num_gpus: float) -> Any:
        if not ray_actor:
            return self.cls(**init)
        import ray

        if not ray.is_initialized():
            raise UserError(f"{self.cls.__name__} with ray_actor=true needs a running Ray cluster (ray.init)")
        return ray.remote(num_cpus=1, num_gpus=num_gpus)(self.cls).remote(**init)

    def close(self) -> None:
        """Drop the loaded models and end the actors."""
        for (ray_actor, _, _), instance in self._instances.items():
            if ray_actor:
                import ray

                ray.kill(instance)
            elif hasattr(instance, "close"):
                instance.close()  # e.g. a vLLM engine's process
        self._instances.clear()
