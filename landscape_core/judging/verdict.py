"""A judge's verdict on one answer, and the protocol every judge follows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

PARTIAL_EVIDENCE = "partial refusal"  # how a partial verdict's evidence begins


@dataclass(frozen=True)
class Verdict:
    """One answer judged; a partial refusal is a refusal with ``partial`` set.

    A partial refusal refuses part of a request and answers part. ASR and the three
    states count it as refused, as the paper's ASR and XSTest do; judges that cannot
    tell leave ``partial`` False. Its evidence starts with ``PARTIAL_EVIDENCE``, so the
    store (which keeps refused and evidence) and the answer viewer can show it.
    """

    refused: bool
    evidence: str  # for a reader: what matched, or why nothing did
    confidence: float | None = None  # P(the verdict is right), for judges that know
    matched: str | None = None  # the answer's own text that decided a refusal, verbatim
    partial: bool = False  # a partial refusal; only ever set with refused

    def __post_init__(self) -> None:
        if self.partial and not self.refused:
            raise ValueError("a partial refusal is a refusal: partial needs refused=True")


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
