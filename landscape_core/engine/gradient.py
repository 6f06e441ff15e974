"""The gradient direction: where the first finetuning step on some data would move.

Minus the gradient of the finetuning loss (next-token NLL on the answers, averaged
over every answer token of the data) at the model's current weights, per unique
parameter. One backward pass per batch, accumulated; the model is left as it was
(no gradients kept, ``requires_grad`` restored). ``Directions`` normalises it.
"""

from __future__ import annotations

import torch

from landscape_core.engine.models import LoadedModel
from landscape_core.engine.perturb import unique_parameters
from landscape_core.engine.training import batches, encode, own_answers, summed_loss, training_texts
from landscape_core.spec.config import GenerationSpec, TrainingDataSpec
from landscape_core.spec.training_data import Example, examples

MAX_LENGTH = 256  # the finetune recipe's max_length
BATCH = 8
DISTILL = GenerationSpec(max_new_tokens=64)  # align's self-distillation, as finetune's


def descent(
    model: torch.nn.Module,
    tokenizer,  # noqa: ANN001 - a transformers tokenizer
    texts: list[str],
    data: list[Example],
    max_length: int = MAX_LENGTH,
) -> dict[str, torch.Tensor]:
    """-grad of the mean answer-token loss over ``data`` (prompts rendered as ``texts``)."""
    encoded = encode(tokenizer, texts, data, max_length)
    tokens = sum(e.answer_tokens for e in encoded)
    params = unique_parameters(model)
    trainable = {name: p.requires_grad for name, p in params.items()}
    was_training = model.training
    model.eval()  # no dropout: the direction is a function of the weights and data
    try:
        for p in params.values():
            p.requires_grad_(True)
            p.grad = None
        with torch.enable_grad():
            for batch in batches(encoded, BATCH, tokenizer.pad_token_id):
                (summed_loss(model, batch) / tokens).backward()
        return {
            name: torch.zeros(p.shape) if p.grad is None else -p.grad.detach().float().cpu()
            for name, p in params.items()
        }
    finally:
        for name, p in params.items():
            p.grad = None
            p.requires_grad_(trainable[name])
        model.train(was_training)


def data_direction(
    loaded: LoadedModel, spec: TrainingDataSpec, chat_format: str
) -> dict[str, torch.Tensor]:
    """``descent`` over a data spec's examples, rendered as ``finetune`` renders them."""
    model, tokenizer = loaded.model, loaded.tokenizer
    data = examples(
        spec, lambda prompts: own_answers(model, tokenizer, prompts, chat_format, DISTILL)
    )
    texts = training_texts(tokenizer, [e.prompt for e in data], chat_format)
    return descent(model, tokenizer, texts, data)
