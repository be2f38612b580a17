"""Exercises of notebook 01 (Toy Models of Superposition), checked on hand-made weights.

1.1 the sparse feature generator (density, uniform values, the generator's seed), 1.2 the
ReLU-output model's forward pass, 1.3 the importance-weighted loss, 1.4 the phase of a
2 -> 1 model, 1.5 dimensions per feature D*, 1.6 per-feature dimensionality D_i. Each
check runs the student's function on tiny inputs whose answers are known (an antipodal
pair, a pentagon, a dead feature, ...), names the usual mistakes in one line, and then
compares with the reference: the package kernel where one has the exercise's contract
(`interp_helpers.superposition.toy_models`), otherwise a few lines here.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import Tensor

from interp_helpers.checkers.core import Exercise, Wrong, assert_close
from interp_helpers.superposition import toy_models as tm


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _close(got: object, expected: Tensor, atol: float = 1e-4) -> bool:
    """Whether `got` is a tensor matching `expected` (used to recognise a known mistake)."""
    return (
        isinstance(got, Tensor)
        and tuple(got.shape) == tuple(expected.shape)
        and torch.allclose(got.detach().double(), expected.double(), atol=atol, rtol=1e-4, equal_nan=True)
    )


def _tensor(got: object, what: str) -> Tensor:
    if not isinstance(got, Tensor):
        raise Wrong(f"{what}: expected a torch.Tensor, got {type(got).__name__}")
    return got.detach()


def _polygon(k: int, radius: float = 1.0) -> Float[Tensor, "d_hidden feature"]:
    """k vectors of norm `radius` evenly spaced on a circle, as the columns of a (2, k) W."""
    angles = torch.arange(k, dtype=torch.float64) * 2 * math.pi / k
    return (radius * torch.stack([angles.cos(), angles.sin()])).float()


# ------------------------------------------------------------------ 1.1 sparse features


def _check_generate_sparse_features(fn):
    density = torch.tensor([[1.0, 0.5, 0.1], [0.5, 0.02, 0.5]])
    batch = 20_000
    x = _tensor(fn(density, batch, _gen(0)), "the batch")
    if tuple(x.shape) != (2, 3, batch):
        raise Wrong(
            f"expected shape (instance, feature, batch) = (2, 3, {batch}), got {tuple(x.shape)}: batch goes last"
        )
    if not x.is_floating_point() or x.min() < 0 or x.max() > 1:
        raise Wrong("every entry must be a float in [0, 1] (0 when the feature is off, U[0, 1] when on)")
    again = _tensor(fn(density, batch, _gen(0)), "a second batch")
    if not torch.equal(again, x):
        raise Wrong("two generators seeded alike gave different batches: draw every random number from `generator`")
    if torch.equal(_tensor(fn(density, batch, _gen(1)), "a batch from another seed"), x):
        raise Wrong("generators with different seeds gave the same batch: draw the random numbers from `generator`")
    active = (x > 0).float().mean(-1)
    if (active[0, 2] - 0.9).abs() < 0.02:
        raise Wrong(
            "features of density 0.1 are on 90% of the time: feature_probability is p = 1 - S, the chance of being ON"
        )
    bad = (active - density).abs() > 0.02
    if bad.any():
        i, f = (int(v) for v in bad.nonzero()[0])
        raise Wrong(
            f"a feature of density {density[i, f].item():g} is nonzero in {active[i, f].item():.1%} of examples, "
            "expected about that density"
        )
    on = x[0, 2][x[0, 2] > 0]  # the density-0.1 feature, when active
    if torch.allclose(on, torch.ones_like(on)):
        raise Wrong(
            "active features are all 1: their value should be drawn uniformly from [0, 1], not just the on/off mask"
        )
    if on.max() < 0.2:
        raise Wrong(
            f"active values of a density-0.1 feature never exceed {on.max().item():.2f}: draw the value separately "
            "from the on/off test (the draw that passed u < p is uniform on [0, p], not [0, 1])"
        )
    if (on.mean() - 0.5).abs() > 0.03 or ((on < 0.25).float().mean() - 0.25).abs() > 0.03:
        raise Wrong(f"active values have mean {on.mean().item():.2f}: they should be uniform on [0, 1] (mean 0.5)")
    # features must switch on independently; instances may share draws (the package's generator does)
    same = ((x[1, 0] > 0) & (x[1, 2] > 0)).float().mean()  # two density-0.5 features of one instance
    if (same - 0.25).abs() > 0.02:
        raise Wrong(
            f"two density-0.5 features are on together in {same.item():.0%} of examples, expected 25%: "
            "draw an independent on/off for every (instance, feature, example)"
        )
    one = _tensor(fn(density, 1, _gen(2)), "a batch of one")
    if tuple(one.shape) != (2, 3, 1):
        raise Wrong(f"batch_size=1 gave shape {tuple(one.shape)}, expected (2, 3, 1)")


generate_sparse_features = Exercise(
    "1.1", "Sparse features", reference=tm.generate_batch, check=_check_generate_sparse_features
)


# ------------------------------------------------------------- 1.2 the ReLU-output model


def _relu_output(
    W: Float[Tensor, "instance d_hidden feature"],
    b: Float[Tensor, "instance feature"],
    x: Float[Tensor, "instance feature batch"],
) -> Float[Tensor, "instance feature batch"]:
    """x' = ReLU(W^T W x + b) for every instance: the package's `ToyModel(kind="relu_output")`."""
    return torch.relu(W.transpose(-1, -2) @ (W @ x) + b.unsqueeze(-1))


def _check_relu_output_model(fn):
    # b only: with W = 0 the output is ReLU(b), the same for every example
    b = torch.tensor([[0.2, 0.7]])
    got = fn(torch.zeros(1, 1, 2), b, torch.ones(1, 2, 2))
    if _close(got, torch.tensor([[[0.2, 0.7], [0.2, 0.7]]])):
        raise Wrong(
            "b was added along the batch axis: it has one entry per feature, so broadcast it with b.unsqueeze(-1)"
        )
    if _close(got, torch.zeros(1, 2, 2)):
        raise Wrong("with W = 0 the output should be ReLU(b): the bias b is missing")
    assert_close(got, torch.tensor([[[0.2, 0.2], [0.7, 0.7]]]), "output with W = 0 (should be ReLU(b))")

    # an antipodal pair in one dimension: the ReLU and a negative bias remove the interference
    W, b = torch.tensor([[[1.0, -1.0]]]), torch.tensor([[-0.1, -0.3]])
    x = torch.tensor([[[1.0, 0.5], [0.0, 1.0]]])  # (instance, feature, batch): examples (1, 0) and (0.5, 1)
    got = fn(W, b, x)
    pre = W.transpose(-1, -2) @ (W @ x)
    if _close(got, pre + b.unsqueeze(-1)):
        raise Wrong("some outputs are negative: apply ReLU to W^T W x + b")
    if _close(got, torch.relu(pre) + b.unsqueeze(-1)):
        raise Wrong("the bias goes inside the ReLU: ReLU(W^T W x + b), not ReLU(W^T W x) + b")
    if _close(got, torch.relu(pre)):
        raise Wrong("the bias b is missing: x' = ReLU(W^T W x + b)")
    if _close(got, torch.relu(W.transpose(-1, -2) @ torch.relu(W @ x) + b.unsqueeze(-1))):
        raise Wrong("no ReLU on the hidden layer here: h = W x is linear, only the output has a ReLU")
    assert_close(got, torch.tensor([[[0.9, 0.0], [0.0, 0.2]]]), "output of W = [1, -1], b = [-0.1, -0.3]")

    # a stack of random models: each instance uses its own W and b
    g = _gen(0)
    W, b, x = torch.randn(3, 2, 5, generator=g), torch.randn(3, 5, generator=g), torch.rand(3, 5, 4, generator=g)
    got = fn(W, b, x)
    if _close(got, _relu_output(W[:1].expand(3, -1, -1), b, x)):
        raise Wrong("every instance used W[0]: instance k has its own W[k] (a batched matmul, W @ x, keeps them apart)")
    assert_close(got, _relu_output(W, b, x), "output of 3 random 5 -> 2 models")


relu_output_model = Exercise("1.2", "The ReLU-output model", reference=_relu_output, check=_check_relu_output_model)


# --------------------------------------------------------------- 1.3 the weighted loss


def _weighted_loss(
    x_hat: Float[Tensor, "instance feature batch"],
    x: Float[Tensor, "instance feature batch"],
    importance: Float[Tensor, "instance feature"],
) -> Float[Tensor, " instance"]:
    """sum_i I_i (x_i - x'_i)^2, averaged over the batch: one loss per instance.

    The package's training loss (`tm.per_instance_loss`) also averages over features,
    i.e. it is this divided by the number of features: same optimum, smaller number.
    """
    return ((x_hat - x).pow(2) * importance.unsqueeze(-1)).sum(-2).mean(-1)


def _check_importance_weighted_loss(fn):
    # random batch with 3 features and 4 examples: every usual slip gives a different number
    g = _gen(0)
    x, x_hat = torch.rand(2, 3, 4, generator=g), torch.rand(2, 3, 4, generator=g)
    importance = torch.rand(2, 3, generator=g) + 0.5
    got, err, imp = fn(x_hat, x, importance), x_hat - x, importance.unsqueeze(-1)
    if isinstance(got, Tensor) and got.dim() == 0:
        raise Wrong("one loss per instance: reduce over feature and batch only, keep the instance axis")
    mistakes = [
        (
            (err.pow(2) * imp).mean(dim=(-2, -1)),
            "your loss is 1/3 of the expected with 3 features: sum over "
            "features (the package's training loss averages them too), and average over the batch only",
        ),
        (
            (err.pow(2) * imp).sum(dim=(-2, -1)),
            "average over the batch, do not sum: the loss must not grow with batch size",
        ),
        (err.pow(2).sum(-2).mean(-1), "the importances are missing: weight feature i's squared error by I_i"),
        (
            (err * imp).pow(2).sum(-2).mean(-1),
            "I_i weights the squared error, it is not inside the square: I_i (x_i - x'_i)^2",
        ),
        ((err.abs() * imp).sum(-2).mean(-1), "square the errors: I_i (x_i - x'_i)^2, not I_i |x_i - x'_i|"),
        ((err * imp).sum(-2).mean(-1), "square the errors: I_i (x_i - x'_i)^2, not I_i (x_i - x'_i)"),
    ]
    for wrong, message in mistakes:
        if _close(got, wrong):
            raise Wrong(message)
    assert_close(got, _weighted_loss(x_hat, x, importance), "loss of a random batch (3 features, 4 examples)")

    # errors by hand, x = 0: instance 0 has errors (1, 3) on feature 0 and (2, 0) on feature 1
    x = torch.zeros(2, 2, 2)
    x_hat = torch.tensor([[[1.0, 3.0], [2.0, 0.0]], [[0.0, 1.0], [1.0, 1.0]]])
    importance = torch.tensor([[1.0, 0.5], [2.0, 0.25]])
    got = fn(x_hat, x, importance)
    assert_close(
        got, torch.tensor([6.0, 1.25]), "loss of two hand-made instances (3 and 9 -> 6; 0.25 and 2.25 -> 1.25)"
    )


importance_weighted_loss = Exercise(
    "1.3", "The importance-weighted loss", reference=_weighted_loss, check=_check_importance_weighted_loss
)


# ------------------------------------------------------------- 1.4 phases of 2 -> 1 models

# (W of a 2 -> 1 model, its phase as an index into tm.PHASES)
_PHASE_CASES = [
    ([1.0, 0.0], 0),  # only the important feature: the extra one is not learned
    ([-1.0, 0.1], 0),  # a negative weight is still a represented feature
    ([0.0, 1.0], 1),  # the extra feature took the dimension
    ([0.4, -1.0], 1),  # feature 1 below the 0.5 threshold
    ([1.0, -1.0], 2),  # antipodal
    ([-0.9, 0.8], 2),
    ([1.0, 1.0], 3),  # both represented, same direction: not superposition
    ([0.0, 0.0], 3),  # nothing learned
    ([0.3, 0.2], 3),
]


def _check_classify_phase(fn):
    W = torch.tensor([w for w, _ in _PHASE_CASES]).reshape(-1, 1, 2)
    expected = torch.tensor([p for _, p in _PHASE_CASES])
    got = _tensor(fn(W), "phases")
    if got.is_floating_point():
        raise Wrong(f"phases must be integers (an index into tm.PHASES), got {got.dtype}")
    if tuple(got.shape) == tuple(expected.shape):
        said = {tuple(w): int(p) for (w, _), p in zip(_PHASE_CASES, got.tolist())}
        if said[(1.0, -1.0)] == 0 or said[(-1.0, 0.1)] == 3:
            raise Wrong(
                "W = [1, -1] or [-1, 0.1] misread: a feature is represented when its NORM |W_i| > 0.5, "
                "whatever its sign"
            )
        if said[(1.0, 0.0)] == 1 and said[(0.0, 1.0)] == 0:
            raise Wrong(
                "phases 0 and 1 swapped: W = [1, 0] keeps only feature 1, so the extra feature is 'not learned' (0)"
            )
        if said[(1.0, 1.0)] == 2:
            raise Wrong("W = [1, 1] is not antipodal: both features point the same way, which is 'other' (3)")
        if said[(0.0, 0.0)] != 3:
            raise Wrong(
                f"W = [0, 0] represents nothing: that is 'other' (3), not {tm.PHASES[said[(0.0, 0.0)]]!r}"
                if 0 <= said[(0.0, 0.0)] < 4
                else "W = [0, 0] represents nothing: that is 'other' (3)"
            )
    assert_close(
        got, expected, "phases of hand-made 2 -> 1 models ([1, 0], [-1, 0.1], [0, 1], [0.4, -1], [1, -1], ...)"
    )
    grid = W[:6].reshape(2, 3, 1, 2)  # the notebook passes a (density, importance) grid of models
    got = _tensor(fn(grid), "phases of a grid")
    if tuple(got.shape) != (2, 3):
        raise Wrong(
            f"W of shape (2, 3, 1, 2) gave phases of shape {tuple(got.shape)}, expected (2, 3): "
            "index from the end (W[..., 0]) so any leading axes work"
        )
    assert_close(got, expected[:6].reshape(2, 3), "phases of a (2, 3) grid of models")


classify_phase = Exercise("1.4", "Phases of the 2 → 1 model", reference=tm.classify_phase, check=_check_classify_phase)


# --------------------------------------------------------------- 1.5 dimensions per feature


def _check_dimensions_per_feature(fn):
    pair = torch.zeros(2, 5)
    pair[0, 0] = pair[1, 1] = 1.0  # two orthogonal features, three dead: D* = 2 / 2
    antipodal = torch.cat([_polygon(4), torch.zeros(2, 1)], dim=1)  # two antipodal pairs: D* = 2 / 4
    W = torch.stack([pair, _polygon(5), antipodal])  # a pentagon: D* = 2 / 5
    expected = torch.tensor([1.0, 0.4, 0.5])
    got = fn(W)
    if isinstance(got, Tensor) and got.dim() == 0:
        raise Wrong("one D* per model: sum the squares over d_hidden and feature only, keep the instance axis")
    if _close(got, torch.tensor([2.5, 1.0, 1.25])):
        raise Wrong("m is the number of hidden dimensions (W.shape[-2]), not the number of features")
    if _close(got, 1 / expected):
        raise Wrong("D* is upside down: m / ||W||_F^2, not ||W||_F^2 / m")
    if _close(got, 2 / torch.tensor([2.0, 5.0, 4.0]).sqrt()):
        raise Wrong("divide by the SQUARED Frobenius norm (the sum of squares of W's entries)")
    assert_close(got, expected, "D* of an orthogonal pair, a pentagon and two antipodal pairs in 2 dimensions")

    grid = torch.randn(2, 3, 4, 6, generator=_gen(0))
    got = _tensor(fn(grid), "D* of a grid of models")
    if tuple(got.shape) != (2, 3):
        raise Wrong(
            f"W of shape (2, 3, 4, 6) gave D* of shape {tuple(got.shape)}, expected (2, 3): "
            "sum over the last two axes, dim=(-2, -1)"
        )
    assert_close(got, tm.dimensions_per_feature(grid), "D* of a (2, 3) grid of random 6 -> 4 models")
    assert_close(fn(3 * _polygon(6)), torch.tensor(2 / 54), "D* of one model (no instance axis): a hexagon of norm 3")


dimensions_per_feature = Exercise(
    "1.5", "Dimensions per feature", reference=tm.dimensions_per_feature, check=_check_dimensions_per_feature
)


# ------------------------------------------------------------ 1.6 per-feature dimensionality


def _check_feature_dimensionality(fn):
    antipodal = _tensor(fn(torch.tensor([[1.0, -1.0]])), "D_i of an antipodal pair")
    if tuple(antipodal.shape) == (2,) and (~antipodal.isfinite() | (antipodal > 10)).any():
        raise Wrong(
            f"an antipodal pair gave D_i = {antipodal.tolist()}: square each dot product before summing "
            "(otherwise the partner's -1 cancels the +1)"
        )
    pair = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # two orthogonal features and a dead one
    got = _tensor(fn(pair), "D_i of an orthogonal pair and a dead feature")
    if tuple(got.shape) == (3,) and (~got[:2].isfinite() | (got[:2] > 10)).any():
        raise Wrong("an orthogonal pair gave infinite D_i: the sum over j includes j = i (its term is ||W_i||^2)")
    if tuple(got.shape) == (3,) and not got[2].isfinite():
        raise Wrong(
            "a dead feature (all-zero column) gave nan: clamp ||W_i|| away from 0 (.clamp(min=1e-8)) so its D_i is 0"
        )
    assert_close(antipodal, torch.full((2,), 0.5), "D_i of an antipodal pair W = [1, -1]")
    assert_close(got, torch.tensor([1.0, 1.0, 0.0]), "D_i of an orthogonal pair and a dead feature")

    got = _tensor(fn(2 * _polygon(5)), "D_i of a pentagon of norm 2")
    if _close(got, torch.full((5,), 0.1)):
        raise Wrong("scaling W by 2 divided D_i by 4: normalise W_i (W_hat_i = W_i / ||W_i||) before the dot products")
    if _close(got, torch.full((5,), 1.6)):
        raise Wrong("scaling W by 2 multiplied D_i by 4: normalise only W_i, the dot products are W_hat_i . W_j")
    assert_close(got, torch.full((5,), 0.4), "D_i of a pentagon of norm 2 (2/5 each, whatever the scale)")

    got = fn(torch.tensor([[1.0, -0.5]]))  # unequal norms: 1 / (1 + 0.25) and 0.25 / (1 + 0.25)
    assert_close(got, torch.tensor([0.8, 0.2]), "D_i of W = [1, -0.5]")
    grid = torch.randn(2, 3, 4, 6, generator=_gen(0))
    assert_close(fn(grid), tm.feature_dimensionality(grid), "D_i of a (2, 3) grid of random 6 -> 4 models")


feature_dimensionality = Exercise(
    "1.6", "Per-feature dimensionality", reference=tm.feature_dimensionality, check=_check_feature_dimensionality
)
