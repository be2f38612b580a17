"""Probe kernels (notebook 07): logistic and mass-mean probes, control tasks, random labels, CCS,
true / false statements, per-layer activations, the random twin, steering and the model's verdict.

Synthetic data with a known answer wherever possible; models only where a kernel needs one: the zoo's
smallest model, small random models with the zoo tokenizer (LayerNorm and Llama-style), and one
small random model whose tokenizer makes " True" and " False" single tokens (the zoo's splits them).
"""

from __future__ import annotations

import re
from collections import Counter
from functools import partial

import pytest
import torch
from conftest import LLAMA_STYLE
from tokenizers import AddedToken
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens.hook_points import HookPoint

from interp_helpers.modelzoo import corpus
from interp_helpers.modelzoo.models import load_model
from interp_helpers.modelzoo.tokenizer import load_tokenizer
from interp_helpers.probes import ccs, collect, figures, linear, statements, steering

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py

ZOO = "zoo-gelu-1l-a"


def unchecked(fn):
    """The function as a notebook calls it: pytest wraps every annotated package function in a
    jaxtyping + beartype check (pyproject's addopts), which rejects a bad shape with a TypeError
    before the package's own check can name the problem. `__wrapped__` is the undecorated function."""
    return getattr(fn, "__wrapped__", fn)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def blobs(n: int, d: int, n_classes: int, seed: int, sep: float = 4.0, noise: float = 1.0):
    """Gaussian blobs around random centres sep apart (on average); labels balanced at random."""
    g = gen(seed)
    centres = sep * torch.randn(n_classes, d, generator=g)
    y = torch.randint(0, n_classes, (n,), generator=g)
    y[:n_classes] = torch.arange(n_classes)  # every class occurs
    return centres[y] + noise * torch.randn(n, d, generator=g), y


def separable(n: int, d: int, seed: int, sample_seed: int | None = None, margin: float = 3.0):
    """Binary labels with a gap of 2 * (margin - 1) along a random unit direction, the other
    dimensions noise, every dimension on its own scale and offset (what standardisation is for).
    `seed` draws the geometry, `sample_seed` (default: seed) the points."""
    g = gen(seed)
    w = torch.randn(d, generator=g)
    w /= w.norm()
    scale = 10 ** torch.empty(d).uniform_(-2, 2, generator=g)
    offset = 100 * torch.randn(d, generator=g)
    g = gen(seed if sample_seed is None else sample_seed)
    x = torch.randn(n, d, generator=g)
    y = (torch.rand(n, generator=g) < 0.5).long()
    along = x @ w
    x += (margin * (2 * y - 1) + along.clamp(-1, 1) - along)[:, None] * w  # |projection| in [margin - 1, margin + 1]
    return x * scale + offset, y


def standardise(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean(0)) / x.std(0).clamp(min=1e-6)


def noisy(n: int, d: int, n_classes: int, seed: int):
    """Overlapping blobs: not separable, so the regularised optimum is well inside the data."""
    return blobs(n, d, n_classes, seed, sep=0.7)


# --------------------------------------------------------------------------------------
# Logistic-regression probes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("d", [2, 20])
def test_logistic_probe_separates_separable_data(seed, d):
    x, y = separable(300, d, seed)
    probe = linear.fit_logistic_probe(x, y)
    assert probe.weight.shape == (d, 2) and probe.bias.shape == (2,)
    assert probe.accuracy(x, y) == 1.0
    # Fresh points from the same distribution are separated too: the probe found the direction.
    x_new, y_new = separable(300, d, seed, sample_seed=seed + 100)
    assert probe.accuracy(x_new, y_new) == 1.0
    # The logit difference is linear along LinearProbe.direction.
    diff = probe.logits(x)[:, 1] - probe.logits(x)[:, 0]
    torch.testing.assert_close(diff, x @ probe.direction() + (probe.bias[1] - probe.bias[0]), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("seed", range(2))
def test_logistic_probe_generalises_to_held_out_points(seed):
    x, y = separable(400, 10, seed)
    train = torch.arange(400) < 300
    acc_train, acc_test = linear.held_out_accuracy(x, y, train)
    assert acc_train == 1.0 and acc_test == 1.0


@pytest.mark.parametrize("n_classes", [2, 3, 5])
@pytest.mark.parametrize("weight_decay", [1e-3, 1e-1])
def test_train_probe_reaches_a_stationary_point(n_classes, weight_decay):
    x, y = noisy(300, 8, n_classes, seed=n_classes)
    z = standardise(x)
    weight, bias = linear.train_probe(z, y, n_classes, weight_decay)
    assert weight.shape == (8, n_classes) and bias.shape == (n_classes,)
    assert not weight.requires_grad and not bias.requires_grad
    w, b = weight.clone().requires_grad_(), bias.clone().requires_grad_()
    linear.regularised_loss(w, b, z, y, weight_decay).backward()
    assert w.grad.abs().max() < 1e-3 and b.grad.abs().max() < 1e-3
    # A nudge in any direction does not lower the loss (the minimum, not a saddle: the loss is convex).
    base = float(linear.regularised_loss(weight, bias, z, y, weight_decay))
    g = gen(1)
    for _ in range(5):
        dw, db = torch.randn(w.shape, generator=g), torch.randn(b.shape, generator=g)
        assert float(linear.regularised_loss(weight + 1e-2 * dw, bias + 1e-2 * db, z, y, weight_decay)) >= base - 1e-6


def test_regularised_loss_penalises_the_weight_but_not_the_bias():
    x, y = noisy(50, 4, 3, seed=0)
    g = gen(1)
    weight, bias = torch.randn(4, 3, generator=g), torch.randn(3, generator=g)
    ce = torch.nn.functional.cross_entropy(x @ weight + bias, y)
    torch.testing.assert_close(linear.regularised_loss(weight, bias, x, y, 0.0), ce)
    torch.testing.assert_close(linear.regularised_loss(weight, bias, x, y, 0.3), ce + 0.15 * weight.pow(2).sum())
    zero = torch.zeros(4, 3)
    torch.testing.assert_close(
        linear.regularised_loss(zero, bias, x, y, 100.0), torch.nn.functional.cross_entropy(bias.expand(50, 3), y)
    )


def test_a_heavily_regularised_probe_keeps_the_class_prior_in_its_bias():
    """With a huge penalty the weights vanish, and the unpenalised bias alone fits the class frequencies."""
    g = gen(0)
    y = torch.multinomial(torch.tensor([0.7, 0.2, 0.1]), 400, replacement=True, generator=g)
    z = standardise(torch.randn(400, 5, generator=g))
    weight, bias = linear.train_probe(z, y, 3, weight_decay=1e3)
    assert weight.abs().max() < 1e-3
    torch.testing.assert_close(bias.softmax(0), torch.bincount(y, minlength=3) / 400, atol=1e-3, rtol=0)


def test_train_probe_matches_a_long_adam_run():
    """The regularised objective is strictly convex: any optimiser that converges finds the same probe."""
    x, y = noisy(200, 6, 3, seed=7)
    z = standardise(x).double()
    weight, bias = linear.train_probe(z.float(), y, 3, 0.05)
    w = torch.zeros(6, 3, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=0.05)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=700, gamma=0.1)
    for _ in range(2100):
        opt.zero_grad()
        linear.regularised_loss(w, b, z, y, 0.05).backward()
        opt.step()
        sched.step()
    torch.testing.assert_close(weight.double(), w.detach(), atol=2e-4, rtol=0)
    # The bias is determined only up to a shared constant in the softmax; compare centred biases.
    torch.testing.assert_close(bias.double() - bias.double().mean(), (b - b.mean()).detach(), atol=2e-4, rtol=0)


