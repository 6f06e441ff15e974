"""Plotly figures of landscapes: pure functions from result frames to figures."""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from landscape_core.basin.intervals import MIN_DIRECTIONS, mean_interval, t_method
from landscape_core.judging.coherence import HARM_STATES, STATES
from landscape_core.readers.results import (
    asr_grid,
    basin_mask,
    by_direction,
    run_visage,
    visage_interval,
)
from landscape_core.spec.config import MMLU_SUBJECTS

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


def clicked_point(points: list[dict], frame: pd.DataFrame, rep: int = 0) -> int | None:
    """The ``idx`` of the point a plotly selection names, or None.

    A trace that carries each point's idx as ``customdata`` names it directly: on a
    1D run of several directions every direction has a point at each alpha, so the
    coordinates alone cannot tell them apart. Otherwise the coordinates are matched,
    preferring direction ``rep`` (e.g. a click on the median curve).
    """
    if not points:
        return None
    first = points[0]
    custom = first.get("customdata")
    if isinstance(custom, list | tuple):
        custom = custom[0] if custom else None
    if custom is not None and not pd.isna(custom) and int(custom) in set(frame.idx):
        return int(custom)
    alpha, beta = first.get("x"), first.get("y") if frame.j.max() > 0 else 0.0
    if alpha is None or beta is None:
        return None
    hit = frame[(frame.alpha - alpha).abs().lt(1e-9) & (frame.beta - beta).abs().lt(1e-9)]
    if hit.empty:
        return None
    mine = hit[hit.rep == rep]
    return int((mine if not mine.empty else hit).idx.iloc[0])


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


def across_directions(points: pd.DataFrame, column: str = "asr") -> pd.DataFrame:
    """Per alpha over a run's directions: the ``median``, ``low`` and ``high`` of a column."""
    grouped = points.groupby("alpha")[column]
    return pd.DataFrame(
        {"median": grouped.median(), "low": grouped.min(), "high": grouped.max()}
    ).reset_index()


def _visage_label(points: pd.DataFrame) -> str:
    interval = visage_interval(points)
    if interval is None:
        return "VISAGE pending"
    if interval.low is None:
        return f"VISAGE {interval.mean:.1f}"
    return f"VISAGE {interval.describe()} (95% CI, {interval.n} directions)"


def band_1d(points: pd.DataFrame) -> go.Figure:
    """A 1D run of many directions: the median curve, the directions' range as a band."""
    fig = go.Figure()
    for rep, one in enumerate(by_direction(points)):
        line = one.sort_values("alpha")
        fig.add_trace(  # markers, and each point's idx, so a click opens that point
            go.Scatter(
                x=line.alpha, y=line.asr, mode="lines+markers", name=f"direction {rep}",
                line={"width": 1, "color": "rgba(100,100,100,0.35)"}, showlegend=False,
                marker={"size": 5, "color": "rgba(100,100,100,0.5)"}, customdata=line.idx,
                hovertemplate=f"direction {rep}<br>alpha=%{{x:.3f}}<br>"
                "ASR=%{y:.1f}%<extra></extra>",
            )
        )  # fmt: skip
    band = across_directions(points)
    fig.add_trace(go.Scatter(x=band.alpha, y=band.high, mode="lines", line={"width": 0},
                             showlegend=False, hoverinfo="skip"))  # fmt: skip
    fig.add_trace(
        go.Scatter(
            x=band.alpha, y=band.low, mode="lines", line={"width": 0}, fill="tonexty",
            fillcolor="rgba(31,119,180,0.2)", name="range over directions", hoverinfo="skip",
        )
    )  # fmt: skip
    fig.add_trace(
        go.Scatter(
            x=band.alpha, y=band["median"], mode="lines+markers", name="median over directions",
            line={"color": "rgb(31,119,180)", "width": 3},
            hovertemplate="alpha=%{x:.3f}<br>median ASR=%{y:.1f}%<extra></extra>",
        )
    )  # fmt: skip
    fig.update_layout(
        title=_visage_label(points),
        xaxis_title="alpha (perturbation along each direction)",
        yaxis_title="ASR (%)",
        yaxis_range=[-3, 103],
        margin={"t": 50, "b": 40},
    )
    return fig


