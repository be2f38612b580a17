"""Notebook 01's exercise checkers: the reference and the notebook's solutions pass, and the
usual mistakes are rejected with their diagnosis."""

import pytest
import torch

from interp_helpers.checkers import superposition as checks
from interp_helpers.checkers.core import SOLVED, run_check
from interp_helpers.superposition import toy_models as tm

# ------------------------------------------------------- the notebook's solutions, as written there


def generate_sparse_features(feature_probability, batch_size, generator):
    shape = (*feature_probability.shape, batch_size)
    on = torch.rand(shape, generator=generator) < feature_probability.unsqueeze(-1)
    return torch.rand(shape, generator=generator) * on


def relu_output_model(W, b, x):
    h = W @ x  # (instance, d_hidden, batch): the compressed representation
    return torch.relu(W.transpose(-1, -2) @ h + b.unsqueeze(-1))


def importance_weighted_loss(x_hat, x, importance):
    weighted = (x_hat - x).pow(2) * importance.unsqueeze(-1)
    return weighted.sum(dim=-2).mean(dim=-1)


def classify_phase(W):
    on = W.norm(dim=-2) > 0.5  # (*instance, 2): which features are represented
    cos = torch.cosine_similarity(W[..., 0], W[..., 1], dim=-1)
    phase = torch.full(on.shape[:-1], 3, dtype=torch.long)
    phase[on[..., 0] & ~on[..., 1]] = 0
    phase[~on[..., 0] & on[..., 1]] = 1
    phase[on[..., 0] & on[..., 1] & (cos < -0.5)] = 2
    return phase


def dimensions_per_feature(W):
    d_hidden = W.shape[-2]
    return d_hidden / W.pow(2).sum(dim=(-2, -1))


def feature_dimensionality(W):
    norms = W.norm(dim=-2)  # (*instance, feature)
    W_hat = W / norms.unsqueeze(-2).clamp(min=1e-8)  # a dead column stays 0
    overlaps = (W_hat.transpose(-1, -2) @ W).pow(2)  # [..., i, j] = (W_hat_i . W_j)^2
    return norms.pow(2) / overlaps.sum(dim=-1).clamp(min=1e-12)


SOLUTIONS = [
    (checks.generate_sparse_features, generate_sparse_features),
    (checks.relu_output_model, relu_output_model),
    (checks.importance_weighted_loss, importance_weighted_loss),
    (checks.classify_phase, classify_phase),
    (checks.dimensions_per_feature, dimensions_per_feature),
    (checks.feature_dimensionality, feature_dimensionality),
]


@pytest.mark.parametrize("exercise, solution", SOLUTIONS, ids=lambda v: getattr(v, "number", ""))
def test_reference_and_notebook_solution_pass(exercise, solution):
    assert run_check(exercise, exercise.reference) == (SOLVED, "solved")
    assert run_check(exercise, solution) == (SOLVED, "solved")


def test_numbers_and_titles_follow_the_notebook():
    numbered = [(e.number, e.title) for e, _ in SOLUTIONS]
    assert numbered == [
        ("1.1", "Sparse features"),
        ("1.2", "The ReLU-output model"),
        ("1.3", "The importance-weighted loss"),
        ("1.4", "Phases of the 2 → 1 model"),
        ("1.5", "Dimensions per feature"),
        ("1.6", "Per-feature dimensionality"),
    ]