def test_fit_logistic_probe_is_the_trainer_result_folded_back_to_raw_activations():
    x, y = noisy(200, 5, 2, seed=3)
    x = x * torch.tensor([0.1, 1.0, 10.0, 3.0, 0.5]) + torch.tensor([5.0, -20.0, 0.0, 1.0, 8.0])
    seen = {}

    def trainer(z, labels, n_classes, weight_decay):
        seen.update(z=z, labels=labels, n_classes=n_classes, weight_decay=weight_decay)
        return linear.train_probe(z, labels, n_classes, weight_decay)

    probe = linear.fit_logistic_probe(x, y, weight_decay=0.03, trainer=trainer)
    z = seen["z"]
    assert seen["n_classes"] == 2 and seen["weight_decay"] == 0.03 and torch.equal(seen["labels"], y)
    torch.testing.assert_close(z.mean(0), torch.zeros(5), atol=1e-4, rtol=0)
    torch.testing.assert_close(z.std(0), torch.ones(5), atol=1e-4, rtol=0)
    torch.testing.assert_close(z, standardise(x), atol=1e-4, rtol=1e-4)
    # The raw-space probe on x equals the trained probe on the standardised rows, on new points too.
    weight, bias = linear.train_probe(z, y, 2, 0.03)
    x_new = x.mean(0) + x.std(0) * torch.randn(50, 5, generator=gen(9))
    z_new = (x_new - x.mean(0)) / x.std(0)
    for raw, standardised in ((x, z), (x_new, z_new)):
        torch.testing.assert_close(probe.logits(raw), standardised @ weight + bias, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("seed", range(3))
def test_logistic_probe_ignores_the_units_of_each_feature(seed):
    x, y = noisy(200, 6, 3, seed)
    probe = linear.fit_logistic_probe(x, y)
    rescaled = x.clone()
    rescaled[:, 2] = 1000 * rescaled[:, 2] + 500  # another unit and origin for one feature
    rescaled[:, 4] = -1e-3 * rescaled[:, 4]  # and a flipped, tiny one for another
    other = linear.fit_logistic_probe(rescaled, y)
    torch.testing.assert_close(other.logits(rescaled), probe.logits(x), rtol=1e-3, atol=1e-3)
    assert torch.equal(other.predict(rescaled), probe.predict(x))
    torch.testing.assert_close(other.weight[2] * 1000, probe.weight[2], rtol=1e-2, atol=1e-4)


def test_logistic_probe_survives_a_constant_feature():
    x, y = separable(100, 4, seed=0)
    x[:, 1] = 7.0  # std 0: clamped, not a division by zero
    probe = linear.fit_logistic_probe(x, y)
    assert torch.isfinite(probe.weight).all() and torch.isfinite(probe.bias).all()
    assert probe.weight[1].abs().max() < 1e-3
    assert probe.accuracy(x, y) == 1.0


def test_weight_decay_shrinks_the_weights():
    x, y = noisy(300, 8, 2, seed=4)
    scale = x.std(0)[:, None]  # the penalty acts on the standardised weights
    norms = [
        float((linear.fit_logistic_probe(x, y, weight_decay=wd).weight * scale).norm()) for wd in (0.0, 1e-2, 1e-1, 1.0)
    ]
    assert all(a > b for a, b in zip(norms, norms[1:])), norms
    assert norms[-1] < 0.5 * norms[0]


def test_logistic_probe_is_deterministic():
    x, y = noisy(200, 10, 3, seed=5)
    a, b = linear.fit_logistic_probe(x, y), linear.fit_logistic_probe(x, y)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)


@pytest.mark.parametrize("n_classes", [3, 6])
def test_multiclass_probe(n_classes):
    x, y = blobs(400, 12, n_classes, seed=n_classes, sep=3.0, noise=0.3)
    probe = linear.fit_logistic_probe(x, y)
    assert probe.weight.shape == (12, n_classes)
    assert probe.accuracy(x, y) == 1.0
    # More classes than occur: the extra class gets a column and is never predicted.
    wider = linear.fit_logistic_probe(x, y, n_classes=n_classes + 1)
    assert wider.weight.shape == (12, n_classes + 1)
    assert wider.accuracy(x, y) == 1.0 and (wider.predict(x) < n_classes).all()


def test_held_out_accuracy_takes_a_mask_or_indices():
    x, y = noisy(120, 5, 2, seed=6)
    mask = torch.rand(120, generator=gen(2)) < 0.7
    by_mask = linear.held_out_accuracy(x, y, mask)
    by_index = linear.held_out_accuracy(x, y, mask.nonzero().squeeze(1))
    assert by_mask == pytest.approx(by_index, abs=1e-6)
    probe = linear.fit_logistic_probe(x[mask], y[mask])
    assert by_mask == pytest.approx((probe.accuracy(x[mask], y[mask]), probe.accuracy(x[~mask], y[~mask])), abs=1e-6)


@pytest.mark.parametrize(
    "x, y, n_classes, match",
    [
        (torch.randn(10), torch.zeros(10, dtype=torch.long), None, r"x must be \[sample, d_model\]"),
        (torch.randn(10, 3), torch.zeros(10, 1, dtype=torch.long), None, r"y \[sample\]"),
        (torch.randn(10, 3), torch.zeros(9, dtype=torch.long), None, r"\(10, 3\) and \(9,\)"),
        (torch.randn(1, 3), torch.zeros(1, dtype=torch.long), None, "at least 2 samples"),
        (torch.randn(4, 3), torch.tensor([0, 1, -1, 0]), None, r"labels must lie in \[0, 2\); got \[-1, 1\]"),
        (torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), 2, r"labels must lie in \[0, 2\); got \[0, 2\]"),
    ],
)
def test_logistic_probe_rejects_bad_inputs(x, y, n_classes, match):
    with pytest.raises(ValueError, match=match):
        unchecked(linear.fit_logistic_probe)(x, y, n_classes)
    with pytest.raises((ValueError, TypeError)):  # under pytest, jaxtyping may object first
        linear.fit_logistic_probe(x, y, n_classes)
    with pytest.raises(ValueError, match=match):
        unchecked(linear.held_out_accuracy)(x, y, torch.ones(y.shape[0], dtype=torch.bool), n_classes)


