"""Figures of notebook 07: probe accuracy by layer, the random-label curve, steering effects."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from interp_helpers.figures.plots import layout


def by_layer(
    curves: Mapping[str, Sequence[int | float]],
    layer_names: Sequence[str],
    *,
    title: str,
    y_title: str = "held-out accuracy",
    chance: float | None = None,
    dashed: Sequence[str] = (),
    width: int = 760,
    height: int = 400,
) -> go.Figure:
    """One line per curve over the probe sites (embedding, then each layer); `dashed` names baselines."""
    fig = go.Figure()
    for name, values in curves.items():
        fig.add_trace(
            go.Scatter(
                x=list(layer_names),
                y=list(values),
                name=name,
                mode="lines+markers",
                line=dict(dash="dash" if name in dashed else "solid"),
            )
        )
    if chance is not None:
        fig.add_hline(y=chance, line=dict(color="grey", dash="dot"), annotation_text="chance")
    fig.update_xaxes(title="probe site", type="category")
    fig.update_yaxes(title=y_title)
    return layout(fig, title, width, height)


def random_label_curve(points: Sequence[Mapping[str, int | float]], d_model: int, *, title: str) -> go.Figure:
    """Train and test accuracy of probes on coin-flip labels against n / d_model, Cover's 2 d marked."""
    x = [p["n_over_d"] for p in points]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=[p["train"] for p in points], name="train", mode="lines+markers"))
    fig.add_trace(go.Scatter(x=x, y=[p["test"] for p in points], name="held out", mode="lines+markers"))
    fig.add_vline(x=2, line=dict(color="grey", dash="dot"))
    # On a log axis annotations take log10 coordinates (shapes do not): place the label by hand.
    fig.add_annotation(x=math.log10(2), y=1.02, text="n = 2 d (Cover)", showarrow=False, xanchor="left")
    fig.add_hline(y=0.5, line=dict(color="grey", dash="dot"))
    low, high = math.log10(min(x)), math.log10(max(x))
    fig.update_xaxes(title=f"training rows / d_model (d_model = {d_model})", type="log", range=[low - 0.1, high + 0.1])
    fig.update_yaxes(title="accuracy on random labels", range=[0.4, 1.06])
    return layout(fig, title, 700, 400)


def steering_effect(alphas: Sequence[int | float], effects: Mapping[str, Sequence[float]], *, title: str) -> go.Figure:
    """Mean change of the model's logit(True) - logit(False) against the steering coefficient, per direction."""
    fig = go.Figure()
    for name, values in effects.items():
        fig.add_trace(go.Scatter(x=list(alphas), y=list(values), name=name, mode="lines+markers"))
    fig.add_hline(y=0, line=dict(color="grey", dash="dot"))
    fig.update_xaxes(title="alpha (multiples of the class-mean distance along the direction)")
    fig.update_yaxes(title="change in logit(' True') - logit(' False') (nats)")
    return layout(fig, title, 700, 400)
