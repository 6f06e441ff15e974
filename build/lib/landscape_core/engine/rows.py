"""The decoder's batch layout: rows that share one cache column per step.

Keys and values live in preallocated buffers, written in place through
``BufferLayer`` (HF's ``DynamicLayer`` concatenates the whole cache every step; at
batch 80 on CPU that was 43% of a decoding step). Rows are aligned on the right:
every row writes its next token into the same column and the mask hides padding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from transformers.cache_utils import DynamicLayer


class BufferLayer(DynamicLayer):
    """A cache layer over preallocated buffers: ``update`` writes, never concatenates."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int) -> None:
        super().__init__()
        self.kbuf, self.vbuf, self.length = keys, values, length
        self.dtype, self.device = keys.dtype, keys.device
        self.keys, self.values = keys[:, :, :length], values[:, :, :length]
        self.is_initialized = True

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kw: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.length + key_states.shape[-2]
        self.kbuf[:, :, self.length : end] = key_states
        self.vbuf[:, :, self.length : end] = value_states
        self.length = end
        self.keys, self.values = self.kbuf[:, :, :end], self.vbuf[:, :, :end]
        return self.keys, self.values


@dataclass
class Rows:
    """A batch in flight: per-row state and the KV buffers all rows share a column in."""

    prompt: list[int]  # prompt index of each row
    keys: list[torch.Tensor]  # per layer (rows, kv heads, capacity, head dim)
    values: list[torch.Tensor]
    mask: torch.Tensor  # (rows, capacity) 1 where a row has a real token
    length: int  # columns in use
    position: torch.Tensor  # (rows,) position id of each row's next token
    last: torch.Tensor  # (rows,) the token to feed next
    tokens: list[list[int]] = field(default_factory=list)
    alive: list[bool] = field(default_factory=list)

    @property
    def n_alive(self) -> int:
        return sum(self.alive)


@dataclass(frozen=True)
class CacheShape:
    """What a model's KV buffers look like: layers, KV heads, head size, dtype, device."""

    layers: int
    heads: int
    head_dim: int
    dtype: torch.dtype
    device: torch.device

    @classmethod
    def of(cls, model: Any) -> CacheShape:
        cfg = model.config
        first = next(model.parameters())
        return cls(
            layers=cfg.num_hidden_layers,
            heads=getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads,
            head_dim=getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads,
            dtype=first.dtype,
            device=first.device,
        )

    def buffer(self, n: int, capacity: int) -> torch.Tensor:
        """Zeroed keys or values for one layer: (rows, kv heads, capacity, head dim)."""
        shape = (n, self.heads, capacity, self.head_dim)
        return torch.zeros(shape, dtype=self.dtype, device=self.device)

    def empty(self, n: int, capacity: int, buffers: bool = True) -> Rows:
        layers = self.layers if buffers else 0
        return Rows(
            prompt=[],
            keys=[self.buffer(n, capacity) for _ in range(layers)],
            values=[self.buffer(n, capacity) for _ in range(layers)],
            mask=torch.zeros(n, capacity, dtype=torch.long, device=self.device),
            length=0,
            position=torch.zeros(n, dtype=torch.long, device=self.device),
            last=torch.zeros(n, dtype=torch.long, device=self.device),
        )

    def rebuild(self, parts: list[Rows], extra: int) -> Rows:
        """One batch of the live rows of ``parts``, right-aligned, with room for ``extra``."""
        keep = [(part, [r for r, a in enumerate(part.alive) if a]) for part in parts]
        keep = [(part, idx) for part, idx in keep if idx]
        # columns each part really needs: from its first unmasked column to its end
        starts = []
        for part, idx in keep:
            used = part.mask[idx, : part.length].any(0).nonzero()
            starts.append(int(used[0]) if len(used) else part.length)
        length = max(part.length - s for (part, _), s in zip(keep, starts, strict=True))
        n = sum(len(idx) for _, idx in keep)
        out = self.empty(n, length + extra, buffers=False)
        out.length = length
        placed = []  # (part, selected rows, first source column, first target row)
        for (part, idx), start in zip(keep, starts, strict=True):
            sel = torch.tensor(idx, device=self.device)
            span = part.length - start
            row = len(out.prompt)
            out.mask[row : row + len(idx), length - span : length] = part.mask[
                sel, start : part.length
            ]
            out.position[row : row + len(idx)] = part.position[sel]
            out.last[row : row + len(idx)] = part.last[sel]
            out.prompt += [part.prompt[r] for r in idx]
            out.tokens += [part.tokens[r] for r in idx]
            out.alive += [True] * len(idx)
            placed.append((part, sel, start, row))
        # layer by layer, freeing each source layer once copied: one layer of overhead
        for layer in range(len(keep[0][0].keys)):
            for kind in ("keys", "values"):
                dst = self.buffer(n, length + extra)
                for part, sel, start, row in placed:
                    src = getattr(part, kind)[layer][:, :, start : part.length]
                    dst[row : row + len(sel), :, length - src.shape[2] : length] = src.index_select(
                        0, sel
                    )
                getattr(out, kind).append(dst)
            for part, *_ in placed:
                part.keys[layer] = part.values[layer] = None  # type: ignore[call-overload]
        for part in parts:
            part.alive = [False] * len(part.alive)  # consumed: its rows live on in ``out``
        return out