def overlay_1d(runs: dict[str, pd.DataFrame]) -> go.Figure:
    """Several 1D runs on one axis, one line each, labelled with its VISAGE.

    A run of several directions is drawn as its mean curve with a band around it
    (``mean_band``: a 95% interval, or the directions' range below ``MIN_DIRECTIONS``),
    the band named in the legend.
    """
    fig = go.Figure()
    for k, (name, points) in enumerate(runs.items()):
        colour, group = RUN_COLOURS[k % len(RUN_COLOURS)], html.escape(name)
        n = len(by_direction(points))
        if n > 1:
            band = mean_band(points)
            x, y = band.frame.alpha, band.frame["mean"]
            label = f"{group} (mean of {n} directions; {_visage_label(points)})"
            fig.add_trace(
                go.Scatter(
                    x=x, y=band.frame.high, mode="lines", line={"width": 0},
                    legendgroup=group, showlegend=False, hoverinfo="skip",
                )
            )  # fmt: skip
            fig.add_trace(  # filled up to the trace before: the band
                go.Scatter(
                    x=x, y=band.frame.low, mode="lines", line={"width": 0}, fill="tonexty",
                    fillcolor=_rgba(colour, 0.2), legendgroup=group, hoverinfo="skip",
                    name=f"{group}: {band.label}",
                )
            )  # fmt: skip
        else:
            frame = points.sort_values("alpha")
            x, y = frame.alpha, frame.asr
            score = run_visage(points)
            label = group if score is None else f"{group} (VISAGE {score:.1f})"
        fig.add_trace(
            go.Scatter(x=x, y=y, mode="lines+markers", name=label, line={"color": colour},
                       legendgroup=group)
        )  # fmt: skip
    fig.update_layout(xaxis_title="alpha", yaxis_title="ASR (%)", yaxis_range=[-3, 103])
    return fig


@dataclass(frozen=True)
class Band:
    """A run's ASR per alpha over its directions: the mean and a band around it."""

    frame: pd.DataFrame  # alpha, mean, low, high (NaN where unknown)
    label: str  # what the band is, for the legend


def mean_band(points: pd.DataFrame, column: str = "asr") -> Band:
    """The mean over directions at each alpha, with the interval VISAGE gets.

    From ``MIN_DIRECTIONS`` directions on, the band is the 95% t-interval over
    directions (``intervals.mean_interval``, as the Landscape page's VISAGE); below,
    a t-interval of so few draws says little, so the band is the directions' range.
    """
    n = len(by_direction(points))
    bounded = n >= MIN_DIRECTIONS
    rows = []
    for alpha, values in points.groupby("alpha")[column]:
        values = values.dropna()
        interval = mean_interval(values.tolist())
        if interval is None:
            rows.append((alpha, np.nan, np.nan, np.nan))
        elif bounded:
            low = np.nan if interval.low is None else max(interval.low, ASR_RANGE[0])
            high = np.nan if interval.high is None else min(interval.high, ASR_RANGE[1])
            rows.append((alpha, interval.mean, low, high))
        else:
            rows.append((alpha, interval.mean, values.min(), values.max()))
    frame = pd.DataFrame(rows, columns=["alpha", "mean", "low", "high"])
    if bounded:
        return Band(frame, f"95% CI over {n} directions ({t_method('directions')})")
    return Band(frame, f"range of {n} directions (no interval below {MIN_DIRECTIONS})")


def _rgba(colour: str, alpha: float) -> str:
    """'#0072B2' with an opacity, as plotly's 'rgba(...)'."""
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


# Okabe-Ito: distinct for colour-blind readers too (Streamlit's theme starts with two blues)
RUN_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#000000")


STATE_COLOURS = {
    "refused": "#2ca02c",
    "complied": "#ff9896",
    "harmful": "#d62728",
    "incoherent": "#7f7f7f",
}


def _states_of(points: pd.DataFrame) -> tuple[str, ...]:
    """The states a frame holds: the fourth, harmful, where a harm judge ran."""
    return HARM_STATES if "harmful" in points.columns else STATES


