"""Figures for toy models of superposition (notebook 01): 5 -> 2 feature geometry, 20 -> 5
W^T W and norms, the 2 -> 1 phase diagram, dimensions per feature, polysemantic neurons
and absolute-value computation.
"""

import numpy as np
import plotly.graph_objects as go
import torch
from jaxtyping import Bool, Float, Int
from plotly.colors import qualitative
from plotly.subplots import make_subplots
from torch import Tensor

from interp_helpers.figures.plots import layout, to_numpy
from interp_helpers.superposition import toy_models as tm

PHASE_COLORS: dict[str, str] = {
    "not learned": "#bab0ac",  # grey: the extra feature is dropped
    "dedicated": "#4c78a8",  # blue: the extra feature takes the dimension
    "antipodal": "#e45756",  # red: both share it, pointing opposite ways
    "other": "#f2cf5b",  # yellow: anything else (should be rare)
}
# Regular geometries and their per-feature dimensionality D_i (paper, "Feature Dimensionality").
GEOMETRY_FRACTIONS: dict[str, float] = {
    "1 (own dimension)": 1.0,
    "3/4 tetrahedron": 3 / 4,
    "2/3 triangle": 2 / 3,
    "1/2 antipodal pair": 1 / 2,
    "2/5 pentagon": 2 / 5,
    "3/8 square antiprism": 3 / 8,
}


def importance_colors(importance: Float[Tensor, " feature"], colorscale: str = "Viridis") -> list[str]:
    """One colour per feature, brightest for the most important (as in the paper's figures)."""
    imp = to_numpy(importance).astype(float)
    span = imp.max() - imp.min()
    scaled = (imp - imp.min()) / span if span > 0 else np.ones_like(imp)
    from plotly.colors import sample_colorscale

    return sample_colorscale(colorscale, list(0.15 + 0.8 * scaled))


# ---------------------------------------------------------------------- 5 -> 2 geometry


def _arrow_xy(w: np.ndarray) -> tuple[list[float], list[float]]:
    return [0.0, float(w[0])], [0.0, float(w[1])]


def geometry_traces(
    W: Float[Tensor, "2 feature"], importance: Float[Tensor, " feature"], *, showlegend: bool = True
) -> list[go.Scatter]:
    """Each feature as an arrow from the origin to W_i in the 2-D hidden space."""
    weights, colors = to_numpy(W), importance_colors(importance)
    traces = []
    for i in range(weights.shape[1]):
        x, y = _arrow_xy(weights[:, i])
        traces.append(
            go.Scatter(
                x=x,
                y=y,
                mode="lines+markers",
                line=dict(color=colors[i], width=3),
                marker=dict(size=[0, 10], color=colors[i]),
                name=f"feature {i} (I={float(importance[i]):.2f})",
                legendgroup=f"f{i}",
                showlegend=showlegend,
                hovertemplate=f"feature {i}<br>W_i = (%{{x:.2f}}, %{{y:.2f}})<extra></extra>",
            )
        )
    return traces


def _square_axes(fig: go.Figure, n_panels: int, limit: float = 1.5) -> None:
    for k in range(1, n_panels + 1):
        suffix = "" if k == 1 else str(k)
        fig.update_layout(
            {
                f"xaxis{suffix}": dict(range=[-limit, limit], zeroline=True, showticklabels=k == 1),
                f"yaxis{suffix}": dict(
                    range=[-limit, limit], scaleanchor=f"x{suffix}", zeroline=True, showticklabels=k == 1
                ),
            }
        )


def geometry_figure(W: Float[Tensor, "2 feature"], importance: Float[Tensor, " feature"], title: str) -> go.Figure:
    """One 2-D embedding: the view the superposition explorer redraws."""
    fig = go.Figure(geometry_traces(W, importance))
    _square_axes(fig, 1)
    fig.update_xaxes(title="hidden dim 1")
    fig.update_yaxes(title="hidden dim 2")
    return layout(fig, title, 520, 460)


