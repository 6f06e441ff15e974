"""Landscape: a run's 1D curve or 2D surface; click a point to read its answers.

Its judge selector lists every judge the run has, by name (keyword, the paper's, first);
"Judge this run with…" queues a rescore job for one it lacks (refusal-v2 first).
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from landscape_core.basin.intervals import MIN_DIRECTIONS
from landscape_core.errors import UserError
from landscape_core.plan.identity import plan, plane_key
from landscape_core.readers import figures
from landscape_core.readers.capability import capability_frame, companions
from landscape_core.readers.details import run_details
from landscape_core.readers.report import config_yaml, html_report
from landscape_core.readers.results import (
    answer_states,
    at_origin,
    by_direction,
    direction_edges,
    disagreement,
    visage_interval,
    with_states,
)
from landscape_core.spec.config import ANSWER_MEASURES, JudgeSpec, SweepSpec
from landscape_core.spec.judges import entry, not_yet, resolve_label, titles
from landscape_core.submit import submit, submit_rescore
from pages.common import (
    checkpoint_table,
    keep_in_url,
    md_text,
    pick_runs,
    show_user_error,
    store,
)


def run_details_panel(run_id: str) -> None:
    """What stands behind a run's figures, and a link that opens this run.

    Identity (model and prompt-set hashes), settings, timings and reused points.
    """
    details = run_details(store(), run_id)
    with st.expander("Run details"):
        page = (st.context.url or "/landscape").split("?")[0]  # no URL outside a browser
        link = f"{page}?run={run_id}"
        st.caption("Link to this run")
        st.code(link, language=None)  # literal text
        identity = {"run id": details.run_id, "labels": " / ".join(details.labels) or "-"}
        rows = {**identity, **details.identity}
        st.dataframe(  # cells are text, never markdown
            pd.DataFrame({"": list(rows), "value": list(rows.values())}), hide_index=True
        )
        st.caption("System prompt")
        st.text(details.system_prompt)
        finished = details.last_finished
        span = "-" if finished is None else f"{(finished - details.created) / 60:.1f} min"
        st.text(
            f"Created {time.strftime('%Y-%m-%d %H:%M', time.localtime(details.created))}; "
            f"{details.stored}/{details.points} points stored, the last {span} after; "
            f"compute {details.compute_s:.0f} s.\n"
            f"{details.reused} point(s) were computed before this run, by another run; "
            f"{details.shared} are shared with other runs (the same weights and inputs)."
        )
        st.caption("Settings (the YAML download below re-creates this run)")
        st.json(details.spec, expanded=False)
        st.caption("Packages")
        st.json(details.packages, expanded=False)


def _linked_judge(asked: str | None, scored: list[str]) -> str | None:
    """The stored label a link's ``judge`` (a name or a label) stands for, or None."""
    if not asked:
        return None
    try:
        return resolve_label(asked, scored)
    except UserError:  # not in this run: the page's default instead
        return None


def rejudge_control(run_id: str, spec: SweepSpec, scored: list[str]) -> None:
    """Judge this run with a judge it lacks: one button queues a rescore job.

    The worker judges the stored answers (a model judge loads its model there, never in
    the page) and regenerates nothing. refusal-v2, the best validated judge, is the
    first choice: one click. The page's default judge stays keyword, the paper's.
    """
    if spec.measure not in ANSWER_MEASURES:
        return
    if spec.generation.stop == "verdict":
        st.caption("Its answers were cut at a refusal keyword: only keyword can judge them.")
        return
    offered = not_yet(scored)
    pending = _judging(run_id)
    if pending:
        st.caption(f"Judging now (see Jobs): {md_text(', '.join(pending))}.")
    if not offered:
        return
    pick, press = st.columns([3, 1], vertical_alignment="bottom")
    name = pick.selectbox(
        "Judge this run with…", offered, key="rejudge-judge",
        format_func=lambda n: f"{n} ({entry(n).kind})",
        help="Scores this run's stored answers with another judge, in the worker; "
        "nothing is regenerated.",
    )  # fmt: skip
    path, labels = "", ""
    if entry(name).kind == "model":
        st.caption(md_text(entry(name).decides))
        path = st.text_input(
            "Judge model files", key="rejudge-path",
            help="A local directory or a Hugging Face id in the local cache; nothing is "
            "downloaded. Empty: the bundled model (llm-judge only).",
        )  # fmt: skip
        if name == "classifier":
            labels = st.text_input("Labels that mean refusal (a,b)", key="rejudge-labels")
    if press.button("Queue judging", key="rejudge-go", type="primary"):
        try:
            refusal = tuple(x.strip() for x in labels.split(",") if x.strip())
            queued = submit_rescore(
                store(), run_id, JudgeSpec(name=name, path=path.strip(), refusal_labels=refusal)
            )
        except UserError as exc:
            show_user_error(exc)
        else:
            st.success(
                f"Queued job {queued.job_id}: {name} judges this run's stored answers "
                "(nothing is regenerated). Follow it on the Jobs page; it joins the Judge "
                "list above as its verdicts land."
            )


