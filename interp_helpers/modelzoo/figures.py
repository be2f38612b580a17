"""Figures for the model zoo (notebook 00): training loss curves and loss by genre."""

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from interp_helpers.figures.plots import layout, moving_average, to_numpy


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
    return layout(fig, title, 900, 420)


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
    return layout(fig, title, 800, 420)
