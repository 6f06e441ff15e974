"""Compare: several runs overlaid (1D) or side by side (2D), and a VISAGE table."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from landscape_core.readers import figures
from landscape_core.readers.capability import capability_frame, capability_summary
from landscape_core.readers.results import run_title, run_visage
from pages.common import pick_runs, store

st.title("Compare runs")
st.caption("For example one run per system prompt: launch them together on the Launch page.")
runs = pick_runs("Runs", key="compare-runs", multiple=True)
if not runs:
    st.stop()

frames = {run_title(r): store().points_frame(r["run_id"]) for r in runs}
one_d = {name: f for name, f in frames.items() if f.j.max() == 0}
two_d = {name: f for name, f in frames.items() if f.j.max() > 0}
if one_d:
    st.plotly_chart(figures.overlay_1d(one_d), key="overlay")
if two_d:
    st.plotly_chart(figures.small_multiples_2d(two_d), key="multiples")

rows = []
for run in runs:
    spec = run["spec"]
    score = run_visage(store().points_frame(run["run_id"]))
    rows.append(
        {
            "model": run["provenance"]["model"]["name"],
            "system prompt": spec["system_prompt"]["preset"],
            "VISAGE": score,
        }
    )
table = pd.DataFrame(rows).pivot_table(
    index="model", columns="system prompt", values="VISAGE", aggfunc="mean"
)
st.subheader("VISAGE (rows: models, columns: system prompts)")
st.caption("Empty cells: runs not finished yet. Higher is safer.")
st.dataframe(table.round(2))

st.subheader("Capability beside safety")
st.caption(
    "From each run's capability sweeps on the same grid (Landscape page: *Measure "
    "capability on this grid*). Empty: not measured yet."
)
capability = []
for run in runs:
    figures_ = capability_summary(capability_frame(store(), run["run_id"]))
    capability.append(
        {
            "run": run_title(run),
            "VISAGE": run_visage(store().points_frame(run["run_id"])),
            **figures_,
        }
    )
st.dataframe(pd.DataFrame(capability).round(2), hide_index=True)
