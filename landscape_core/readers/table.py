"""One table of answers across runs, points and judges (promptfoo's and W&B's view).

One row per (run, answer, judge), so any column can sort, filter or group the rows,
and two runs or two judges can be set side by side to keep only the rows whose
verdicts differ: between runs the same cell (prompt, alpha, beta, direction) under the
same judge; between judges the same answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import pandas as pd

from landscape_core.errors import UserError
from landscape_core.readers.export import human_labels
from landscape_core.readers.results import answer_states, run_title
from landscape_core.readers.transcript import verdict_label
from landscape_core.store.runs import Store

TABLE_COLUMNS = (
    "run", "judge", "alpha", "beta", "prompt_index", "prompt", "verdict", "state", "label",
    "answer", "evidence", "rep", "idx", "point_key", "run_id",
)  # fmt: skip
GROUPABLE = ("run", "judge", "alpha", "beta", "prompt", "verdict", "state", "label", "rep")
NOT_SCORED = "not scored"
# the same cell in two runs: prompt (by place and text), coordinates, direction, judge
RUN_CELL = ("judge", "prompt_index", "prompt", "alpha", "beta", "rep")
ANSWER = ("run_id", "run", "point_key", "idx", "prompt_index", "prompt", "alpha", "beta", "rep")


def answers_table(
    store: Store, run_ids: Sequence[str], judges: Sequence[str] | None = None
) -> pd.DataFrame:
    """Every stored answer of ``run_ids`` under each judge that scored the run.

    ``judges`` keeps only those judges (None: all). ``verdict`` is the judge's in
    words (``not scored`` where it has not judged the answer yet), ``state`` the
    answer's under that judge, ``label`` people's labels ("" when none).
    """
    frames = []
    for run_id in run_ids:
        run = store.run(run_id)
        labels = human_labels(store, run["run_id"])[["point_key", "prompt_index", "human_label"]]
        for judge in store.judges(run["run_id"]):
            if judges is not None and judge not in judges:
                continue
            gens = store.generations_frame(run["run_id"], judge)
            gens = gens.merge(labels, on=["point_key", "prompt_index"], how="left")
            frames.append(
                gens.assign(
                    run=run_title(run),
                    run_id=run["run_id"],
                    judge=judge,
                    verdict=list(map(verdict_label, gens.refused, gens.evidence)),
                    state=answer_states(gens).fillna(NOT_SCORED),
                    label=gens.human_label.fillna(""),
                    answer=gens.text,
                    evidence=gens.evidence.fillna(""),
                )
            )
    if not frames:
        return pd.DataFrame(columns=list(TABLE_COLUMNS))
    return pd.concat(frames, ignore_index=True)[list(TABLE_COLUMNS)]


def filter_table(
    table: pd.DataFrame, chosen: Mapping[str, Sequence[object]], search: str = ""
) -> pd.DataFrame:
    """The rows that hold one of the chosen values in each column, and ``search``.

    An empty choice keeps every row; ``search`` is looked for in the prompt and the
    answer, in any case.
    """
    keep = pd.Series(True, index=table.index)
    for column, values in chosen.items():
        if values:
            keep &= table[column].isin(list(values))
    if search:
        hit = table.prompt.str.contains(search, case=False, regex=False)
        hit |= table.answer.str.contains(search, case=False, regex=False)
        keep &= hit
    return table[keep]


def group_summary(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per value of ``column``: its rows, each verdict's share and the incoherent share.

    Shares are percent of the group's rows; ``answers`` counts rows (one per answer
    and judge).
    """
    if column not in GROUPABLE:
        raise UserError(f"cannot group by {column!r}; use one of {', '.join(GROUPABLE)}")
    if table.empty:
        return pd.DataFrame(columns=[column, "answers"])
    key = table[column].replace("", "(none)") if column == "label" else table[column]
    counts = pd.crosstab(key, table.verdict)
    shares = counts.div(counts.sum(axis=1), axis=0).mul(100).round(1).add_suffix(" %")
    incoherent = (table.state == "incoherent").groupby(key).mean().mul(100).round(1)
    out = shares.assign(answers=counts.sum(axis=1), **{"incoherent %": incoherent})
    out.index.name = column
    return out.reset_index()[[column, "answers", *shares.columns, "incoherent %"]]


def differing(table: pd.DataFrame, by: Literal["run", "judge"], a: str, b: str) -> pd.DataFrame:
    """Only the cells whose verdicts differ, side by side: ``verdict A``, ``verdict B``.

    ``a`` and ``b`` are two run ids (``by="run"``) or two judges (``by="judge"``).

    Between runs, a cell is the same prompt (place and text) at the same alpha, beta
    and direction under the same judge; between judges, the same answer of the same
    run. Cells one side has not scored, or does not have, are left out: they do not
    differ, they are missing.
    """
    if a == b:
        raise UserError(f"pick two different {by}s to compare")
    column = "run_id" if by == "run" else "judge"
    keys = list(RUN_CELL if by == "run" else ANSWER)
    scored = table[table.verdict != NOT_SCORED].assign(
        alpha=table.alpha.round(9), beta=table.beta.round(9)
    )
    left = scored[scored[column] == a]
    right = scored[scored[column] == b]
    if by == "run":
        shown = ["verdict", "state", "answer", "idx", "run_id"]
        left, right = left[[*keys, *shown]], right[[*keys, *shown]]
    else:
        shown = ["verdict", "evidence"]
        left, right = left[[*keys, *shown, "state", "answer"]], right[[*keys, *shown]]
    both = left.merge(right, on=keys, suffixes=(" A", " B"))
    both = both[both["verdict A"] != both["verdict B"]]
    return both.sort_values(keys).reset_index(drop=True)
