"""Greedy decoding built for sweeps: a shared prefix, in-place KV buffers, no idle rows.

A sweep decodes the same prompt set greedily at every grid point, so this decoder
skips what HF ``generate`` spends on generality:

- The prompts' shared token prefix (chat template and system prompt) is computed
  once per call, and its keys/values are copied into every row.
- Keys/values are written into preallocated buffers. HF's ``DynamicLayer``
  concatenates the whole cache at every step; at batch 80 on CPU that was 43% of a
  decoding step.
- Prompts are prefilled in chunks sorted by length, so padding stays small.
- Finished rows (EOS, length, or a decided verdict) are dropped. Their slots are
  refilled from the queue, so the batch keeps computing live rows only.

Rows are left-aligned on the right: every row writes its next token into the same
cache column, and the attention mask hides each row's padding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from landscape_core.config import GenerationSpec
from landscape_core.errors import Cancelled, NonFiniteError

PREFILL_TOKENS = 1024  # padded prompt tokens per prefill forward: big GEMMs, little padding
REBUILD_SHARE = 4  # drop finished rows / refill once 1/REBUILD_SHARE of the batch is free


@dataclass(frozen=True)
class Generation:
    text: str
    n_tokens: int  # generated tokens, the EOS included when there is one
    stop_reason: Literal["eos", "length", "verdict"]


def eos_ids(model: Any, tokenizer: Any) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def shared_prefix(rows: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix common to all rows, leaving each row one token."""
    if not rows:
        return 0
    limit = min(len(r) for r in rows) - 1
    first = rows[0]
    n = 0
    while n < limit and all(r[n] == first[n] for r in rows):
        n += 1
    return n


def _buffer_layer_class() -> type:
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

    return BufferLayer


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


class Decoder:
    """Forward passes of one model over ``Rows``: prefix, prefill, steps, rebuilds."""

    def __init__(self, model: Any, tokenizer: Any, spec: GenerationSpec) -> None:
        from landscape_core import judges

        self.model, self.tokenizer, self.spec = model, tokenizer, spec
        self.device = next(model.parameters()).device
        self.stops = set(eos_ids(model, tokenizer))
        self.keywords = judges.REFUSAL_KEYWORDS if spec.stop == "verdict" else ()
        self.layer = _buffer_layer_class()
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def forward(
        self, rows: Rows, input_ids: torch.Tensor, positions: torch.Tensor, keep: int = 1
    ) -> torch.Tensor:
        """Run ``input_ids`` after the rows' cache; logits of the last ``keep`` (0: all)."""
        from transformers.cache_utils import Cache

        width = input_ids.shape[1]
        layers = [
            self.layer(k, v, rows.length) for k, v in zip(rows.keys, rows.values, strict=True)
        ]
        out = self.model(
            input_ids=input_ids,
            attention_mask=rows.mask[:, : rows.length + width],
            position_ids=positions,
            past_key_values=Cache(layers=layers),
            use_cache=True,
            logits_to_keep=keep,
        )
        rows.length += width
        if not torch.isfinite(out.logits).all():
            raise NonFiniteError("non-finite logits")
        return out.logits

    def _buffer(self, n: int, capacity: int) -> torch.Tensor:
        """Zeroed keys or values for one layer: (rows, kv heads, capacity, head dim)."""
        cfg = self.model.config
        heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        dtype = next(self.model.parameters()).dtype
        return torch.zeros(n, heads, capacity, dim, dtype=dtype, device=self.device)

    def _empty(self, n: int, capacity: int, buffers: bool = True) -> Rows:
        layers = self.model.config.num_hidden_layers if buffers else 0
        return Rows(
            prompt=[],
            keys=[self._buffer(n, capacity) for _ in range(layers)],
            values=[self._buffer(n, capacity) for _ in range(layers)],
            mask=torch.zeros(n, capacity, dtype=torch.long, device=self.device),
            length=0,
            position=torch.zeros(n, dtype=torch.long, device=self.device),
            last=torch.zeros(n, dtype=torch.long, device=self.device),
        )

    def prefix(self, ids: list[int]) -> Rows | None:
        """The shared prefix's keys/values, computed once (batch of one)."""
        if not ids:
            return None
        rows = self._empty(1, len(ids))
        rows.mask[:, : len(ids)] = 1
        self.forward(
            rows,
            torch.tensor([ids], device=self.device),
            torch.arange(len(ids), device=self.device)[None],
        )
        return rows

    def prefill(
        self, prompts: list[int], suffixes: list[list[int]], prefix: Rows | None, keep: int = 1
    ) -> tuple[Rows, torch.Tensor]:
        """Rows for ``prompts`` and the logits of their last ``keep`` positions (0: all).

        The prefix is copied in and the suffixes, left-padded, run in one pass.
        """
        n, width = len(suffixes), max(len(s) for s in suffixes)
        p = 0 if prefix is None else prefix.length
        rows = self._empty(n, p + width)
        if prefix is not None:
            for dst, src in zip(rows.keys + rows.values, prefix.keys + prefix.values, strict=True):
                dst[:, :, :p] = src[:, :, :p]
            rows.mask[:, :p] = 1
        rows.length = p
        ids = torch.full((n, width), self.pad, dtype=torch.long)
        positions = torch.zeros((n, width), dtype=torch.long)
        for r, suffix in enumerate(suffixes):
            k = len(suffix)
            ids[r, width - k :] = torch.tensor(suffix)
            positions[r, width - k :] = torch.arange(p, p + k)
            rows.mask[r, p + width - k :] = 1
            rows.position[r] = p + k
        logits = self.forward(rows, ids.to(self.device), positions.to(self.device), keep)
        rows.prompt = list(prompts)
        rows.last = logits[:, -1].argmax(-1)
        rows.tokens = [[] for _ in prompts]
        rows.alive = [True] * n
        return rows, logits

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
        out = self._empty(n, length + extra, buffers=False)
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
                dst = self._buffer(n, length + extra)
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

    def step(self, rows: Rows) -> None:
        rows.mask[:, rows.length] = 1
        logits = self.forward(rows, rows.last[:, None], rows.position[:, None])
        rows.last = logits[:, -1].argmax(-1)
        rows.position += 1

    def collect(self, rows: Rows, results: list[Generation | None]) -> None:
        """Take each live row's newest token (``rows.last``) and retire finished rows."""
        newest = rows.last.tolist()
        for r, token in enumerate(newest):
            if not rows.alive[r]:
                continue
            tokens = rows.tokens[r]
            tokens.append(token)
            done = None
            if token in self.stops:
                text = self.tokenizer.decode(tokens[:-1], skip_special_tokens=True)
                done = Generation(text, len(tokens), "eos")
            elif self.keywords and self._has_keyword(tokens):
                text = self.tokenizer.decode(tokens, skip_special_tokens=True)
                done = Generation(text, len(tokens), "verdict")
            elif len(tokens) >= self.spec.max_new_tokens:
                text = self.tokenizer.decode(tokens, skip_special_tokens=True)
                done = Generation(text, len(tokens), "length")
            if done is not None:
                results[rows.prompt[r]] = done
                rows.alive[r] = False

    def _has_keyword(self, tokens: list[int]) -> bool:
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        return any(k in text for k in self.keywords)