def test_logistic_probe_rejects_negative_weight_decay():
    x, y = noisy(20, 3, 2, seed=0)
    with pytest.raises(ValueError, match="weight_decay=-0.1"):
        linear.fit_logistic_probe(x, y, weight_decay=-0.1)


# --------------------------------------------------------------------------------------
# Mass-mean probes
# --------------------------------------------------------------------------------------


def test_mass_mean_by_hand():
    x = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [2.0, 4.0], [1.0, 5.0]])
    y = torch.tensor([0, 0, 1, 1, 1])
    # mu_0 = (1, 0), mu_1 = (1, 13/3): theta = (0, 13/3), threshold = theta . (1, 13/6) = 169/18
    theta, threshold = linear.mass_mean_direction(x, y)
    torch.testing.assert_close(theta, torch.tensor([0.0, 13 / 3]))
    assert threshold == pytest.approx(169 / 18)
    probe = linear.mass_mean_probe(x, y)
    torch.testing.assert_close(probe.direction(), theta)
    # Predicts 1 exactly where x_2 > 13/6, the midpoint of the class means along theta.
    grid = torch.tensor([[5.0, 13 / 6 + 1e-3], [-5.0, 13 / 6 - 1e-3], [0.0, 100.0], [0.0, -100.0]])
    assert probe.predict(grid).tolist() == [1, 0, 1, 0]
    assert probe.accuracy(x, y) == 1.0


@pytest.mark.parametrize("seed", range(3))
def test_mass_mean_probe_thresholds_at_the_midpoint(seed):
    x, y = blobs(200, 7, 2, seed, sep=1.0)
    theta, threshold = linear.mass_mean_direction(x, y)
    mu_0, mu_1 = x[y == 0].mean(0), x[y == 1].mean(0)
    torch.testing.assert_close(theta, mu_1 - mu_0)
    probe = linear.mass_mean_probe(x, y)
    # The logit difference is x . theta - threshold, so it predicts 1 exactly above the threshold.
    queries = 3 * torch.randn(500, 7, generator=gen(seed + 10)) + x.mean(0)
    diff = probe.logits(queries) @ torch.tensor([-1.0, 1.0])
    torch.testing.assert_close(diff, queries @ theta - threshold, rtol=1e-4, atol=1e-3)
    score = queries @ theta - threshold
    clear = score.abs() > 1e-3
    assert torch.equal(probe.predict(queries)[clear], (score[clear] > 0).long())
    mid = (mu_0 + mu_1) / 2
    step = 1e-2 * theta / theta.norm()
    assert probe.predict(torch.stack([mid + step, mid - step])).tolist() == [1, 0]
    assert probe.predict(torch.stack([mu_1, mu_0])).tolist() == [1, 0]


def test_mass_mean_probe_uses_the_given_direction_fn():
    x, y = blobs(50, 4, 2, seed=0)
    fixed = torch.tensor([1.0, 0.0, 0.0, 0.0])
    probe = linear.mass_mean_probe(x, y, direction_fn=lambda xs, ys: (fixed, 0.5))
    torch.testing.assert_close(probe.direction(), fixed)
    assert probe.predict(torch.tensor([[0.6, 9, 9, 9], [0.4, -9, -9, -9]])).tolist() == [1, 0]


