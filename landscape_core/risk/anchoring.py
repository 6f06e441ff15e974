"""Where the data's gradient points, and how shallow it is: two measures beside the lookahead.

From per-example gradients of the recipe's LoRA adapters at their initialisation (LESS's
gradient features, arXiv 2402.04333, without its Adam warm-up; streamed, so no projection
is needed to hold them):

- **anchoring** (He, Xia & Henderson, arXiv 2404.01099): the mean over examples of
  cos(g, compliance anchors' mean gradient) - cos(g, refusal anchors' mean gradient).
  The anchors are the same AdvBench goals answered compliantly and refused, rows of
  ``harmful_answers.csv`` that no validation dataset trains on. Each example's own term
  names the rows that drive the score: those a user would remove.
- **shallowness** (Qi et al., arXiv 2406.05946): the share of the data's summed gradient
  that its first ``SHALLOW`` answer tokens contribute, <g_first, g> / |g|^2.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from landscape_core.engine.training import IGNORE, Encoded, collate, encode
from landscape_core.engine.training import training_texts as render
from landscape_core.finetune import FinetuneSpec, trainable
from landscape_core.spec.datasets import DATA_DIR
from landscape_core.spec.training_data import REFUSALS, Example, file_examples

SHALLOW = 5  # answer tokens that carry shallow alignment (Qi et al.)
HARMFUL = DATA_DIR / "finetune/harmful_answers.csv"
ANCHOR_ROWS = slice(120, 152)  # the validation trains on rows < 100 of that file


@dataclass(frozen=True)
class Anchoring:
    score: float  # mean over examples of the per-example terms
    per_example: tuple[float, ...]  # cos to compliance minus cos to refusal, in data order
    shallowness: float  # share of the summed gradient from the first SHALLOW answer tokens
    seconds: float

    def top(self, k: int = 10) -> list[int]:
        """The indices of the examples that pull hardest toward compliance."""
        order = sorted(range(len(self.per_example)), key=lambda i: -self.per_example[i])
        return order[:k]


def anchors() -> tuple[list[Example], list[Example]]:
    """The same goals answered compliantly, then refused."""
    rows = file_examples(HARMFUL)[ANCHOR_ROWS]
    refused = [Example(e.prompt, REFUSALS[i % len(REFUSALS)]) for i, e in enumerate(rows)]
    return rows, refused


def anchoring(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    chat_format: str,
    recipe: FinetuneSpec,
    examples: Sequence[Example],
) -> Anchoring:
    """Both measures for ``examples`` under ``recipe``'s adapters; ``model`` is untouched."""
    started = time.monotonic()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)  # the adapters' initialisation, as finetune seeds it
        moved = trainable(recipe, copy.deepcopy(model))
    moved.eval()  # no dropout: the gradient of the loss itself
    params = [p for p in moved.parameters() if p.requires_grad]

    def encoded(rows: Sequence[Example]) -> list[Encoded]:
        texts = render(tokenizer, [e.prompt for e in rows], chat_format)
        return encode(tokenizer, texts, rows, recipe.max_length)

    def flat(loss: torch.Tensor, retain: bool = False) -> torch.Tensor:
        grads = torch.autograd.grad(loss, params, retain_graph=retain, allow_unused=True)
        return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten()
                          for g, p in zip(grads, params, strict=True)])  # fmt: skip

    def gradients(e: Encoded) -> tuple[torch.Tensor, torch.Tensor]:
        """The example's gradient from its first SHALLOW answer tokens, and its whole one."""
        batch = collate([e], tokenizer.pad_token_id)
        logits = moved(input_ids=batch.ids, attention_mask=batch.mask).logits[0, :-1].float()
        labels = batch.labels[0, 1:]
        first = torch.zeros_like(labels, dtype=torch.bool)
        first[(labels != IGNORE).nonzero().flatten()[:SHALLOW]] = True
        losses = torch.nn.functional.cross_entropy(
            logits, labels.clamp_min(0), reduction="none"
        ) * (labels != IGNORE)
        g_first = flat(losses[first].sum(), retain=True)
        return g_first, g_first + flat(losses[~first].sum())

    def unit_mean(rows: Sequence[Example]) -> torch.Tensor:
        return _unit(sum(_unit(gradients(e)[1]) for e in encoded(rows)))

    compliant, refused = anchors()
    toward, away = unit_mean(compliant), unit_mean(refused)
    terms, whole, first_sum = [], None, None
    for e in encoded(examples):
        g_first, g = gradients(e)
        unit = _unit(g)
        terms.append(float(unit @ toward - unit @ away))
        whole = g if whole is None else whole + g
        first_sum = g_first if first_sum is None else first_sum + g_first
    share = (
        float(first_sum @ whole / max(float(whole @ whole), 1e-30)) if whole is not None else 0.0
    )
    score = sum(terms) / max(len(terms), 1)
    return Anchoring(score, tuple(terms), share, time.monotonic() - started)


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm().clamp_min(1e-30)