@torch.inference_mode()
def generate(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    spec: GenerationSpec,
    *,
    batch_size: int,
    add_special_tokens: bool = False,
    should_stop: Callable[[], bool] | None = None,
) -> list[Generation]:
    """Greedy answers to ``texts``, in input order.

    At most ``batch_size`` rows decode at once. With ``spec.stop == "verdict"`` an
    answer ends as soon as it holds a refusal keyword (the keyword judge's verdict
    cannot change after that). ``should_stop`` is checked before every step and
    raises Cancelled.
    """
    ids = tokenizer(texts, add_special_tokens=add_special_tokens).input_ids
    if any(not row for row in ids):
        raise ValueError("a prompt rendered to no tokens")
    decoder = Decoder(model, tokenizer, spec)
    head = model.get_output_embeddings()
    hook = None if head is None else head.register_forward_pre_hook(_contiguous_input)
    try:
        return _decode(decoder, ids, spec, batch_size, should_stop)
    finally:
        if hook is not None:
            hook.remove()


def _contiguous_input(module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Hand the output head a contiguous input.

    The head gets ``hidden[:, -1:]``, a strided view that turns its GEMM into a slow
    broadcast ``bmm`` (170 ms per prefill chunk on CPU).
    """
    return (args[0].contiguous(), *args[1:])


def _decode(
    decoder: Decoder,
    ids: list[list[int]],
    spec: GenerationSpec,
    batch_size: int,
    should_stop: Callable[[], bool] | None,
) -> list[Generation]:
    p = shared_prefix(ids)
    prefix = decoder.prefix(ids[0][:p])
    queue = sorted(range(len(ids)), key=lambda i: -len(ids[i]))  # longest first
    results: list[Generation | None] = [None] * len(ids)
    rows: Rows | None = None
    while queue or (rows is not None and rows.n_alive):
        if should_stop is not None and should_stop():
            raise Cancelled("stopped during generation")
        size = 0 if rows is None else len(rows.alive)
        alive = 0 if rows is None else rows.n_alive
        room = batch_size - alive
        refill = bool(queue) and (alive == 0 or room * REBUILD_SHARE >= batch_size)
        if refill or (size and (size - alive) * REBUILD_SHARE >= size):
            parts = [] if rows is None else [rows]
            if refill:
                take, queue = queue[:room], queue[room:]
                parts += _prefill_chunks(decoder, take, ids, p, prefix, results)
            parts = [part for part in parts if part.n_alive]
            rows = decoder.rebuild(parts, spec.max_new_tokens) if parts else None
            if rows is None:
                continue
        decoder.step(rows)
        decoder.collect(rows, results)
    return results  # type: ignore[return-value]


def _prefill_chunks(
    decoder: Decoder,
    take: list[int],
    ids: list[list[int]],
    p: int,
    prefix: Rows | None,
    results: list[Generation | None],
) -> list[Rows]:
    """Prefill ``take`` (sorted longest first) in chunks of about PREFILL_TOKENS tokens."""
    parts, chunk = [], []
    for i in take + [-1]:
        if chunk and (i < 0 or len(ids[chunk[0]][p:]) * (len(chunk) + 1) > PREFILL_TOKENS):
            part, _ = decoder.prefill(chunk, [ids[j][p:] for j in chunk], prefix)
            decoder.collect(part, results)  # the first token may already finish a row
            parts.append(part)
            chunk = []
        if i >= 0:
            chunk.append(i)
    return parts