def test_mass_mean_probe_errors():
    x = torch.randn(6, 3)
    with pytest.raises(ValueError, match="both classes"):
        linear.mass_mean_probe(x, torch.zeros(6, dtype=torch.long))
    with pytest.raises(ValueError, match="both classes"):
        linear.mass_mean_probe(x, torch.ones(6, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        linear.mass_mean_probe(x, torch.tensor([0, 1, 2, 0, 1, 0]))
    with pytest.raises(ValueError, match="probe: x must be"):
        unchecked(linear.mass_mean_probe)(x, torch.tensor([0, 1, 0]))


# --------------------------------------------------------------------------------------
# Control tasks
# --------------------------------------------------------------------------------------


def test_control_labels_give_each_word_type_one_class():
    g = gen(0)
    word_types = torch.randint(100, 160, (3000,), generator=g)  # ids need not start at 0
    labels = torch.randint(0, 4, (3000,), generator=g)
    control = linear.control_labels(word_types, labels, gen(1))
    assert control.shape == labels.shape and control.dtype == torch.long
    for t in word_types.unique():
        assert control[word_types == t].unique().numel() == 1
    assert set(control.unique().tolist()) <= {0, 1, 2, 3}


def test_control_labels_follow_the_label_frequencies():
    g = gen(0)
    n_types = 20_000
    word_types = torch.randperm(n_types, generator=g).repeat(2)  # every type twice
    freq = torch.tensor([0.6, 0.0, 0.3, 0.1])  # class 1 never occurs: never drawn
    labels = torch.multinomial(freq, 2 * n_types, replacement=True, generator=g)
    control = linear.control_labels(word_types, labels, gen(1))
    per_type = torch.zeros(n_types, dtype=torch.long)
    per_type[word_types] = control
    observed = torch.bincount(per_type, minlength=4).float() / n_types
    expected = torch.bincount(labels, minlength=4).float() / labels.numel()
    torch.testing.assert_close(observed, expected, atol=0.02, rtol=0)
    assert observed[1] == 0


def test_control_labels_are_deterministic_per_generator_and_order():
    g = gen(3)
    word_types = torch.randint(0, 50, (500,), generator=g)
    labels = torch.randint(0, 3, (500,), generator=g)
    a = linear.control_labels(word_types, labels, gen(7))
    assert torch.equal(a, linear.control_labels(word_types, labels, gen(7)))
    assert not torch.equal(a, linear.control_labels(word_types, labels, gen(8)))
    # Types are numbered in sorted order: shuffling the samples keeps each type's class.
    perm = torch.randperm(500, generator=g)
    shuffled = linear.control_labels(word_types[perm], labels[perm], gen(7))
    assert torch.equal(shuffled, a[perm])


# --------------------------------------------------------------------------------------
# Random labels
# --------------------------------------------------------------------------------------


random_label_curve = linear.random_label_curve


def test_random_labels_are_fitted_below_cover_bound_and_generalise_to_chance():
    x = torch.randn(800, 40, generator=gen(0))
    points = random_label_curve(x, [10, 30, 60], n_test=400, generator=gen(1))
    assert [p["n_train"] for p in points] == [10, 30, 60]
    assert [p["n_over_d"] for p in points] == pytest.approx([0.25, 0.75, 1.5])
    for p in points:
        assert p["train"] == 1.0, p  # n < 2 d: some hyperplane separates any labelling
        assert abs(p["test"] - 0.5) < 0.12, p


def test_random_labels_are_not_fitted_far_above_cover_bound():
    x = torch.randn(2600, 4, generator=gen(0))
    (point,) = random_label_curve(x, [2000], n_test=500, generator=gen(1))
    assert point["n_over_d"] == 500
    assert point["train"] < 0.6 and abs(point["test"] - 0.5) < 0.1


def test_random_label_curve_draws_distinct_rows_and_fair_coins(monkeypatch):
    x = torch.randn(500, 8, generator=gen(0))
    calls = []

    def spy(xs, ys, train, n_classes=None, weight_decay=1e-2, trainer=linear.train_probe):
        calls.append((xs, ys, train, n_classes, weight_decay))
        return 1.0, 0.5

    monkeypatch.setattr(linear, "held_out_accuracy", spy)
    random_label_curve(x, [30, 300], n_test=150, generator=gen(1), weight_decay=1e-3)
    for (xs, ys, train, n_classes, weight_decay), n in zip(calls, (30, 300)):
        assert xs.shape == (n + 150, 8) and ys.shape == (n + 150,) and n_classes == 2 and weight_decay == 1e-3
        assert int(train.sum()) == n and not train[n:].any()  # n training rows, n_test others
        # Rows of x, without replacement, drawn at random (not the first rows).
        index = torch.cdist(xs, x).argmin(1)
        torch.testing.assert_close(xs, x[index])
        assert index.unique().numel() == n + 150
        assert not torch.equal(index, torch.arange(n + 150))
        assert set(ys.unique().tolist()) == {0, 1} and 0.35 < ys.float().mean() < 0.65
    first, second = (torch.cdist(c[0], x).argmin(1) for c in calls)
    assert not torch.equal(first[:30], second[:30])  # each n draws its own rows


def test_random_label_curve_is_deterministic_per_generator():
    x = torch.randn(300, 20, generator=gen(0))
    a = random_label_curve(x, [20, 50], 100, gen(5))
    assert a == random_label_curve(x, [20, 50], 100, gen(5))
    assert a != random_label_curve(x, [20, 50], 100, gen(6))


def test_random_label_curve_range_errors():
    x = torch.randn(100, 5)
    with pytest.raises(ValueError, match="n_test=1"):
        random_label_curve(x, [10], 1, gen())
    with pytest.raises(ValueError, match=r"max\(n_train\) \+ n_test=101"):
        random_label_curve(x, [10, 91], 10, gen())
    with pytest.raises(ValueError, match="n_train=1"):
        random_label_curve(x, [1, 10], 10, gen())


def test_random_label_curve_satisfies_its_annotation_under_pytest():
    linear.random_label_curve(torch.randn(60, 5, generator=gen(0)), [10], 20, gen(1))


# --------------------------------------------------------------------------------------
# Contrast-consistent search
# --------------------------------------------------------------------------------------


def test_ccs_loss_by_hand():
    p_pos, p_neg = torch.tensor([0.9, 0.2]), torch.tensor([0.1, 0.6])
    # consistency: mean(0^2, (0.2 - 0.4)^2) = 0.02; confidence: mean(0.1^2, 0.2^2) = 0.025
    assert float(ccs.ccs_loss(p_pos, p_neg)) == pytest.approx(0.045)
    assert float(ccs.ccs_loss(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))) == 0.0
    assert float(ccs.ccs_loss(torch.full((3,), 0.5), torch.full((3,), 0.5))) == pytest.approx(0.25)
    assert float(ccs.ccs_loss(torch.ones(2), torch.ones(2))) == pytest.approx(2.0)  # inconsistent and unsure
    # Symmetric in its two sides and under p -> 1 - p on both (CCS's sign is arbitrary).
    g = gen(0)
    a, b = torch.rand(20, generator=g), torch.rand(20, generator=g)
    torch.testing.assert_close(ccs.ccs_loss(a, b), ccs.ccs_loss(b, a))
    torch.testing.assert_close((a - (1 - b)).pow(2).mean() + torch.minimum(a, b).pow(2).mean(), ccs.ccs_loss(a, b))


def planted_pairs(n_pairs: int, d: int, seed: int, truth: float = 3.0, distractor: float = 0.0):
    """Contrast pairs with a planted truth direction u: x+ gets +truth * u and x- gets -truth * u where
    x+ is the true side (y = 1), the opposite where it is not; a random `which` does the same along an
    orthogonal direction v at its own size (a distractor). Both sides share each pair's content (a
    random vector), plus a little independent noise."""
    g = gen(seed)
    y = torch.randint(0, 2, (n_pairs,), generator=g)
    which = torch.randint(0, 2, (n_pairs,), generator=g)
    u = torch.randn(d, generator=g)
    u /= u.norm()
    v = torch.randn(d, generator=g)
    v -= (v @ u) * u
    v /= v.norm()
    content = torch.randn(n_pairs, d, generator=g)
    pos = content + 0.3 * torch.randn(n_pairs, d, generator=g)
    neg = content + 0.3 * torch.randn(n_pairs, d, generator=g)
    flip = truth * (2 * y - 1).float()[:, None] * u + distractor * (2 * which - 1).float()[:, None] * v
    return pos + flip, neg - flip, y, which


@pytest.mark.parametrize("seed", range(3))
def test_ccs_recovers_a_planted_feature_that_flips_across_pairs(seed):
    pos, neg, y, _ = planted_pairs(240, 12, seed)
    train = torch.arange(240) < 160
    probe = ccs.fit_ccs(pos[train], neg[train], gen(seed), n_dims=4, restarts=3, steps=300, lr=0.05)
    assert probe.accuracy(pos[train], neg[train], y[train]) == 1.0
    assert probe.accuracy(pos[~train], neg[~train], y[~train]) >= 0.97
    # CCS's sign is arbitrary: accuracy is max(acc, 1 - acc).
    assert probe.accuracy(pos, neg, y) == pytest.approx(probe.accuracy(pos, neg, 1 - y), abs=1e-6)
    credence = probe.credence(pos, neg)
    assert ((credence - 0.5).abs() > 0.3).float().mean() > 0.9  # confident
    # Its loss is the one recorded, on the training pairs.
    assert probe.loss == pytest.approx(float(ccs.ccs_loss(*probe.probabilities(pos[train], neg[train]))), abs=1e-5)
    assert probe.loss < 0.05
    assert probe.projection.shape == (12, 4) and probe.weight.shape == (4,)
    torch.testing.assert_close(probe.projection.T @ probe.projection, torch.eye(4), atol=1e-4, rtol=0)


def test_ccs_finds_the_salient_distractor_instead_of_truth():
    """Farquhar et al.: a word that flips across the pair as truth does, and is more salient, wins."""
    pos, neg, y, which = planted_pairs(200, 12, seed=0, truth=1.0, distractor=4.0)
    probe = ccs.fit_ccs(pos, neg, gen(0), n_dims=4, restarts=3, steps=300, lr=0.05)
    assert probe.accuracy(pos, neg, which) == 1.0
    assert probe.accuracy(pos, neg, y) < 0.65


def test_ccs_accuracy_is_symmetric_under_flipping_labels():
    pos, neg, y, _ = planted_pairs(60, 6, seed=1, truth=0.3)  # a poor probe: accuracy well below 1
    probe = ccs.fit_ccs(pos, neg, gen(1), n_dims=2, restarts=1, steps=20)
    for labels in (y, torch.randint(0, 2, (60,), generator=gen(2))):
        acc = probe.accuracy(pos, neg, labels)
        assert acc == pytest.approx(probe.accuracy(pos, neg, 1 - labels), abs=1e-6)
        assert acc >= 0.5
        agree = float(((probe.credence(pos, neg) > 0.5).long() == labels).float().mean())
        assert acc == pytest.approx(max(agree, 1 - agree), abs=1e-6)


def test_ccs_is_deterministic_and_keeps_the_best_restart():
    pos, neg, _, _ = planted_pairs(80, 8, seed=2, truth=1.0)
    kwargs = dict(n_dims=3, steps=40)
    a = ccs.fit_ccs(pos, neg, gen(4), restarts=4, **kwargs)
    b = ccs.fit_ccs(pos, neg, gen(4), restarts=4, **kwargs)
    assert torch.equal(a.weight, b.weight) and a.bias == b.bias and a.loss == b.loss
    # Restart k starts from the generator's k-th draw: four one-restart fits from one generator are the
    # four restarts, and the fit keeps the one with the lowest final loss.
    g = gen(4)
    singles = [ccs.fit_ccs(pos, neg, g, restarts=1, **kwargs) for _ in range(4)]
    losses = [p.loss for p in singles]
    assert len(set(losses)) == 4, losses
    best = singles[losses.index(min(losses))]
    assert a.loss == best.loss and torch.equal(a.weight, best.weight) and a.bias == best.bias


def test_ccs_custom_loss_is_used():
    pos, neg, _, _ = planted_pairs(50, 6, seed=3)
    # Push both probabilities to 1: the opposite of consistency.
    probe = ccs.fit_ccs(pos, neg, gen(0), n_dims=2, restarts=1, steps=200, lr=0.1, loss_fn=lambda p, q: -(p + q).mean())
    p_pos, p_neg = probe.probabilities(pos, neg)
    assert p_pos.mean() > 0.8 and p_neg.mean() > 0.8


def test_ccs_range_errors():
    pos, neg = torch.randn(10, 6), torch.randn(10, 6)
    with pytest.raises(ValueError, match="n_dims=0"):
        ccs.fit_ccs(pos, neg, gen(), n_dims=0)
    with pytest.raises(ValueError, match="n_dims=7"):  # more than d_model
        ccs.fit_ccs(pos, neg, gen(), n_dims=7)
    with pytest.raises(ValueError, match="n_dims=5"):  # more than 2 * pairs
        ccs.fit_ccs(pos[:2], neg[:2], gen(), n_dims=5)
    with pytest.raises(ValueError, match="restarts=0"):
        ccs.fit_ccs(pos, neg, gen(), n_dims=2, restarts=0)
    with pytest.raises(ValueError, match="steps=0"):
        ccs.fit_ccs(pos, neg, gen(), n_dims=2, steps=0)
    for bad_pos, bad_neg in ((pos, neg[:9]), (pos, neg[:, :5]), (pos[0], neg[0])):
        with pytest.raises(ValueError, match=r"pos and neg must both be \[pair, d_model\]"):
            unchecked(ccs.fit_ccs)(bad_pos, bad_neg, gen(), n_dims=2)
        with pytest.raises((ValueError, TypeError)):  # under pytest, jaxtyping may object first
            ccs.fit_ccs(bad_pos, bad_neg, gen(), n_dims=2)


# --------------------------------------------------------------------------------------
# Statements
# --------------------------------------------------------------------------------------


def test_category_members_are_corpus_words():
    members = [w for words in statements.CATEGORY_MEMBERS.values() for w in words]
    assert set(members) <= statements.CORPUS_WORDS, set(members) - statements.CORPUS_WORDS
    assert len(members) == len(set(members)), "a word in two categories makes a statement both true and false"


def category_of(text: str) -> str:
    return text.rstrip(".").split()[-1]


@pytest.mark.parametrize("seed", range(3))
def test_category_statements_alternate_true_and_false_about_one_subject(seed):
    members = {w: c for c, words in statements.CATEGORY_MEMBERS.items() for w in words}
    out = statements.category_statements(seed)
    assert len(out) == 2 * len(members) * len(statements.TEMPLATES)
    for true, false in zip(out[0::2], out[1::2]):
        assert (true.label, false.label) == (1, 0)
        assert true.subject == false.subject and true.kind == false.kind == "category"
        assert category_of(true.text) == members[true.subject]
        assert category_of(false.text) in statements.CATEGORY_MEMBERS
        assert category_of(false.text) != members[true.subject]
        assert re.search(rf"\b{true.subject}\b", true.text) and re.search(rf"\b{false.subject}\b", false.text)
        # Same template: the texts differ only in the category (and its article).
        strip = r"\b(a|an) \w+\.$|\w+\.$"
        assert re.sub(strip, "", true.text) == re.sub(strip, "", false.text)
        assert true.text[0].isupper() and true.text.endswith(".")
    # Every (subject, template) pair occurs exactly once.
    assert Counter(s.subject for s in out) == {w: 2 * len(statements.TEMPLATES) for w in members}
    assert out == statements.category_statements(seed)
    assert [s.text for s in out] != [s.text for s in statements.category_statements(seed + 1)]


def test_category_statements_articles():
    texts = {s.text for s in statements.category_statements(0)}
    assert "An apple is a fruit." in texts and "A raven is a bird." in texts
    assert "Every owl is a bird." in texts and "An eagle is a kind of bird." in texts
    for text in texts:
        for article, word in re.findall(r"\b([Aa]n?) (\w+)", text):
            assert (article.lower() == "an") == (word[0] in "aeiou"), text


def test_category_words_are_about_as_often_true_as_false():
    """The false category is another subject's true one, so no category word gives the answer away."""
    true, false = Counter(), Counter()
    for seed in range(20):
        for s in statements.category_statements(seed):
            (true if s.label else false)[category_of(s.text)] += 1
    for category in statements.CATEGORY_MEMBERS:
        assert 0.7 < false[category] / true[category] < 1.4, (category, true[category], false[category])


def test_category_statements_with_custom_templates():
    out = statements.category_statements(0, templates=["{subject}: {category}"])
    assert len(out) == 2 * sum(len(w) for w in statements.CATEGORY_MEMBERS.values())
    assert out[0].text == "raven: bird"
    with pytest.raises(ValueError, match=r"len\(templates\)=0"):
        statements.category_statements(0, templates=[])


@pytest.mark.parametrize("max_operand", [1, 9, 12])
def test_arithmetic_statements(max_operand):
    out = statements.arithmetic_statements(seed=0, max_operand=max_operand)
    assert len(out) == 2 * (max_operand + 1) ** 2
    pairs = set()
    for true, false in zip(out[0::2], out[1::2]):
        assert (true.label, false.label) == (1, 0) and true.kind == false.kind == "arithmetic"
        a, b, c = map(int, re.fullmatch(r"(\d+) \+ (\d+) = (\d+)\.", true.text).groups())
        a2, b2, wrong = map(int, re.fullmatch(r"(\d+) \+ (\d+) = (\d+)\.", false.text).groups())
        assert (a, b) == (a2, b2) and true.subject == false.subject == f"{a}+{b}"
        assert c == a + b and wrong != a + b and abs(wrong - (a + b)) <= 2 and wrong >= 0
        pairs.add((a, b))
    assert pairs == {(a, b) for a in range(max_operand + 1) for b in range(max_operand + 1)}
    shifts = Counter(int(f.text.split()[-1].rstrip(".")) - sum(map(int, f.subject.split("+"))) for f in out[1::2])
    assert set(shifts) <= {-2, -1, 1, 2}
    if max_operand >= 9:
        assert len(shifts) == 4 and shifts[-2] + shifts[-1] > 0.2 * sum(shifts.values())


def test_arithmetic_statements_range_errors():
    with pytest.raises(ValueError, match="max_operand=0"):
        statements.arithmetic_statements(0, max_operand=0)
    with pytest.raises(ValueError, match="max_operand=100"):
        statements.arithmetic_statements(0, max_operand=100)


@pytest.mark.parametrize("seed", range(3))
def test_contrast_pairs_put_the_true_text_where_y_says(seed):
    out = statements.category_statements(seed) + statements.arithmetic_statements(seed, 4)
    pos, neg, y = statements.contrast_pairs(out, gen(seed))
    assert len(pos) == len(neg) == len(y) == len(out) // 2
    assert 0.35 < y.float().mean() < 0.65
    for i, (p, n, yi) in enumerate(zip(pos, neg, y.tolist())):
        true, false = out[2 * i].text, out[2 * i + 1].text
        assert (p, n) == ((true, false) if yi else (false, true))
    again = statements.contrast_pairs(out, gen(seed))
    assert again[0] == pos and torch.equal(again[2], y)


def test_contrast_pairs_reject_statements_that_do_not_alternate():
    out = statements.category_statements(0)
    with pytest.raises(ValueError, match="alternate true, false"):
        statements.contrast_pairs(out[:-1], gen())
    with pytest.raises(ValueError, match="alternate true, false"):
        statements.contrast_pairs(out[1:-1], gen())
    swapped = [out[1], out[0], *out[2:]]
    with pytest.raises(ValueError, match="alternate true, false"):
        statements.contrast_pairs(swapped, gen())


def test_with_distractor_appends_the_two_different_words():
    out = statements.category_statements(0)
    pos, neg, _ = statements.contrast_pairs(out, gen(0))
    pos_d, neg_d, which = statements.with_distractor(pos, neg, gen(1))
    words = statements.DISTRACTORS
    assert words[0] != words[1]
    assert 0.35 < which.float().mean() < 0.65
    for p, n, pd, nd, w in zip(pos, neg, pos_d, neg_d, which.tolist()):
        assert pd == p + words[w] and nd == n + words[1 - w]
    custom = statements.with_distractor(pos[:3], neg[:3], gen(1), words=(" X", " Y"))
    assert {custom[0][0][-2:], custom[1][0][-2:]} == {" X", " Y"}


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5, 0.9])
def test_subject_split_never_puts_a_subject_on_both_sides(fraction):
    out = statements.category_statements(0) + statements.arithmetic_statements(0, 3)
    train = statements.subject_split(out, fraction, seed=1)
    assert train.dtype == torch.bool and train.shape == (len(out),)
    train_subjects = {s.subject for s, t in zip(out, train.tolist()) if t}
    test_subjects = {s.subject for s, t in zip(out, train.tolist()) if not t}
    assert not train_subjects & test_subjects
    n_subjects = len(train_subjects | test_subjects)
    assert len(test_subjects) == max(1, round(n_subjects * fraction))
    assert torch.equal(train, statements.subject_split(out, fraction, seed=1))
    assert not torch.equal(train, statements.subject_split(out, fraction, seed=2))


