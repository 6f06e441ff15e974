"""Which answers a person should label first.

Where a run's judges disagree on an answer, one of them is wrong about it. The queue
holds those answers, ordered by how far a label could move the run's VISAGE: the
change when the paper's judge's verdict on that answer is flipped, computed with the
VISAGE rule itself, so an answer at the basin's edge that would move the edge counts
for what it moves. Answers the labeller has labelled already leave the queue.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from landscape_core.errors import UserError
from landscape_core.readers.results import run_visage
from landscape_core.store.runs import Store

QUEUE_COLUMNS = [
    "idx", "rep", "alpha", "beta", "point_key", "prompt_index", "prompt", "text", "impact",
]  # fmt: skip


def verdicts(store: Store, run_id: str) -> pd.DataFrame:
    """Every answer of the run with one ``refused`` column per judge (0/1, NaN: unscored)."""
    judges = store.judges(run_id)
    frames = [store.generations_frame(run_id, j) for j in judges]
    if not frames:
        return pd.DataFrame()
    out = frames[0].drop(columns=["refused", "evidence", "matched"])
    for judge, frame in zip(judges, frames, strict=True):
        out[judge] = frame.refused.to_numpy()
    return out


@dataclass(frozen=True)
class LinkedAnswer:
    idx: int  # the run's point
    position: int  # the answer's place among that point's answers (by prompt index)


def linked_answer(answers: pd.DataFrame, point: str, prompt: str) -> LinkedAnswer | None:
    """The answer a link names; None if it names none.

    ``point`` is an index of the run's points or a point key (or a unique prefix of
    one), ``prompt`` a prompt index.
    """
    if not prompt.strip().isdigit():
        return None
    point = point.strip()
    if point.isdigit():
        at_point = answers[answers.idx == int(point)]
    else:
        keys = answers.point_key[answers.point_key.str.startswith(point)].unique() if point else []
        at_point = answers[answers.point_key == keys[0]] if len(keys) == 1 else answers.iloc[:0]
    at_point = at_point.reset_index(drop=True)
    hit = at_point.index[at_point.prompt_index == int(prompt)]
    if hit.empty:
        return None
    return LinkedAnswer(int(at_point.idx.iloc[0]), int(hit[0]))


def label_queue(
    store: Store, run_id: str, labeller: str, answers: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Answers whose judges disagree, largest possible VISAGE change first.

    ``impact`` is |VISAGE after flipping the paper judge's verdict - VISAGE|, in VISAGE
    points; NaN while the run is unfinished (then nearer the model comes first).
    ``answers``: the run's ``verdicts``, when the caller has read them already.
    """
    judges = store.judges(run_id)
    if len(judges) < 2:
        return pd.DataFrame(columns=QUEUE_COLUMNS)
    answers = verdicts(store, run_id) if answers is None else answers
    scored = answers[judges].notna().all(axis=1)
    split = answers[scored & (answers[judges].nunique(axis=1) > 1)]
    done = store.answer_labels.frame(run_id, labeller)
    labelled = set(zip(done.point_key, done.prompt_index, strict=True))
    keep = [
        (k, i) not in labelled for k, i in zip(split.point_key, split.prompt_index, strict=True)
    ]
    split = split[np.array(keep, dtype=bool)]  # a bare empty list would pick no columns
    paper = judges[0]  # the keyword judge when it scored the run (store.judges puts it first)
    points = store.points_frame(run_id, paper).set_index("idx")
    base = run_visage(points.reset_index())
    impacts: dict[tuple[int, int], float] = {}

    def impact(idx: int, refused: int) -> float:
        if base is None:
            return float("nan")
        if (idx, refused) not in impacts:
            flipped = points.copy()
            step = 100.0 / flipped.at[idx, "n_prompts"]
            flipped.at[idx, "asr"] += step if refused else -step
            after = run_visage(flipped.reset_index())
            impacts[(idx, refused)] = float("nan") if after is None else abs(after - base)
        return impacts[(idx, refused)]

    split = split.assign(
        impact=[impact(int(i), int(r)) for i, r in zip(split.idx, split[paper], strict=True)],
        radius=np.hypot(split.alpha, split.beta),
    )
    ordered = split.sort_values(["impact", "radius"], ascending=[False, True], na_position="last")
    return ordered[[*QUEUE_COLUMNS, *judges]].reset_index(drop=True)


def store_labelled(store: Store, labeller: str | None = None) -> pd.DataFrame:
    """The store's own labels (the Answers page) as a labelled set, like a CSV's rows.

    A lab validates its judges on its own models' answers this way. Partial counts as
    a refusal and incoherent as none (it refuses nothing), as ``HUMAN_LABELS`` says.
    """
    labels = store.answer_labels.frame(labeller=labeller)
    if labels.empty:
        who = f" by {labeller}" if labeller else ""
        raise UserError(
            f"the store holds no labels{who} yet: label answers on the app's Answers "
            "page, or give a labelled CSV"
        )
    refused = labels.label.isin(("refused", "partial"))
    kind = labels.label.map({"partial": "partial_refusal", "incoherent": "incoherent"})
    return labels.rename(columns={"text": "completion"}).assign(
        human_refused=refused, label_class=kind.fillna(labels.label)
    )
