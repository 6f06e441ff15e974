"""Judge a finished run's stored answers again, never loading the generator.

The store-writing side of judging: another judge's verdicts (``rescore``, in process
or as the worker's rescore job, point by point with progress), the
verdicts of judges added since a run ran (``fill_missing``), and each answer's
coherence measures (``fill_coherence``). ``judging/`` only decides.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from landscape_core.judging.coherence import NLL, REPETITION, repetition
from landscape_core.judging.registry import make_judge
from landscape_core.judging.verdict import score_all
from landscape_core.measure import NamedJudge
from landscape_core.plan.identity import judge_label
from landscape_core.spec.config import JudgeSpec, RescoreSpec
from landscape_core.store.jobs import Claim, Stage
from landscape_core.store.records import MeasureRow, ScoreRow
from landscape_core.store.runs import Store


@dataclass(frozen=True)
class Rescored:
    n_answers: int  # answers judged by this call
    label: str  # what the verdicts are stored under
    complete: bool = True  # False: stopped (cancelled) before every point was judged


@dataclass(frozen=True)
class Judging:
    """A rescore's progress: points whose every answer ``label`` has judged, of all."""

    label: str
    done: int
    total: int
    stage: str = Stage.JUDGING


def rescore(
    store: Store,
    run_id: str,
    spec: JudgeSpec,
    *,
    only_missing: bool = False,
    on_progress: Callable[[Judging], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    claim: Claim | None = None,
) -> Rescored:
    """Judge every stored answer of ``run_id`` with ``spec``, one point at a time.

    Earlier verdicts of the same judge are replaced; with ``only_missing`` (the
    worker's rescore job) a point the judge's label scored already is skipped, so a
    cancelled or interrupted job resumes where it stopped. ``should_stop`` is asked
    before each point; ``claim`` (a worker's) is checked as each point's verdicts are
    saved. A run whose answers were cut at a refusal keyword, or that stored no
    answers, is refused with a UserError. Nothing is ever generated.
    """
    run = store.run(run_id)
    run_id = run["run_id"]
    RescoreSpec(run_id, spec).check(run["spec"])
    label = judge_label(spec, store.file_digest)
    frame = store.generations_frame(run_id, label)
    frame = frame.drop_duplicates(["point_key", "prompt_index"])  # points shared by runs
    todo = frame[frame.refused.isna()] if only_missing else frame
    total = frame.point_key.nunique()
    done = total - todo.point_key.nunique()

    def report(stage: str = Stage.JUDGING) -> None:
        if on_progress is not None:
            on_progress(Judging(label, done, total, stage))

    if todo.empty:
        report()
        return Rescored(0, label)
    report(Stage.LOADING)  # a model judge loads its model here
    named = NamedJudge(label, make_judge(spec, store.models_dir))
    report()
    n = 0
    for _, answers in todo.groupby("point_key", sort=False):
        if should_stop is not None and should_stop():
            return Rescored(n, label, complete=False)
        store.save_scores(_verdicts(named, answers), claim)
        n += len(answers)
        done += 1
        report()
    return Rescored(n, label)


def fill_missing(store: Store, run_id: str, judges: Sequence[NamedJudge]) -> int:
    """Score the run's stored answers that a judge of ``judges`` has not scored yet.

    A run resumed (or run again) after its config's ``judges`` changed had points
    judged by the old list only; the sweep calls this so each judge scores them all.
    Writes nothing when none is missing. Returns how many verdicts it added.
    """
    added = 0
    for named in judges:
        frame = store.generations_frame(run_id, named.label)
        frame = frame[frame.refused.isna()].drop_duplicates(["point_key", "prompt_index"])
        if not frame.empty:
            store.save_scores(_verdicts(named, frame))
            added += len(frame)
    return added


def _verdicts(named: NamedJudge, answers: pd.DataFrame) -> dict[str, list[ScoreRow]]:
    """``answers`` (rows of ``generations_frame``) judged, as score rows by point key."""
    verdicts = score_all(named.judge, list(answers.prompt), list(answers.text))
    scores: dict[str, list[ScoreRow]] = defaultdict(list)
    for answer, v in zip(answers.itertuples(), verdicts, strict=True):
        row = ScoreRow(int(answer.prompt_index), named.label, v.refused, v.evidence, v.matched)
        scores[answer.point_key].append(row)
    return scores


Scorer = Callable[[list[str], list[str]], list[tuple[float, int]]]  # (summed NLL, tokens)


def fill_coherence(store: Store, run_id: str, texts: Sequence[str], score: Scorer) -> int:
    """Measure coherence of every stored answer of the run that has none yet.

    ``texts`` are the run's prompts as the model reads them, by prompt index;
    ``score`` is the unperturbed model's teacher-forced NLL. Returns the answers scored.
    """
    todo = store.answers_missing(run_id, NLL)
    rows: dict[str, list[MeasureRow]] = {}
    for key, answers in todo.groupby("point_key", sort=False):
        nll = score([texts[i] for i in answers.prompt_index], list(answers.text))
        rows[key] = [
            row
            for i, text, (total, n) in zip(answers.prompt_index, answers.text, nll, strict=True)
            for row in (
                # an empty answer has no tokens: its mean NLL is stored as 0, and
                # `state` calls it incoherent for saying nothing
                MeasureRow(int(i), NLL, total / max(n, 1)),
                MeasureRow(int(i), REPETITION, repetition(text)),
            )
        ]
    store.save_measures(rows)
    return len(todo)
