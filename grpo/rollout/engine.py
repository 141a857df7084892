"""The rollout engine: a vLLM engine that samples G responses per prompt with their log-probs, and takes new
weights from the learner (see worker_extension.py for how an update reaches the model).

Where the engine runs (`in_process`; generation and weight sync are as fast either way):
  - in vLLM's engine-core process (default): vLLM spawns the engine core and, on the CPU, a separate worker
    process, two fresh Python processes, which makes the start slow (README, "Benchmarks"). The calling
    process is left alone, so several engines can live in one process (the test session holds two).
  - in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0): one process and a faster start, but vLLM then owns
    the process: one engine per process (its distributed state is global), `torch.set_num_threads` disabled,
    vLLM's environment variables frozen. Set OMP_NUM_THREADS before such a process starts (Ray sets 1 for a
    1-CPU actor): without it vLLM lowers torch's thread count at run time, and generation becomes much
    slower and erratic. Right for a Ray actor that only hosts the engine: RolloutWorker's default.
vLLM is imported only when an engine is built, so importing this module (for SamplingConfig) stays cheap.

GPUs: untested (no GPU was available to this code). Generation is vLLM's; a weight update takes the same
file path and re-runs vLLM's post-load processing, which needs enforce_eager=True (CUDA graphs would keep
reading the replaced buffers). vLLM's NCCL/IPC weight-transfer engines, which keep the addresses, are
not wired in.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from common.errors import UserError
from grpo.data.templates import end_of_turn_ids
from grpo.rollout.weights_io import (SYNC_DIR, check_shapes, checkpoint_layout, read_shapes, skeleton,
                                     weight_files, write_safetensors)

GiB = 1 << 30


@dataclass
class SamplingConfig:
    """How responses are sampled; vLLM's SamplingParams names. top_k 0 or -1 means no top-k (vLLM's 0).

    With a seed, prompt i of a call (counting from the call's `prompt_offset`) is sampled with seeds
    seed + i * G ... seed + i * G + G - 1, so a batch gives the same samples however it is split across
    workers. Without one, the engine's own random stream is used (different at every call).
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_tokens: int = 256
    max_prompt_tokens: int | None = None  # a longer prompt is refused (the recipe's max_prompt_length)
    min_tokens: int = 0
    stop: list[str] = field(default_factory=list)
    # Besides these, the engine always stops at its tokenizer's EOS and chat end-of-turn tokens (end_of_turn_ids).
    stop_token_ids: list[int] = field(default_factory=list)
    seed: int | None = None

    @classmethod
    def from_options(cls, options, seed: int | None) -> "SamplingConfig":
        """The config of a recipe's sampling options (grpo.config.SamplingOptions, which an RL stage's rollout
        extends): the one mapping of recipe names to these, for the RL loop and the sampling stages alike."""
        return cls(temperature=options.temperature, top_p=options.top_p, top_k=options.top_k,
                   max_tokens=options.max_completion_length, max_prompt_tokens=options.max_prompt_length, seed=seed)

    def to_vllm(self, n: int, prompt_index: int):
        """vLLM SamplingParams for `n` samples of the prompt at `prompt_index` (its seed, see above)."""
        from vllm import SamplingParams
        from vllm.exceptions import VLLMValidationError
        from vllm.sampling_params import RequestOutputKind

        seed = None if self.seed is None else self.seed + prompt_index * n
        try:
            return SamplingParams(
                n=n, temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, max_tokens=self.max_tokens,
                min_tokens=self.min_tokens, stop=list(self.stop), stop_token_ids=list(self.stop_token_ids), seed=seed,
                # 0: the log-prob of the sampled token only.
                logprobs=0,
                # The text a reward sees is then the decoding of the token ids the learner trains on.
                include_stop_str_in_output=True,
                # One output per prompt, once all n samples are done (what LLM.generate sets too).
                output_kind=RequestOutputKind.FINAL_ONLY,
            )
        except (VLLMValidationError, ValueError) as exc:
            raise UserError(f"invalid sampling config: {exc}") from exc


@dataclass
class Sample:
    """One response. `logprobs[t]` is the log-prob of `token_ids[t]` under the distribution it was sampled
    from: the engine's logits divided by the temperature, cut to top-k / top-p and renormalised (vLLM
    logprobs_mode "processed_logprobs"), which the learner recomputes (grpo/learner/logprobs.py). Greedy
    requests (temperature 0) get the log-softmax of the raw logits. finish_reason: "stop" (EOS or a stop string) or
    "length" (max_tokens or the model's length reached). weights_version: the engine's `weights_version`
    when it sampled this response (how stale it is, for off-policy training)."""

    prompt_token_ids: list[int]
    token_ids: list[int]
    logprobs: list[float]
    text: str
    finish_reason: str
    weights_version: int = 0


class RolloutEngine:
    """A vLLM engine over a Hugging Face model directory, with versioned weight updates."""

    def __init__(self, model_dir: str | Path, *, dtype: str = "float32", seed: int = 0, max_model_len: int = 1024,
                 kv_cache_gib: float = 1, enforce_eager: bool = True, in_process: bool = False,
                 weights_version: int = 0, gpu_memory_utilization: float | None = None,
                 extra_engine_args: dict[str, Any] | None = None):
        """Start the engine. `kv_cache_gib` sizes the KV cache (vLLM's VLLM_CPU_KVCACHE_SPACE, which wins if set
        in the environment); `weights_version` numbers the weights of `model_dir` (a resumed run's step);
        `gpu_memory_utilization`: a GPU engine's share of the device (vLLM's; None: vLLM's 0.9);
        `extra_engine_args` go to `vllm.LLM` last, over this class's choices."""
        from transformers import AutoConfig

        from grpo.models.vllm_args import vllm_engine_kwargs

        self.model_dir = Path(model_dir)
        if kv_cache_gib <= 0:
            raise UserError(f"kv_cache_gib must be positive, got {kv_cache_gib}")
        args: dict[str, Any] = {
            "model": str(self.model_dir), "dtype": dtype, "seed": seed, "max_model_len": max_model_len,
            "enforce_eager": enforce_eager, "kv_cache_memory_bytes": int(kv_cache_gib * GiB),
            # Log-probs of the distribution sampled from (after temperature, top-k, top-p): what the policy
            # gradient and the importance ratio refer to. This also keeps vLLM off FlashInfer's GPU sampler,
            # which cannot report them (vllm/v1/sample/ops/topk_topp_sampler.py).
            "logprobs_mode": "processed_logprobs",
            # Seeded requests get a per-request generator. With chunked prefill, vLLM discards the token sampled
            # for a partly prefilled request and rewinds that generator's offset, which the CPU generator does
            # not support ("CPU Generator does not use offset"), and a batch of G x prompts longer than the token
            # budget hits it. Whole prefills, with a budget that fits any one prompt, never rewind.
            "enable_chunked_prefill": False,
            "max_num_batched_tokens": max(max_model_len, 8192),
            "worker_extension_cls": "grpo.rollout.worker_extension.WeightSyncExtension",
        }
        if gpu_memory_utilization is not None:
            args["gpu_memory_utilization"] = gpu_memory_utilization
        args = _merge_engine_args(args, vllm_engine_kwargs(self.model_dir, dtype))  # checks config.json
        args = _merge_engine_args(args, extra_engine_args or {})
        self.hf_config = AutoConfig.from_pretrained(self.model_dir, local_files_only=True)
        self._skeleton = None  # built at the first state-dict update (checkpoint_layout needs the model class)
        # Shapes of the model's own checkpoint: what every update must match (None: not safetensors).
        has_safetensors = any(self.model_dir.glob("*.safetensors"))
        self._checkpoint_shapes = read_shapes(self.model_dir) if has_safetensors else None
        # Updates are written in the engine's dtype (half the bytes for a float32 learner and a bf16 engine).
        self._dtype = getattr(torch, dtype, None) if dtype in ("float32", "bfloat16", "float16") else None
        self.dtype = dtype
        self.max_model_len = max_model_len
        self.enforce_eager = enforce_eager
        self.weights_version = weights_version
        self._broken = False
        self._stream_calls = itertools.count()  # request ids of generate_stream, unique per engine

        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0" if in_process else "1"  # vLLM's only switch for it
        from vllm import LLM

        self.llm = LLM(**args)
        self.tokenizer = self.llm.get_tokenizer()
        # An instruct model ends its turn with the chat template's end-of-turn token (<|im_end|>), which its
        # config's EOS need not be: every request stops at either.
        self.stop_token_ids = end_of_turn_ids(self.tokenizer)

    # ------------------------------------------------------------------------------------------ sampling

    def generate(self, prompts: list[str] | list[list[int]], num_generations: int, sampling: SamplingConfig,
                 prompt_offset: int = 0) -> list[list[Sample]]:
        """`num_generations` samples for each prompt (text, or token ids): one list per prompt, in order.

        `prompt_offset` is the index of prompts[0] in the caller's whole batch (it only moves the seeds).
        """
        token_prompts, params = self._requests(prompts, num_generations, sampling, prompt_offset)
        if not token_prompts:
            return []
        outputs = self._require_open().generate([{"prompt_token_ids": ids} for ids in token_prompts], params,
                                                use_tqdm=False)
        return [[_sample(ids, c, self.weights_version) for c in out.outputs]
                for ids, out in zip(token_prompts, outputs)]

    def generate_stream(self, prompts: list[str] | list[list[int]], num_generations: int, sampling: SamplingConfig,
                        prompt_offset: int = 0) -> Iterator[tuple[int, list[Sample]]]:
        """`generate`, one prompt at a time as its group finishes: yields (prompt_offset + i, the G samples of
        prompts[i]) in the order the groups finish, so a caller can score a group while the rest generate.

        The same requests with the same seeds as `generate` (which is vLLM's add-requests-then-step loop
        too), so the samples are the same. Closing the iterator early aborts the unfinished requests.
        """
        token_prompts, params = self._requests(prompts, num_generations, sampling, prompt_offset)
        engine = self._require_open().llm_engine
        call = next(self._stream_calls)
        pending = {}  # request id -> index in `prompts`
        try:
            # Our own request ids, which the outputs carry back. (LLM.enqueue would render the prompts without
            # vLLM's one-time "raw prompts are deprecated" warning, but returns ids its outputs do not carry.)
            for i, (ids, param) in enumerate(zip(token_prompts, params)):
                request_id = f"grpo-stream-{call}-{i}"
                engine.add_request(request_id, {"prompt_token_ids": ids}, param)
                pending[request_id] = i
            while pending:
                for out in engine.step():
                    if out.finished:
                        i = pending.pop(out.request_id)
                        yield prompt_offset + i, [_sample(token_prompts[i], c, self.weights_version)
                                                  for c in out.outputs]
        finally:
            if pending:
                engine.abort_request(list(pending))

    def _requests(self, prompts, num_generations: int, sampling: SamplingConfig, prompt_offset: int):
        """Checked prompt token ids and their vLLM SamplingParams (seeded by index, see SamplingConfig)."""
        if isinstance(prompts, (str, bytes)) or not isinstance(prompts, (list, tuple)):
            raise UserError(f"prompts must be a list of strings or of token-id lists, got {type(prompts).__name__}")
        if num_generations < 1:
            raise UserError(f"num_generations must be at least 1, got {num_generations}")
        token_prompts = [self._prompt_ids(p, i) for i, p in enumerate(prompts)]
        sampling = replace(sampling, stop_token_ids=sorted(set(sampling.stop_token_ids) | set(self.stop_token_ids)))
        limit = sampling.max_prompt_tokens
        for i, ids in enumerate(token_prompts):
            if limit is not None and len(ids) > limit:
                raise UserError(f"prompt {prompt_offset + i} has {len(ids)} tokens, over max_prompt_length {limit}; "
                                "raise max_prompt_length (and max_model_len with it) or shorten the prompts")
        params = [sampling.to_vllm(num_generations, prompt_offset + i) for i in range(len(token_prompts))]
        return token_prompts, params

    def prompt_logprobs(self, prompt_ids: list[int], completion_ids: list[int]) -> list[float]:
        """The engine's log-probs of `completion_ids` following `prompt_ids` (teacher-forced, one forward), of
        the raw logits (temperature 1, no top-k/top-p: vLLM's prompt log-probs ignore the sampling settings)."""
        from vllm import SamplingParams

        if not prompt_ids or not completion_ids:
            raise UserError("prompt_logprobs needs a non-empty prompt and completion")
        ids = self._prompt_ids(list(prompt_ids) + list(completion_ids), 0)
        out = self._require_open().generate([{"prompt_token_ids": ids}],
                                            SamplingParams(max_tokens=1, prompt_logprobs=0), use_tqdm=False)[0]
        return [out.prompt_logprobs[t][ids[t]].logprob for t in range(len(prompt_ids), len(ids))]

    def _prompt_ids(self, prompt: str | list[int], index: int) -> list[int]:
        if isinstance(prompt, str):
            # A prompt rendered by a chat template already holds its BOS token (if the template writes one), as
            # apply_chat_template(tokenize=True) leaves it: the tokenizer must not add a second.
            bos = self.tokenizer.bos_token
            ids = self.tokenizer.encode(prompt, add_special_tokens=not (bos and prompt.startswith(bos)))
        elif isinstance(prompt, (list, tuple)) and all(isinstance(t, int) for t in prompt):
            ids = list(prompt)
            vocab = self.hf_config.get_text_config().vocab_size
            bad = [t for t in ids if not 0 <= t < vocab]
            if bad:
                raise UserError(f"prompt {index}: token id {bad[0]} is outside the vocabulary (size {vocab})")
        else:
            raise UserError(f"prompt {index} is neither a string nor a list of token ids: {prompt!r:.80}")
        if not ids:
            raise UserError(f"prompt {index} is empty")
        if len(ids) >= self.max_model_len:
            raise UserError(f"prompt {index} has {len(ids)} tokens; max_model_len is {self.max_model_len}, "
                            "which must leave room for at least one new token")
        return ids

    # ------------------------------------------------------------------------------------------ weights

    def update_weights(self, source: Mapping[str, torch.Tensor] | str | Path, version: int) -> dict[str, float]:
        """Replace the engine's weights and set `weights_version` to `version` (which must increase).

        `source`: a state dict with Hugging Face names (`model.state_dict()` of a transformers model, any
        dtype), or the path of a safetensors file or directory in the checkpoint layout (save_pretrained).
        A dict is written to /dev/shm and loaded from there by the worker (weights_io.py says why); writing
        the file yourself once and passing its path saves that copy when several engines take it.
        Returns {"sync/seconds": wall time, "sync/bytes": bytes loaded, "sync/load_seconds": worker time}.
        """
        llm = self._require_open()
        if not self.enforce_eager:
            # The update gives packed weights fresh buffers; captured graphs would keep reading the old ones.
            raise UserError("weight updates need enforce_eager=True (the only mode their parity is proven in)")
        if not isinstance(version, int) or version <= self.weights_version:
            raise UserError(f"weights version must be an int above the current {self.weights_version}, "
                            f"got {version!r}")
        start = time.perf_counter()
        written = None
        if isinstance(source, Mapping):
            if self._skeleton is None:
                self._skeleton = skeleton(self.hf_config)
            tensors = checkpoint_layout(source, self._skeleton)
            self._check({n: tuple(t.shape) for n, t in tensors.items()}, "the state dict")
            written = SYNC_DIR / f"grpo-weights-{os.getpid()}-{id(self):x}-v{version}.safetensors"
            nbytes = write_safetensors(tensors, written, self._dtype)
            path = written
        elif isinstance(source, (str, Path)):
            path = Path(source)
            self._check(read_shapes(path), str(path))
            nbytes = sum(f.stat().st_size for f in weight_files(path))
        else:
            raise UserError(f"weights source must be a state dict or a path, got {type(source).__name__}")
        try:
            results = llm.collective_rpc("grpo_load_weights", args=(str(path),))
        except BaseException:
            self._broken = True  # the model may hold a mix of old, new and unfilled weights
            raise
        finally:
            if written is not None:
                written.unlink(missing_ok=True)
        # Cached KV blocks of earlier prompts were computed with the old weights.
        if not llm.reset_prefix_cache():
            raise RuntimeError("vLLM refused to reset its prefix cache after a weight update")
        self.weights_version = version
        return {"sync/seconds": time.perf_counter() - start, "sync/bytes": float(nbytes),
                "sync/load_seconds": max(r["seconds"] for r in results)}

    def _check(self, shapes: Mapping[str, tuple[int, ...]], where: str) -> None:
        if self._checkpoint_shapes is not None:
            check_shapes(shapes, self._checkpoint_shapes, where)

    # ------------------------------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Shut the engine down (its processes too); idempotent."""
        if self.llm is not None:
            self.llm.llm_engine.engine_core.shutdown()
            self.llm = None

    def __enter__(self) -> RolloutEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _require_open(self):
        if self.llm is None:
            raise RuntimeError("this RolloutEngine is closed")
        if self._broken:
            raise RuntimeError("a weight update of this RolloutEngine failed part-way; restart it")
        return self.llm


def _sample(prompt_ids: list[int], completion, weights_version: int) -> Sample:
    token_ids = list(completion.token_ids)
    return Sample(prompt_token_ids=prompt_ids, token_ids=token_ids,
                  logprobs=[step[t].logprob for step, t in zip(completion.logprobs, token_ids)],
                  text=completion.text, finish_reason=completion.finish_reason, weights_version=weights_version)


def _merge_engine_args(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """`extra` over `base`; a compilation_config is merged key by key, its custom_ops lists concatenated
    (vllm_engine_kwargs' "-rotary_embedding" must survive a caller's own compilation_config)."""
    merged = dict(base)
    for key, value in extra.items():
        if key == "compilation_config" and isinstance(merged.get(key), dict) and isinstance(value, dict):
            config = {**merged[key], **value}
            config["custom_ops"] = list(merged[key].get("custom_ops", [])) + list(value.get("custom_ops", []))
            merged[key] = config
        else:
            merged[key] = value
    return merged
