"""Will a sweep fit? Memory and disk estimates from plain numbers (no torch here)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

GiB = 1 << 30
OVERHEAD_BYTES = 600 << 20  # interpreter, torch and tokenizer, measured ~0.5 GiB
HEADROOM = 0.85  # plan to use at most this share of what is free
STORE_BYTES_PER_TOKEN = 8  # UTF-8 text plus SQLite pages and index, generously


@dataclass(frozen=True)
class MemoryEstimate:
    weights: int  # the live model
    base_copy: int  # the one base copy for exact restore, when held in this memory
    directions: int  # cached float32 directions (0 when regenerated per point)
    decoding: int  # KV cache and logits for one batch
    overhead: int

    @property
    def total(self) -> int:
        return self.weights + self.base_copy + self.directions + self.decoding + self.overhead

    def describe(self) -> str:
        parts = ("weights", "base_copy", "directions", "decoding", "overhead")
        inner = ", ".join(f"{p} {getattr(self, p) / GiB:.2f}" for p in parts)
        return f"{self.total / GiB:.2f} GiB ({inner})"


def estimate_memory(
    *,
    n_params: int,
    weight_bytes: int,
    n_directions: int,
    cache_directions: bool,
    batch_size: int,
    seq_len: int,
    n_layers: int,
    kv_width: int,
    vocab_size: int,
    base_in_memory: bool = True,
) -> MemoryEstimate:
    """Peak memory of a sweep: model, base copy, optional direction cache, one batch.

    ``kv_width`` is ``n_kv_heads * head_dim``; the KV cache holds keys and values for
    every layer and position of the batch, in the weights' dtype.
    """
    kv = 2 * n_layers * kv_width * seq_len * batch_size * weight_bytes
    logits = 2 * batch_size * vocab_size * 4  # float32 scores and a copy
    return MemoryEstimate(
        weights=n_params * weight_bytes,
        base_copy=n_params * weight_bytes if base_in_memory else 0,
        directions=n_params * 4 * n_directions if cache_directions else 0,
        decoding=kv + logits,
        overhead=OVERHEAD_BYTES,
    )


def available_memory() -> int:
    """Bytes of host memory available now (MemAvailable on Linux)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def estimate_store_bytes(n_points: int, n_prompts: int, max_new_tokens: int) -> int:
    """Disk a sweep's generations may take at most (every answer at full length)."""
    return n_points * n_prompts * (max_new_tokens + 64) * STORE_BYTES_PER_TOKEN


def free_disk(path: Path) -> int:
    path = path if path.exists() else path.parent
    return shutil.disk_usage(path).free
