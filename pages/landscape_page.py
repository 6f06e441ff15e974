"""Landscape: a run's 1D curve or 2D surface; click a point to read its answers."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from landscape_core.readers import figures
from landscape_core.readers.capability import capability_frame, companions
from landscape_core.readers.results import at_origin, disagreement, run_visage
from landscape_core.spec.config import SweepSpec
from pages.common import md_text, pick_runs, store

st.title("Landscape")
runs = pick_runs("Run", key="landscape-run")
if not runs:
    st.stop()
run = runs[0]
st.session_state["run_id"] = run["run_id"]
scored = store().judges(run["run_id"]) or ["keyword"]
judge = st.selectbox(
    "Judge", scored, help="Add one with `python -m landscape_core rescore RUN --judge NAME`."
)
others = [j for j in scored if j != judge]
layer = st.radio(
    "Layer",
    ["ASR", "Judge disagreement"] if others else ["ASR"],
    horizontal=True,
    help="Disagreement: the share of prompts two judges score differently, per point.",
)


def _selected_idx(event, frame) -> int | None:
    points = getattr(getattr(event, "selection", None), "points", None) or []
    if not points:
        return None
    p = points[0]
    alpha, beta = p.get("x"), p.get("y") if run["spec"]["directions"][1:] else 0.0
    hit = frame[(frame.alpha - alpha).abs().lt(1e-9) & (frame.beta - beta).abs().lt(1e-9)]
    return None if hit.empty else int(hit.idx.iloc[0])


def plot() -> None:
    frame = store().points_frame(run["run_id"], judge)
    done = int(frame.status.notna().sum())
    score = run_visage(frame)
    cols = st.columns(3)
    cols[0].metric("Points", f"{done}/{len(frame)}")
    cols[1].metric("VISAGE", "-" if score is None else f"{score:.1f}")
    cols[2].metric("ASR at the model", _origin_asr(frame))
    if frame.j.max() == 0:
        fig = figures.line_1d(frame)
        event = st.plotly_chart(fig, on_select="rerun", selection_mode="points", key="plot1d")
    else:
        fig = figures.heatmap_2d(frame)
        fig.add_trace(  # clickable markers over the cells
            go.Scatter(x=frame.alpha, y=frame.beta, mode="markers", showlegend=False,
                       marker={"size": 10, "opacity": 0.01}, hoverinfo="skip")
        )  # fmt: skip
        left, right = st.columns(2)
        with left:
            event = st.plotly_chart(fig, on_select="rerun", selection_mode="points", key="plot2d")
        with right:
            st.plotly_chart(figures.surface_3d(frame), key="surface")
    clicked = _selected_idx(event, frame)
    if clicked is not None and clicked != st.session_state.get("point_idx"):
        st.session_state["point_idx"] = clicked
        st.rerun(scope="app")  # the drill-down below lives outside this fragment


def _origin_asr(frame) -> str:
    origin = at_origin(frame)
    if origin.empty or origin.asr.isna().all():
        return "-"
    return f"{origin.asr.iloc[0]:.1f}%"


unfinished = store().points_frame(run["run_id"], judge).status.isna().any()
if layer == "ASR":
    st.fragment(plot, run_every="3s" if unfinished else None)()  # follows a running job
else:
    other = st.selectbox("Against", others)
    shares = disagreement(store(), run["run_id"], judge, other)
    st.plotly_chart(figures.disagreement_map(shares, judge, other), key="disagreement")

st.subheader("Safety and capability on this grid")
capability = capability_frame(store(), run["run_id"])
measured = capability[["perplexity", "over_refusal", "unsafe_refusal"]].notna().any().any()
if measured:
    one_d = capability.j.max() == 0
    chart = figures.capability_1d(capability) if one_d else figures.capability_2d(capability)
    st.plotly_chart(chart, key="capability")
    st.caption(
        "Fluency: perplexity of MT-Bench answers the unperturbed model wrote. Over-refusal: "
        "XSTest safe prompts refused; unsafe: its contrast prompts refused (refusal-patterns)."
    )
if st.button("Measure capability on this grid", help="Queues fluency and over-refusal sweeps"):
    spec = SweepSpec.from_dict(run["spec"])
    ids = [store().jobs.submit(c.to_dict(), c.label) for c in companions(spec).values()]
    st.success(f"Queued jobs {', '.join(map(str, ids))}; follow them on the Jobs page.")

st.subheader("Generations at a point")
frame = store().points_frame(run["run_id"], judge)
finished = frame[frame.status.notna()]
if finished.empty:
    st.info("No finished point yet.")
    st.stop()
labels = {
    int(r.idx): f"alpha={r.alpha:+.3f} beta={r.beta:+.3f} · ASR {r.asr:.1f}%"
    if r.status == "done"
    else f"alpha={r.alpha:+.3f} beta={r.beta:+.3f} · failed"
    for r in finished.itertuples()
}
ids = list(labels)
current = st.session_state.get("point_idx")
index = ids.index(current) if current in ids else 0
idx = st.selectbox("Point (or click one in the plot)", ids, index=index, format_func=labels.get)
st.session_state["point_idx"] = idx
point = finished[finished.idx == idx].iloc[0]
if point.status == "failed":
    st.error(f"This point failed: {md_text(point.error)}")
    st.stop()
gens = store().generations_frame(run["run_id"], judge)
gens = gens[gens.idx == idx]
table = gens.assign(verdict=gens.refused.map({1: "refused", 0: "complied"}))[
    ["prompt_index", "verdict", "matched", "evidence", "prompt", "text", "n_tokens", "stop_reason"]
].rename(columns={"text": "answer"})
st.dataframe(table, hide_index=True, width="stretch")  # cells render as text
