"""Plotly figures for the workbook: a few generic helpers, then one function per figure.

Every function takes tensors (or arrays) and returns a `go.Figure`; notebooks call
`fig.show()`. Titles say what to notice, axes carry units, and nothing here trains
or computes anything a test would want to check: that lives in the kernels.
"""

import numpy as np
import plotly.graph_objects as go
import torch
from jaxtyping import Bool, Float, Int
from plotly.colors import qualitative
from plotly.subplots import make_subplots
from torch import Tensor

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
FONT = dict(family="Arial, sans-serif", size=12)


# Wider figures are clipped in the exported HTML's output area (about 1000 px).
MAX_WIDTH = 1000


def to_numpy(x: Tensor | np.ndarray) -> np.ndarray:
    """A detached CPU NumPy copy of a tensor (arrays pass through)."""
    return x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)


def _layout(fig: go.Figure, title: str, width: int, height: int) -> go.Figure:
    width = min(width, MAX_WIDTH)
    fig.update_layout(title=dict(text=title, x=0.01), width=width, height=height, font=FONT, template="plotly_white")
    return fig


def labelled_heatmap(
    z: Float[Tensor, "row col"] | Float[np.ndarray, "row col"],
    *,
    title: str,
    x_title: str,
    y_title: str,
    x_labels: list[str] | None = None,
    y_labels: list[str] | None = None,
    colorscale: str = "RdBu",
    zmid: float | None = 0.0,
    colorbar_title: str = "",
    text_format: str | None = ".2f",
    width: int = 520,
    height: int = 460,
) -> go.Figure:
    """A heatmap with labelled axes, rows top-to-bottom and (optionally) values printed in the cells."""
    values = to_numpy(z)
    heatmap = go.Heatmap(
        z=values,
        x=x_labels,
        y=y_labels,
        colorscale=colorscale,
        zmid=zmid,
        colorbar=dict(title=colorbar_title),
        texttemplate=f"%{{z:{text_format}}}" if text_format else None,
        hovertemplate=f"{y_title} %{{y}}<br>{x_title} %{{x}}<br>value %{{z:.3f}}<extra></extra>",
    )
    fig = go.Figure(heatmap)
    fig.update_xaxes(title=x_title, type="category" if x_labels else None)
    fig.update_yaxes(title=y_title, autorange="reversed", type="category" if y_labels else None)
    return _layout(fig, title, width, height)


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
    return _layout(fig, title, 520, 460)


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
    return _layout(fig, title, max(160 * n_panels + 160, 700), 340)


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
    return _layout(fig, title, 180 * n_panels + 220, 640)


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
    return _layout(fig, title, 720, 520)


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
    return _layout(fig, title, 820, 500)


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
    return _layout(fig, title, 230 * n_panels + 250, 420)


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
    return _layout(fig, title, 1000, 480)


# ---------------------------------------------------------------------- model zoo (notebook 00)


def moving_average(values: Float[np.ndarray, " step"], window: int) -> Float[np.ndarray, " step"]:
    """Trailing mean over up to `window` points, same length as the input (the first points average fewer)."""
    values = np.asarray(values, dtype=float)
    window = max(1, min(int(window), len(values)))
    cumsum = np.concatenate([[0.0], np.cumsum(values)])
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(0, idx - window)
    return (cumsum[idx] - cumsum[lo]) / (idx - lo)


def loss_curves_figure(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str, smooth: int = 25, ln_vocab: float | None = None
) -> go.Figure:
    """Training loss against tokens seen, one smoothed line per model (raw per-step loss is noisy)."""
    fig = go.Figure()
    for i, (name, (tokens, loss)) in enumerate(curves.items()):
        fig.add_trace(
            go.Scatter(
                x=to_numpy(tokens),
                y=moving_average(to_numpy(loss), smooth),
                mode="lines",
                name=name,
                line=dict(color=qualitative.Plotly[i % len(qualitative.Plotly)]),
                hovertemplate=f"{name}<br>%{{x:,.0f}} tokens<br>loss %{{y:.3f}}<extra></extra>",
            )
        )
    if ln_vocab is not None:
        fig.add_hline(y=ln_vocab, line=dict(dash="dash", color="#999"), annotation_text="ln(d_vocab): uniform guess")
    fig.update_xaxes(title_text="tokens seen")
    fig.update_yaxes(title_text=f"training loss (nats/token, {smooth}-step mean)", rangemode="tozero")
    return _layout(fig, title, 900, 420)