def update_geometry(
    fig: go.Figure | go.FigureWidget, W: Float[Tensor, "2 feature"], importance: Float[Tensor, " feature"], title: str
) -> go.Figure | go.FigureWidget:
    """Redraw `geometry_figure` in place (works for a FigureWidget: only data is sent)."""
    weights, colors = to_numpy(W), importance_colors(importance)
    with fig.batch_update():
        for i, trace in enumerate(fig.data):
            trace.x, trace.y = _arrow_xy(weights[:, i])
            trace.line.color = colors[i]
            trace.marker.color = colors[i]
            trace.name = f"feature {i} (I={float(importance[i]):.2f})"
        fig.layout.title.text = title
    return fig


def feature_geometry_panels(
    W: Float[Tensor, "panel 2 feature"], importance: Float[Tensor, " feature"], titles: list[str], title: str
) -> go.Figure:
    """The paper's intro figure: one 2-D embedding per density, left (dense) to right (sparse)."""
    n_panels = W.shape[0]
    fig = make_subplots(rows=1, cols=n_panels, subplot_titles=titles, horizontal_spacing=0.02)
    for k in range(n_panels):
        for trace in geometry_traces(W[k], importance, showlegend=k == 0):
            fig.add_trace(trace, row=1, col=k + 1)
    _square_axes(fig, n_panels)
    fig.update_xaxes(title_text="hidden dim 1", row=1, col=1)
    fig.update_yaxes(title_text="hidden dim 2", row=1, col=1)
    return layout(fig, title, max(160 * n_panels + 160, 700), 340)


# ----------------------------------------------------------- 20 -> 5: W^T W and norms


def superposition_panels(W: Float[Tensor, "panel d_hidden feature"], titles: list[str], title: str) -> go.Figure:
    """Per model: W^T W (top) and ||W_i|| bars coloured by interference (bottom), as in the paper.

    A diagonal W^T W with unit bars means features with their own dimensions; yellow
    bars and off-diagonal blocks mean superposition.
    """
    n_panels, n_features = W.shape[0], W.shape[-1]
    gram = to_numpy(torch.einsum("pmi,pmj->pij", W, W))
    norms, leak = to_numpy(tm.feature_norms(W)), to_numpy(tm.interference(W))
    fig = make_subplots(
        rows=2,
        cols=n_panels,
        subplot_titles=[t.replace(", ", "<br>") for t in titles],  # narrow panels
        vertical_spacing=0.08,
        horizontal_spacing=0.03,
        row_heights=[0.55, 0.45],
    )
    features = list(range(n_features))
    for k in range(n_panels):
        fig.add_trace(
            go.Heatmap(z=gram[k], coloraxis="coloraxis", hovertemplate="W_%{y} . W_%{x} = %{z:.2f}<extra></extra>"),
            row=1,
            col=k + 1,
        )
        fig.add_trace(
            go.Bar(
                x=norms[k],
                y=features,
                orientation="h",
                showlegend=False,
                marker=dict(color=leak[k], coloraxis="coloraxis2"),
                hovertemplate="feature %{y}<br>||W_i|| = %{x:.2f}<extra></extra>",
            ),
            row=2,
            col=k + 1,
        )
        fig.update_yaxes(autorange="reversed", showticklabels=k == 0, row=1, col=k + 1)
        fig.update_yaxes(autorange="reversed", showticklabels=k == 0, row=2, col=k + 1)
        fig.update_xaxes(showticklabels=False, row=1, col=k + 1)
        fig.update_xaxes(range=[0, 1.3], row=2, col=k + 1)
    fig.update_yaxes(title_text="feature i", row=1, col=1)
    fig.update_yaxes(title_text="feature i", row=2, col=1)
    fig.update_xaxes(title_text="||W_i||", row=2, col=1)
    fig.update_layout(
        coloraxis=dict(colorscale="RdBu", cmid=0, colorbar=dict(title="W_i . W_j", y=0.78, len=0.5)),
        coloraxis2=dict(colorscale="Viridis", cmin=0, cmax=1, colorbar=dict(title="interference", y=0.22, len=0.42)),
    )
    fig.update_layout(margin=dict(t=110))
    return layout(fig, title, 180 * n_panels + 220, 640)


# ----------------------------------------------------------------- 2 -> 1 phase diagram


