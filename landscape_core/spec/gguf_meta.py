"""What preflight needs from a GGUF file, read once: size, shape and tokenizer.

Opening a GGUF with ``gguf.GGUFReader`` parses every field (2.4 s for the bundled
model here); the Launch page runs preflight on every widget change, so the file is
read once per (path, size, mtime) and its metadata kept as a small record.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from landscape_core.errors import UserError

# config.json's names for the sizes a GGUF file keeps as ``<architecture>.<key>``
CONFIG_KEYS = {
    "num_hidden_layers": "block_count",
    "hidden_size": "embedding_length",
    "num_attention_heads": "attention.head_count",
    "num_key_value_heads": "attention.head_count_kv",
    "max_position_embeddings": "context_length",
    "vocab_size": "vocab_size",
}
SPECIAL_IDS = {
    "bos_token": "bos",
    "eos_token": "eos",
    "unk_token": "unknown",
    "pad_token": "padding",
}


@dataclass(frozen=True)
class GGUFTokenizer:
    """A GGUF's tokenizer as its metadata gives it."""

    kind: str  # tokenizer.ggml.model: "gpt2" is a byte-level BPE
    tokens: tuple[str, ...]
    token_types: tuple[int, ...]  # 3: a control token such as <|im_start|>
    merges: tuple[str, ...]  # "left right"
    chat_template: str | None
    special: dict[str, str | None]  # bos_token, eos_token, unk_token, pad_token


@dataclass(frozen=True)
class GGUFMeta:
    n_params: int
    config: dict[str, int]  # the sizes under config.json's names
    tokenizer: GGUFTokenizer


def read_gguf(path: Path) -> GGUFMeta:
    """The file's metadata; a file that is not a readable GGUF is a UserError."""
    stat = path.stat()
    return _read(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _read(path: str, size: int, mtime_ns: int) -> GGUFMeta:
    from gguf import GGUFReader  # 0.12 s to import; only GGUF files need it

    try:
        reader = GGUFReader(path)
        fields = reader.fields

        def value(name: str) -> Any:
            field = fields.get(name)
            return None if field is None else field.contents()

        arch = value("general.architecture")
        config = {k: int(v) for k, key in CONFIG_KEYS.items() if (v := value(f"{arch}.{key}"))}
        tokens = tuple(value("tokenizer.ggml.tokens") or ())
        config.setdefault("vocab_size", len(tokens))
        ids = {k: value(f"tokenizer.ggml.{name}_token_id") for k, name in SPECIAL_IDS.items()}
        tokenizer = GGUFTokenizer(
            kind=value("tokenizer.ggml.model") or "",
            tokens=tokens,
            token_types=tuple(value("tokenizer.ggml.token_type") or ()),
            merges=tuple(value("tokenizer.ggml.merges") or ()),
            chat_template=value("tokenizer.chat_template"),
            special={k: None if i is None else tokens[int(i)] for k, i in ids.items()},
        )
        n_params = int(sum(int(t.n_elements) for t in reader.tensors))
    except Exception as exc:  # gguf raises ValueError, struct.error, IndexError, ...
        raise UserError(f"{path} is not a readable GGUF file ({exc})") from None
    return GGUFMeta(n_params, config, tokenizer)
