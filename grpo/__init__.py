"""grpo: the RL core (config schema, algorithms, rollout, learner, driver loop, data, models).

Importing it registers the generative judge's `vllm` backend (grpo/rollout/judge.py) with the rewards
package, which sits below and cannot import the engine itself. Every user of a judge reward above rewards
(the RL loop, the pipeline stages, `grpo rewards score`) imports this package first, so this is the one place.
"""

import grpo.rollout.judge  # noqa: F401  registers the judge reward's vllm backend