def test_subject_split_range_errors():
    out = statements.category_statements(0)
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="test_fraction"):
            statements.subject_split(out, bad, seed=0)


# --------------------------------------------------------------------------------------
# Collecting activations
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def zoo_model():
    return load_model(ZOO)


@pytest.fixture(scope="module")
def zoo_tokenizer():
    return load_tokenizer()


SMALL = dict(n_layers=3, d_model=32, n_heads=4, d_head=8, d_mlp=64, n_ctx=64, seed=0)
ARCHS = {"ln": dict(act_fn="gelu", normalization_type="LN"), "llama": LLAMA_STYLE | dict(n_key_value_heads=2)}


def small_model(tokenizer, arch: str = "ln", **overrides) -> HookedTransformer:
    cfg = HookedTransformerConfig(**(SMALL | ARCHS[arch] | dict(d_vocab=len(tokenizer)) | overrides))
    return HookedTransformer(cfg, tokenizer=tokenizer).eval()


def test_resid_hook_names(zoo_model):
    assert collect.resid_hook_names(2) == [
        "blocks.0.hook_resid_pre",
        "blocks.0.hook_resid_post",
        "blocks.1.hook_resid_post",
    ]
    assert collect.resid_hook_names(0) == ["blocks.0.hook_resid_pre"]
    names = collect.resid_hook_names(zoo_model.cfg.n_layers)
    assert len(names) == zoo_model.cfg.n_layers + 1 and set(names) <= set(zoo_model.hook_dict)