def phase_diagram_figure(
    phase: Int[Tensor, "density importance"],
    density: Float[Tensor, " density"],
    relative_importance: Float[Tensor, " importance"],
    title: str,
) -> go.Figure:
    """Phases of the 2 -> 1 model coloured over (relative importance, density), both on log axes."""
    names = list(tm.PHASES)
    n_phases = len(names)
    # a stepwise colour scale so that index k gets exactly PHASE_COLORS[names[k]]
    colorscale = []
    for k, name in enumerate(names):
        colorscale += [[k / n_phases, PHASE_COLORS[name]], [(k + 1) / n_phases, PHASE_COLORS[name]]]
    labels = np.array(names, dtype=object)[to_numpy(phase)]
    fig = go.Figure(
        go.Heatmap(
            z=to_numpy(phase) + 0.5,
            x=to_numpy(relative_importance),
            y=to_numpy(density),
            zmin=0,
            zmax=n_phases,
            colorscale=colorscale,
            showscale=False,
            customdata=labels,
            hovertemplate="importance ratio %{x:.2f}<br>density %{y:.3f}<br>%{customdata}<extra></extra>",
        )
    )
    examples = {"not learned": "W ≈ [1, 0]", "dedicated": "W ≈ [0, 1]", "antipodal": "W ≈ [1, -1]", "other": ""}
    for name in names:  # legend entries: invisible points with the phase colours
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                marker=dict(size=12, symbol="square", color=PHASE_COLORS[name]),
                name=f"{name} {examples[name]}".strip(),
            )
        )
    fig.update_xaxes(type="log", title="relative importance of the extra feature (I_2 / I_1)")
    fig.update_yaxes(type="log", title="feature density 1 - S")
    fig.update_layout(legend=dict(title="phase (best of seeds)"))
    return layout(fig, title, 720, 520)


# ------------------------------------------------------------- dimensions per feature


def dimensions_per_feature_figure(
    inverse_density: Float[Tensor, " point"],
    dims_per_feature: Float[Tensor, " point"],
    feature_dims: Float[Tensor, "point feature"],
    represented: Bool[Tensor, "point feature"],
    title: str,
) -> go.Figure:
    """D* = m / ||W||_F^2 against 1 / (1 - S), over the per-feature D_i of represented features."""
    x, dims, keep = to_numpy(inverse_density), to_numpy(feature_dims), to_numpy(represented)
    point, feature = np.nonzero(keep)
    fig = go.Figure()
    for label, value in GEOMETRY_FRACTIONS.items():
        fig.add_hline(
            y=value,
            line=dict(dash="dot", color="#999", width=1),
            annotation_text=label,
            annotation_font_size=10,
            annotation_position="bottom right" if value == 3 / 8 else "top right",
        )
    fig.add_trace(
        go.Scatter(
            x=x[point],
            y=dims[point, feature],
            mode="markers",
            name="D_i of each represented feature",
            marker=dict(size=5, color="#4c78a8", opacity=0.25),
            hovertemplate="1/(1-S) %{x:.2f}<br>D_i %{y:.3f}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=to_numpy(dims_per_feature),
            mode="lines+markers",
            name="D* = m / ||W||_F²",
            line=dict(color="black", width=2),
            marker=dict(size=7),
            hovertemplate="1/(1-S) %{x:.2f}<br>D* %{y:.3f}<extra></extra>",
        )
    )
    fig.update_xaxes(type="log", title="1 / (1 - S) = 1 / density")
    fig.update_yaxes(title="dimensions per feature", range=[0, 1.1])
    fig.update_layout(legend=dict(x=0.45, y=0.88, bgcolor="rgba(255,255,255,0.8)"))
    return layout(fig, title, 820, 500)


# ------------------------------------------------------------ neurons and computation


