"""The policy learner: log-probs in chunks, token-budget micro-batches, AdamW, checkpoints, data parallel."""
