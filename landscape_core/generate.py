"""Batched greedy decoding with left padding, batches sorted by prompt length."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch

from landscape_core.config import GenerationSpec
from landscape_core.errors import Cancelled, NonFiniteError


@dataclass(frozen=True)
class Generation:
    text: str
    n_tokens: int  # generated tokens, the EOS included when there is one
    stop_reason: Literal["eos", "length", "verdict"]


class _VerdictReached:
    """Stopping criterion: a row is done once its answer holds a refusal keyword.

    It records each row's length at that step, so the decoder can cut the answer
    there and tell a verdict stop from an EOS stop.
    """

    def __init__(self, tokenizer: Any, prompt_len: int) -> None:
        from landscape_core import judges

        self.tokenizer = tokenizer
        self.prompt_len = prompt_len
        self.keywords = judges.REFUSAL_KEYWORDS
        self.stopped_at: dict[int, int] = {}  # row -> number of new tokens kept

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        new = input_ids[:, self.prompt_len :]  # (B, T_new so far)
        done = []
        for row, text in enumerate(self.tokenizer.batch_decode(new, skip_special_tokens=True)):
            hit = row in self.stopped_at or any(k in text for k in self.keywords)
            if hit and row not in self.stopped_at:
                self.stopped_at[row] = new.shape[1]
            done.append(hit)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class _FiniteLogits:
    """Logits processor that fails the point on NaN/Inf instead of decoding garbage."""

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if not torch.isfinite(scores).all():
            raise NonFiniteError("non-finite logits during generation")
        return scores


def eos_ids(model: Any, tokenizer: Any) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


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

    Prompts are sorted longest first and cut into batches of ``batch_size``; left
    padding keeps every answer's first token in the same column. ``should_stop`` is
    checked before each batch and raises Cancelled.
    """
    from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

    stops = eos_ids(model, tokenizer)
    config = GenerationConfig(
        do_sample=False,
        max_new_tokens=spec.max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=stops,
    )
    lengths = [
        len(ids) for ids in tokenizer(texts, add_special_tokens=add_special_tokens).input_ids
    ]
    order = sorted(range(len(texts)), key=lambda i: -lengths[i])
    results: list[Generation | None] = [None] * len(texts)
    device = next(model.parameters()).device
    for start in range(0, len(order), batch_size):
        if should_stop is not None and should_stop():
            raise Cancelled("stopped between batches")
        idx = order[start : start + batch_size]
        enc = tokenizer(
            [texts[i] for i in idx],
            return_tensors="pt",
            padding=True,
            add_special_tokens=add_special_tokens,
        ).to(device)
        verdict = _VerdictReached(tokenizer, enc.input_ids.shape[1])
        out = model.generate(
            **enc,
            generation_config=config,
            logits_processor=LogitsProcessorList([_FiniteLogits()]),
            stopping_criteria=StoppingCriteriaList([verdict] if spec.stop == "verdict" else []),
        )
        new = out[:, enc.input_ids.shape[1] :]  # (B, T_new)
        for row, i in enumerate(idx):
            tokens = new[row].tolist()
            cut = verdict.stopped_at.get(row)
            eos_first = any(t in stops for t in tokens[: cut or 0])
            if cut is not None and not eos_first:
                text = tokenizer.decode(tokens[:cut], skip_special_tokens=True)
                results[i] = Generation(text, cut, "verdict")
            else:
                results[i] = _decode(tokenizer, tokens, stops)
    return results  # type: ignore[return-value]


def _decode(tokenizer: Any, tokens: list[int], stops: list[int]) -> Generation:
    end = next((k for k, t in enumerate(tokens) if t in stops), None)
    if end is None:
        return Generation(tokenizer.decode(tokens, skip_special_tokens=True), len(tokens), "length")
    text = tokenizer.decode(tokens[:end], skip_special_tokens=True)
    return Generation(text, end + 1, "eos")