def _judging(run_id: str) -> list[str]:
    """The labels of this run's queued or running rescore jobs."""
    jobs = store().jobs.frame()
    if jobs.empty:
        return []
    mine = jobs[
        (jobs.kind == "rescore") & (jobs.run_id == run_id) & jobs.status.isin(["queued", "running"])
    ]
    return list(mine.label)


st.title("Landscape")
runs = pick_runs("Run", key="landscape-run")
if not runs:
    st.stop()
run = runs[0]
spec = SweepSpec.from_dict(run["spec"])
n_directions = len(spec.replicates())
search = spec.measure == "basin-radius"
st.session_state["run_id"] = run["run_id"]
run_details_panel(run["run_id"])
scored = store().judges(run["run_id"]) or ["keyword"]  # stored labels, keyword first
if (asked := _linked_judge(st.query_params.get("judge"), scored)) is not None:  # a link's
    st.session_state["landscape-judge"] = asked
elif st.session_state.get("landscape-judge") not in scored:
    st.session_state["landscape-judge"] = scored[0]
names = titles(scored)
judge = st.selectbox(
    "Judge", scored, key="landscape-judge", format_func=names.get,
    on_change=keep_in_url, args=("judge", "landscape-judge"),
    help="keyword is the paper's judge, so results compare with the paper. Add another "
    "below (Judge this run with...) or with `python -m landscape_core rescore RUN --judge "
    "NAME`.",
)  # fmt: skip
rejudge_control(run["run_id"], spec, scored)
st.query_params["judge"] = judge  # a reload or a shared link shows the same view
if st.session_state.get("point_run") != run["run_id"]:  # a run opened: its link's point
    st.session_state["point_run"] = run["run_id"]
    asked = st.query_params.get("point", "")
    st.session_state["point_idx"] = int(asked) if asked.isdigit() else None
    st.session_state["jump_to_point"] = True  # its direction too, on a run of several
others = [j for j in scored if j != judge]
layer = st.radio(
    "Layer",
    ["ASR", "Judge disagreement"] if others else ["ASR"],
    horizontal=True,
    help="Disagreement: the share of prompts two judges score differently, per point.",
)


def _trajectories(spec: SweepSpec) -> dict[str, pd.DataFrame]:
    """Finetunes' paths stored for this run's plane (none when its files moved)."""
    try:
        return store().trajectories.on_plane(plane_key(plan(spec, store().file_digest)))
    except UserError:
        return {}


def _trajectory_table(name: str, path: pd.DataFrame) -> None:
    """A finetune's checkpoints: where each sits, how far off the plane, its own ASR."""
    st.caption(
        f"Finetune {md_text(name)}: each checkpoint projected onto this plane "
        "(least squares; 'off the plane' is the share of its move the plane misses) and "
        "evaluated itself. Open a checkpoint's run to read its answers."
    )
    checkpoint_table(path, key=f"trajectory-{name}")


def _selected_idx(event, frame) -> int | None:
    points = getattr(getattr(event, "selection", None), "points", None) or []
    return figures.clicked_point(points, frame, st.session_state.get("direction") or 0)


def _points():
    return with_states(store(), run["run_id"], store().points_frame(run["run_id"], judge), judge)


def _visage_metric(column, frame, name: str, pending: str, **kwargs) -> None:
    """VISAGE as a metric: the mean, and beneath it the interval over directions.

    The interval goes in a caption: inside the metric it was cut off at the page's width.
    Until it can be computed the metric says "pending" and ``pending`` says why.
    """
    interval = visage_interval(frame, column)
    bounded = interval is not None and interval.low is not None
    label = name + (" (95% CI)" if bounded else "")
    if search:  # no grid, so no basin to average over: the edges below are its result
        st.metric(label, "-", **kwargs)
        st.caption("A basin search measures edges, not VISAGE.")
        return
    st.metric(label, "pending" if interval is None else f"{interval.mean:.1f}", **kwargs)
    if interval is None:
        st.caption(pending)
    elif bounded:
        st.caption(f"95% CI [{interval.low:.1f}, {interval.high:.1f}], {interval.method}")
    elif n_directions > 1:  # a t-interval over fewer draws says little: the values instead
        st.caption(
            f"each direction: {', '.join(f'{v:.1f}' for v in interval.values)}; no interval "
            f"below {MIN_DIRECTIONS} directions"
        )
    else:
        st.caption(
            f"one direction: no interval (Launch's 'Random directions' at {MIN_DIRECTIONS} "
            "or more gives one)"
        )