def states_1d(points: pd.DataFrame) -> go.Figure:
    """The states' shares along alpha as stacked areas (mean over directions).

    An alpha whose states are not all measured yet (a point pending, failed, or its
    coherence unmeasured, in any direction) is left out as a gap: a stacked area would
    draw it as 0% of every state. Each run of measured alphas is its own stack.
    """
    states = _states_of(points)
    by_alpha = points.groupby("alpha")[list(states)]
    frame = by_alpha.agg(lambda s: s.mean() if s.notna().all() else np.nan).reset_index()
    known = frame[list(states)].notna().all(axis=1)
    segment = (known != known.shift()).cumsum()  # a new number after each gap
    fig = go.Figure()
    for number, part in frame[known].groupby(segment[known]):
        for state in states:
            fig.add_trace(
                go.Scatter(
                    x=part.alpha, y=part[state], name=state, mode="lines",
                    stackgroup=f"states-{number}", legendgroup=state,
                    showlegend=len(fig.data) < len(states), line={"color": STATE_COLOURS[state]},
                    hovertemplate=f"{state}: %{{y:.1f}}%<extra></extra>",
                )
            )  # fmt: skip
    pending = int((~known).sum())
    fig.update_layout(
        xaxis_title="alpha", yaxis_title="answers (%)", yaxis_range=[0, 100],
        xaxis_range=[frame.alpha.min(), frame.alpha.max()] if len(frame) else None,
        hovermode="x unified", margin={"t": 40, "b": 40},
        title=" · ".join(states).replace("complied", "complied (coherent)")
        + (f" · {pending} of {len(frame)} alphas not measured yet (gaps)" if pending else ""),
    )  # fmt: skip
    return fig


def states_2d(points: pd.DataFrame) -> go.Figure:
    """The states' shares over (alpha, beta), one panel each."""
    states = _states_of(points)
    fig = make_subplots(rows=1, cols=len(states), subplot_titles=list(states), shared_yaxes=True)
    alphas = points.sort_values("i").drop_duplicates("i").alpha.to_numpy()
    betas = points.sort_values("j").drop_duplicates("j").beta.to_numpy()
    for col, state in enumerate(states, start=1):
        grid = points.pivot(index="j", columns="i", values=state).sort_index().to_numpy()
        fig.add_trace(
            go.Heatmap(
                x=alphas, y=betas, z=grid, zmin=0, zmax=100, colorscale="Greys" if
                state == "incoherent" else ("Greens" if state == "refused" else "Reds"),
                showscale=False,
                hovertemplate=f"{state}<br>alpha=%{{x:.3f}}<br>beta=%{{y:.3f}}<br>"
                "%{z:.1f}%<extra></extra>",
            ),
            row=1, col=col,
        )  # fmt: skip
    fig.update_layout(margin={"t": 50, "b": 40})
    return fig


def probes_1d(points: pd.DataFrame) -> go.Figure:
    """A basin search's probes: ASR at each probed alpha, one line per direction."""
    fig = go.Figure()
    for rep, one in enumerate(by_direction(points)):
        line = one[one.status.notna()].sort_values("alpha")
        fig.add_trace(go.Scatter(x=line.alpha, y=line.asr, mode="lines+markers",
                                 name=f"direction {rep}"))  # fmt: skip
    fig.update_layout(xaxis_title="alpha", yaxis_title="ASR (%)", yaxis_range=[-3, 103],
                      title="probes of the search", margin={"t": 50, "b": 40})  # fmt: skip
    return fig


