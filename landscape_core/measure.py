"""One point's work: set the weights, measure, and return the rows the point stores.

The local executor and every Ray actor call ``compute`` alike, so a point's rows
never depend on where it ran. Nothing here writes the store: the sweep does.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from landscape_core.errors import NonFiniteError
from landscape_core.judging.verdict import Judge, score_all
from landscape_core.spec.config import ANSWER_MEASURES
from landscape_core.spec.datasets import LETTERS
from landscape_core.spec.judges import REFUSAL_LIKELIHOOD
from landscape_core.store.records import (
    GenerationRow,
    GridPoint,
    MeasureRow,
    PointResult,
    ScoreRow,
)

if TYPE_CHECKING:
    from landscape_core.engine.decoder import Generation
    from landscape_core.engine.perturb import Perturber
    from landscape_core.engine.session import Session

ShouldStop = Callable[[], bool] | None  # polled between batches; True ends the work


@dataclass(frozen=True)
class NamedJudge:
    label: str  # what its scores are stored under
    judge: Judge


@dataclass(frozen=True)
class Inputs:
    """What every point of one sweep is computed from."""

    prompts: tuple[str, ...]
    texts: list[str]  # the prompts as the model reads them
    add_special: bool
    judges: list[NamedJudge]
    reference: list[str] = dataclasses.field(default_factory=list)  # perplexity: to score
    answers: tuple[str, ...] = ()  # multiple choice: the correct letters


def compute(
    perturber: Perturber,
    session: Session,
    inputs: Inputs,
    point: GridPoint,
    should_stop: ShouldStop,
) -> PointResult:
    """The point's rows at ``base + alpha*d1 + beta*d2``; NaN/Inf weights fail the point.

    ``Cancelled`` from the decoder propagates: a stopped point has no rows.
    """
    t0 = time.monotonic()
    try:
        perturber.set(point.alpha, point.beta)
        perturber.check_finite()
        result = measure(session, inputs, point.key, should_stop)
    except NonFiniteError as exc:
        result = PointResult.failed(point.key, str(exc))
    return dataclasses.replace(result, seconds=time.monotonic() - t0)


def measure(session: Session, inputs: Inputs, key: str, should_stop: ShouldStop) -> PointResult:
    """What the spec measures at the session's current weights, as a point's rows."""
    prompts = inputs.prompts
    spec = session.spec
    if spec.measure in ANSWER_MEASURES:
        gens = session.generate(inputs.texts, inputs.add_special, should_stop)
        return judged(key, prompts, gens, inputs.judges)
    if spec.measure == "perplexity":
        nll = session.answer_nll(inputs.texts, inputs.reference, inputs.add_special)
        rows = [
            GenerationRow(i, prompts[i], answer, n, "reference")
            for i, (answer, (_, n)) in enumerate(zip(inputs.reference, nll, strict=True))
        ]
        values = [MeasureRow(i, "nll", v) for i, (v, _) in enumerate(nll)]
        values += [MeasureRow(i, "tokens", float(n)) for i, (_, n) in enumerate(nll)]
        return PointResult(key, "done", generations=rows, measures=values)
    if spec.measure == "multiple-choice":
        return _choices(session, inputs, key)
    probs = session.refusal_probability(inputs.texts, inputs.add_special)
    return PointResult(
        key,
        "done",
        generations=[GenerationRow(i, prompts[i], "", 0, "likelihood") for i in range(len(probs))],
        scores=[
            ScoreRow(i, REFUSAL_LIKELIHOOD, q >= 0.5, f"P(refusal opening) = {q:.3f}")
            for i, q in enumerate(probs)
        ],
        measures=[MeasureRow(i, "p_refusal", q) for i, q in enumerate(probs)],
    )


def _choices(session: Session, inputs: Inputs, key: str) -> PointResult:
    """A multiple-choice point: the likeliest letter per question and whether it is right."""
    logps = session.choice_logprobs(inputs.texts, LETTERS, inputs.add_special)
    picks = [max(range(len(LETTERS)), key=lambda k, lp=lp: lp[k]) for lp in logps]
    rows = [
        GenerationRow(i, inputs.prompts[i], LETTERS[k], 1, "choice") for i, k in enumerate(picks)
    ]
    values = [MeasureRow(i, "choice", float(k)) for i, k in enumerate(picks)]
    values += [
        MeasureRow(i, "correct", float(LETTERS[k] == inputs.answers[i]))
        for i, k in enumerate(picks)
    ]
    return PointResult(key, "done", generations=rows, measures=values)


def judged(
    key: str, prompts: tuple[str, ...], gens: list[Generation], judges: list[NamedJudge]
) -> PointResult:
    """A point of answers with every judge's verdicts."""
    rows = [
        GenerationRow(i, prompts[i], g.text, g.n_tokens, g.stop_reason) for i, g in enumerate(gens)
    ]
    scores = []
    for named in judges:
        verdicts = score_all(named.judge, prompts, [g.text for g in gens])
        scores += [
            ScoreRow(i, named.label, v.refused, v.evidence, v.matched)
            for i, v in enumerate(verdicts)
        ]
    return PointResult(key, "done", generations=rows, scores=scores)
