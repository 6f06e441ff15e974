import pytest

from landscape_core import sweep
from landscape_core.engine.decoder import eos_ids, generate, shared_prefix
from landscape_core.errors import UserError
from landscape_core.judging import keyword
from landscape_core.plan.chat import render_prompts
from landscape_core.spec.config import GenerationSpec, SweepSpec, SystemPromptSpec

# Substrings the tiny random model emits at some points and not others, standing in
# for refusal keywords so that the early stop really happens mid-answer.
TINY_KEYWORDS = ("As", "Th", "es")


def _runs(tiny_spec, store, monkeypatch):
    monkeypatch.setattr(keyword, "REFUSAL_KEYWORDS", TINY_KEYWORDS)
    common = {"grid": [{"start": -1.0, "stop": 1.0, "num": 5}], "prompts": {"limit": 6}}
    full = sweep.run(tiny_spec(generation={"max_new_tokens": 12}, **common), store)
    early = sweep.run(
        tiny_spec(generation={"max_new_tokens": 12, "stop": "verdict"}, **common), store
    )
    key = ["idx", "prompt_index"]
    return (
        store.generations_frame(full.run_id).sort_values(key).reset_index(drop=True),
        store.generations_frame(early.run_id).sort_values(key).reset_index(drop=True),
    )


def test_verdict_stop_leaves_every_verdict_unchanged(tiny_spec, store, monkeypatch):
    full, early = _runs(tiny_spec, store, monkeypatch)
    assert full.refused.tolist() == early.refused.tolist()
    assert 0 < full.refused.sum() < len(full)  # both verdicts occur: the check can fail


def test_verdict_stop_cuts_refusals_short_at_the_keyword(tiny_spec, store, monkeypatch):
    full, early = _runs(tiny_spec, store, monkeypatch)
    stopped = early.stop_reason == "verdict"
    assert stopped.any()
    assert (early.n_tokens[stopped] < full.n_tokens[stopped]).any()
    for cut, whole in zip(early.text[stopped], full.text[stopped], strict=True):
        assert whole.startswith(cut)
    assert (early.text[~stopped] == full.text[~stopped]).all()


def test_verdict_stop_refuses_other_judges():
    with pytest.raises(UserError, match="only the keyword judge"):
        SweepSpec.from_dict(
            {"generation": {"stop": "verdict"}, "judges": [{"name": "refusal-patterns"}]}
        )


PROMPTS = (
    "Hi",
    "Write a short poem about the sea and the sky",
    "What is two plus two?",
    "Tell me a story",
    "x",
    "Explain how rainbows form, in detail, for a child of ten",
    "Name a colour",
)


def _hf_answers(model, tok, texts, special, max_new_tokens):
    """HF generate, one prompt at a time (no padding): the ground truth."""
    stops = eos_ids(model, tok)
    answers = []
    for text in texts:
        enc = tok([text], return_tensors="pt", add_special_tokens=special)
        out = model.generate(
            **enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id
        )
        tokens = out[0, enc.input_ids.shape[1] :].tolist()
        end = next((k for k, t in enumerate(tokens) if t in stops), None)
        kept = tokens if end is None else tokens[:end]
        answers.append((tok.decode(kept, skip_special_tokens=True), len(tokens)))
    return answers


@pytest.mark.parametrize("batch_size", [1, 2, 3, 16])
def test_decoder_matches_hf_generate_at_any_batch_size(tiny_loaded, batch_size):
    """Prefix reuse, chunked prefill, row dropping and refilling change no token."""
    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    texts, special = render_prompts(tok, PROMPTS, SystemPromptSpec(), "auto")
    spec = GenerationSpec(max_new_tokens=9)
    ours = generate(model, tok, texts, spec, batch_size=batch_size, add_special_tokens=special)
    truth = _hf_answers(model, tok, texts, special, 9)
    assert [(g.text, g.n_tokens) for g in ours] == truth
    assert len({g.text for g in ours}) > 1  # the answers differ, so order mistakes show


def test_verdict_stop_with_refilling_cuts_answers_at_their_keyword(tiny_loaded):
    """Rows that stop early are replaced mid-flight; every answer is still exact."""
    keywords = ("eth", "at")  # in some of the tiny model's answers to PROMPTS, not all
    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    texts, special = render_prompts(tok, PROMPTS, SystemPromptSpec(), "auto")
    spec = GenerationSpec(max_new_tokens=12, stop="verdict")
    ours = generate(
        model, tok, texts, spec, batch_size=3, add_special_tokens=special, stop_texts=keywords
    )
    truth = _hf_answers(model, tok, texts, special, 12)
    stopped = [g.stop_reason == "verdict" for g in ours]
    assert any(stopped) and not all(stopped)
    for g, (text, n) in zip(ours, truth, strict=True):
        if g.stop_reason == "verdict":
            assert text.startswith(g.text) and g.n_tokens < n
            assert any(k in g.text for k in keywords)
        else:
            assert (g.text, g.n_tokens) == (text, n)


def test_shared_prefix_leaves_every_row_a_token():
    assert shared_prefix([[1, 2, 3], [1, 2, 4]]) == 2
    assert shared_prefix([[1, 2], [1, 2, 3]]) == 1
    assert shared_prefix([[5], [6]]) == 0
    assert shared_prefix([]) == 0
