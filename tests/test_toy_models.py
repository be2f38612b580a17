"""Toy models of superposition: kernels, analysis on hand-made weights, figures and the explorer."""

import dataclasses
import math

import plotly.graph_objects as go
import pytest
import torch

from interp_helpers.figures import plots
from interp_helpers.superposition import explorer
from interp_helpers.superposition import figures as toy_figures
from interp_helpers.superposition import toy_models as tm


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def polygon(k: int, radius: float = 1.0) -> torch.Tensor:
    """k unit vectors evenly spaced on a circle, as a (2, k) W."""
    angles = torch.arange(k) * 2 * math.pi / k
    return radius * torch.stack([angles.cos(), angles.sin()])


# ------------------------------------------------------------------------------ config


@pytest.mark.parametrize(
    "field, value",
    [("n_features", 0), ("d_hidden", -1), ("n_instances", 0), ("lr", 0.0), ("batch_size", 0), ("kind", "gelu")],
)
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"ToyModelConfig.{field}="):
        tm.ToyModelConfig(**{"n_features": 5, "d_hidden": 2, field: value})


def test_config_error_states_the_allowed_range():
    with pytest.raises(ValueError, match=r"allowed: \(0.0, 10.0\]"):
        tm.ToyModelConfig(5, 2, lr=-1.0)


# -------------------------------------------------------------------------- data, model


def test_generate_batch_shape_range_and_density():
    density = torch.tensor([[1.0, 1.0], [0.1, 0.5]])
    x = tm.generate_batch(density, 20_000, gen())
    assert x.shape == (2, 2, 20_000)
    assert x.min() >= 0 and x.max() <= 1
    active = (x > 0).float().mean(-1)
    torch.testing.assert_close(active, density, atol=0.02, rtol=0)
    assert abs(x[0, 0].mean().item() - 0.5) < 0.02  # U[0,1] when active


def test_generate_batch_signed_for_abs():
    x = tm.generate_batch(torch.full((1, 3), 0.5), 20_000, gen(), signed=True)
    assert x.min() >= -1 and x.max() <= 1 and (x < 0).any()
    assert abs((x != 0).float().mean().item() - 0.5) < 0.02
    assert abs(x[x != 0].mean().item()) < 0.02  # symmetric U[-1,1]


@pytest.mark.parametrize("kind", tm.KINDS)
def test_forward_shapes_and_parameters(kind):
    cfg = tm.ToyModelConfig(6, 3, n_instances=4, kind=kind)
    model = tm.ToyModel(cfg, gen())
    x = tm.generate_batch(torch.full((4, 6), 0.3), 7, gen())
    out = model(x)
    assert out.shape == (4, 6, 7)
    assert model.W.shape == (4, 3, 6)
    assert hasattr(model, "W_out") == (kind == "abs")  # only the abs model is untied
    if kind != "linear":
        assert (out >= 0).all()


def test_linear_model_is_w_transpose_w():
    cfg = tm.ToyModelConfig(3, 2, kind="linear")
    model = tm.ToyModel(cfg, gen())
    x = torch.rand(1, 3, 4, generator=gen(1))
    expected = model.W[0].T @ model.W[0] @ x[0]
    torch.testing.assert_close(model(x)[0].detach(), expected)


def test_training_is_deterministic_for_a_seed():
    cfg = tm.ToyModelConfig(5, 2, n_instances=3, steps=50, batch_size=64)
    p, imp = torch.full((3, 5), 0.2), torch.ones(3, 5)
    model_a, loss_a = tm.train_toy_models(cfg, p, imp, gen(3))
    model_b, loss_b = tm.train_toy_models(cfg, p, imp, gen(3))
    assert torch.equal(model_a.W, model_b.W) and torch.equal(loss_a, loss_b)
    model_c, _ = tm.train_toy_models(cfg, p, imp, gen(4))
    assert not torch.equal(model_a.W, model_c.W)