def genre_loss_figure(losses: dict[str, dict[str, float]], title: str, ln_vocab: float | None = None) -> go.Figure:
    """Held-out loss per genre, grouped bars with one colour per model."""
    fig = go.Figure()
    for i, (name, per_genre) in enumerate(losses.items()):
        fig.add_trace(
            go.Bar(
                x=list(per_genre),
                y=list(per_genre.values()),
                name=name,
                marker_color=qualitative.Plotly[i % len(qualitative.Plotly)],
                hovertemplate=f"{name}<br>%{{x}}: %{{y:.3f}} nats/token<extra></extra>",
            )
        )
    if ln_vocab is not None:
        fig.add_hline(y=ln_vocab, line=dict(dash="dash", color="#999"), annotation_text="ln(d_vocab): uniform guess")
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text="genre of the held-out documents")
    fig.update_yaxes(title_text="next-token loss (nats/token)", rangemode="tozero")
    return _layout(fig, title, 800, 420)


# ---------------------------------------------------------------------- induction heads (notebook 02)


def head_labels(n_layers: int, n_heads: int) -> list[str]:
    """ "L0H0", "L0H1", ... in layer-major order (the order of a flattened [layer, head_index] tensor)."""
    return [f"L{layer}H{head}" for layer in range(n_layers) for head in range(n_heads)]


def phase_change_figure(
    rows: list[dict[str, float]], title: str, ln_pool: float | None = None, phase_tokens: float | None = None
) -> go.Figure:
    """Repeated-sequence loss, ICL score and the best head scores against tokens seen, one panel each.

    `rows` are metrics.csv rows (zoo.read_metrics); only rows with eval columns are drawn.
    `phase_tokens` marks the phase change with a vertical line in every panel.
    """
    evals = [r for r in rows if "loss_second_repeat" in r]
    tokens = [r["tokens"] for r in evals]
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.06,
        subplot_titles=(
            "loss on repeated random tokens",
            "in-context learning score (late - early)",
            "best head scores",
        ),
    )
    panels = [
        (1, "loss_first_repeat", "first repeat", "#bab0ac"),
        (1, "loss_second_repeat", "second repeat", "#4c78a8"),
        (2, "icl_score", "ICL score", "#54a24b"),
        (3, "best_prev_token_score", "previous-token (layer 0)", "#f58518"),
        (3, "best_induction_score", "induction (layer 1)", "#e45756"),
    ]
    for row, key, name, color in panels:
        fig.add_trace(
            go.Scatter(
                x=tokens,
                y=[r[key] for r in evals],
                mode="lines",
                name=name,
                line=dict(color=color),
                hovertemplate=f"{name}<br>%{{x:,.0f}} tokens<br>%{{y:.3f}}<extra></extra>",
            ),
            row=row,
            col=1,
        )
    if ln_pool is not None:
        fig.add_hline(
            y=ln_pool,
            line=dict(dash="dash", color="#999"),
            row=1,
            col=1,
            annotation_text="ln(pool): guessing among the random words",
        )
    if phase_tokens is not None:
        for row in (1, 2, 3):
            fig.add_vline(x=phase_tokens, line=dict(dash="dot", color="#666"), row=row, col=1)
    fig.update_yaxes(title_text="nats/token", row=1, col=1)
    fig.update_yaxes(title_text="nats", row=2, col=1)
    fig.update_yaxes(title_text="attention", range=[0, 1], row=3, col=1)
    fig.update_xaxes(title_text="tokens seen", row=3, col=1)
    return _layout(fig, title, 900, 760)


