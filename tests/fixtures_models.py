"""Tiny model directories built once per test session (grpo.models.factory)."""