@pytest.mark.parametrize("kind", ["relu_output", "abs"])
def test_batched_training_equals_training_one_instance_alone(kind):
    """Instances do not talk to each other: instance k of a batch == the same model trained alone."""
    n, k = 4, 2
    cfg = tm.ToyModelConfig(5, 2, n_instances=n, kind=kind, steps=60, batch_size=128, eval_batch_size=256)
    density = torch.tensor([1.0, 0.5, 0.1, 0.02])[:, None].expand(n, 5)
    importance = tm.importance_decay(5, torch.tensor([1.0, 0.9, 0.8, 0.7]), n)
    batched = tm.ToyModel(cfg, gen(0))
    alone = tm.ToyModel(dataclasses.replace(cfg, n_instances=1), gen(99))
    with torch.no_grad():
        for name, param in alone.named_parameters():
            param.copy_(getattr(batched, name)[k : k + 1])
    loss_batched = tm.train(batched, density, importance, gen(5))
    loss_alone = tm.train(alone, density[k : k + 1], importance[k : k + 1], gen(5))
    torch.testing.assert_close(alone.W[0], batched.W[k], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(loss_alone[0], loss_batched[k], atol=1e-6, rtol=1e-4)


def test_training_lowers_the_loss():
    cfg = tm.ToyModelConfig(5, 2, n_instances=2, steps=300, batch_size=256)
    p, imp = torch.full((2, 5), 0.1), torch.ones(2, 5)
    model = tm.ToyModel(cfg, gen())
    before = tm.evaluate(model, p, imp, gen(1))
    after = tm.train(model, p, imp, gen(2))
    assert (after < 0.7 * before).all()


# ---------------------------------------------------------------------------- analysis


@pytest.mark.parametrize(
    "W, expected",
    [
        (torch.eye(2), 1.0),  # own dimensions
        (torch.tensor([[1.0, -1.0]]), 1 / 2),  # antipodal pair
        (polygon(3), 2 / 3),  # triangle
        (polygon(5), 2 / 5),  # pentagon
        (torch.tensor([[1.0, 1, -1, -1], [1, -1, 1, -1], [1, -1, -1, 1]]) / math.sqrt(3), 3 / 4),  # tetrahedron
    ],
)
def test_feature_dimensionality_of_regular_geometries(W, expected):
    D_i = tm.feature_dimensionality(W)
    torch.testing.assert_close(D_i, torch.full_like(D_i, expected))
    # every dimension is used by these geometries, so D* matches too
    torch.testing.assert_close(tm.dimensions_per_feature(W), torch.tensor(expected))


def test_feature_dimensionality_of_unused_feature_is_zero():
    W = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    torch.testing.assert_close(tm.feature_dimensionality(W), torch.tensor([1.0, 1.0, 0.0]))
    assert tm.features_represented(W) == 2
    torch.testing.assert_close(tm.dimensions_per_feature(W), torch.tensor(1.0))


def test_dimensions_per_feature_batched():
    W = torch.stack([torch.eye(2, 5), polygon(5)])  # 2 features with own dims; a pentagon
    torch.testing.assert_close(tm.dimensions_per_feature(W), torch.tensor([1.0, 0.4]))


def test_interference_and_angles_of_a_pentagon():
    W = polygon(5)
    torch.testing.assert_close(tm.interference(torch.eye(2, 5)), torch.zeros(5))
    cos72, cos144 = math.cos(math.radians(72)), math.cos(math.radians(144))
    torch.testing.assert_close(tm.interference(W), torch.full((5,), 2 * cos72**2 + 2 * cos144**2))
    torch.testing.assert_close(tm.represented_angles(W), torch.full((5,), 72.0))
    angles = tm.pairwise_angles(W)
    assert angles.shape == (5, 5) and torch.allclose(angles.diagonal(), torch.zeros(5), atol=0.1)


def test_represented_angles_of_an_orthogonal_pair_ignores_small_features():
    W = torch.tensor([[1.0, 0.0, 0.1], [0.0, 1.0, 0.1]])
    torch.testing.assert_close(tm.represented_angles(W), torch.tensor([90.0, 270.0]))


def test_plateau_finds_the_widest_run_inside_the_band():
    x = torch.arange(1.0, 9.0)
    y = torch.tensor([1.0, 0.5, 0.8, 0.51, 0.49, 0.5, 0.3, 0.5])
    assert tm.plateau(x, y, 0.5, 0.02) == (4.0, 6.0)
    assert tm.plateau(x, y, 0.1, 0.02) is None


def test_best_instance_picks_lowest_loss_seed_per_point():
    loss = torch.tensor([3.0, 1.0, 2.0, 0.5, 0.7, 0.6])  # 2 points x 3 seeds
    assert tm.best_instance(loss, 3).tolist() == [1, 3]


def test_classify_phase_on_hand_made_weights():
    W = torch.tensor([[[1.0, 0.0]], [[0.02, -1.1]], [[0.9, -1.0]], [[0.8, 0.9]], [[0.1, 0.0]]])
    assert [tm.PHASES[k] for k in tm.classify_phase(W)] == ["not learned", "dedicated", "antipodal", "other", "other"]


def test_polysemanticity_and_abs_pairs():
    W_in = torch.tensor(
        [
            [1.0, 0.0, -0.9],  # feature 0 only (negative weights keep the neuron off)
            [0.6, 0.8, 0.0],  # features 0 and 1
            [-1.0, 0.0, 0.0],  # nothing positive: dead for x >= 0
        ]
    )
    assert tm.polysemanticity(W_in).tolist() == [1, 2, 0]
    assert tm.polysemanticity(W_in, signed_inputs=True).tolist() == [2, 2, 1]
    pairs = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.2], [0.0, -0.9]])
    assert tm.abs_pairs(pairs) == 2
    assert tm.abs_pairs(pairs[:3]) == 1


