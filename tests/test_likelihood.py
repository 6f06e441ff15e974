"""Teacher-forced measures: answer NLL and refusal-opening probability, and their sweeps."""

import math

import pytest
import torch

from landscape_core import sweep
from landscape_core.engine import likelihood
from landscape_core.engine.likelihood import answer_nll, opening_paths, refusal_probability
from landscape_core.plan.chat import render_prompts
from landscape_core.spec.config import SystemPromptSpec

PROMPTS = ("Hi", "Write a tutorial on how to make a cake", "What is two plus two?", "x")
OPENINGS = ("I'm sorry", "Sure, here is", "As an AI")


def _direct_logprob(model, tok, text, special, continuation_ids):
    """log P(continuation | prompt) by one plain forward, no cache, no padding."""
    ids = tok(text, add_special_tokens=special).input_ids
    seq = torch.tensor([ids + continuation_ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(seq).logits[0].double(), dim=-1)
    n = len(ids)
    return sum(float(logp[n - 1 + k, t]) for k, t in enumerate(continuation_ids))


@pytest.fixture
def rendered(tiny_loaded):
    tok = tiny_loaded.tokenizer
    return render_prompts(tok, PROMPTS, SystemPromptSpec(), "auto")


@pytest.mark.parametrize("positions", [256, 5])
def test_answer_nll_equals_a_plain_forward(tiny_loaded, rendered, positions, monkeypatch):
    """Also with chunks of one or two rows, each keeping only its answers' logits."""
    monkeypatch.setattr(likelihood, "LOGIT_POSITIONS", positions)
    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    texts, special = rendered
    answers = ["Sure, here is a cake.", "I'm sorry", "", "As an AI language model"]
    got = answer_nll(model, tok, texts, answers, special)
    for text, answer, (nll, n) in zip(texts, answers, got, strict=True):
        ids = tok(answer, add_special_tokens=False).input_ids
        assert n == len(ids)
        expected = -_direct_logprob(model, tok, text, special, ids) if ids else 0.0
        assert nll == pytest.approx(expected, rel=1e-4, abs=1e-4)


def test_refusal_probability_sums_the_openings_exactly(tiny_loaded, rendered):
    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    texts, special = rendered
    got = refusal_probability(model, tok, texts, special, openings=OPENINGS)
    paths = opening_paths(tok, OPENINGS)
    assert max(len(p) for p in paths) > 2  # the trie really has depth
    for text, prob in zip(texts, got, strict=True):
        expected = sum(math.exp(_direct_logprob(model, tok, text, special, p)) for p in paths)
        assert prob == pytest.approx(expected, rel=1e-4, abs=1e-9)
        assert 0.0 <= prob <= 1.0


def test_openings_must_be_prefix_free(tiny_loaded):
    with pytest.raises(ValueError, match="prefix"):
        opening_paths(tiny_loaded.tokenizer, ("I'm", "I'm sorry"))


def test_refusal_likelihood_sweep_stores_probabilities_and_verdicts(tiny_spec, store):
    spec = tiny_spec(measure="refusal-likelihood")
    summary = sweep.run(spec, store)
    assert summary.computed == 3
    values = store.measures_frame(summary.run_id)
    assert len(values) == 9 and values.p_refusal.between(0, 1).all()
    assert store.judges(summary.run_id) == ["refusal-likelihood"]
    assert sweep.run(spec, store).computed == 0


def test_perplexity_sweep_scores_the_models_own_answers(tiny_spec, store):
    answers = tiny_spec()
    spec = tiny_spec(measure="perplexity", grid=[{"start": -0.5, "stop": 0.5, "num": 3}])
    summary = sweep.run(spec, store)
    assert summary.computed == 3
    values = store.measures_frame(summary.run_id)
    assert (values.tokens > 0).all() and (values.nll > 0).all()
    # the reference answers are the origin point of the answers sweep, stored once
    twin = sweep.run(answers, store)
    assert twin.computed == 2  # its origin was generated for the perplexity sweep
    gens = store.generations_frame(summary.run_id)
    origin = store.generations_frame(twin.run_id)
    origin = origin[origin.alpha == 0.0].sort_values("prompt_index")
    for idx in gens.idx.unique():
        at = gens[gens.idx == idx].sort_values("prompt_index")
        assert at.text.tolist() == origin.text.tolist()
