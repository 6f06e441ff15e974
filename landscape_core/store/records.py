"""Typed rows of the store: what a sweep writes and the readers read back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class GridPoint:
    idx: int  # position in the grid's snake order (sweeps visit in visit.order)
    i: int  # index along alpha
    j: int  # index along beta (0 in 1D)
    alpha: float
    beta: float
    key: str
    rep: int = 0  # which landscape (seed) of a multi-direction run


@dataclass(frozen=True)
class GenerationRow:
    prompt_index: int
    prompt: str
    text: str
    n_tokens: int
    stop_reason: str  # eos, length, verdict; reference/likelihood for scored-only rows


@dataclass(frozen=True)
class ScoreRow:
    prompt_index: int
    judge: str  # the judge's label (JudgeSpec.label)
    refused: bool
    evidence: str  # why, for a reader
    matched: str | None = None  # the answer's text that decided a refusal, verbatim


@dataclass(frozen=True)
class MeasureRow:
    prompt_index: int
    name: str  # nll, tokens, p_refusal
    value: float


@dataclass(frozen=True)
class PointResult:
    key: str
    status: Literal["done", "failed"]
    error: str = ""
    seconds: float = 0.0
    generations: Sequence[GenerationRow] = ()
    scores: Sequence[ScoreRow] = ()
    measures: Sequence[MeasureRow] = ()

    @classmethod
    def failed(cls, key: str, error: str) -> PointResult:
        return cls(key, "failed", error)


@dataclass(frozen=True)
class Queued:
    """A job handed to the worker: its id, and the run it computes (or judges)."""

    job_id: int
    run_id: str


@dataclass(frozen=True)
class Deleted:
    """What deleting a run removed (points other runs share are kept)."""

    run_id: str
    points: int  # its own points, with their answers, verdicts and measures
    labels: int  # people's labels on those answers
