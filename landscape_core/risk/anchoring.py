"""Where the data's gradient points, and how shallow it is: two measures beside the lookahead.

From per-example gradients of the recipe's LoRA adapters at their initialisation (LESS's
gradient features, arXiv 2402.04333, without its Adam warm-up; streamed, so no projection
is needed to hold them):

- **anchoring** (He, Xia & Henderson, arXiv 2404.01099): the mean over examples of
  cos(g, compliance anchors' mean gradient) - cos(g, refusal anchors' mean gradient).
  The anchors are the same AdvBench goals answered compliantly and refused, rows of
  ``harmful_answers.csv`` whose goals no validation dataset trains on. Each example's own term
  names the rows that drive the score: those a user would remove.
- **shallowness** (Qi et al., arXiv 2406.05946): the share of the data's summed gradient
  that its first ``SHALLOW`` answer tokens contribute, <g_first, g> / |g|^2 (a
  projection: below 0 or above 1 when the later tokens pull against the first).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from landscape_core.engine.training import IGNORE, Batch, Encoded, collate, encode, summed_loss
from landscape_core.engine.training import training_texts as render
from landscape_core.finetune import FinetuneSpec, trainable
from landscape_core.spec.datasets import DATA_DIR
from landscape_core.spec.training_data import REFUSALS, Example, advbench_rows, file_examples

SHALLOW = 5  # answer tokens that carry shallow alignment (Qi et al.)
HARMFUL = DATA_DIR / "finetune/harmful_answers.csv"
# The anchors' goals: AdvBench 400-439, which no validation dataset trains on (harmful
# answers come from its first 100 rows, AdvBench 102-320; refusals from 300-399; align
# from 100-219; the mix recipe's do reach 420 at 100 shots). 16 have a compliant answer.
ANCHOR_GOALS = (400, 40)
TOP_ROWS = 10  # the examples a report names as driving its anchoring score


@dataclass(frozen=True)
class Anchoring:
    score: float  # mean over examples of the per-example terms
    per_example: tuple[float, ...]  # cos to compliance minus cos to refusal, in data order
    shallowness: float  # share of the summed gradient from the first SHALLOW answer tokens
    seconds: float

    def top(self, k: int = TOP_ROWS) -> list[int]:
        """The indices of the examples that pull hardest toward compliance."""
        order = sorted(range(len(self.per_example)), key=lambda i: -self.per_example[i])
        return order[:k]


def anchors() -> tuple[list[Example], list[Example]]:
    """The same goals answered compliantly, then refused."""
    goals = {goal for goal, _ in advbench_rows(*ANCHOR_GOALS)}
    rows = [e for e in file_examples(HARMFUL) if e.prompt in goals]
    refused = [Example(e.prompt, REFUSALS[i % len(REFUSALS)]) for i, e in enumerate(rows)]
    return rows, refused


class Gradients:
    """Gradients of the recipe's loss for its LoRA adapters at their initialisation.

    One per (model, recipe seed): the anchors' directions are computed once and reused
    for every dataset scored with it. ``model`` itself is never modified.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        chat_format: str,
        recipe: FinetuneSpec,
    ) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(recipe.seed)  # the adapters' initialisation, as finetune's
            self.model = trainable(recipe, copy.deepcopy(model))
        self.model.eval()  # no dropout: the gradient of the loss itself
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.tokenizer, self.chat_format, self.recipe = tokenizer, chat_format, recipe
        compliant, refused = anchors()
        self.toward, self.away = self._unit_mean(compliant), self._unit_mean(refused)

    def encode(self, rows: Sequence[Example]) -> list[Encoded]:
        texts = render(self.tokenizer, [e.prompt for e in rows], self.chat_format)
        return encode(self.tokenizer, texts, rows, self.recipe.max_length)

    def of(self, batch: Sequence[Encoded], first_only: bool = False) -> torch.Tensor:
        """The flattened gradient of the summed answer loss (or of its first tokens only)."""
        b = collate(batch, self.tokenizer.pad_token_id)
        labels = b.labels.clone()
        if first_only:
            for row in labels:
                row[(row != IGNORE).nonzero().flatten()[SHALLOW:]] = IGNORE
        loss = summed_loss(self.model, Batch(b.ids, labels, b.mask))
        grads = torch.autograd.grad(loss, self.params, allow_unused=True)
        return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten()
                          for g, p in zip(grads, self.params, strict=True)])  # fmt: skip

    def _unit_mean(self, rows: Sequence[Example]) -> torch.Tensor:
        return _unit(sum(_unit(self.of([e])) for e in self.encode(rows)))


def anchoring(gradients: Gradients, examples: Sequence[Example]) -> Anchoring:
    """Both measures for ``examples``: one backward pass per example, one per batch."""
    started = time.monotonic()
    encoded = gradients.encode(examples)
    terms, whole = [], None
    for e in encoded:
        g = gradients.of([e])
        unit = _unit(g)
        terms.append(float(unit @ gradients.toward - unit @ gradients.away))
        whole = g if whole is None else whole + g
    size = gradients.recipe.batch_size
    first = sum(gradients.of(encoded[i : i + size], first_only=True)
                for i in range(0, len(encoded), size))  # fmt: skip
    share = 0.0 if whole is None else float(first @ whole / max(float(whole @ whole), 1e-30))
    score = sum(terms) / max(len(terms), 1)
    return Anchoring(score, tuple(terms), share, time.monotonic() - started)


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm().clamp_min(1e-30)
