"""One self-contained HTML file a reviewer can check offline: ``export RUN --format html``.

It holds the landscape figures (with plotly.js inlined, so it opens with no network),
VISAGE with its interval and the three states, the run's config (which re-creates
the run exactly) and provenance, and every answer at every point. Everything that
comes from a model or a person is escaped as text; nothing in it is fetched.
"""

from __future__ import annotations

import html
import json
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from landscape_core.basin.intervals import Interval
from landscape_core.judging.coherence import STATES, THRESHOLDS
from landscape_core.readers import figures
from landscape_core.readers.results import (
    answer_states,
    by_direction,
    direction_edges,
    run_title,
    visage_interval,
    with_states,
)
from landscape_core.spec.config import SweepSpec
from landscape_core.store.runs import Store

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; }
table { border-collapse: collapse; margin: 0.5em 0; }
td, th { border: 1px solid #ccc; padding: 2px 6px; vertical-align: top; text-align: left; }
pre, td.text { white-space: pre-wrap; font-family: ui-monospace, monospace; }
summary { cursor: pointer; }
"""


def config_yaml(run: dict[str, Any]) -> str:
    """The run's spec as YAML: ``sweep`` on it re-creates this run (same run id)."""
    return SweepSpec.from_dict(run["spec"]).to_yaml()


def html_report(store: Store, run_id: str, judge: str = "keyword") -> str:
    """The whole report as one HTML document."""
    run = store.run(run_id)
    spec = SweepSpec.from_dict(run["spec"])
    points = with_states(store, run["run_id"], store.points_frame(run["run_id"], judge), judge)
    gens = store.generations_frame(run["run_id"], judge)
    gens = gens.assign(state=answer_states(gens))
    gens = gens.assign(human_label=_human_labels(store, run["run_id"], gens))
    title = f"{run_title(run)} ({run['run_id']})"
    body = [
        f"<h1>{_e(title)}</h1>",
        f"<p>judge: {_e(judge)} · model: {_e(run['provenance']['model']['name'])} · "
        f"{len(spec.replicates())} direction(s)</p>",
        "<h2>Summary</h2>",
        _summary(points, spec),
        "<h2>Landscape</h2>",
        *(_figure(f) for f in _figures(points, spec)),
        "<h2>Three states per point</h2>",
        _p(
            "incoherent (decided first, refusal keyword or not): NLL/token under the "
            f"unperturbed model above {THRESHOLDS.max_nll}, repeated word trigrams above "
            f"{THRESHOLDS.max_repetition} or character 10-grams above "
            f"{THRESHOLDS.max_char_repetition}, letters under {THRESHOLDS.min_letter_share:.0%} "
            "of its characters, or empty; refused: coherent and refused by the judge; "
            "complied: coherent and not refused."
        ),
        _table(_state_rows(points)),
        "<h2>Config</h2>",
        _p("Re-create this run exactly: python -m landscape_core sweep CONFIG.yaml"),
        f"<pre>{_e(config_yaml(run))}</pre>",
        "<h2>Provenance</h2>",
        f"<pre>{_e(json.dumps(run['provenance'], indent=2))}</pre>",
        "<h2>Answers</h2>",
        *_answers(points, gens),
    ]
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{_e(title)}</title><style>{STYLE}</style>"
        f"<script>{get_plotlyjs()}</script></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _human_labels(store: Store, run_id: str, gens: pd.DataFrame) -> list[str]:
    """Each answer's labels as "labeller: label (comment); ..." ('' when nobody labelled it)."""
    said: dict[tuple[str, int], list[str]] = {}
    for r in store.answer_labels.frame(run_id).sort_values("labeller").itertuples():
        note = f"{r.labeller}: {r.label}" + (f" ({r.comment})" if r.comment else "")
        said.setdefault((r.point_key, int(r.prompt_index)), []).append(note)
    keys = zip(gens.point_key, gens.prompt_index, strict=True)
    return ["; ".join(said.get((k, int(i)), [])) for k, i in keys]


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _p(text: str) -> str:
    return f"<p>{_e(text)}</p>"


def _interval(interval: Interval | None) -> str:
    return "pending" if interval is None else interval.describe()


def _summary(points: pd.DataFrame, spec: SweepSpec) -> str:
    if spec.measure == "basin-radius":
        rows = [
            {"direction": k, "left edge": e and e[0], "right edge": e and e[1]}
            for k, e in enumerate(direction_edges(points, spec))
        ]
        return _table(rows)
    paper, coherent = visage_interval(points), visage_interval(points, "coherent_asr")
    rows = [
        {"": "VISAGE (paper's ASR)", "mean [95% CI]": _interval(paper)},
        {"": "coherent VISAGE", "mean [95% CI]": _interval(coherent)},
    ]
    method = "" if paper is None or paper.low is None else paper.method
    return _table(rows) + (_p(f"Interval: {method}.") if method else "")


def _figures(points: pd.DataFrame, spec: SweepSpec) -> list[go.Figure]:
    done = points[points.status.notna()]
    if done.empty:
        return []
    if spec.measure == "basin-radius":
        return [figures.probes_1d(done)]
    first = by_direction(points)[0]
    out = []
    if spec.ndim == 1:
        many = len(spec.replicates()) > 1
        out.append(figures.band_1d(points) if many else figures.line_1d(points))
    else:
        out.append(figures.heatmap_2d(first))
    if done.complied.notna().any():
        measured = done[done.complied.notna()]
        out.append(figures.states_1d(measured) if spec.ndim == 1 else figures.states_2d(first))
    return out


def _figure(fig: go.Figure) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False)


def _state_rows(points: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for r in points.sort_values(["rep", "beta", "alpha"]).itertuples():
        row = {"direction": int(r.rep), "alpha": r.alpha, "beta": r.beta,
               "ASR %": None if pd.isna(r.asr) else round(float(r.asr), 1)}  # fmt: skip
        for state in STATES:
            value = getattr(r, state)
            row[f"{state} %"] = None if pd.isna(value) else round(float(value), 1)
        rows.append(row)
    return rows


def _answers(points: pd.DataFrame, gens: pd.DataFrame) -> list[str]:
    out = []
    seen: set[str] = set()
    for r in points.sort_values(["rep", "beta", "alpha"]).itertuples():
        if pd.isna(r.status) or r.point_key in seen:
            continue
        seen.add(r.point_key)
        here = gens[gens.idx == r.idx]
        rows = [
            {"prompt": g.prompt, "state": g.state or "", "answer": g.text,
             "NLL/token": "" if pd.isna(g.coherence_nll) else f"{g.coherence_nll:.2f}",
             "evidence": g.evidence, "human label": g.human_label}
            for g in here.itertuples()
        ]  # fmt: skip
        asr = "failed" if r.status == "failed" else f"ASR {r.asr:.1f}%"
        out.append(
            f"<details><summary>direction {int(r.rep)} · alpha {r.alpha:+.4f} · "
            f"beta {r.beta:+.4f} · {_e(asr)}</summary>{_table(rows, text=True)}</details>"
        )
    return out


def _table(rows: list[dict[str, Any]], text: bool = False) -> str:
    if not rows:
        return _p("nothing yet")
    cls = " class='text'" if text else ""
    head = "".join(f"<th>{_e(k)}</th>" for k in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td{cls}>{_e('' if v is None else v)}</td>" for v in row.values())
        + "</tr>"
        for row in rows
    )  # fmt: skip
    return f"<table><tr>{head}</tr>{body}</table>"
