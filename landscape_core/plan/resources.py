"""Will a sweep fit? The one memory rule, from plain numbers (no torch here).

``plan_memory`` decides where the base copy lives and whether directions are cached,
and refuses a sweep that cannot fit. Preflight calls it with the model's config file
before anything loads; the engine calls it again with the loaded model and the memory
actually free, so both apply the same rule.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from landscape_core.errors import UserError
from landscape_core.spec.config import ModelSpec, SweepSpec
from landscape_core.spec.limits import shown

GiB = 1 << 30
OVERHEAD_BYTES = 600 << 20  # interpreter, torch and tokenizer, measured ~0.5 GiB
HEADROOM = 0.85  # plan to use at most this share of what is free
STORE_BYTES_PER_TOKEN = 8  # UTF-8 text plus SQLite pages and index, generously


def resolve_dtype(spec: ModelSpec, device: str) -> str:
    """The dtype the weights load in: ``auto`` is bfloat16 on CUDA, float32 on CPU.

    Torch-free, so preflight keys and prices points as the engine will load them.
    """
    if spec.dtype != "auto":
        return spec.dtype
    return "bfloat16" if device == "cuda" else "float32"


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
    n_gradients: int = 0,
) -> MemoryEstimate:
    """Peak memory of a sweep: model, base copy, optional direction cache, one batch.

    A gradient direction's float32 gradient is always held (it cannot be rebuilt
    per tensor), cached directions or not.

    ``kv_width`` is ``n_kv_heads * head_dim``; the KV cache holds keys and values for
    every layer and position of the batch, in the weights' dtype.
    """
    kv = 2 * n_layers * kv_width * seq_len * batch_size * weight_bytes
    logits = 2 * batch_size * vocab_size * 4  # float32 scores and a copy
    return MemoryEstimate(
        weights=n_params * weight_bytes,
        base_copy=n_params * weight_bytes if base_in_memory else 0,
        directions=n_params * 4 * ((n_directions if cache_directions else 0) + n_gradients),
        decoding=kv + logits,
        overhead=OVERHEAD_BYTES,
    )


@dataclass(frozen=True)
class ModelShape:
    """The sizes of a model that decide a sweep's memory."""

    n_params: int
    weight_bytes: int  # per parameter: 4 for float32, 2 for half precision
    n_layers: int
    kv_width: int  # KV heads x head size
    vocab_size: int
    context: int | None = None  # the longest sequence it was built for, when known

    @classmethod
    def from_config(
        cls, cfg: Mapping[str, Any], n_params: int, weight_bytes: int, where: str = "config.json"
    ) -> ModelShape:
        """From a Hugging Face ``config.json`` (as a dict); missing sizes count as 0.

        Each size must be a whole number below ``MAX_CONFIG_SIZE``: a text size made
        ``TypeError``s, and a text size times a huge one built gigabytes of repeated text.
        """
        size = {key: _config_size(cfg, key, where) for key in CONFIG_SIZES}
        heads = size["num_attention_heads"] or 1
        head_dim = size["head_dim"] or size["hidden_size"] // heads
        return cls(
            n_params=n_params,
            weight_bytes=weight_bytes,
            n_layers=size["num_hidden_layers"],
            kv_width=(size["num_key_value_heads"] or heads) * head_dim,
            vocab_size=size["vocab_size"],
            context=size["max_position_embeddings"] or size["n_positions"] or None,
        )


CONFIG_SIZES = (
    "num_attention_heads",
    "head_dim",
    "hidden_size",
    "num_hidden_layers",
    "num_key_value_heads",
    "vocab_size",
    "max_position_embeddings",
    "n_positions",
)
MAX_CONFIG_SIZE = 1 << 40  # no model has a size near this; above it the file is broken


def _config_size(cfg: Mapping[str, Any], key: str, where: str) -> int:
    """One size from a config (0 when absent or null), or a UserError naming it."""
    value = cfg.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_CONFIG_SIZE:
        raise UserError(
            f"{where}: {key} is {shown(value)}, not a size (a whole number from 0 to "
            f"{MAX_CONFIG_SIZE:,}); re-save the model's config"
        )
    return value


@dataclass(frozen=True)
class MemoryPlan:
    cache_directions: bool
    base_copy: Literal["disk", "device", "host"]  # host: CUDA weights, base copy in RAM
    estimate: MemoryEstimate


PROMPT_TOKENS_GUESS = 512  # when the longest prompt's length is not known


