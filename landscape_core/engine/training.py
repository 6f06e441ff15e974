"""The finetuning loss's inputs: examples as token ids with the prompt masked out.

``finetune`` trains on these batches and ``gradient`` differentiates the same loss at
the model's weights, so the preflight's direction is the first step's direction.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from landscape_core.engine.decoder import generate
from landscape_core.errors import UserError
from landscape_core.plan.chat import render_prompts
from landscape_core.spec.config import GenerationSpec, SystemPromptSpec
from landscape_core.spec.training_data import Example

IGNORE = -100  # the label of a token the loss skips (the prompt, padding)


def training_texts(tokenizer, prompts: Sequence[str], chat_format: str) -> list[str]:  # noqa: ANN001
    """Prompts as finetuning renders them: the chat template's default system prompt."""
    texts, _ = render_prompts(tokenizer, tuple(prompts), SystemPromptSpec(), chat_format)
    return texts


def own_answers(
    model: torch.nn.Module,
    tokenizer,  # noqa: ANN001 - a transformers tokenizer
    prompts: Sequence[str],
    chat_format: str,
    generation: GenerationSpec,
) -> list[str]:
    """The model's greedy answers to training prompts (``align``'s self-distillation)."""
    texts = training_texts(tokenizer, prompts, chat_format)
    return [g.text for g in generate(model, tokenizer, texts, generation, batch_size=64)]


@dataclass(frozen=True)
class Encoded:
    """One example: its token ids and labels (``IGNORE`` on the prompt)."""

    ids: list[int]
    labels: list[int]

    @property
    def answer_tokens(self) -> int:
        """Tokens the next-token loss scores: answer labels after the first position."""
        return sum(label != IGNORE for label in self.labels[1:])


@dataclass(frozen=True)
class Batch:
    ids: torch.Tensor  # (B, T) long, right padded
    labels: torch.Tensor  # (B, T) long, IGNORE on prompts and padding
    mask: torch.Tensor  # (B, T) long attention mask


def encode(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    examples: Sequence[Example],
    max_length: int,
) -> list[Encoded]:
    """Each rendered prompt followed by its answer and EOS, cut at ``max_length``.

    An example whose prompt alone fills ``max_length`` has nothing to learn from; if
    every one does, that is an error that says so instead of a silent zero loss.
    """
    out = []
    eos = tokenizer.eos_token or ""
    for text, example in zip(texts, examples, strict=True):
        prompt_ids = tokenizer(text, add_special_tokens=False).input_ids
        answer_ids = tokenizer(example.answer + eos, add_special_tokens=False).input_ids
        ids = (prompt_ids + answer_ids)[:max_length]
        labels = ([IGNORE] * len(prompt_ids) + answer_ids)[:max_length]
        out.append(Encoded(ids, labels))
    if out and not any(e.answer_tokens for e in out):
        raise UserError(
            f"every prompt fills max_length ({max_length} tokens), so no answer token is "
            "trained on: raise max_length or shorten the prompts"
        )
    return out


def collate(batch: Sequence[Encoded], pad_id: int) -> Batch:
    width = max(len(e.ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, e in enumerate(batch):
        ids[row, : len(e.ids)] = torch.tensor(e.ids)
        labels[row, : len(e.labels)] = torch.tensor(e.labels)
        mask[row, : len(e.ids)] = 1
    return Batch(ids, labels, mask)


def batches(encoded: Sequence[Encoded], size: int, pad_id: int) -> Iterator[Batch]:
    for start in range(0, len(encoded), size):
        yield collate(encoded[start : start + size], pad_id)


def summed_loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """The batch's next-token negative log-likelihood summed over its answer tokens."""
    logits = model(input_ids=batch.ids, attention_mask=batch.mask).logits
    wide = torch.promote_types(logits.dtype, torch.float32)  # half precision sums badly
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1).to(wide),
        batch.labels[:, 1:].flatten(),
        ignore_index=IGNORE,
        reduction="sum",
    )