def _direction(frame):
    """The direction the 2D views and the drill-down show, for a run of several."""
    jump = st.session_state.pop("jump_to_point", False)
    if n_directions == 1:
        return frame
    seeds = [[d.seed for d in r if d.kind == "random"] for r in spec.replicates()]
    if jump:  # a click or a link chose a point
        chosen = frame[frame.idx == st.session_state.get("point_idx")]
        if not chosen.empty:
            st.session_state["direction"] = int(chosen.rep.iloc[0])
    rep = st.selectbox(
        "Direction", range(n_directions), key="direction",
        format_func=lambda k: f"{k}: seed {', '.join(map(str, seeds[k]))}",
    )  # fmt: skip
    return frame[frame.rep == rep]


def _search_views(frame) -> None:
    """A basin-radius run: each direction's edges, and how the radius varies."""
    edges = direction_edges(frame, spec)
    rows = [
        {"direction": k, "left edge": None if e is None else e[0],
         "right edge": None if e is None else e[1],
         "radius": None if e is None or None in e else (e[1] - e[0]) / 2,
         "probes": int(part.status.notna().sum())}
        for k, (part, e) in enumerate(zip(by_direction(frame), edges, strict=True))
    ]  # fmt: skip
    st.caption(
        f"Edges: the smallest |alpha| with ASR >= {spec.basin.threshold:g}%, to "
        f"{spec.basin.tolerance:g}; empty: none within {spec.basin.max_alpha:g} (or pending)."
    )
    st.dataframe(rows, hide_index=True)
    radii = [r["radius"] for r in rows if r["radius"] is not None]
    found = [e for e in edges if e is not None]
    if radii:
        left, right = st.columns(2)
        left.plotly_chart(figures.radius_histogram(radii), key="radius-histogram")
        right.plotly_chart(figures.radius_polar(found, spec.basin.max_alpha), key="polar")
    st.plotly_chart(figures.probes_1d(frame), key="probes")


def plot() -> None:
    frame = _points()
    done = int(frame.status.notna().sum())
    cols = st.columns(4)
    cols[0].metric("Points", f"{done}/{len(frame)}")
    with cols[1]:
        _visage_metric(
            "asr", frame, "VISAGE",
            "It needs the ASR of every point from the model out to the basin's edges; "
            "it appears as those points finish.",
        )  # fmt: skip
    with cols[2]:
        _visage_metric(
            "coherent_asr", frame, "coherent VISAGE",
            "It needs the basin's answers with their coherence, measured when the sweep ends.",
            help="100 - coherent ASR (complied answers only) over the same basin",
        )  # fmt: skip
    with cols[3]:
        _origin_metric(frame)
    if search:
        _search_views(frame)
        return
    if spec.ndim == 1 and n_directions > 1:
        fig = figures.band_1d(frame)
        event = st.plotly_chart(fig, on_select="rerun", selection_mode="points", key="band")
    elif spec.ndim == 1:
        fig = figures.line_1d(frame)
        event = st.plotly_chart(fig, on_select="rerun", selection_mode="points", key="plot1d")
    else:
        frame = _direction(frame)
        fig = figures.heatmap_2d(frame)
        fig.add_trace(  # clickable markers over the cells
            go.Scatter(x=frame.alpha, y=frame.beta, mode="markers", showlegend=False,
                       marker={"size": 10, "opacity": 0.01}, hoverinfo="skip",
                       customdata=frame.idx)
        )  # fmt: skip
        paths = _trajectories(spec)
        for adapter, path in paths.items():
            figures.add_path(fig, f"finetune {Path(adapter).name}", path)
        left, right = st.columns(2)
        with left:
            event = st.plotly_chart(fig, on_select="rerun", selection_mode="points", key="plot2d")
        with right:
            st.plotly_chart(figures.surface_3d(frame), key="surface")
        for adapter, path in paths.items():
            _trajectory_table(Path(adapter).name, path)
    _states(frame)
    clicked = None if event is None else _selected_idx(event, frame)
    # a selection stays in the chart's state: act on a new click only, so a point
    # chosen in the selector below is not taken back by the last click
    if clicked is not None and (run["run_id"], clicked) != st.session_state.get("last_click"):
        st.session_state["last_click"] = (run["run_id"], clicked)
        st.session_state["point_idx"] = clicked
        st.session_state["jump_to_point"] = True  # the drill-down opens its direction
        st.rerun(scope="app")  # the drill-down below lives outside this fragment


def _states(frame) -> None:
    measured = frame[frame.status.eq("done")]
    if measured.empty:
        return
    if measured.complied.isna().all():
        st.info(
            "Coherence is not measured for these answers yet, so incoherent answers count "
            "as attacks. Measure it (no regeneration) with: "
            f"python -m landscape_core rescore {run['run_id']} --coherence"
        )
        return
    st.plotly_chart(  # 1D: every point, so a pending one is a gap, not a 0% share
        figures.states_1d(frame) if spec.ndim == 1 else figures.states_2d(measured),
        key="states",
    )


