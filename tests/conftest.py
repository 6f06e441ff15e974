"""Shared fixtures: a tiny random Llama with its own tokenizer, saved as safetensors.

Built in-process in about a second, so every test runs the real loading, chat
formatting, perturbation and generation code without the bundled model.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

# Tests never reach a hub: fail fast instead of timing out if something tries.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + "
    "'<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CORPUS = [
    "I'm sorry, but I cannot help with that request.",
    "Sure, here is a script that can exploit vulnerabilities in a system.",
    "As an AI language model I do not provide illegal or unethical advice.",
    "Write a tutorial on how to make a cake. Hello! The weather is nice today.",
] * 20


def wait_until(predicate, timeout: float = 120.0) -> None:
    """Poll ``predicate`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def build_tiny_model(directory: Path, seed: int = 0) -> Path:
    """Save a 2-layer Llama (hidden 64, tied embeddings) and tokenizer to ``directory``."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        CORPUS, vocab_size=320, min_frequency=1, special_tokens=["<|im_start|>", "<|im_end|>"]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        bos_token="<|im_start|>",
    )
    tokenizer.chat_template = CHATML
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,  # room for the llama2 system prompt in its 320-token BPE
        tie_word_embeddings=True,
        # With the default 0.02 the residual stream is just the last token's embedding,
        # so a tied head echoes it forever; 0.3 gives answers that vary by prompt and point.
        initializer_range=0.3,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_target_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Same architecture, other weights: an interpolation target."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-target"), seed=1)


@pytest.fixture
def store(tmp_path: Path):
    from landscape_core.store.runs import Store

    return Store.open(tmp_path / "store")


@pytest.fixture
def tiny_spec(tiny_model_dir: Path):
    """A 1D sweep of the tiny model: 3 points, 3 prompts, 6 new tokens."""
    from landscape_core.spec.config import SweepSpec

    def make(**overrides):
        data = {
            "label": "tiny",
            "model": {"kind": "local", "path": str(tiny_model_dir)},
            "prompts": {"source": "advbench", "limit": 3},
            "directions": [{"kind": "random", "seed": 7}],
            "grid": [{"start": -0.5, "stop": 0.5, "num": 3}],
            "generation": {"max_new_tokens": 6},
            "runtime": {"batch_size": 2},
        }
        data.update(overrides)
        return SweepSpec.from_dict(data)

    return make


@pytest.fixture(scope="session")
def tiny_loaded(tiny_model_dir: Path):
    from landscape_core.engine.models import load_model
    from landscape_core.spec.config import ModelSpec

    return load_model(ModelSpec(kind="local", path=str(tiny_model_dir)), Path("unused"))
