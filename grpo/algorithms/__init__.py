"""The math of GRPO as pure tensor functions: advantages, policy losses, KL estimators, batch shaping.

No I/O, no Ray, no model code: tensors in, tensors (and float metrics) out. Rows are group-contiguous:
rows [b*G:(b+1)*G] are the G = num_generations samples of prompt b. Invalid options and inputs raise
common.errors.UserError with a message naming the argument.
"""

from grpo.algorithms.advantages import (
    ADVANTAGE_ESTIMATORS,
    as_groups,
    compute_advantages,
    dr_grpo_advantages,
    grpo_advantages,
    process_supervision_advantages,
    reinforce_pp_baseline_advantages,
    rloo_advantages,
)
from grpo.algorithms.kl import KL_ESTIMATORS, MAX_LOG_RATIO, kl_estimate
from grpo.algorithms.losses import LOSS_TYPES, METRIC_NAMES, PolicyLossConfig, aggregate_loss, policy_loss
from grpo.algorithms.shaping import (
    advantage_stats,
    dynamic_sampling_mask,
    uniform_groups,
)

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "KL_ESTIMATORS",
    "LOSS_TYPES",
    "MAX_LOG_RATIO",
    "METRIC_NAMES",
    "PolicyLossConfig",
    "advantage_stats",
    "aggregate_loss",
    "as_groups",
    "compute_advantages",
    "dr_grpo_advantages",
    "dynamic_sampling_mask",
    "grpo_advantages",
    "kl_estimate",
    "policy_loss",
    "process_supervision_advantages",
    "reinforce_pp_baseline_advantages",
    "rloo_advantages",
    "uniform_groups",
]
