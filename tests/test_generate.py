import pytest

from landscape_core import judges, sweep
from landscape_core.config import SweepSpec
from landscape_core.errors import UserError

# Substrings the tiny random model emits at some points and not others, standing in
# for refusal keywords so that the early stop really happens mid-answer.
TINY_KEYWORDS = ("As", "Th", "es")


def _runs(tiny_spec, store, monkeypatch):
    monkeypatch.setattr(judges, "REFUSAL_KEYWORDS", TINY_KEYWORDS)
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
