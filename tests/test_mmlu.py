"""MMLU as the reference scores it: the answer letter's likelihood after k shots."""

from __future__ import annotations

import pytest
import torch

from landscape_core import sweep
from landscape_core.engine.likelihood import choice_logprobs
from landscape_core.errors import UserError
from landscape_core.plan.chat import render_prompts
from landscape_core.plan.identity import plan
from landscape_core.readers.capability import capability_frame, companions
from landscape_core.readers.results import landscape
from landscape_core.spec.config import PromptSetSpec, SweepSpec, SystemPromptSpec
from landscape_core.spec.datasets import LETTERS, load_prompts, mmlu_prompts

ALGEBRA = {"source": "mmlu", "subject": "abstract_algebra"}


def test_shots_come_from_the_first_rows_and_are_not_scored():
    five = mmlu_prompts(PromptSetSpec(**ALGEBRA, limit=None))
    zero = mmlu_prompts(PromptSetSpec(**ALGEBRA, shots=0, limit=None))
    assert len(zero.prompts) == 100 and len(five.prompts) == 95
    assert five.answers == zero.answers[5:]
    assert five.prompts[0].endswith(zero.prompts[5].split("\n\n", 1)[1])  # same question
    assert five.prompts[0].count("Answer:") == 6 and five.prompts[0].endswith("Answer:")
    assert zero.prompts[0].startswith("The following are multiple choice questions")
    assert five.hash != mmlu_prompts(PromptSetSpec(**ALGEBRA, shots=4, limit=None)).hash


@pytest.mark.parametrize(
    "prompts, measure",
    [({"source": "mmlu"}, "multiple-choice"), (ALGEBRA, "answers"),
     ({"source": "advbench"}, "multiple-choice"), ({"source": "advbench", "shots": 3}, "answers")],
)  # fmt: skip
def test_mmlu_specs_are_checked(prompts, measure):
    with pytest.raises(UserError):
        SweepSpec.from_dict({"prompts": prompts, "measure": measure})


def test_choice_scores_equal_a_plain_forward_pass(tiny_loaded):
    model, tokenizer = tiny_loaded.model, tiny_loaded.tokenizer
    prompts = load_prompts(PromptSetSpec(**ALGEBRA, shots=1, limit=6)).prompts
    texts, special = render_prompts(tokenizer, prompts, SystemPromptSpec(), "auto")
    got = choice_logprobs(model, tokenizer, texts, LETTERS, special)
    letters = [tokenizer(x, add_special_tokens=False).input_ids[0] for x in LETTERS]
    for text, row in zip(texts, got, strict=True):
        ids = torch.tensor([tokenizer(text, add_special_tokens=special).input_ids])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, -1].float(), -1)
        assert row == pytest.approx(logp[letters].tolist(), abs=1e-4)


def test_mmlu_companions_give_accuracy_on_the_safety_grid(tiny_spec, store):
    safety = tiny_spec()
    sweep.run(safety, store)
    mmlu = companions(safety)["mmlu:abstract_algebra"]
    assert mmlu.grid == safety.grid and mmlu.directions == safety.directions
    small = SweepSpec.from_dict({**mmlu.to_dict(), "prompts": {**ALGEBRA, "shots": 1, "limit": 4}})
    summary = sweep.run(small, store)
    values = store.measures_frame(summary.run_id)
    assert len(values) == 3 * 4 and set(values.correct) <= {0.0, 1.0}
    frame = capability_frame(store, plan(safety, store.file_digest).run_id)
    assert frame["mmlu:abstract_algebra"].isna().all()  # the 4-question run is not the companion
    assert companions(safety)["mmlu:abstract_algebra"].prompts.limit == 100


def test_show_reports_a_choice_runs_accuracy_not_asr(tiny_spec, store):
    mmlu = companions(tiny_spec())["mmlu:abstract_algebra"]
    small = SweepSpec.from_dict({**mmlu.to_dict(), "prompts": {**ALGEBRA, "shots": 1, "limit": 4}})
    run_id = sweep.run(small, store).run_id
    data = landscape(store, run_id)
    correct = store.measures_frame(run_id).groupby("idx").correct.mean()
    assert [pt["accuracy"] for pt in data["points"]] == [100.0 * c for c in correct]
    assert all(pt["asr"] is None for pt in data["points"]) and data["visage"] is None
