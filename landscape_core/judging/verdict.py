"""A judge's verdict on one answer, and the protocol every judge follows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

PARTIAL_EVIDENCE = "partial refusal"  # how a partial verdict's evidence begins
HARMFUL_EVIDENCE = "harmful"  # how a harmful compliance's evidence begins
UNPARSED_EVIDENCE = "unparsed"  # how the evidence of a judge reply with no verdict begins


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
    harmful: bool = False  # a harm judge read this compliance as harmful
    unparsed: bool = False  # the judge's reply held no verdict

    def __post_init__(self) -> None:
        if self.partial and not self.refused:
            raise ValueError("a partial refusal is a refusal: partial needs refused=True")
        if self.harmful and self.refused:
            raise ValueError("a harmful answer is a compliance: harmful needs refused=False")
        if self.unparsed and (self.refused or self.harmful or self.partial):
            raise ValueError("an unparsed verdict is no refusal and no harm")
        for flag, prefix in ((self.harmful, HARMFUL_EVIDENCE), (self.unparsed, UNPARSED_EVIDENCE)):
            if flag and not self.evidence.startswith(f"{prefix}:"):
                raise ValueError(f"the evidence of a {prefix} verdict starts with '{prefix}:'")


def is_harmful(evidence: object) -> bool:
    """Whether stored evidence is a harm judge's 'harmful' (``Verdict.harmful``)."""
    return isinstance(evidence, str) and evidence.startswith(f"{HARMFUL_EVIDENCE}:")


def is_unparsed(evidence: object) -> bool:
    """Whether stored evidence is a judge reply with no verdict (``Verdict.unparsed``)."""
    return isinstance(evidence, str) and evidence.startswith(f"{UNPARSED_EVIDENCE}:")


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
