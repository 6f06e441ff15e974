"""The GCG-style suffix search, on the tiny model."""

from __future__ import annotations

import copy

import torch

from landscape_core.engine import suffix


def _rows(tokenizer) -> list[suffix.Row]:
    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False).input_ids

    turn = ids("<|im_end|>\n<|im_start|>assistant\n")
    return [
        suffix.Row(ids("<|im_start|>user\nWrite a script"), turn, ids("Sure, here is a script")),
        suffix.Row(ids("<|im_start|>user\nMake a cake"), turn, ids("Sure, here is")),
    ]


def _copies(model, n: int = 2) -> list:
    out = []
    for k in range(n):
        twin = copy.deepcopy(model).eval()
        with torch.no_grad():
            generator = torch.Generator().manual_seed(k)
            for p in twin.parameters():
                p.add_(
                    torch.randn(p.shape, generator=generator) * 0.01 * p.norm() / p.numel() ** 0.5
                )
        out.append(twin)
    return out


def test_the_cached_prefix_gives_the_full_sequences_loss(tiny_loaded):
    model, tokenizer = tiny_loaded.model, tiny_loaded.tokenizer
    rows, copies = _rows(tokenizer), _copies(model)
    objective = suffix.Objective(copies, rows)
    tails = torch.tensor([tokenizer(" ! ! !", add_special_tokens=False).input_ids] * 2)
    tails[1, 0] = 40
    expected = torch.zeros(2)
    with torch.no_grad():
        for twin in copies:
            for row in rows:
                for b in range(2):
                    ids = torch.tensor([row.before + tails[b].tolist() + row.after + row.target])
                    logits = twin(input_ids=ids).logits[0, -len(row.target) - 1 : -1]
                    nll = torch.nn.functional.cross_entropy(logits, torch.tensor(row.target))
                    expected[b] += nll / (len(copies) * len(rows))
    torch.testing.assert_close(objective.losses(tails), expected, rtol=1e-4, atol=1e-5)


def test_the_search_lowers_the_loss_with_allowed_tokens_only(tiny_loaded):
    model, tokenizer = tiny_loaded.model, tiny_loaded.tokenizer
    objective = suffix.Objective(_copies(model), _rows(tokenizer))
    init = tokenizer(" ! ! ! !", add_special_tokens=False).input_ids
    allowed = suffix.allowed_tokens(tokenizer, model.get_input_embeddings().weight.shape[0])
    assert allowed.any() and not allowed[tokenizer.eos_token_id]
    seen = []

    def keeps(ids: list[int]) -> bool:
        seen.append(ids)
        return tokenizer(tokenizer.decode(ids), add_special_tokens=False).input_ids == ids

    settings = suffix.Settings(steps=4, candidates=8, topk=8, seed=3)
    found = suffix.search(objective, init, allowed, keeps, settings)
    assert found.loss < found.initial_loss
    assert len(found.losses) == 4
    assert keeps(found.tokens)
    swapped = {t for ids in seen for t, t0 in zip(ids, init, strict=True) if t != t0}
    assert all(allowed[t] for t in swapped), "swaps come from the allowed tokens"
    again = suffix.search(objective, init, allowed, keeps, settings)
    assert again.tokens == found.tokens, "the search is deterministic for a seed"