def neuron_weight_bars(
    fig: go.Figure,
    W_in: Float[Tensor, "d_hidden feature"],
    importance: Float[Tensor, " feature"],
    *,
    row: int,
    col: int,
    showlegend: bool,
) -> None:
    """Stacked bars, one per neuron: each feature's input weight, positive up and negative down."""
    weights = to_numpy(W_in)
    palette = (
        qualitative.Plotly
    )  # distinct colours read better than a ramp when stacked; feature 0 is the most important
    colors = [palette[i % len(palette)] for i in range(weights.shape[1])]
    neurons = [f"n{k}" for k in range(weights.shape[0])]
    for i in range(weights.shape[1]):
        fig.add_trace(
            go.Bar(
                x=neurons,
                y=weights[:, i],
                marker_color=colors[i],
                legendgroup=f"f{i}",
                name=f"feature {i} (I={float(importance[i]):.2f})",
                showlegend=showlegend,
                hovertemplate=f"feature {i}<br>%{{x}}: %{{y:.2f}}<extra></extra>",
            ),
            row=row,
            col=col,
        )


def polysemantic_neurons_figure(
    W_in: Float[Tensor, "panel d_hidden feature"],
    importance: Float[Tensor, " feature"],
    titles: list[str],
    title: str,
) -> go.Figure:
    """Input weights of every hidden ReLU neuron, one panel per density.

    A bar with one colour above zero is a monosemantic neuron; several colours stacked
    upward means the neuron fires for several features: polysemantic. Each panel has
    its own y scale (sparse models grow larger weights).
    """
    n_panels = W_in.shape[0]
    fig = make_subplots(rows=1, cols=n_panels, subplot_titles=titles, horizontal_spacing=0.04)
    for k in range(n_panels):
        neuron_weight_bars(fig, W_in[k], importance, row=1, col=k + 1, showlegend=k == 0)
    fig.update_layout(barmode="relative", legend=dict(title="feature (0 = most important)"))
    fig.update_yaxes(title_text="input weight W_in[neuron, feature]", row=1, col=1)
    fig.update_xaxes(title_text="hidden neuron", row=1, col=1)
    return layout(fig, title, 230 * n_panels + 250, 420)


def abs_computation_figure(
    W_in_basic: Float[Tensor, "d_hidden feature"],
    density: Float[Tensor, " point"],
    n_computed: Int[Tensor, " point"],
    n_pairs: Int[Tensor, " point"],
    d_hidden: int,
    title: str,
) -> go.Figure:
    """Left: the basic abs model's neurons come in +/- pairs. Right: features computed vs density.

    Above the d_hidden / 2 line the model computes more absolute values than it has
    neuron pairs: computation in superposition.
    """
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.4, 0.6],
        horizontal_spacing=0.14,
        subplot_titles=(
            f"basic model: W_in ({W_in_basic.shape[0]} neurons x {W_in_basic.shape[1]} features)",
            f"{d_hidden} neurons: features computed vs density",
        ),
    )
    weights = to_numpy(W_in_basic)
    fig.add_trace(
        go.Heatmap(
            z=weights,
            x=[f"x{i}" for i in range(weights.shape[1])],
            y=[f"n{k}" for k in range(weights.shape[0])],
            colorscale="RdBu",
            zmid=0,
            texttemplate="%{z:.1f}",
            showscale=False,
            hovertemplate="neuron %{y}, feature %{x}: %{z:.2f}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    x = to_numpy(1.0 / density)
    fig.add_trace(
        go.Scatter(x=x, y=to_numpy(n_computed), mode="lines+markers", name="features with ||W_in,i|| > 0.5"),
        row=1,
        col=2,
    )
    fig.add_trace(
        go.Scatter(x=x, y=to_numpy(n_pairs), mode="lines+markers", name="features with a private +/- neuron pair"),
        row=1,
        col=2,
    )
    fig.add_hline(
        y=d_hidden / 2,
        line=dict(dash="dash", color="#999"),
        annotation_text="d_hidden / 2 (one pair each)",
        row=1,
        col=2,
    )
    fig.update_yaxes(autorange="reversed", title_text="hidden neuron", row=1, col=1)
    fig.update_xaxes(title_text="input feature", row=1, col=1)
    fig.update_xaxes(type="log", title_text="1 / density", row=1, col=2)
    fig.update_yaxes(title_text="number of features", rangemode="tozero", row=1, col=2)
    fig.update_layout(legend=dict(orientation="h", x=0.45, y=-0.25))
    return layout(fig, title, 1000, 480)
