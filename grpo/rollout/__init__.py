"""Rollout: vLLM engines that sample responses with their log-probs (engine.py), the weight update that
reaches inside vLLM's worker (worker_extension.py, weights_io.py), and the Ray actor hosting an engine
(actor.py). Import the modules themselves; this package imports nothing so that `grpo.rollout.engine`'s
dataclasses stay cheap to import."""