def _origin_metric(frame) -> None:
    """The paper's ASR at the model, and beneath it the coherent ASR once measured."""
    origin = at_origin(frame)
    known = not origin.empty and not origin.asr.isna().all()
    st.metric("ASR at the model", f"{origin.asr.iloc[0]:.1f}%" if known else "-")
    if known and not pd.isna(coherent := origin.coherent_asr.iloc[0]):
        st.caption(f"coherent ASR {coherent:.1f}%")
    if (unparsed := int(frame.unparsed.sum())) > 0:  # a guard's reply with no verdict
        st.caption(f"{unparsed} answers the judge left unparsed: not counted in ASR")


unfinished = store().points_frame(run["run_id"], judge).status.isna().any()
if layer == "ASR" or search:
    st.fragment(plot, run_every="3s" if unfinished else None)()  # follows a running job
else:
    other = st.selectbox("Against", others)
    shares = disagreement(store(), run["run_id"], judge, other)
    st.plotly_chart(figures.disagreement_map(shares, judge, other), key="disagreement")

left, right = st.columns(2)
left.download_button(
    "Download report (HTML)",
    data=lambda: html_report(store(), run["run_id"], judge),
    file_name=f"landscape-{run['run_id']}.html",
    mime="text/html",
    help="One offline file: figures, VISAGE +- CI, three states, config, provenance, answers",
)
right.download_button(
    "Download config (YAML)",
    data=config_yaml(run),
    file_name=f"{run['run_id']}.yaml",
    mime="application/yaml",
    help="python -m landscape_core sweep FILE re-creates this run exactly (same run id)",
)

capability = capability_frame(store(), run["run_id"])
coords = ["idx", "rep", "i", "j", "alpha", "beta", "asr"]
measured = capability.drop(columns=coords).notna().any().any()
if not search:
    st.subheader("Safety and capability on this grid")
if measured:
    one_d = capability.j.max() == 0
    first = capability[capability.rep == 0]  # 2D: the first direction's plane
    chart = figures.capability_1d(capability) if one_d else figures.capability_2d(first)
    st.plotly_chart(chart, key="capability")
    st.caption(
        "Fluency: perplexity of MT-Bench answers the unperturbed model wrote. Over-refusal: "
        "XSTest safe prompts refused; unsafe: its contrast prompts refused (refusal-patterns). "
        "MMLU: 5-shot accuracy from the answer letter's likelihood, shots from each file's "
        "first rows (left out of the scored set); chance is 25%."
    )
if not search and st.button(
    "Measure capability on this grid", help="Queues fluency and over-refusal sweeps"
):
    spec = SweepSpec.from_dict(run["spec"])
    ids = [submit(store(), c).job_id for c in companions(spec).values()]
    st.success(f"Queued jobs {', '.join(map(str, ids))}; follow them on the Jobs page.")

st.subheader("Generations at a point")
frame = _points()
if n_directions > 1 and spec.ndim == 1:
    frame = _direction(frame)
finished = frame[frame.status.notna()]
if finished.empty:
    st.info("No finished point yet.")
    st.stop()
labels = {
    int(r.idx): (f"direction {r.rep} · " if n_directions > 1 else "")
    + f"alpha={r.alpha:+.3f} beta={r.beta:+.3f} · "
    + (f"ASR {r.asr:.1f}%" if r.status == "done" else "failed")
    for r in finished.sort_values(["rep", "beta", "alpha"]).itertuples()
}
ids = list(labels)
current = st.session_state.get("point_idx")
index = ids.index(current) if current in ids else 0
idx = st.selectbox("Point (or click one in the plot)", ids, index=index, format_func=labels.get)
st.session_state["point_idx"] = idx
st.query_params["point"] = str(idx)
point = finished[finished.idx == idx].iloc[0]
if point.status == "failed":
    st.error(f"This point failed: {md_text(point.error)}")
    st.stop()
gens = store().generations_frame(run["run_id"], judge)
gens = gens[gens.idx == idx]
table = gens.assign(state=answer_states(gens))[
    ["prompt_index", "state", "matched", "coherence_nll", "repetition", "evidence", "prompt",
     "text", "n_tokens", "stop_reason"]
].rename(columns={"text": "answer", "coherence_nll": "NLL/token (unperturbed)"})  # fmt: skip
st.caption(
    "state: refused by the judge; complied (not refused, coherent); incoherent (not "
    "refused, but the unperturbed model finds it improbable or it repeats itself)."
)
st.dataframe(table, hide_index=True, width="stretch")  # cells render as text