def sweep_estimate(
    spec: SweepSpec,
    shape: ModelShape,
    *,
    cache_directions: bool,
    base_in_memory: bool,
    prompt_tokens: int | None = None,
) -> MemoryEstimate:
    """A sweep's peak memory with the given placement; ``prompt_tokens``: the longest."""
    prompt = PROMPT_TOKENS_GUESS if prompt_tokens is None else prompt_tokens
    return estimate_memory(
        n_params=shape.n_params,
        weight_bytes=shape.weight_bytes,
        # an interpolation axis also caches its target tensors (for exact lerp)
        n_directions=spec.ndim + (spec.directions[0].kind == "interpolation"),
        cache_directions=cache_directions,
        batch_size=spec.runtime.batch_size,
        seq_len=prompt + spec.generation.max_new_tokens,
        n_layers=shape.n_layers,
        kv_width=shape.kv_width,
        vocab_size=shape.vocab_size,
        base_in_memory=base_in_memory,
        n_gradients=sum(d.kind == "gradient" for d in spec.directions),
    )


def plan_memory(
    spec: SweepSpec,
    shape: ModelShape,
    *,
    free: int | None,
    disk_free: int,
    cuda: bool,
    prompt_tokens: int | None = None,
) -> MemoryPlan:
    """Where the base copy lives and whether directions are cached, or a UserError.

    ``free`` is the memory the sweep may use (the weights' own memory included), or
    None when it is unknown (a GPU seen from the app): then nothing is refused. On CPU
    the base copy and cached directions go to a spill file when the disk has room.
    """
    runtime = spec.runtime
    budget = float("inf") if free is None else free * HEADROOM
    free_text = "unknown" if free is None else f"{free / GiB:.1f} GiB"

    def estimate(cache: bool, base_in_memory: bool) -> MemoryEstimate:
        return sweep_estimate(
            spec, shape, cache_directions=cache, base_in_memory=base_in_memory,
            prompt_tokens=prompt_tokens,
        )  # fmt: skip

    # on disk: the base copy and the cached directions, as float32 at most
    spill_bytes = (1 + spec.ndim) * shape.n_params * 4
    disk_room = disk_free > 1.2 * spill_bytes
    if runtime.base_copy == "disk" and (cuda or not disk_room):
        raise UserError(
            "runtime.base_copy: disk is for CPU sweeps with "
            f"{1.2 * spill_bytes / GiB:.1f} GiB free in the store; set it to auto or memory"
        )
    on_disk = runtime.base_copy == "disk" or (
        runtime.base_copy == "auto" and not cuda and disk_room
    )
    base: Literal["disk", "device", "host"] = "disk" if on_disk else "device"
    lean = estimate(False, not on_disk)
    if cuda and not on_disk and lean.total > budget:
        base, lean = "host", estimate(False, False)  # the base copy in host RAM
    if lean.total > budget:
        raise UserError(
            f"this sweep needs about {lean.describe()} but {free_text} is "
            "available: lower runtime.batch_size or max_new_tokens, or use a smaller model"
        )
    wanted = runtime.cache_directions
    if on_disk:  # the directions are cached next to the base copy, out of RAM
        return MemoryPlan(wanted != "no", base, lean)
    full = estimate(True, base == "device")
    if wanted == "yes" and full.total > budget:
        raise UserError(
            f"caching directions needs about {full.describe()} but {free_text} "
            "is available: set runtime.cache_directions to auto or no"
        )
    cache = wanted == "yes" or (wanted == "auto" and full.total <= budget)
    return MemoryPlan(cache, base, full if cache else lean)


@dataclass(frozen=True)
class GpuMemory:
    """The GPU a CUDA sweep would use, as nvidia-smi reports it."""

    name: str
    total: int  # bytes
    free: int  # bytes


NVIDIA_SMI_TIMEOUT_S = 10.0


def visible_gpu() -> GpuMemory | None:
    """The first GPU CUDA would use (``CUDA_VISIBLE_DEVICES``), read with nvidia-smi.

    Torch-free, so preflight can size a sweep before anything loads. None when no GPU
    is visible, nvidia-smi is missing, or it fails: the engine then checks at load,
    with the memory torch reports.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and not visible.strip():
        return None
    query = ["nvidia-smi", "--query-gpu=name,memory.total,memory.free"]
    query += ["--format=csv,noheader,nounits"]
    if visible:
        query += ["-i", visible.split(",")[0].strip()]
    try:
        out = subprocess.run(
            query, capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S, check=True
        ).stdout
        name, total, free = (part.strip() for part in out.splitlines()[0].rsplit(",", 2))
        return GpuMemory(name, int(float(total)) << 20, int(float(free)) << 20)  # MiB
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


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


def estimate_store_bytes(n_points: int, prompts: Sequence[str], max_new_tokens: int) -> int:
    """Disk a sweep's generations may take at most.

    Every answer at full length, and every prompt's own text: each point's
    ``generations`` rows store it again, and a jailbreak template makes a prompt
    kilobytes long (it used to be left out, so such a sweep passed and filled the disk).
    """
    answers = len(prompts) * (max_new_tokens + 64) * STORE_BYTES_PER_TOKEN
    prompt_text = sum(len(p.encode()) for p in prompts)
    return n_points * (answers + prompt_text)


def free_disk(path: Path) -> int:
    path = path if path.exists() else path.parent
    return shutil.disk_usage(path).free