TEXTS = [
    "A raven is a bird.",
    "An apple is a kind of fruit.",
    "Every owl is a bird.",
    "A crow is a fish.",
    "2 + 3 = 5.",
    "A shark is a fish.",
    "Every cello is an instrument.",
    "A rook is a metal.",
    "7 + 1 = 9.",
]


def each_alone(model: HookedTransformer, texts, hook_names) -> torch.Tensor:
    rows = []
    for text in texts:
        _, cache = model.run_with_cache(model.to_tokens(text))
        rows.append(torch.stack([cache[name][0, -1] for name in hook_names]))
    return torch.stack(rows)


@pytest.mark.parametrize("which", ["zoo", "ln", "llama"])
def test_final_token_resid_equals_each_text_run_alone(which, zoo_model, zoo_tokenizer):
    model = zoo_model if which == "zoo" else small_model(zoo_tokenizer, which)
    lengths = [model.to_tokens(t).shape[1] for t in TEXTS]
    assert len(set(lengths)) > 1 and max(Counter(lengths).values()) > 2, "need several lengths, some shared"
    names = collect.resid_hook_names(model.cfg.n_layers)
    with torch.no_grad():
        expected = each_alone(model, TEXTS, names)
    for batch_size in (1, 2, 64):
        got = collect.final_token_resid(model, TEXTS, names, batch_size=batch_size)
        assert got.shape == (len(TEXTS), len(names), model.cfg.d_model)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # Any subset and order of hooks; a hook after the last block runs the whole model.
    subset = [names[-1], "blocks.0.hook_resid_pre", "ln_final.hook_normalized"]
    with torch.no_grad():
        expected = each_alone(model, TEXTS, subset)
    torch.testing.assert_close(
        collect.final_token_resid(model, TEXTS, subset, batch_size=2), expected, atol=1e-5, rtol=1e-5
    )
    mid = ["blocks.0.hook_resid_post"]  # stops early
    torch.testing.assert_close(
        collect.final_token_resid(model, TEXTS[::-1], mid), each_alone(model, TEXTS[::-1], mid), atol=1e-5, rtol=1e-5
    )


