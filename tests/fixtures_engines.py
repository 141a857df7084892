"""Shared vLLM engines, one per tiny model per test session (grpo.rollout.engine)."""