def test_forward_reference_is_the_package_model():
    cfg = tm.ToyModelConfig(5, 2, n_instances=3, kind="relu_output")
    model = tm.ToyModel(cfg, torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.b_final.normal_(generator=torch.Generator().manual_seed(1))
    x = tm.generate_batch(torch.full((3, 5), 0.3), 16, torch.Generator().manual_seed(2))
    torch.testing.assert_close(
        checks.relu_output_model.reference(model.W, model.b_final.detach(), x), model(x).detach()
    )


def test_loss_reference_is_the_package_loss_times_n_features():
    model = tm.ToyModel(tm.ToyModelConfig(4, 2, n_instances=2), torch.Generator().manual_seed(0))
    x = tm.generate_batch(torch.full((2, 4), 0.5), 32, torch.Generator().manual_seed(1))
    importance = tm.importance_decay(4, 0.8, 2)
    ours = checks.importance_weighted_loss.reference(model(x).detach(), x, importance)
    torch.testing.assert_close(ours, 4 * tm.per_instance_loss(model, x, importance).detach())


def assert_rejected(exercise, fn, *words):
    status, message = run_check(exercise, fn)
    assert status != SOLVED, f"{fn.__name__} passed"
    for word in words:
        assert word in message, f"{fn.__name__}: {message!r} lacks {word!r}"


# ------------------------------------------------------------------------ 1.1 sparse features


def _shape(p, batch_size):
    return (*p.shape, batch_size)


def sparsity_for_density(p, batch_size, generator):  # 0 with probability p instead of 1 - p
    on = torch.rand(_shape(p, batch_size), generator=generator) >= p.unsqueeze(-1)
    return torch.rand(_shape(p, batch_size), generator=generator) * on


def mask_only(p, batch_size, generator):  # forgets the uniform value
    return (torch.rand(_shape(p, batch_size), generator=generator) < p.unsqueeze(-1)).float()


def reused_draw(p, batch_size, generator):  # the value that passed u < p is uniform on [0, p]
    u = torch.rand(_shape(p, batch_size), generator=generator)
    return u * (u < p.unsqueeze(-1))


def global_rng(p, batch_size, generator):  # ignores the generator
    shape = _shape(p, batch_size)
    return torch.rand(shape) * (torch.rand(shape) < p.unsqueeze(-1))


def batch_first(p, batch_size, generator):
    return generate_sparse_features(p, batch_size, generator).permute(2, 0, 1)


def one_switch_per_example(p, batch_size, generator):  # every feature of an example on or off together
    u = torch.rand(p.shape[0], 1, batch_size, generator=generator)
    return torch.rand(_shape(p, batch_size), generator=generator) * (u < p.unsqueeze(-1))


@pytest.mark.parametrize(
    "wrong, words",
    [
        (sparsity_for_density, ["p = 1 - S", "ON"]),
        (mask_only, ["all 1", "uniformly"]),
        (reused_draw, ["uniform on [0, p]"]),
        (global_rng, ["seeded alike", "generator"]),
        (batch_first, ["batch goes last"]),
        (one_switch_per_example, ["independent"]),
    ],
)
def test_sparse_feature_mistakes(wrong, words):
    assert_rejected(checks.generate_sparse_features, wrong, *words)


# ---------------------------------------------------------------------- 1.2 the ReLU-output model


def no_relu(W, b, x):
    return W.transpose(-1, -2) @ (W @ x) + b.unsqueeze(-1)


def bias_outside_relu(W, b, x):
    return torch.relu(W.transpose(-1, -2) @ (W @ x)) + b.unsqueeze(-1)


def no_bias(W, b, x):
    return torch.relu(W.transpose(-1, -2) @ (W @ x))


def hidden_relu(W, b, x):
    return torch.relu(W.transpose(-1, -2) @ torch.relu(W @ x) + b.unsqueeze(-1))


def bias_on_batch_axis(W, b, x):
    return torch.relu(W.transpose(-1, -2) @ (W @ x) + b)


def first_instance_only(W, b, x):
    return torch.relu(W[0].T @ (W[0] @ x) + b.unsqueeze(-1))


@pytest.mark.parametrize(
    "wrong, words",
    [
        (no_relu, ["negative", "apply ReLU"]),
        (bias_outside_relu, ["inside the ReLU"]),
        (no_bias, ["bias b is missing"]),
        (hidden_relu, ["no ReLU on the hidden layer"]),
        (bias_on_batch_axis, ["batch axis", "unsqueeze(-1)"]),
        (first_instance_only, ["W[0]", "own W[k]"]),
    ],
)
def test_forward_mistakes(wrong, words):
    assert_rejected(checks.relu_output_model, wrong, *words)


# --------------------------------------------------------------------- 1.3 the weighted loss


def mean_over_features(x_hat, x, importance):  # the package's training normalisation
    return ((x_hat - x).pow(2) * importance.unsqueeze(-1)).mean(dim=(-2, -1))


def sum_over_batch(x_hat, x, importance):
    return ((x_hat - x).pow(2) * importance.unsqueeze(-1)).sum(dim=(-2, -1))


def no_importance(x_hat, x, importance):
    return (x_hat - x).pow(2).sum(-2).mean(-1)


def importance_inside_square(x_hat, x, importance):
    return ((x_hat - x) * importance.unsqueeze(-1)).pow(2).sum(-2).mean(-1)


def absolute_error(x_hat, x, importance):
    return ((x_hat - x).abs() * importance.unsqueeze(-1)).sum(-2).mean(-1)


def one_number(x_hat, x, importance):  # reduces over instances too
    return ((x_hat - x).pow(2) * importance.unsqueeze(-1)).sum(-2).mean()


@pytest.mark.parametrize(
    "wrong, words",
    [
        (mean_over_features, ["sum over features", "batch only"]),
        (sum_over_batch, ["average over the batch"]),
        (no_importance, ["importances are missing"]),
        (importance_inside_square, ["not inside the square"]),
        (absolute_error, ["square the errors"]),
        (one_number, ["one loss per instance"]),
    ],
)
def test_loss_mistakes(wrong, words):
    assert_rejected(checks.importance_weighted_loss, wrong, *words)


# ------------------------------------------------------------------------ 1.4 phases of 2 -> 1


def _phases(on, same_sign_counts_as_antipodal=False, swap=False, empty_is_not_learned=False, cos=None):
    phase = torch.full(on.shape[:-1], 3, dtype=torch.long)
    phase[on[..., 0] & ~on[..., 1]] = 1 if swap else 0
    phase[~on[..., 0] & on[..., 1]] = 0 if swap else 1
    both = on[..., 0] & on[..., 1]
    phase[both if same_sign_counts_as_antipodal else both & (cos < -0.5)] = 2
    if empty_is_not_learned:
        phase[~on[..., 0] & ~on[..., 1]] = 0
    return phase


def _cos(W):
    return torch.cosine_similarity(W[..., 0], W[..., 1], dim=-1)


def signed_threshold(W):  # W > 0.5 instead of |W| > 0.5
    return _phases(W.max(dim=-2).values > 0.5, cos=_cos(W))


def any_pair_is_antipodal(W):
    return _phases(W.norm(dim=-2) > 0.5, same_sign_counts_as_antipodal=True)


def swapped_phases(W):
    return _phases(W.norm(dim=-2) > 0.5, swap=True, cos=_cos(W))


def nothing_is_not_learned(W):  # "the extra feature is off" without checking feature 1
    return _phases(W.norm(dim=-2) > 0.5, empty_is_not_learned=True, cos=_cos(W))


def float_phases(W):
    return classify_phase(W).float()


def three_axes_only(W):  # W[:, 0, 0] assumes one instance axis
    on = W.norm(dim=1) > 0.5
    return _phases(on, cos=torch.sign(W[:, 0, 0] * W[:, 0, 1]))


@pytest.mark.parametrize(
    "wrong, words",
    [
        (signed_threshold, ["NORM", "whatever its sign"]),
        (any_pair_is_antipodal, ["not antipodal", "'other' (3)"]),
        (swapped_phases, ["swapped", "'not learned' (0)"]),
        (nothing_is_not_learned, ["represents nothing", "'other' (3)"]),
        (float_phases, ["integers"]),
        (three_axes_only, ["IndexError"]),
    ],
)
def test_phase_mistakes(wrong, words):
    assert_rejected(checks.classify_phase, wrong, *words)


# ----------------------------------------------------------------- 1.5 dimensions per feature


def n_features_not_m(W):
    return W.shape[-1] / W.pow(2).sum(dim=(-2, -1))


def unsquared_norm(W):
    return W.shape[-2] / W.pow(2).sum(dim=(-2, -1)).sqrt()


def upside_down(W):
    return W.pow(2).sum(dim=(-2, -1)) / W.shape[-2]


def all_models_at_once(W):
    return W.shape[-2] / W.pow(2).sum()


def fixed_axes(W):  # dims (1, 2) assume exactly one instance axis
    return W.shape[-2] / W.pow(2).sum(dim=(1, 2))


@pytest.mark.parametrize(
    "wrong, words",
    [
        (n_features_not_m, ["hidden dimensions", "not the number of features"]),
        (unsquared_norm, ["SQUARED Frobenius"]),
        (upside_down, ["upside down"]),
        (all_models_at_once, ["one D* per model"]),
        (fixed_axes, ["dim=(-2, -1)"]),
    ],
)
def test_dimensions_per_feature_mistakes(wrong, words):
    assert_rejected(checks.dimensions_per_feature, wrong, *words)


# ------------------------------------------------------------- 1.6 per-feature dimensionality


def _unit(W):
    return W / W.norm(dim=-2, keepdim=True).clamp(min=1e-8)


def _ratio(W, overlaps):
    return W.norm(dim=-2).pow(2) / overlaps.sum(-1).clamp(min=1e-12)


def unsquared_dots(W):
    return W.norm(dim=-2).pow(2) / (_unit(W).transpose(-1, -2) @ W).sum(-1)


def without_self(W):  # the interference only, sum over j != i
    overlaps = (_unit(W).transpose(-1, -2) @ W).pow(2)
    return W.norm(dim=-2).pow(2) / (overlaps.sum(-1) - overlaps.diagonal(dim1=-2, dim2=-1))


def no_clamp(W):  # a dead column divides 0 by 0
    W_hat = W / W.norm(dim=-2, keepdim=True)
    return W.norm(dim=-2).pow(2) / (W_hat.transpose(-1, -2) @ W).pow(2).sum(-1)


def not_normalised(W):
    return _ratio(W, (W.transpose(-1, -2) @ W).pow(2))


def both_normalised(W):
    return _ratio(W, (_unit(W).transpose(-1, -2) @ _unit(W)).pow(2))


def rows_normalised(W):  # normalises over the wrong axis
    W_hat = W / W.norm(dim=-1, keepdim=True).clamp(min=1e-8)
    return _ratio(W, (W_hat.transpose(-1, -2) @ W).pow(2))


@pytest.mark.parametrize(
    "wrong, words",
    [
        (unsquared_dots, ["square each dot product"]),
        (without_self, ["includes j = i"]),
        (no_clamp, ["dead feature", "clamp"]),
        (not_normalised, ["divided D_i by 4", "normalise W_i"]),
        (both_normalised, ["multiplied D_i by 4", "normalise only W_i"]),
        (rows_normalised, ["D_i of"]),
    ],
)
def test_feature_dimensionality_mistakes(wrong, words):
    assert_rejected(checks.feature_dimensionality, wrong, *words)


def test_checks_are_fast():
    import time

    for exercise, _ in SOLUTIONS:
        start = time.perf_counter()
        run_check(exercise, exercise.reference)
        assert time.perf_counter() - start < 1.0, f"{exercise.label} took over a second"