def head_score_heatmaps(scores: dict[str, Float[Tensor, "layer head_index"]], title: str) -> go.Figure:
    """One [layer x head] heatmap per kind of score, side by side, values printed in the cells."""
    fig = make_subplots(
        rows=1, cols=len(scores), subplot_titles=[k.replace("_", "-") for k in scores], horizontal_spacing=0.06
    )
    for i, values in enumerate(scores.values()):
        z = to_numpy(values)
        fig.add_trace(
            go.Heatmap(
                z=z,
                x=[f"H{h}" for h in range(z.shape[1])],
                y=[f"L{l}" for l in range(z.shape[0])],
                zmin=0,
                zmax=1,
                colorscale="Blues",
                showscale=i == len(scores) - 1,
                texttemplate="%{z:.2f}",
                colorbar=dict(title="mean attention"),
                hovertemplate="%{y}%{x}: %{z:.3f}<extra></extra>",
            ),
            row=1,
            col=i + 1,
        )
        fig.update_yaxes(autorange="reversed", row=1, col=i + 1)
    fig.update_xaxes(title_text="head")
    fig.update_yaxes(title_text="layer", row=1, col=1)
    return _layout(fig, title, 300 * len(scores) + 60, 300)


def agreement_scatter(
    ours: dict[str, Float[Tensor, "layer head_index"]],
    theirs: dict[str, Float[Tensor, "layer head_index"]],
    title: str,
    x_title: str,
    y_title: str,
) -> go.Figure:
    """Every head's score from two implementations, one colour per kind, with the y = x line."""
    fig = go.Figure()
    top = 0.0
    for i, kind in enumerate(ours):
        x, y = to_numpy(ours[kind]).ravel(), to_numpy(theirs[kind]).ravel()
        top = max(top, float(x.max()), float(y.max()))
        labels = head_labels(*ours[kind].shape)
        fig.add_trace(
            go.Scatter(
                x=x,
                y=y,
                mode="markers",
                name=kind.replace("_", "-"),
                text=labels,
                marker=dict(size=9, color=qualitative.Plotly[i]),
                hovertemplate="%{text}<br>ours %{x:.4f}<br>theirs %{y:.4f}<extra></extra>",
            )
        )
    fig.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", name="y = x", line=dict(dash="dash", color="#999")))
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=y_title, scaleanchor="x")
    return _layout(fig, title, 560, 480)


def head_bars(
    values: dict[str, Float[Tensor, "layer head_index"]],
    title: str,
    y_title: str,
    reference: float | None = None,
    reference_label: str = "",
) -> go.Figure:
    """Grouped bars, one group per head (L0H0, L0H1, ...), one colour per series."""
    fig = go.Figure()
    for i, (name, v) in enumerate(values.items()):
        fig.add_trace(
            go.Bar(
                x=head_labels(*v.shape),
                y=to_numpy(v).ravel(),
                name=name,
                marker_color=qualitative.Plotly[i % len(qualitative.Plotly)],
                hovertemplate=f"{name}<br>%{{x}}: %{{y:.3f}}<extra></extra>",
            )
        )
    if reference is not None:
        fig.add_hline(y=reference, line=dict(dash="dash", color="#999"), annotation_text=reference_label)
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text="head (layer, index)")
    fig.update_yaxes(title_text=y_title)
    return _layout(fig, title, 820, 400)


def composition_figure(
    scores: dict[str, Float[Tensor, "head_index_0 head_index_1"]], baseline: float, title: str
) -> go.Figure:
    """Q-, K- and V-composition heatmaps (layer-0 head -> layer-1 head); white = the random baseline."""
    zmax = max(float(to_numpy(s).max()) for s in scores.values())
    fig = make_subplots(
        rows=1, cols=len(scores), subplot_titles=[f"{k.upper()}-composition" for k in scores], horizontal_spacing=0.08
    )
    for i, s in enumerate(scores.values()):
        z = to_numpy(s)
        fig.add_trace(
            go.Heatmap(
                z=z,
                x=[f"L1H{h}" for h in range(z.shape[1])],
                y=[f"L0H{h}" for h in range(z.shape[0])],
                zmin=0,
                zmax=zmax,
                colorscale="RdBu_r",
                zmid=baseline,
                showscale=i == len(scores) - 1,
                texttemplate="%{z:.2f}",
                colorbar=dict(title="score"),
                hovertemplate="%{y} -> %{x}: %{z:.3f}<extra></extra>",
            ),
            row=1,
            col=i + 1,
        )
        fig.update_yaxes(autorange="reversed", row=1, col=i + 1)
    fig.update_xaxes(title_text="reading head (layer 1)")
    fig.update_yaxes(title_text="writing head (layer 0)", row=1, col=1)
    return _layout(fig, title, 960, 340)


