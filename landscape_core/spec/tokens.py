"""Prompt lengths before anything loads: a model's tokenizer.json and chat template.

Preflight needs them (a prompt longer than the model's context can kill a worker, and
the memory estimate needs the longest prompt), and preflight must not import torch or
transformers. The ``tokenizers`` library and a sandboxed Jinja environment set up as
transformers sets up its own render the same text and count the same tokens; the
engine checks again with the real tokenizer once the model is loaded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jinja2 import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer
from tokenizers.models import BPE
from tokenizers.pre_tokenizers import ByteLevel

from landscape_core.errors import UserError
from landscape_core.spec.chat import render_prompts
from landscape_core.spec.config import GenerationSpec, SweepSpec
from landscape_core.spec.gguf_meta import read_gguf

SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "pad_token")
CONTROL = 3  # a GGUF token type: special tokens such as <|im_start|>


def _raise(message: str) -> None:
    raise UserError(f"the model's chat template refused the conversation: {message}")


class FileTokenizer:
    """Enough of a tokenizer for ``render_prompts`` and for counting tokens."""

    def __init__(
        self, tokenizer: Tokenizer, chat_template: Any, special: dict[str, str | None], where: Path
    ) -> None:
        self._tokenizer = tokenizer
        self.chat_template = chat_template
        if isinstance(self.chat_template, list):  # named templates: the default one
            named = {t.get("name"): t.get("template") for t in self.chat_template}
            self.chat_template = named.get("default")
        self._special = special
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
        )
        env.globals["raise_exception"] = _raise
        try:
            self._template = env.from_string(self.chat_template or "")  # compiled once
        except TemplateError as exc:
            raise UserError(f"the chat template in {where} does not parse: {exc}") from None

    @classmethod
    def from_directory(cls, root: Path) -> FileTokenizer:
        """From ``tokenizer.json`` and ``tokenizer_config.json`` (and a chat template file)."""
        try:
            tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
            config = json.loads((root / "tokenizer_config.json").read_text())
        except Exception as exc:  # tokenizers raises plain Exception on a bad file
            raise UserError(f"cannot read the tokenizer in {root}: {exc}") from None
        template = root / "chat_template.jinja"
        chat_template = template.read_text() if template.is_file() else config.get("chat_template")
        special = {k: _token_text(config.get(k)) for k in SPECIAL_TOKENS}
        return cls(tokenizer, chat_template, special, root)

    @classmethod
    def from_gguf(cls, path: Path) -> FileTokenizer | None:
        """From a GGUF file's own vocabulary, merges and chat template.

        That is what the bundled model's first conversion writes as ``tokenizer.json``
        (a byte-level BPE), so a sweep's estimate is the same before it and after.
        None for a GGUF tokenizer of another kind (SentencePiece and others).
        """
        meta = read_gguf(path).tokenizer
        if meta.kind != "gpt2":
            return None
        merges = [tuple(m.split(" ", 1)) for m in meta.merges]
        tokenizer = Tokenizer(BPE({t: i for i, t in enumerate(meta.tokens)}, merges))
        tokenizer.pre_tokenizer = ByteLevel(add_prefix_space=False)
        control = zip(meta.tokens, meta.token_types, strict=True)
        tokenizer.add_special_tokens([t for t, kind in control if kind == CONTROL])
        return cls(tokenizer, meta.chat_template, meta.special, path)

    def apply_chat_template(
        self, conversation: list[dict[str, str]], add_generation_prompt: bool = False, **_: Any
    ) -> str:
        return self._template.render(
            messages=conversation, add_generation_prompt=add_generation_prompt, **self._special
        )

    def count(self, texts: Sequence[str], add_special_tokens: bool) -> list[int]:
        encoded = self._tokenizer.encode_batch(list(texts), add_special_tokens=add_special_tokens)
        return [len(e.ids) for e in encoded]


def _token_text(value: Any) -> str | None:
    return value.get("content") if isinstance(value, dict) else value


def prompt_lengths(spec: SweepSpec, prompts: Sequence[str], root: Path) -> list[int] | None:
    """Each prompt's length in tokens as the model reads it.

    None without a tokenizer file, or from a GGUF file whose tokenizer is not a
    byte-level BPE: the engine checks once the model is loaded.
    """
    if root.is_file():
        tokenizer = FileTokenizer.from_gguf(root)
    elif (root / "tokenizer.json").is_file():
        tokenizer = FileTokenizer.from_directory(root)
    else:
        return None
    if tokenizer is None:
        return None
    texts, add_special = render_prompts(
        tokenizer, tuple(prompts), spec.system_prompt, spec.model.chat_format
    )
    return tokenizer.count(texts, add_special)


def check_context(
    lengths: Sequence[int],
    prompts: Sequence[str],
    context: int | None,
    generation: GenerationSpec,
) -> int:
    """The longest prompt's length; a UserError naming it when it cannot fit the context."""
    if not lengths:
        return 0
    row = max(range(len(lengths)), key=lengths.__getitem__)
    longest = lengths[row]
    if context and longest + generation.max_new_tokens > context:
        raise UserError(
            f"prompt {row} of the set ({prompts[row][:60]!r}...) is {longest} tokens as the "
            f"model reads it; with max_new_tokens {generation.max_new_tokens} that exceeds "
            f"the model's context of {context} tokens: drop or shorten that prompt, or "
            "lower max_new_tokens"
        )
    return longest