# ---------------------------------------------------------------------- sweeps, figures


def test_density_sweep_and_phase_diagram_shapes():
    cfg = tm.ToyModelConfig(4, 2, steps=20, batch_size=32, eval_batch_size=64)
    sweep = tm.train_density_sweep(cfg, torch.tensor([1.0, 0.1]), torch.ones(4), gen(), n_seeds=3)
    assert sweep.W.shape == (2, 2, 4) and sweep.seed_loss.shape == (2, 3) and sweep.W_out is None
    assert torch.equal(sweep.loss, sweep.seed_loss.min(-1).values)
    diagram = tm.train_phase_diagram(
        torch.tensor([1.0, 0.1]), torch.tensor([0.5, 1.0, 2.0]), gen(), n_seeds=2, steps=20
    )
    assert diagram.phase.shape == (2, 3) and diagram.run_phase.shape == (2, 3, 2)
    assert 0.0 <= diagram.stuck_fraction <= 1.0


def test_phase_diagram_dense_corners():
    """Dense data, 1 dimension: the more important feature gets it (paper's top row)."""
    diagram = tm.train_phase_diagram(torch.tensor([1.0]), torch.tensor([0.2, 5.0]), gen(), n_seeds=2, steps=400)
    assert [tm.PHASES[k] for k in diagram.phase[0]] == ["not learned", "dedicated"]


def test_figures_build():
    W = torch.stack([polygon(5), torch.eye(2, 5)])
    importance = tm.importance_decay(5, 0.9)[0]
    figures = [
        plots.labelled_heatmap(torch.eye(3), title="t", x_title="x", y_title="y"),
        toy_figures.feature_geometry_panels(W, importance, ["a", "b"], "t"),
        toy_figures.superposition_panels(W, ["a", "b"], "t"),
        toy_figures.phase_diagram_figure(
            torch.tensor([[0, 1], [2, 3]]), torch.tensor([1.0, 0.1]), torch.tensor([0.5, 2.0]), "t"
        ),
        toy_figures.dimensions_per_feature_figure(
            torch.tensor([1.0, 2.0]), torch.tensor([1.0, 0.5]), torch.rand(2, 5), torch.rand(2, 5) > 0.5, "t"
        ),
        toy_figures.polysemantic_neurons_figure(torch.randn(2, 3, 5), importance, ["a", "b"], "t"),
        toy_figures.abs_computation_figure(
            torch.randn(6, 3), torch.tensor([1.0, 0.1]), torch.tensor([3, 5]), torch.tensor([3, 1]), 6, "t"
        ),
    ]
    assert all(isinstance(f, go.Figure) and f.layout.title.text for f in figures)


def test_explorer_update_redraws_the_figure():
    fig = toy_figures.geometry_figure(torch.zeros(2, 5), torch.ones(5), "")
    info = explorer.explorer_update(fig, 1.0, 0.9, steps=300, n_seeds=2)
    assert info["n_represented"] in (2, 3) and info["loss"] > 0
    assert "features represented" in fig.layout.title.text
    tips = torch.tensor([[trace.x[1], trace.y[1]] for trace in fig.data])
    assert tips.norm(dim=-1).max() > 0.5  # arrows moved off the origin


def test_explorer_builds_a_widget_box():
    box = explorer.superposition_explorer(density=0.05, steps=100, n_seeds=1)
    # A plain Figure shown in an Output widget: a FigureWidget would save all of plotly.js
    # (about 5 MB) into the notebook's widget state.
    assert isinstance(box.figure, go.Figure) and not isinstance(box.figure, go.FigureWidget)
    assert len(box.figure.data) == 5
