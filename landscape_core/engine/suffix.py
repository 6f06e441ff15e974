"""A GCG-style adversarial suffix search (Zou et al. 2023), against perturbed copies.

The loss is the mean NLL of each goal's target answer ("Sure, here is ...") after
``before + suffix + after``, averaged over goals and over the attacker's perturbed
copies of the model, so the suffix is searched to survive the perturbed-ensemble
defence. Each step takes the gradient of that loss with respect to the suffix's
one-hot tokens, samples single-token swaps from each position's top-k, and keeps the
best swap. Sized for the 135M demo on a CPU: the part of each prompt before the
suffix is computed once per copy and goal (its keys and values are reused), and only
the answer's positions go through the output head.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.cache_utils import Cache, DynamicLayer

from landscape_core.errors import Cancelled


@dataclass(frozen=True)
class Row:
    """One goal's tokens around the suffix: what precedes it, follows it, and the target."""

    before: list[int]
    after: list[int]
    target: list[int]


@dataclass(frozen=True)
class Settings:
    steps: int
    candidates: int = 24  # swaps evaluated per step
    topk: int = 64  # tokens per position the swaps are drawn from
    seed: int = 0


@dataclass
class Found:
    """The best suffix seen, with the loss after each step."""

    tokens: list[int]
    loss: float
    losses: list[float] = field(default_factory=list)
    initial_loss: float = 0.0
    seconds: float = 0.0


def allowed_tokens(tokenizer: PreTrainedTokenizerBase, vocab: int) -> torch.Tensor:
    """Printable ASCII tokens without newlines or special tokens: what a swap may use."""
    ok = torch.zeros(vocab, dtype=torch.bool)
    special = set(tokenizer.all_special_ids)
    for i in range(min(vocab, len(tokenizer))):
        text = tokenizer.decode([i])
        ok[i] = i not in special and text.strip() != "" and text.isascii() and text.isprintable()
    return ok


def _cached(cache: list[tuple[torch.Tensor, torch.Tensor]], batch: int) -> Cache:
    """A fresh cache over the prefix's keys and values for ``batch`` rows (no copy)."""
    layers = []
    for k, v in cache:
        layer = DynamicLayer()
        layer.keys, layer.values = k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)
        layer.dtype, layer.device, layer.is_initialized = k.dtype, k.device, True
        layers.append(layer)
    return Cache(layers=layers)


class Objective:
    """Target NLL averaged over goals and models, for a batch of suffixes."""

    def __init__(self, models: Sequence[PreTrainedModel], rows: Sequence[Row]) -> None:
        self.models, self.rows = list(models), list(rows)
        self.prefix: dict[tuple[int, int], list[tuple[torch.Tensor, torch.Tensor]]] = {}
        with torch.no_grad():
            for m, model in enumerate(self.models):
                for g, row in enumerate(self.rows):
                    out = model(input_ids=torch.tensor([row.before]), use_cache=True)
                    cache = out.past_key_values
                    self.prefix[m, g] = [(lay.keys, lay.values) for lay in cache.layers]

    def _nll(
        self, m: int, g: int, tail: torch.Tensor | None, embeds: torch.Tensor | None
    ) -> torch.Tensor:
        """Mean target NLL per row, for suffix ids (``tail``) or suffix embeddings."""
        model, row = self.models[m], self.rows[g]
        rest = torch.tensor(row.after + row.target)
        if embeds is None:
            assert tail is not None
            ids = torch.cat([tail, rest.expand(tail.shape[0], -1)], dim=1)
            inputs = model.get_input_embeddings()(ids)
        else:
            inputs = torch.cat([embeds, model.get_input_embeddings()(rest)[None]], dim=1)
        n = len(row.target)
        out = model(
            inputs_embeds=inputs,
            past_key_values=_cached(self.prefix[m, g], inputs.shape[0]),
            use_cache=True,
            logits_to_keep=n + 1,
        )
        logits = out.logits[:, :-1].float()
        target = torch.tensor(row.target).expand(logits.shape[0], -1)
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, reduction="none")
        return nll.mean(dim=1)

    @torch.no_grad()
    def losses(self, suffixes: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(suffixes.shape[0])
        for m in range(len(self.models)):
            for g in range(len(self.rows)):
                total += self._nll(m, g, suffixes, None)
        return total / (len(self.models) * len(self.rows))

    def gradient(self, suffix: torch.Tensor) -> torch.Tensor:
        """D loss / d one-hot suffix, (positions, vocabulary), each model's normalised."""
        total = None
        for m, model in enumerate(self.models):
            table = model.get_input_embeddings().weight
            one_hot = torch.nn.functional.one_hot(suffix, table.shape[0]).to(table.dtype)
            one_hot.requires_grad_(True)
            loss = sum(self._nll(m, g, None, (one_hot @ table)[None]).sum()
                       for g in range(len(self.rows)))  # fmt: skip
            (grad,) = torch.autograd.grad(loss, one_hot)
            grad = grad / grad.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            total = grad if total is None else total + grad
        assert total is not None
        return total


def search(
    objective: Objective,
    init: list[int],
    allowed: torch.Tensor,
    keeps_tokens: Callable[[list[int]], bool],
    settings: Settings,
    should_stop: Callable[[], bool] | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> Found:
    """Greedy coordinate gradient search from ``init``.

    ``keeps_tokens`` rejects swaps whose text would not tokenize back to the same ids,
    so the prompt that is sent is the one that was searched.
    """
    started = time.monotonic()
    rng = torch.Generator().manual_seed(settings.seed)
    current = torch.tensor(init)
    current_loss = float(objective.losses(current[None])[0])
    found = Found(list(init), current_loss, initial_loss=current_loss)
    for step in range(settings.steps):
        if should_stop is not None and should_stop():
            raise Cancelled
        grad = objective.gradient(current)
        grad[:, ~allowed] = float("inf")
        top = (-grad).topk(settings.topk, dim=1).indices
        positions = torch.randint(len(init), (settings.candidates,), generator=rng)
        picks = torch.randint(settings.topk, (settings.candidates,), generator=rng)
        candidates = current.repeat(settings.candidates, 1)
        candidates[torch.arange(settings.candidates), positions] = top[positions, picks]
        keep = [i for i, c in enumerate(candidates.tolist()) if keeps_tokens(c)]
        if not keep:
            found.losses.append(current_loss)
            continue
        candidates = candidates[keep]
        losses = objective.losses(candidates)
        best = int(losses.argmin())
        current, current_loss = candidates[best], float(losses[best])
        if current_loss < found.loss:
            found.tokens, found.loss = current.tolist(), current_loss
        found.losses.append(current_loss)
        if on_step is not None:
            on_step(step, current_loss)
    found.seconds = time.monotonic() - started
    return found
