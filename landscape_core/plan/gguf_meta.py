"""What preflight needs from a GGUF file, read once: size, shape and tokenizer.

Opening a GGUF with ``gguf.GGUFReader`` parses every field (2.4 s for the bundled
model here); the Launch page runs preflight on every widget change, so the file is
read once per (path, size, mtime) and its metadata kept as a small record.

``GGUFReader`` builds numpy arrays for every item of every metadata array, ~1.6 KB
and ~0.1 ms each: a 40 MB file of 5M empty token strings cost 8.2 GB and 513 s. So
the counts are checked first, by walking the header with ``struct`` (items skipped,
never built), against bounds above any real model's.
"""

from __future__ import annotations

import functools
import mmap
import struct
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


MAX_ARRAY_ITEMS = 1 << 19  # one metadata array; Llama 3's 280k merges are the most we know
MAX_METADATA_ITEMS = 1 << 20  # all arrays; Gemma 3 has 786k (tokens, scores, types)
MAX_TENSORS = 1 << 16  # tensor entries; the largest models have a few thousand
MAX_FIELDS = 1 << 16  # metadata keys; real files have tens
STRING, ARRAY = 8, 9  # GGUF value types; the rest are fixed-size scalars:
SCALAR_BYTES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


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

    check_counts(Path(path))
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


def check_counts(path: Path) -> None:
    """Refuse a GGUF whose tensor, key or array-item counts pass the bounds above.

    Costs one step per metadata string (the bundled model's ~100k: ~0.1 s). A file cut
    short stops the walk: ``GGUFReader`` then reports it.
    """
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if data[:4] != b"GGUF" or len(data) < 24:
            return  # not a GGUF (or version 1): the reader says so
        n_tensors, n_fields = struct.unpack_from("<QQ", data, 8)
        _bound(path, "tensor entries", n_tensors, MAX_TENSORS)
        _bound(path, "metadata keys", n_fields, MAX_FIELDS)
        walk = _Walk(path, data, 24)
        try:
            for _ in range(n_fields):
                key = walk.string()
                walk.value(struct.unpack_from("<I", data, walk.at)[0], key, step=4)
        except (struct.error, IndexError, ValueError, RecursionError):  # the reader reports it
            return


class _Walk:
    """A cursor over GGUF metadata that counts array items instead of building them."""

    def __init__(self, path: Path, data: mmap.mmap, at: int) -> None:
        self.path, self.data, self.at, self.items = path, data, at, 0

    def string(self) -> str:
        (n,) = struct.unpack_from("<Q", self.data, self.at)
        if self.at + 8 + n > len(self.data):
            raise ValueError("cut short")
        self.at += 8 + n
        return self.data[self.at - n : self.at][:200].decode(errors="replace")

    def value(self, kind: int, key: str, step: int = 0) -> None:
        self.at += step
        if kind == STRING:
            self.string()
        elif kind == ARRAY:
            item, count = struct.unpack_from("<IQ", self.data, self.at)
            self.at += 12
            _bound(self.path, f"items in its metadata array {key}", count, MAX_ARRAY_ITEMS)
            self.items += count
            _bound(self.path, "metadata array items in all", self.items, MAX_METADATA_ITEMS)
            if item in SCALAR_BYTES:
                self.at += count * SCALAR_BYTES[item]
            else:
                for _ in range(count):
                    self.value(item, key)
        elif kind in SCALAR_BYTES:
            self.at += SCALAR_BYTES[kind]
        else:
            raise ValueError(f"unknown value type {kind}")


def _bound(path: Path, what: str, count: int, most: int) -> None:
    if count > most:
        raise UserError(
            f"{path} has {count:,} {what}; at most {most:,} are read, above any real "
            "model's (parsing more costs gigabytes): this GGUF is broken or not a model"
        )