def test_final_token_resid_batch_size_error(zoo_model):
    with pytest.raises(ValueError, match="batch_size=0"):
        collect.final_token_resid(zoo_model, TEXTS, ["blocks.0.hook_resid_pre"], batch_size=0)


@pytest.fixture(scope="module")
def topic_rows(zoo_model):
    return collect.genre_rows(ZOO, zoo_model.tokenizer, "topic", 6)


def test_genre_rows_hold_one_genre(topic_rows, zoo_model):
    assert topic_rows.tokens.shape == (6, zoo_model.cfg.n_ctx)
    genre = topic_rows.labels["genre"][topic_rows.keep]
    assert (genre == corpus.GENRES.index("topic")).all()
    story = collect.genre_rows(ZOO, zoo_model.tokenizer, "story", 2)
    assert (story.labels["genre"][story.keep] == corpus.GENRES.index("story")).all()
    other_seed = collect.genre_rows(ZOO, zoo_model.tokenizer, "topic", 6, seed=12345)
    assert not torch.equal(other_seed.tokens, topic_rows.tokens)


def test_labelled_resid_on_the_zoo(topic_rows, zoo_model):
    field = "node_l1"
    names = collect.resid_hook_names(zoo_model.cfg.n_layers)
    acts = collect.labelled_resid(zoo_model, topic_rows, field, names, corpus.NODE_PATHS, batch_size=4)
    values = topic_rows.labels[field]
    mask = values >= 0
    n = int(mask.sum())
    assert n > 50
    assert acts.acts.shape == (n, len(names), zoo_model.cfg.d_model)
    # The activations are those of the whole rows at the labelled positions, in row-major order.
    with torch.no_grad():
        _, cache = zoo_model.run_with_cache(topic_rows.tokens)
    for i, name in enumerate(names):
        torch.testing.assert_close(acts.acts[:, i], cache[name][mask], atol=1e-5, rtol=1e-5)
    # Labels are renumbered 0.. in the order of the values present; class_names name the originals.
    present = values[mask].unique()
    assert acts.class_names == [corpus.NODE_PATHS[v] for v in present.tolist()]
    assert acts.labels.dtype == torch.long and set(acts.labels.tolist()) == set(range(len(present)))
    assert [acts.class_names[i] for i in acts.labels.tolist()] == [corpus.NODE_PATHS[v] for v in values[mask].tolist()]
    # Word types are the tokens; rows are the packed rows they came from.
    assert torch.equal(acts.word_types, topic_rows.tokens[mask])
    assert torch.equal(acts.row, mask.nonzero()[:, 0])
    assert not (acts.word_types == zoo_model.tokenizer.bos_token_id).any()


def test_labelled_resid_keep_values_and_errors(topic_rows, zoo_model):
    names = ["blocks.0.hook_resid_post"]
    values = topic_rows.labels["node_l1"]
    keep = values[values >= 0].unique()[[0, 2]].tolist()
    acts = collect.labelled_resid(zoo_model, topic_rows, "node_l1", names, corpus.NODE_PATHS, keep_values=keep)
    mask = torch.isin(values, torch.tensor(keep))
    assert acts.acts.shape[0] == int(mask.sum())
    assert acts.class_names == [corpus.NODE_PATHS[v] for v in sorted(keep)]
    assert torch.equal(acts.word_types, topic_rows.tokens[mask])
    with pytest.raises(ValueError, match="'b64_class'"):
        collect.labelled_resid(zoo_model, topic_rows, "b64_class", names, corpus.LABEL_FIELDS["b64_class"])


@pytest.mark.parametrize("fraction", [0.01, 0.25, 0.5, 0.9])
def test_row_split_keeps_each_row_on_one_side(topic_rows, zoo_model, fraction):
    acts = collect.labelled_resid(zoo_model, topic_rows, "node_l1", ["blocks.0.hook_resid_pre"], corpus.NODE_PATHS)
    train = acts.row_split(fraction)
    assert train.dtype == torch.bool and train.shape == acts.labels.shape
    assert train.any() and (~train).any()
    assert not set(acts.row[train].tolist()) & set(acts.row[~train].tolist())
    n_rows = int(acts.row.max()) + 1
    assert acts.row[~train].unique().numel() == max(1, round(n_rows * fraction))
    assert acts.row[train].max() < acts.row[~train].min()  # the last rows are held out
    for bad in (0.0, 1.0):
        with pytest.raises(ValueError, match="test_fraction"):
            acts.row_split(bad)


@pytest.mark.parametrize("which", ["zoo", "llama"])
def test_random_twin(which, zoo_model, zoo_tokenizer):
    # seed=123: a random model drawn with the twin's own seed would share its first weights
    model = zoo_model if which == "zoo" else small_model(zoo_tokenizer, "llama", seed=123)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg_before = model.cfg.to_dict()
    rng = torch.random.get_rng_state()
    twin = collect.random_twin(model, seed=0)
    assert torch.equal(rng, torch.random.get_rng_state()), "random_twin consumed or reseeded torch's global RNG"
    # The original is untouched.
    assert model.cfg.to_dict() == cfg_before
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    # The same architecture and tokenizer.
    ours, theirs = twin.cfg.to_dict(), model.cfg.to_dict()
    assert {k for k in ours if ours[k] != theirs[k]} <= {"seed", "init_weights"}
    assert twin.tokenizer is model.tokenizer or twin.tokenizer.get_vocab() == model.tokenizer.get_vocab()
    assert not twin.training
    params, twin_params = dict(model.named_parameters()), dict(twin.named_parameters())
    assert params.keys() == twin_params.keys()
    for name, p in twin_params.items():
        assert p.shape == params[name].shape, name
        if "W_" in name:
            assert not torch.allclose(p, params[name]), name
            assert p.std().item() == pytest.approx(model.cfg.initializer_range, rel=0.2), name
    # Deterministic per seed, different across seeds, and it runs.
    again, other = collect.random_twin(model, seed=0), collect.random_twin(model, seed=1)
    for name, p in twin.state_dict().items():
        assert torch.equal(p, again.state_dict()[name]), name
    assert not torch.equal(twin.W_E, other.W_E)
    tokens = model.to_tokens("A raven is a bird.")
    with torch.no_grad():
        logits = twin(tokens)
        assert torch.isfinite(logits).all()
        assert not torch.allclose(logits, model(tokens))


