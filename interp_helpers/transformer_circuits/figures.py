"""Figures for transformer circuits (notebooks 02 and 03): the induction phase change, head-score
heatmaps, agreement scatters and head bars, composition scores, per-token loss, and the
direct-attribution figure, three-name accuracy by slot.
"""

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from jaxtyping import Float
from plotly.colors import qualitative
from plotly.subplots import make_subplots
from torch import Tensor

from interp_helpers.figures.plots import labelled_heatmap, layout, to_numpy


def head_labels(n_layers: int, n_heads: int) -> list[str]:
    """ "L0H0", "L0H1", ... in layer-major order (the order of a flattened [layer, head_index] tensor)."""
    return [f"L{layer}H{head}" for layer in range(n_layers) for head in range(n_heads)]


def layer_head_heatmap(
    values: Float[Tensor, "layer head_index"], title: str, colorbar_title: str = "", height: int | None = None
) -> go.Figure:
    """One value per head, layers down and heads across (L0 at the top), labelled L{layer} / H{head}."""
    n_layers, n_heads = values.shape
    return labelled_heatmap(
        values,
        title=title,
        x_title="head",
        y_title="layer",
        x_labels=[f"H{h}" for h in range(n_heads)],
        y_labels=[f"L{layer}" for layer in range(n_layers)],
        colorbar_title=colorbar_title,
        height=height or max(460, 22 * n_layers + 120),
    )


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
    return layout(fig, title, 900, 760)


def head_score_heatmaps(
    scores: dict[str, Float[Tensor, "layer head_index"]], title: str, height: int = 300
) -> go.Figure:
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
    return layout(fig, title, 300 * len(scores) + 60, height)


def agreement_scatter(
    ours: dict[str, Float[Tensor, "layer head_index"]],
    theirs: dict[str, Float[Tensor, "layer head_index"]],
    title: str,
    x_title: str,
    y_title: str,
) -> go.Figure:
    """Every head's score from two implementations, one colour per kind, with the y = x line (NaN heads left out)."""
    fig = go.Figure()
    top = 0.0
    for i, kind in enumerate(ours):
        x, y = to_numpy(ours[kind]).ravel(), to_numpy(theirs[kind]).ravel()
        labels = np.array(head_labels(*ours[kind].shape))
        known = ~(np.isnan(x) | np.isnan(y))
        x, y, labels = x[known], y[known], labels[known].tolist()
        top = max(top, float(x.max()), float(y.max()))
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
    return layout(fig, title, 560, 480)


def head_bars(
    values: dict[str, Float[Tensor, "layer head_index"]],
    title: str,
    y_title: str,
    reference: float | None = None,
    reference_label: str = "",
    layers: Sequence[int] | None = None,
) -> go.Figure:
    """Grouped bars, one group per head (L0H0, L0H1, ...), one colour per series; `layers`: only those layers' heads."""
    fig = go.Figure()
    for i, (name, v) in enumerate(values.items()):
        rows = range(v.shape[0]) if layers is None else layers
        fig.add_trace(
            go.Bar(
                x=[f"L{layer}H{head}" for layer in rows for head in range(v.shape[1])],
                y=to_numpy(v[list(rows)]).ravel(),
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
    return layout(fig, title, 820, 400)


def composition_figure(
    scores: dict[str, Float[Tensor, "head_index_0 head_index_1"]],
    baseline: float,
    title: str,
    layers: tuple[int, int] = (0, 1),
) -> go.Figure:
    """Q-, K- and V-composition heatmaps (head of layers[0] -> head of layers[1]); white = the random baseline."""
    writer, reader = layers
    zmax = max(float(to_numpy(s).max()) for s in scores.values())
    fig = make_subplots(
        rows=1, cols=len(scores), subplot_titles=[f"{k.upper()}-composition" for k in scores], horizontal_spacing=0.08
    )
    for i, s in enumerate(scores.values()):
        z = to_numpy(s)
        fig.add_trace(
            go.Heatmap(
                z=z,
                x=[f"L{reader}H{h}" for h in range(z.shape[1])],
                y=[f"L{writer}H{h}" for h in range(z.shape[0])],
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
    fig.update_xaxes(title_text=f"reading head (layer {reader})")
    fig.update_yaxes(title_text=f"writing head (layer {writer})", row=1, col=1)
    return layout(fig, title, 960, 340)


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
    return layout(fig, title, 900, 360)


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
    return layout(fig, title, 760, 400)


def slot_accuracy_figure(by_model: dict[str, Sequence[float]], title: str) -> go.Figure:
    """Three-name accuracy by the answer's introduced slot, one bar colour per model, chance (1/3) dashed."""
    slots = ["first", "second", "third"]
    fig = go.Figure()
    for i, (name, accuracy) in enumerate(by_model.items()):
        fig.add_trace(
            go.Bar(
                x=slots,
                y=list(accuracy),
                name=name,
                text=[f"{a:.2f}" for a in accuracy],
                marker_color=qualitative.Plotly[i % len(qualitative.Plotly)],
                hovertemplate=f"{name}<br>answer introduced %{{x}}: %{{y:.3f}}<extra></extra>",
            )
        )
    fig.add_hline(y=1 / 3, line=dict(dash="dash", color="#999"), annotation_text="chance (1/3)")
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text="slot in which the answer (the name said once) was introduced")
    fig.update_yaxes(title_text="accuracy (answer's logit highest of the three)", range=[0, 1.05])
    return layout(fig, title, 720, 380)