def radius_histogram(radii: list[float]) -> go.Figure:
    """How the basin's radius varies over directions."""
    fig = go.Figure(go.Histogram(x=radii, nbinsx=max(5, len(radii) // 2), name="radius"))
    fig.update_layout(xaxis_title="basin radius (half-width, in alpha)",
                      yaxis_title="directions", margin={"t": 40, "b": 40})  # fmt: skip
    return fig


def radius_polar(edges: list[tuple[float | None, float | None]], max_alpha: float) -> go.Figure:
    """Each direction's two edges as opposite rays: direction k at angle 180k/n degrees.

    Random directions in weight space are nearly orthogonal; the angles only spread
    them out. An edge beyond the search (None) is drawn at ``max_alpha``, hollow.
    """
    n = max(len(edges), 1)
    theta, r, found = [], [], []
    for k, (left, right) in enumerate(edges):
        for edge, angle in ((right, 180.0 * k / n), (left, 180.0 * k / n + 180.0)):
            theta.append(angle)
            r.append(max_alpha if edge is None else abs(edge))
            found.append(edge is not None)
    fig = go.Figure(
        go.Scatterpolar(
            r=r, theta=theta, mode="markers",
            marker={"size": 10, "symbol": ["circle" if f else "circle-open" for f in found]},
            text=[f"direction {i // 2}" for i in range(len(r))],
            hovertemplate="%{text}<br>|alpha| = %{r:.3f}<extra></extra>",
        )
    )  # fmt: skip
    fig.update_layout(polar={"radialaxis": {"range": [0, max_alpha]}}, margin={"t": 40})
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
    *((f"mmlu:{s}", f"MMLU {s.replace('_', ' ')}, 5-shot accuracy (%)", "y")
      for s in MMLU_SUBJECTS),
)  # fmt: skip


def capability_1d(frame: pd.DataFrame) -> go.Figure:
    """Safety and capability along alpha: rates on the left axis, perplexity on the right.

    A run of several directions is drawn as its mean over directions at each alpha.
    """
    line = frame.groupby("alpha").mean(numeric_only=True).reset_index()
    fig = go.Figure()
    for column, name, axis in CAPABILITY_CURVES:
        if column in line and line[column].notna().any():
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
        if c in frame and frame[c].notna().any()
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


DEFENCE_BARS = (  # report key, bar label
    ("undefended_asr", "no defence"),
    ("defended_asr", "defence, non-adaptive attack"),
    ("adaptive_asr", "defence, adaptive attack"),
    ("adaptive_undefended_asr", "adaptive prompts, no defence"),
)


def defence_bars(report: dict) -> go.Figure:
    """The defence report's ASRs, each with its 95% interval over prompts."""
    values = np.array([report[key] for key, _ in DEFENCE_BARS])
    bounds = np.array(
        [
            [np.nan if b is None else b for b in report["intervals"][key][1:]]
            for key, _ in DEFENCE_BARS
        ],
        dtype=float,
    )
    bounds = np.where(np.isnan(bounds), values[:, None], bounds)  # no interval: no bar
    fig = go.Figure(
        go.Bar(
            x=[label for _, label in DEFENCE_BARS],
            y=values,
            marker_color=list(RUN_COLOURS[: len(values)]),
            error_y={
                "type": "data",
                "symmetric": False,
                "array": bounds[:, 1] - values,
                "arrayminus": values - bounds[:, 0],
            },  # fmt: skip
            hovertemplate="%{x}<br>ASR %{y:.1f}%<extra></extra>",
        )
    )
    fig.update_layout(yaxis_title="ASR (%)", yaxis_range=[0, 103], margin={"t": 30, "b": 40})
    return fig


def template_bars(report: dict) -> go.Figure:
    """Per template: ASR at the model, mean over the members, and defended."""
    rows = pd.DataFrame(report["templates"])
    fig = go.Figure()
    for i, (column, label) in enumerate(
        (("at_model", "at the model"), ("at_radius", "members (mean)"), ("defended", "defended"))
    ):
        fig.add_trace(
            go.Bar(
                x=rows.name,
                y=rows[column],
                name=label,
                marker_color=RUN_COLOURS[i],
                hovertemplate="%{x}<br>" + label + " %{y:.1f}%<extra></extra>",
            )  # fmt: skip
        )
    fig.update_layout(
        barmode="group", yaxis_title="ASR (%)", yaxis_range=[0, 103],
        legend={"orientation": "h", "y": -0.3}, margin={"t": 30, "b": 40},
    )  # fmt: skip
    return fig


def add_path(fig: go.Figure, name: str, path: pd.DataFrame) -> None:
    """A finetune's checkpoints over a 2D landscape.

    A line in step order; markers coloured by their own ASR on the heatmap's scale;
    the step, ASR and off-plane share in the hover text.
    """
    path = path.sort_values("step")
    asr = path.asr.astype(float)
    outline = {"color": "black", "width": 1}
    fig.add_trace(
        go.Scatter(
            x=path.alpha, y=path.beta, mode="lines+markers", name=html.escape(name),
            text=path.step, customdata=np.stack([asr, path.relative_residual], -1),
            line=outline,
            marker={"size": 11, "color": asr, "colorscale": COLORSCALE, "line": outline,
                    "cmin": ASR_RANGE[0], "cmax": ASR_RANGE[1]},
            hovertemplate="step %{text}<br>alpha=%{x:.3f}<br>beta=%{y:.3f}<br>"
            "ASR=%{customdata[0]:.1f}%<br>off the plane: %{customdata[1]:.1%}<extra></extra>",
        )
    )  # fmt: skip
    fig.update_layout(legend={"orientation": "h", "y": -0.2})


def risk_curves(gradient: pd.DataFrame, random: pd.DataFrame, report: dict) -> go.Figure:
    """The preflight: ASR against distance |alpha| from the model, on a log axis.

    The data's direction both ways, each random direction's two sides as faint lines,
    the data's edge and the random edges' 5th-95th percentile band marked.
    """
    fig = go.Figure()
    grey = {"color": "rgba(120, 120, 120, 0.35)", "width": 1}
    for rep, one in enumerate(by_direction(random)):
        done = one[one.status.notna() & (one.alpha != 0)]
        for side, part in done.groupby(np.sign(done.alpha)):
            part = part.assign(distance=part.alpha.abs()).sort_values("distance")
            fig.add_trace(go.Scatter(
                x=part.distance, y=part.asr, mode="lines+markers", line=grey,
                marker={"size": 4, "color": grey["color"]}, showlegend=rep == 0 and side > 0,
                name="random directions (each side)", legendgroup="random",
                hovertemplate=f"random {rep}, {'+' if side > 0 else '-'} side<br>"
                "|alpha|=%{x:.4f}<br>ASR=%{y:.1f}%<extra></extra>",
            ))  # fmt: skip
    done = gradient[gradient.status.notna() & (gradient.alpha != 0)]
    for side, name, dash in ((1, "data's direction (training's way)", "solid"),
                             (-1, "against it", "dot")):  # fmt: skip
        part = done[np.sign(done.alpha) == side]
        part = part.assign(distance=part.alpha.abs()).sort_values("distance")
        fig.add_trace(go.Scatter(
            x=part.distance, y=part.asr, mode="lines+markers", name=name,
            line={"color": "crimson", "width": 3, "dash": dash},
            hovertemplate="|alpha|=%{x:.4f}<br>ASR=%{y:.1f}%<extra></extra>",
        ))  # fmt: skip
    band = report["random_edges"]
    fig.add_vrect(
        x0=band["p5"], x1=band["p95"], fillcolor="grey", opacity=0.12, line_width=0,
        annotation_text="random edges, 5th-95th pct", annotation_position="top left",
    )  # fmt: skip
    fig.add_vline(x=band["p50"], line={"color": "grey", "dash": "dash"})
    if report["gradient_edge"]:
        fig.add_vline(
            x=report["gradient_edge"], line={"color": "crimson", "dash": "dash"},
            annotation_text="data's edge", annotation_position="bottom right",
        )  # fmt: skip
    fig.add_hline(y=report["threshold"], line={"color": "black", "width": 1, "dash": "dot"})
    fig.update_layout(
        xaxis={"type": "log", "title": "distance from the model, |alpha| (log)"},
        yaxis_title="ASR (%)", yaxis_range=[-3, 103], margin={"t": 40, "b": 40},
        legend={"orientation": "h", "y": -0.25},
    )  # fmt: skip
    return fig


def risk_validation(datasets: pd.DataFrame, measures: dict[str, str]) -> go.Figure:
    """Each preflight measure against the finetune's keyword ASR: one panel a measure.

    One marker per dataset (its seeds averaged), development and held-out apart, with
    the line where a finetune counts as broken (ASR 50%).
    """
    shown = {
        m: label for m, label in measures.items() if m in datasets and datasets[m].notna().any()
    }
    if not shown:
        return go.Figure()
    cols = min(3, len(shown))
    rows = -(-len(shown) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(shown.values()),
                        shared_yaxes=True, horizontal_spacing=0.06)  # fmt: skip
    colours = {"dev": "steelblue", "held-out": "darkorange"}
    for i, measure in enumerate(shown):
        row, col = i // cols + 1, i % cols + 1
        for split, part in datasets.dropna(subset=[measure]).groupby("split"):
            fig.add_trace(go.Scatter(
                x=part[measure], y=part.asr_keyword, mode="markers", name=str(split),
                marker={"color": colours.get(str(split), "grey"), "size": 9},
                customdata=part.dataset, legendgroup=str(split), showlegend=i == 0,
                hovertemplate="%{customdata}<br>%{x:.3g}<br>ASR %{y:.0f}%<extra></extra>",
            ), row=row, col=col)  # fmt: skip
        fig.add_hline(y=50, line={"color": "grey", "dash": "dot", "width": 1}, row=row, col=col)
    fig.update_yaxes(title_text="keyword ASR after finetuning (%)", col=1, range=[-3, 103])
    fig.update_layout(height=320 * rows, margin={"t": 50, "b": 40}, legend_title="split")
    return fig
