"""Models without a hub: presets built with random weights (factory.py), the locally trained tokenizer
(tokenizer.py), the vLLM engine arguments a model needs (vllm_args.py) and the `grpo models` commands (cli.py)."""
