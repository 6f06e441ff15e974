"""The public API for notebooks: runs, points and answers as pandas DataFrames.

Three functions over the same readers as the app and the CLI (so the numbers match
``show`` and the pages), with no SQL and no torch::

    from landscape_core import api
    api.runs("cache")                      # one row per run
    api.points("latest", "cache")          # one row per grid point: ASR, states
    api.answers("latest", "cache")         # one row per answer: text, verdict, state

``run`` is a run id, a prefix that names one run, or ``latest``, as on the CLI;
``store`` is the data directory (the CLI's ``--store``) or an open ``Store``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from landscape_core.errors import UserError
from landscape_core.readers.details import shown_system_prompt
from landscape_core.readers.export import answers_export, with_run_columns
from landscape_core.readers.results import run_name, run_visage, with_states
from landscape_core.store.database import DB_NAME
from landscape_core.store.runs import Store

DEFAULT_STORE = "cache"  # the CLI's and the app's default data directory

__all__ = ["answers", "points", "runs"]


def runs(store: str | Path | Store = DEFAULT_STORE, judge: str = "keyword") -> pd.DataFrame:
    """One row per run, newest first.

    Columns: ``run_id, label`` (every label it was launched under), ``model,
    system_prompt, measure, n_points, finished`` (points stored), ``failed, created``
    (a timestamp), ``judges`` (those that scored its answers) and ``visage`` under
    ``judge`` (NaN while the run is unfinished or that judge has not scored it).
    """
    opened = _open(store)
    frame = opened.runs_frame()
    rows = []
    for run_id in frame.run_id:
        run = opened.run(run_id)
        rows.append({
            "run_id": run_id,
            "label": run_name(run),
            "model": run["provenance"]["model"]["name"],
            "system_prompt": shown_system_prompt(run["provenance"]["system_prompt"]),
            "measure": run["spec"].get("measure", "answers"),
            "judges": opened.judges(run_id),
            "visage": run_visage(opened.points_frame(run_id, judge)),
        })  # fmt: skip
    described = pd.DataFrame(rows, columns=["run_id", "label", "model", "system_prompt",
                                            "measure", "judges", "visage"])  # fmt: skip
    counts = frame[["run_id", "n_points", "finished", "failed", "created"]].assign(
        failed=frame.failed.fillna(0).astype(int),
        created=pd.to_datetime(frame.created, unit="s"),
    )
    out = described.merge(counts, on="run_id")
    out["visage"] = out.visage.astype(float)
    columns = ["run_id", "label", "model", "system_prompt", "measure", "n_points", "finished",
               "failed", "created", "judges", "visage"]  # fmt: skip
    return out[columns]


def points(
    run: str, store: str | Path | Store = DEFAULT_STORE, judge: str = "keyword"
) -> pd.DataFrame:
    """One row per grid point of ``run``, under ``judge``.

    The run's columns (``run_id, run_label, model, system_prompt, judge``), then the
    point: ``idx, rep`` (its direction), ``i, j, alpha, beta, status, asr`` (percent;
    NaN until done), the states' shares (``refused, complied, incoherent``, plus
    ``harmful`` for a harm judge, percent) and ``coherent_asr``.
    """
    opened = _open(store)
    found = opened.run(run)
    frame = opened.points_frame(found["run_id"], judge)
    frame = with_states(opened, found["run_id"], frame, judge)
    return with_run_columns(frame, found, judge)


def answers(
    run: str, store: str | Path | Store = DEFAULT_STORE, judge: str = "keyword"
) -> pd.DataFrame:
    """One row per stored answer of ``run``: the CSV export's rows, as a DataFrame.

    The run's columns, then the point (``idx, rep, alpha, beta``), the prompt, the
    answer ``text``, ``refused`` and ``evidence`` under ``judge``, the answer's
    ``state`` and people's labels (``human_label``, ``labeller``, ``comment``).
    """
    opened = _open(store)
    return answers_export(opened, opened.run(run), judge)


def _open(store: str | Path | Store) -> Store:
    """An open store; a path with no store is a UserError, never a new empty store."""
    if isinstance(store, Store):
        return store
    root = Path(store).expanduser()
    if not (root / DB_NAME).is_file():
        raise UserError(
            f"no store at {root.resolve()}: give the data directory the CLI's --store "
            "names (default: cache)"
        )
    return Store.open(root)
