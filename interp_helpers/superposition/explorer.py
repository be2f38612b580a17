"""The superposition explorer (notebook 01): sliders for density and importance decay that
retrain a 5 -> 2 ReLU-output model and redraw its feature geometry.

The work behind each explorer is a plain function (train, then redraw a figure) so
tests can call it without a browser; the widget only wires sliders to it.
"""

import ipywidgets as widgets
import torch
from jaxtyping import Float
from plotly import graph_objects as go
from torch import Tensor

from interp_helpers.figures import plots
from interp_helpers.superposition import figures
from interp_helpers.superposition import toy_models as tm

N_FEATURES, D_HIDDEN = 5, 2


def retrain_geometry(
    density: float, importance_decay: float, *, seed: int = 0, steps: int = 1500, n_seeds: int = 4
) -> tuple[Float[Tensor, "2 feature"], Float[Tensor, " feature"], float]:
    """Train a 5 -> 2 ReLU-output model (best of `n_seeds`) and return (W, importance, loss).

    About 2 s on a 2-core CPU with the defaults, which keeps a slider responsive.
    """
    cfg = tm.ToyModelConfig(N_FEATURES, D_HIDDEN, steps=steps)
    importance = tm.importance_decay(N_FEATURES, importance_decay)[0]
    generator = torch.Generator().manual_seed(seed)
    sweep = tm.train_density_sweep(cfg, torch.tensor([density]), importance, generator, n_seeds=n_seeds)
    return sweep.W[0], importance, sweep.loss[0].item()


def explorer_update(
    fig: go.Figure | go.FigureWidget,
    density: float,
    importance_decay: float,
    *,
    seed: int = 0,
    steps: int = 1500,
    n_seeds: int = 4,
) -> dict[str, float]:
    """Retrain for the slider values, redraw `fig` in place, and return what changed."""
    W, importance, loss = retrain_geometry(density, importance_decay, seed=seed, steps=steps, n_seeds=n_seeds)
    n_represented = int(tm.features_represented(W))
    title = (
        f"density {density:.3f}, importance decay {importance_decay:.2f}: "
        f"{n_represented} of {N_FEATURES} features represented"
    )
    figures.update_geometry(fig, W, importance, title)
    return {"density": density, "importance_decay": importance_decay, "loss": loss, "n_represented": n_represented}


def superposition_explorer(
    *, density: float = 0.1, importance_decay: float = 0.9, seed: int = 0, steps: int = 1500, n_seeds: int = 4
) -> widgets.VBox:
    """Sliders for density and importance decay that retrain and redraw a 5 -> 2 model.

    Returns the widget box (display it as a cell's last expression); its `figure`
    attribute is the plain `go.Figure` it redraws. The model is retrained when a slider
    is released, not while it is dragged.

    The figure is shown through an `Output` widget rather than a plotly `FigureWidget`:
    a FigureWidget saves the whole plotly.js bundle (about 5 MB) in the notebook's widget
    state, while the Output widget saves only the figure's JSON, which JupyterLab's
    plotly renderer redraws when the executed notebook is opened.
    """
    fig = figures.geometry_figure(torch.zeros(D_HIDDEN, N_FEATURES), torch.ones(N_FEATURES), "")
    view = widgets.Output()
    density_slider = widgets.FloatLogSlider(
        value=density,
        base=10,
        min=-2,
        max=0,
        step=0.05,
        description="density",
        continuous_update=False,
        readout_format=".3f",
    )
    decay_slider = widgets.FloatSlider(
        value=importance_decay, min=0.5, max=1.0, step=0.05, description="I decay", continuous_update=False
    )
    status = widgets.Label()

    def redraw(_change: object = None) -> None:
        status.value = "training..."
        info = explorer_update(fig, density_slider.value, decay_slider.value, seed=seed, steps=steps, n_seeds=n_seeds)
        view.outputs = (plots.figure_output(fig),)  # one state update: the old figure is replaced, not cleared first
        status.value = f"loss {info['loss']:.4f} (best of {n_seeds} seeds); 1/(1-S) = {1 / info['density']:.1f}"

    density_slider.observe(redraw, names="value")
    decay_slider.observe(redraw, names="value")
    redraw()
    box = widgets.VBox([widgets.HBox([density_slider, decay_slider]), status, view])
    box.figure = fig
    return box