# --------------------------------------------------------------------------------------
# Steering and the model's verdict
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("start", [0, 3, 7])
def test_add_direction_changes_only_later_positions(start):
    g = gen(start)
    act, direction = torch.randn(2, 7, 16, generator=g), torch.randn(16, generator=g)
    original = act.clone()
    hook = HookPoint()
    out = steering.add_direction(act, hook, direction, alpha=2.5, start=start)
    assert torch.equal(act, original), "the hook must not modify its input"
    assert out is not act
    assert torch.equal(out[:, :start], act[:, :start])
    torch.testing.assert_close(out[:, start:], act[:, start:] + 2.5 * direction)
    torch.testing.assert_close(steering.add_direction(act, hook, direction, 0.0, start), act)


@pytest.fixture(scope="module")
def answer_tokenizer(tmp_path_factory, zoo_tokenizer):
    """The zoo tokenizer with " True" and " False" added as single tokens (the zoo's splits them)."""
    tok = load_tokenizer()
    tok.add_tokens([AddedToken(" True", normalized=False), AddedToken(" False", normalized=False)])
    directory = tmp_path_factory.mktemp("answer_tokenizer")
    tok.save_pretrained(directory)  # TransformerLens reloads a tokenizer from its path
    return load_tokenizer(directory)


@pytest.fixture(scope="module")
def answer_model(answer_tokenizer):
    return small_model(answer_tokenizer, "ln", n_layers=2)


def test_answer_ids(zoo_model, answer_model, answer_tokenizer):
    # The zoo tokenizer splits " True" (checked here, so that the error test below tests what it says).
    assert zoo_model.to_tokens(" True", prepend_bos=False).shape[1] > 1
    with pytest.raises(ValueError, match="single tokens"):
        steering.answer_ids(zoo_model)
    true_id, false_id = steering.answer_ids(answer_model)
    assert answer_tokenizer.decode([true_id]) == " True" and answer_tokenizer.decode([false_id]) == " False"


def judgement_statements() -> list[str]:
    out = statements.category_statements(0)[:10] + statements.arithmetic_statements(0, 3)[:6]
    return [s.text for s in out]


def test_statement_end_is_the_last_statement_token(zoo_model):
    for text in judgement_statements():
        end = steering.statement_end(zoo_model, text)
        prompt = zoo_model.to_tokens(statements.JUDGEMENT.format(statement=text) + "\nAnswer:")[0]
        alone = zoo_model.to_tokens(statements.JUDGEMENT.format(statement=text))[0]
        assert end == len(alone) - 1
        assert torch.equal(prompt[: end + 1], alone), text  # the prompt continues the statement's tokens
        assert zoo_model.to_string(prompt[end : end + 1]).strip() and "." in zoo_model.to_string(prompt[: end + 1])


def judgement_alone(model, text, hooks=()):
    true_id, false_id = steering.answer_ids(model)
    tokens = model.to_tokens(statements.JUDGEMENT.format(statement=text) + "\nAnswer:")
    with torch.no_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=list(hooks))[0, -1]
    return float(logits[true_id] - logits[false_id])


def test_judgement_logit_diff_equals_each_prompt_run_alone(answer_model):
    texts = judgement_statements()
    expected = torch.tensor([judgement_alone(answer_model, t) for t in texts])
    for batch_size in (1, 3, 64):
        got = steering.judgement_logit_diff(answer_model, texts, batch_size=batch_size)
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_judgement_logit_diff_with_steering_hooks(answer_model):
    texts = judgement_statements()
    name = "blocks.0.hook_resid_post"
    direction = torch.randn(answer_model.cfg.d_model, generator=gen(0))
    plain = steering.judgement_logit_diff(answer_model, texts)

    def hooks(alpha):
        return lambda start: [(name, partial(steering.add_direction, direction=direction, alpha=alpha, start=start))]

    torch.testing.assert_close(steering.judgement_logit_diff(answer_model, texts, hooks(0.0), batch_size=4), plain)
    # Each batch's hooks get that batch's statement end: the same as steering each prompt alone.
    steered = steering.judgement_logit_diff(answer_model, texts, hooks(5.0), batch_size=4)
    expected = torch.tensor(
        [
            judgement_alone(
                answer_model,
                t,
                [
                    (
                        name,
                        partial(
                            steering.add_direction,
                            direction=direction,
                            alpha=5.0,
                            start=steering.statement_end(answer_model, t),
                        ),
                    )
                ],
            )
            for t in texts
        ]
    )
    torch.testing.assert_close(steered, expected, atol=1e-4, rtol=1e-4)
    assert (steered - plain).abs().max() > 1e-2  # the steering did something


def test_judgement_logit_diff_rejects_a_tokenizer_that_splits_the_answers(zoo_model):
    with pytest.raises(ValueError, match="single tokens"):
        steering.judgement_logit_diff(zoo_model, ["A raven is a bird."])


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------


def test_figures():
    fig = figures.by_layer(
        {"trained": [0.5, 0.8, 0.9], "random twin": [0.5, 0.55, 0.5]},
        ["embed", "L0", "L1"],
        title="t",
        chance=0.5,
        dashed=["random twin"],
    )
    assert [t.name for t in fig.data] == ["trained", "random twin"]
    assert [t.line.dash for t in fig.data] == ["solid", "dash"]
    assert list(fig.data[0].x) == ["embed", "L0", "L1"] and list(fig.data[1].y) == [0.5, 0.55, 0.5]
    fig = figures.steering_effect([-1.0, 0.0, 1.0], {"probe": [-0.3, 0.0, 0.4], "random": [0.0, 0.0, 0.01]}, title="s")
    assert [t.name for t in fig.data] == ["probe", "random"] and list(fig.data[0].x) == [-1, 0, 1]
    assert list(fig.data[0].y) == [-0.3, 0.0, 0.4]


def test_random_label_figure():
    points = random_label_curve(torch.randn(120, 10, generator=gen(0)), [5, 20], 40, gen(1))
    fig = figures.random_label_curve(points, 10, title="r")
    assert [t.name for t in fig.data] == ["train", "held out"]
    assert list(fig.data[0].x) == [0.5, 2.0] and list(fig.data[0].y) == [p["train"] for p in points]
    assert list(fig.data[1].y) == [p["test"] for p in points]


def test_random_label_figure_accepts_the_curve_under_pytest():
    points = random_label_curve(torch.randn(120, 10, generator=gen(0)), [5, 20], 40, gen(1))
    figures.random_label_curve(points, 10, title="r")
