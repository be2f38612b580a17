"""Figures for sparse dictionaries (notebooks 04 and 05): SAE training curves, latent density,
label recovery (by field, across SAEs, by dictionary size), a latent's family sunburst and
max-correlation histograms.
"""

import numpy as np
import plotly.graph_objects as go
import torch
from jaxtyping import Float
from plotly.colors import qualitative
from plotly.subplots import make_subplots
from torch import Tensor

from interp_helpers.figures.plots import layout, to_numpy


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
    return layout(fig, title, 950, 330)


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
    return layout(fig, title, 700, 330)


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
    return layout(fig, title, 700, 350)


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
    return layout(fig, title, 600, 500)


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
    return layout(fig, title, 650, 600)


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
    return layout(fig, title, 700, 350)


def recovery_by_size_figure(rows: list[dict], fields: list[str], title: str) -> go.Figure:
    """Mean best F1 per label field against dictionary size (rows: {"size": n, field: mean F1, ...})."""
    fig = go.Figure()
    for field in fields:
        fig.add_trace(
            go.Scatter(x=[r["size"] for r in rows], y=[r[field] for r in rows], mode="lines+markers", name=field)
        )
    fig.update_xaxes(title_text="latents in the dictionary", type="log")
    fig.update_yaxes(title_text="mean best F1 over the field's labels", range=[0, 1])
    return layout(fig, title, 650, 380)
