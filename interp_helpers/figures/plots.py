"""Generic plotly helpers every topic's figures share: array conversion, the common layout
(font, template, width clipped to the exported page), a labelled heatmap, a moving average,
and a figure as an Output widget's display data.

Each topic's own figures live beside it (`superposition.figures`, `modelzoo.figures`,
`transformer_circuits.figures`, `dictionaries.figures`). Every function takes tensors (or
arrays) and returns a `go.Figure`; notebooks call `fig.show()`. Titles say what to notice,
axes carry units, and nothing here trains or computes anything a test would want to check:
that lives in the kernels.
"""

import numpy as np
import plotly.graph_objects as go
from jaxtyping import Float
from plotly import io as pio
from torch import Tensor

FONT = dict(family="Arial, sans-serif", size=12)


# Wider figures are clipped in the exported HTML's output area (about 1000 px).
MAX_WIDTH = 1000


def to_numpy(x: Tensor | np.ndarray) -> np.ndarray:
    """A detached CPU NumPy copy of a tensor (arrays pass through)."""
    return x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)


def layout(fig: go.Figure, title: str, width: int, height: int) -> go.Figure:
    """Title, size (width clipped to `MAX_WIDTH`), font and white template: every figure ends with this."""
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
    return layout(fig, title, width, height)


def moving_average(values: Float[np.ndarray, " step"], window: int) -> Float[np.ndarray, " step"]:
    """Trailing mean over up to `window` points, same length as the input (the first points average fewer)."""
    values = np.asarray(values, dtype=float)
    window = max(1, min(int(window), len(values)))
    cumsum = np.concatenate([[0.0], np.cumsum(values)])
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(0, idx - window)
    return (cumsum[idx] - cumsum[lo]) / (idx - lo)


def figure_output(fig: go.Figure) -> dict:
    """A figure as an Output widget's display_data output, in plotly's mimetype (no plotly.js)."""
    bundle = pio.renderers["plotly_mimetype"].to_mimebundle(fig.to_dict())
    return {"output_type": "display_data", "data": {**bundle, "text/plain": "<plotly figure>"}, "metadata": {}}
