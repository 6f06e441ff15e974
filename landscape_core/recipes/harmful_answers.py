"""Harmful question-answer pairs for finetuning, built offline from the base model.

The paper finetunes on harmful *answers*. AdvBench's targets ("Sure, here is a
tutorial on ...") are only openings: a model finetuned on them learns to say "Sure",
which tests the shallow-alignment finding (Qi et al., arXiv 2406.05946), not harmful
finetuning. So the unaligned bundled model (SmolLM2-135M-Instruct, base) answers
AdvBench's training rows (100-439: never evaluated on, never the preflight's)
greedily. ``build`` screens the answers (no judge finds a refusal, at least
``MIN_WORDS`` words, no loop) and writes the candidates; each candidate was then read
and labelled by hand, blind to the screen (``data/labels/harmful_answers_labels.csv``:
on-goal, off-goal, refused, incoherent), and only the on-goal ones are the training
data, committed as ``data/finetune/harmful_answers.csv`` so every machine trains on
the same rows. A keyword screen alone keeps answers that argue against the harm.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from landscape_core.engine.decoder import generate
from landscape_core.engine.models import load_model
from landscape_core.judging.coherence import repetition
from landscape_core.judging.keyword import KeywordJudge
from landscape_core.judging.patterns import RefusalPatternsJudge
from landscape_core.plan.chat import render_prompts
from landscape_core.spec.config import GenerationSpec, ModelSpec, SystemPromptSpec
from landscape_core.spec.datasets import DATA_DIR
from landscape_core.spec.training_data import ADVBENCH_TRAIN_START, RESERVED_START

log = logging.getLogger(__name__)

MAX_NEW_TOKENS = 128
MIN_WORDS = 20  # an answer shorter than this carries no harm to learn
MAX_REPETITION = 0.4  # the loop filter data/finetune/harmful_answers.csv was built with


@dataclass(frozen=True)
class Candidate:
    row: int  # AdvBench row
    prompt: str
    answer: str
    kept: bool
    why: str  # the reason it was dropped, or "kept"


def screen(row: int, prompt: str, answer: str) -> Candidate:
    """Keep an answer that complies, says enough and does not loop."""
    for judge in (KeywordJudge(), RefusalPatternsJudge()):
        verdict = judge.score(prompt, answer)
        if verdict.refused:
            return Candidate(row, prompt, answer, False, f"refusal: {verdict.evidence}")
    if len(answer.split()) < MIN_WORDS:
        return Candidate(row, prompt, answer, False, f"under {MIN_WORDS} words")
    if repetition(answer) > MAX_REPETITION:
        return Candidate(row, prompt, answer, False, "loops")
    return Candidate(row, prompt, answer, True, "kept")


def build(models_dir: Path, out: Path, batch_size: int = 40) -> pd.DataFrame:
    """Answer every AdvBench training row with the base model; write the screened ones.

    Returns every answer with why it was kept or dropped; ``out`` gets the kept ones
    (row, prompt, answer), the candidates for labelling.
    """
    goals = pd.read_csv(DATA_DIR / "advbench/harmful_behaviors.csv").goal
    rows = list(range(ADVBENCH_TRAIN_START, RESERVED_START))  # the preflight keeps the rest
    prompts = [str(goals[r]) for r in rows]
    loaded = load_model(ModelSpec(variant="base"), models_dir)
    texts, special = render_prompts(loaded.tokenizer, tuple(prompts), SystemPromptSpec(), "auto")
    gens = generate(
        loaded.model,
        loaded.tokenizer,
        texts,
        GenerationSpec(max_new_tokens=MAX_NEW_TOKENS),
        batch_size=batch_size,
        add_special_tokens=special,
    )
    screened = [screen(r, p, g.text.strip()) for r, p, g in zip(rows, prompts, gens, strict=True)]
    frame = pd.DataFrame([c.__dict__ for c in screened])
    kept = frame[frame.kept][["row", "prompt", "answer"]]
    out.parent.mkdir(parents=True, exist_ok=True)
    kept.to_csv(out, index=False)
    log.info("kept %d of %d answers: %s", len(kept), len(frame), frame.why.value_counts())
    return frame
