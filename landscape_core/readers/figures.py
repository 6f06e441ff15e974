"""Plotly figures of landscapes: pure functions from result frames to figures."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from landscape_core.readers.results import asr_grid, basin_mask, run_visage

ASR_RANGE = (0, 100)
COLORSCALE = "RdYlGn_r"  # green = refuses (safe), red = complies


def line_1d(points: pd.DataFrame, name: str = "ASR") -> go.Figure:
    """ASR against alpha, with the basin shaded and VISAGE annotated when complete."""
    frame = points.sort_values("alpha")
    fig = go.Figure(
        go.Scatter(
            x=frame.alpha,
            y=frame.asr,
            mode="lines+markers",
            name=name,
            customdata=frame.idx,
            hovertemplate="alpha=%{x:.3f}<br>ASR=%{y:.1f}%<extra></extra>",
        )
    )
    _shade_basin(fig, frame)
    fig.update_layout(
        xaxis_title="alpha (perturbation along d1)",
        yaxis_title="ASR (%)",
        yaxis_range=[-3, 103],
        margin={"t": 40, "b": 40},
    )
    return fig


def _shade_basin(fig: go.Figure, frame: pd.DataFrame) -> None:
    mask = basin_mask(frame)
    if mask is None:
        return
    alphas = frame.sort_values("i").alpha.to_numpy()
    inside = alphas[mask[0]]
    fig.add_vrect(
        x0=inside.min(), x1=inside.max(), fillcolor="green", opacity=0.08, line_width=0,
        annotation_text=f"basin · VISAGE {run_visage(frame):.1f}", annotation_position="top left",
    )  # fmt: skip


def overlay_1d(runs: dict[str, pd.DataFrame]) -> go.Figure:
    """Several 1D runs on one axis, each labelled with its VISAGE."""
    fig = go.Figure()
    for name, points in runs.items():
        frame = points.sort_values("alpha")
        score = run_visage(frame)
        label = html.escape(name) if score is None else f"{html.escape(name)} (VISAGE {score:.1f})"
        fig.add_trace(go.Scatter(x=frame.alpha, y=frame.asr, mode="lines+markers", name=label))
    fig.update_layout(xaxis_title="alpha", yaxis_title="ASR (%)", yaxis_range=[-3, 103])
    return fig


def heatmap_2d(points: pd.DataFrame) -> go.Figure:
    """ASR over (alpha, beta) as a heatmap with contours; the basin is outlined."""
    alphas, betas, grid = _axes(points)
    fig = go.Figure(
        go.Heatmap(
            x=alphas, y=betas, z=grid, zmin=ASR_RANGE[0], zmax=ASR_RANGE[1],
            colorscale=COLORSCALE, colorbar={"title": "ASR %"},
            hovertemplate="alpha=%{x:.3f}<br>beta=%{y:.3f}<br>ASR=%{z:.1f}%<extra></extra>",
        )
    )  # fmt: skip
    fig.add_trace(
        go.Contour(
            x=alphas, y=betas, z=grid, showscale=False, contours_coloring="none",
            line={"color": "black", "width": 1}, contours={"showlabels": True}, hoverinfo="skip",
            showlegend=False,
        )
    )  # fmt: skip
    mask = basin_mask(points)
    if mask is not None:
        rows, cols = np.nonzero(mask)
        fig.add_shape(
            type="rect", x0=alphas[cols.min()], x1=alphas[cols.max()],
            y0=betas[rows.min()], y1=betas[rows.max()], line={"color": "green", "width": 2},
        )  # fmt: skip
        fig.add_annotation(
            x=alphas[cols.min()], y=betas[rows.max()], text=f"VISAGE {run_visage(points):.1f}",
            showarrow=False, yshift=12, xanchor="left",
        )  # fmt: skip
    fig.update_layout(xaxis_title="alpha (d1)", yaxis_title="beta (d2)")
    return fig


def surface_3d(points: pd.DataFrame) -> go.Figure:
    """ASR over (alpha, beta) as a 3D surface."""
    alphas, betas, grid = _axes(points)
    fig = go.Figure(go.Surface(x=alphas, y=betas, z=grid, cmin=0, cmax=100, colorscale=COLORSCALE))
    fig.update_layout(
        scene={"xaxis_title": "alpha", "yaxis_title": "beta", "zaxis_title": "ASR %",
               "zaxis_range": [0, 100]},
        margin={"t": 20, "b": 0, "l": 0, "r": 0},
    )  # fmt: skip
    return fig


def small_multiples_2d(runs: dict[str, pd.DataFrame]) -> go.Figure:
    """2D runs side by side on one shared 0-100 colour scale."""
    names = list(runs)
    titles = [html.escape(n) for n in names]
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=titles, shared_yaxes=True)
    for col, name in enumerate(names, start=1):
        alphas, betas, grid = _axes(runs[name])
        fig.add_trace(
            go.Heatmap(
                x=alphas, y=betas, z=grid, zmin=0, zmax=100, colorscale=COLORSCALE,
                showscale=col == len(names), colorbar={"title": "ASR %"},
            ),
            row=1, col=col,
        )  # fmt: skip
    return fig


def disagreement_map(frame: pd.DataFrame, judge_a: str, judge_b: str) -> go.Figure:
    """Where two judges disagree: a 1D curve or a 2D heatmap of the share of prompts."""
    title = f"{html.escape(judge_a)} vs {html.escape(judge_b)}: prompts judged differently (%)"
    if frame.j.max() == 0:
        line = frame.sort_values("alpha")
        fig = go.Figure(
            go.Scatter(x=line.alpha, y=line.disagree, mode="lines+markers", name="disagree")
        )
        fig.update_layout(xaxis_title="alpha", yaxis_title="disagree (%)", yaxis_range=[-3, 103])
    else:
        alphas = frame.sort_values("i").drop_duplicates("i").alpha.to_numpy()
        betas = frame.sort_values("j").drop_duplicates("j").beta.to_numpy()
        grid = frame.pivot(index="j", columns="i", values="disagree").sort_index().to_numpy()
        fig = go.Figure(
            go.Heatmap(
                x=alphas, y=betas, z=grid, zmin=0, zmax=100, colorscale="Blues",
                colorbar={"title": "disagree %"},
                hovertemplate="alpha=%{x:.3f}<br>beta=%{y:.3f}<br>%{z:.1f}%<extra></extra>",
            )
        )  # fmt: skip
        fig.update_layout(xaxis_title="alpha (d1)", yaxis_title="beta (d2)")
    fig.update_layout(title=title, margin={"t": 50, "b": 40})
    return fig


CAPABILITY_CURVES = (  # column, name, axis
    ("asr", "ASR of this run (%)", "y"),
    ("over_refusal", "refusals of safe XSTest prompts (%)", "y"),
    ("unsafe_refusal", "refusals of unsafe XSTest prompts (%)", "y"),
    ("perplexity", "perplexity of MT-Bench answers", "y2"),
)


def capability_1d(frame: pd.DataFrame) -> go.Figure:
    """Safety and capability along alpha: rates on the left axis, perplexity on the right."""
    line = frame.sort_values("alpha")
    fig = go.Figure()
    for column, name, axis in CAPABILITY_CURVES:
        if line[column].notna().any():
            dash = "dot" if axis == "y2" else None
            fig.add_trace(
                go.Scatter(
                    x=line.alpha, y=line[column], name=name, yaxis=axis,
                    mode="lines+markers", line={"dash": dash},
                )
            )  # fmt: skip
    _shade_basin(fig, frame)
    fig.update_layout(
        xaxis_title="alpha (perturbation along d1)",
        yaxis={"title": "percent", "range": [-3, 103]},
        yaxis2={
            "title": "perplexity (log)",
            "overlaying": "y",
            "side": "right",
            "type": "log",
            "dtick": 1,
            "exponentformat": "power",
        },  # fmt: skip
        legend={"orientation": "h", "y": -0.25},
        margin={"t": 40, "b": 40},
    )
    return fig


def capability_2d(frame: pd.DataFrame) -> go.Figure:
    """Linked panels over (alpha, beta): zooming one zooms all."""
    shown = [
        (c, "log10 " + n if c == "perplexity" else n)
        for c, n, _ in CAPABILITY_CURVES
        if frame[c].notna().any()
    ]
    fig = make_subplots(
        rows=1, cols=len(shown), subplot_titles=[n for _, n in shown],
        shared_xaxes="all", shared_yaxes="all",
    )  # fmt: skip
    alphas = frame.sort_values("i").drop_duplicates("i").alpha.to_numpy()
    betas = frame.sort_values("j").drop_duplicates("j").beta.to_numpy()
    for col, (column, _) in enumerate(shown, start=1):
        grid = frame.pivot(index="j", columns="i", values=column).sort_index().to_numpy()
        percent = column != "perplexity"
        fig.add_trace(
            go.Heatmap(
                x=alphas, y=betas, z=grid if percent else np.log10(grid),
                zmin=0 if percent else None, zmax=100 if percent else None,
                colorscale=COLORSCALE if column == "asr" else "Viridis", showscale=False,
                hovertemplate="alpha=%{x:.3f}<br>beta=%{y:.3f}<br>%{z:.2f}<extra></extra>",
            ),
            row=1, col=col,
        )  # fmt: skip
    fig.update_layout(margin={"t": 60, "b": 40})
    return fig


def _axes(points: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    alphas = points.sort_values("i").drop_duplicates("i").alpha.to_numpy()
    betas = points.sort_values("j").drop_duplicates("j").beta.to_numpy()
    return alphas, betas, asr_grid(points)
