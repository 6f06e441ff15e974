"""Judge a finished run's stored answers again, never loading the generator.

The store-writing side of judging: another judge's verdicts (``rescore``), the
verdicts of judges added since a run ran (``fill_missing``), and each answer's
coherence measures (``fill_coherence``). ``judging/`` only decides.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from landscape_core.errors import UserError
from landscape_core.judging.coherence import NLL, REPETITION, repetition
from landscape_core.judging.registry import make_judge
from landscape_core.judging.verdict import score_all
from landscape_core.measure import NamedJudge
from landscape_core.spec.config import ANSWER_MEASURES, GenerationSpec, JudgeSpec
from landscape_core.spec.identity import judge_label
from landscape_core.store.records import MeasureRow, ScoreRow
from landscape_core.store.runs import Store


@dataclass(frozen=True)
class Rescored:
    n_answers: int
    label: str  # what the verdicts are stored under


def rescore(store: Store, run_id: str, spec: JudgeSpec) -> Rescored:
    """Judge every stored answer of ``run_id`` with ``spec``.

    Earlier verdicts of the same judge are replaced. A run whose answers were cut at a
    refusal keyword, or that stored no answers, is refused with a UserError.
    """
    run = store.run(run_id)
    if run["spec"].get("measure", "answers") not in ANSWER_MEASURES:
        raise UserError(f"run {run['run_id']} stored no answers to judge")
    GenerationSpec.from_dict(run["spec"].get("generation", {})).check_judge(spec.name)
    judge = make_judge(spec, store.models_dir)
    label = judge_label(spec, store.file_digest)
    n = _score(store, run["run_id"], NamedJudge(label, judge), only_missing=False)
    return Rescored(n, label)


def fill_missing(store: Store, run_id: str, judges: Sequence[NamedJudge]) -> int:
    """Score the run's stored answers that a judge of ``judges`` has not scored yet.

    A run resumed (or run again) after its config's ``judges`` changed had points
    judged by the old list only; the sweep calls this so each judge scores them all.
    Writes nothing when none is missing. Returns how many verdicts it added.
    """
    return sum(_score(store, run_id, named, only_missing=True) for named in judges)


def _score(store: Store, run_id: str, named: NamedJudge, *, only_missing: bool) -> int:
    frame = store.generations_frame(run_id, named.label)
    if only_missing:
        frame = frame[frame.refused.isna()]
    frame = frame.drop_duplicates(["point_key", "prompt_index"])  # points shared by runs
    if frame.empty:
        return 0
    verdicts = score_all(named.judge, list(frame.prompt), list(frame.text))
    scores: dict[str, list[ScoreRow]] = defaultdict(list)
    for answer, v in zip(frame.itertuples(), verdicts, strict=True):
        row = ScoreRow(int(answer.prompt_index), named.label, v.refused, v.evidence, v.matched)
        scores[answer.point_key].append(row)
    store.save_scores(scores)
    return len(frame)


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
