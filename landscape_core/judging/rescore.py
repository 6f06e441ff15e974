"""Score a finished run's stored answers with another judge, never loading the generator."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from landscape_core.errors import UserError
from landscape_core.judging.registry import make_judge
from landscape_core.judging.verdict import score_all
from landscape_core.spec.config import ANSWER_MEASURES, GenerationSpec, JudgeSpec
from landscape_core.spec.identity import judge_label
from landscape_core.store.records import ScoreRow
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
    frame = store.generations_frame(run["run_id"], label)
    frame = frame.drop_duplicates(["point_key", "prompt_index"])  # points shared by runs
    verdicts = score_all(judge, list(frame.prompt), list(frame.text))
    scores: dict[str, list[ScoreRow]] = defaultdict(list)
    for answer, v in zip(frame.itertuples(), verdicts, strict=True):
        row = ScoreRow(int(answer.prompt_index), label, v.refused, v.evidence, v.matched)
        scores[answer.point_key].append(row)
    store.save_scores(scores)
    return Rescored(len(frame), label)