def token_loss_figure(
    str_tokens: list[str],
    loss: Float[Tensor, " target_pos"],
    groups: list[str],
    title: str,
    reference: float | None = None,
    reference_label: str = "",
) -> go.Figure:
    """Loss of predicting each token of one row, one bar per predicted token, coloured by its group.

    `str_tokens` has one more entry than `loss` (the first token is never predicted);
    `groups[i]` names the group of predicted token i + 1 (e.g. "first copy").
    """
    values = to_numpy(loss)
    names = list(dict.fromkeys(groups))
    fig = go.Figure()
    for i, name in enumerate(names):
        idx = [j for j, g in enumerate(groups) if g == name]
        fig.add_trace(
            go.Bar(
                x=[j + 1 for j in idx],
                y=values[idx],
                name=name,
                customdata=[repr(str_tokens[j + 1]) for j in idx],
                marker_color=qualitative.Plotly[i % len(qualitative.Plotly)],
                hovertemplate="position %{x}: %{customdata}<br>loss %{y:.2f} nats<extra></extra>",
            )
        )
    if reference is not None:
        fig.add_hline(y=reference, line=dict(dash="dash", color="#999"), annotation_text=reference_label)
    fig.update_xaxes(title_text="position of the predicted token")
    fig.update_yaxes(title_text="loss (nats)", rangemode="tozero")
    return _layout(fig, title, 900, 360)


