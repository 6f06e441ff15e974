"""A judge's verdict on one answer, and the protocol every judge follows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Verdict:
    refused: bool
    evidence: str  # for a reader: what matched, or why nothing did
    confidence: float | None = None  # P(the verdict is right), for judges that know
    matched: str | None = None  # the answer's own text that decided a refusal, verbatim


class Judge(Protocol):
    def score(self, prompt: str, generation: str) -> Verdict: ...


@runtime_checkable
class BatchJudge(Judge, Protocol):
    """A judge that runs a model scores many answers per forward pass."""

    def score_batch(self, prompts: list[str], generations: list[str]) -> list[Verdict]: ...


def score_all(judge: Judge, prompts: Sequence[str], generations: Sequence[str]) -> list[Verdict]:
    """Verdicts for many answers; model-based judges score them in batches."""
    if isinstance(judge, BatchJudge):
        return list(judge.score_batch(list(prompts), list(generations)))
    return [judge.score(p, g) for p, g in zip(prompts, generations, strict=True)]
