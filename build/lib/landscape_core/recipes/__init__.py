"""Composite workflows built on the engine: finetuning, the refusal classifier, the paper."""