def sae_training_figure(histories: dict[str, list[dict[str, float]]], title: str) -> go.Figure:
    """Explained variance, L0 and dead fraction against step, one line per SAE (from `train_sae`'s history)."""
    metrics = (
        ("explained_variance", "explained variance"),
        ("l0", "L0 (latents per token)"),
        ("dead_fraction", "dead fraction"),
    )
    fig = make_subplots(rows=1, cols=3, subplot_titles=[label for _, label in metrics])
    for i, (name, rows) in enumerate(histories.items()):
        color = qualitative.Plotly[i % len(qualitative.Plotly)]
        for col, (key, _) in enumerate(metrics, start=1):
            fig.add_trace(
                go.Scatter(
                    x=[r["step"] for r in rows],
                    y=[r[key] for r in rows],
                    name=name,
                    legendgroup=name,
                    showlegend=col == 1,
                    line={"color": color},
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text="training step")
    fig.update_yaxes(type="log", row=1, col=2)
    return _layout(fig, title, 950, 330)


def density_histogram(densities: dict[str, Float[Tensor, " unit"]], title: str) -> go.Figure:
    """How often each unit fires (log10 of the fraction of tokens); units that never fire are counted apart."""
    fig = go.Figure()
    for name, density in densities.items():
        alive = to_numpy(density[density > 0])
        dead = int((density == 0).sum())
        fig.add_trace(go.Histogram(x=np.log10(alive), name=f"{name} ({dead} never fire)", opacity=0.6, nbinsx=60))
    fig.update_layout(
        barmode="overlay", xaxis_title="log10(fraction of tokens where the unit is > 0)", yaxis_title="units"
    )
    return _layout(fig, title, 700, 330)


def recovery_figure(tables: dict[str, object], fields: list[str], title: str) -> go.Figure:
    """Mean best F1 per label field, one bar group per unit set (e.g. SAE latents, MLP neurons).

    tables: name -> `recovery.RecoveryTable` over the same labels.
    """
    fig = go.Figure()
    for name, table in tables.items():
        fig.add_trace(go.Bar(x=fields, y=[table.mean_f1(f + "=") for f in fields], name=name))
    fig.update_layout(
        barmode="group", xaxis_title="label field", yaxis_title="mean best F1 over its labels", yaxis_range=[0, 1]
    )
    return _layout(fig, title, 700, 350)


def recovery_scatter(x_table: object, y_table: object, x_name: str, y_name: str, title: str) -> go.Figure:
    """Best F1 of every label under two unit sets: points above the diagonal favour `y_name`."""
    field = [label.split("=", 1)[0] for label in x_table.labels]
    fig = go.Figure()
    for f in dict.fromkeys(field):
        idx = [i for i, g in enumerate(field) if g == f]
        fig.add_trace(
            go.Scatter(
                x=to_numpy(x_table.f1[idx]),
                y=to_numpy(y_table.f1[idx]),
                mode="markers",
                name=f,
                text=[x_table.labels[i] for i in idx],
                hovertemplate="%{text}<br>%{x:.2f} -> %{y:.2f}",
            )
        )
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"}, showlegend=False))
    fig.update_layout(
        xaxis_title=f"best F1, {x_name}", yaxis_title=f"best F1, {y_name}", xaxis_range=[0, 1], yaxis_range=[0, 1]
    )
    return _layout(fig, title, 600, 500)


def attribution_figure(shares: dict[str, float], total: float, title: str) -> go.Figure:
    """Direct shares of a metric per residual-stream component (bars) and their running sum (line)."""
    names = list(shares)
    running = np.cumsum([shares[n] for n in names])
    fig = go.Figure(
        go.Bar(
            x=names,
            y=[shares[n] for n in names],
            name="component's direct share",
            marker_color=["#4c78a8" if "attn" in n else "#f58518" if "mlp" in n else "#bab0ac" for n in names],
        )
    )
    fig.add_trace(go.Scatter(x=names, y=running, mode="lines+markers", name="accumulated", line={"color": "#333"}))
    fig.add_hline(
        y=total, line={"dash": "dash", "color": "#999"}, annotation_text=f"model's logit difference {total:.2f}"
    )
    fig.update_xaxes(title_text="residual-stream component (in order)")
    fig.update_yaxes(title_text="logit difference IO - S")
    return _layout(fig, title, 760, 400)


def family_sunburst(nodes: list[dict], title: str) -> go.Figure:
    """A latent and its descendants in larger dictionaries (from `splitting.family_tree`), rings by size."""
    fig = go.Figure(
        go.Sunburst(
            ids=[n["id"] for n in nodes],
            parents=[n["parent"] for n in nodes],
            labels=[f"{n['label'].split('=', 1)[-1]}<br>F1 {n['f1']:.2f}" for n in nodes],
            hovertext=[
                f"{n['size']} latents, latent {n['latent']}: best label {n['label']} (F1 {n['f1']:.2f})" for n in nodes
            ],
            hoverinfo="text",
            marker={
                "colors": [n["f1"] for n in nodes],
                "colorscale": "Blues",
                "cmin": 0,
                "cmax": 0.6,
                "showscale": True,
                "colorbar": {"title": "best F1"},
            },
        )
    )
    return _layout(fig, title, 650, 600)


def correlation_histogram(values: dict[str, Float[Tensor, " unit"]], title: str) -> go.Figure:
    """Distribution of each unit's best correlation with the other model's units, one trace per unit type."""
    fig = go.Figure()
    for name, v in values.items():
        v = v[~torch.isnan(v)]
        fig.add_trace(
            go.Histogram(
                x=to_numpy(v),
                name=f"{name} (median {float(v.median()):.2f})",
                opacity=0.6,
                xbins={"start": -0.1, "end": 1.0, "size": 0.025},
                histnorm="probability",
            )
        )
    fig.update_layout(
        barmode="overlay",
        xaxis_title="max correlation with any unit of the other model",
        yaxis_title="fraction of units",
    )
    return _layout(fig, title, 700, 350)


def recovery_by_size_figure(rows: list[dict], fields: list[str], title: str) -> go.Figure:
    """Mean best F1 per label field against dictionary size (rows: {"size": n, field: mean F1, ...})."""
    fig = go.Figure()
    for field in fields:
        fig.add_trace(
            go.Scatter(x=[r["size"] for r in rows], y=[r[field] for r in rows], mode="lines+markers", name=field)
        )
    fig.update_xaxes(title_text="latents in the dictionary", type="log")
    fig.update_yaxes(title_text="mean best F1 over the field's labels", range=[0, 1])
    return _layout(fig, title, 650, 380)
