"""Exercises of notebook 07 (linear probes and their limits).

    7.1 train_probe          the minimiser of mean cross-entropy + weight_decay / 2 * ||weight||^2 (bias free)
    7.2 mass_mean_direction  theta = mu_1 - mu_0 and the threshold theta . (mu_0 + mu_1) / 2
    7.3 control_labels       Hewitt & Liang's control task: one random class per word type
    7.4 add_direction        a steering hook: act + alpha * direction at positions >= start
    7.5 ccs_loss             Burns et al.'s consistency + confidence loss, a tensor with gradients

7.1 is judged by its objective, not by its optimiser: on three small well-conditioned problems
(60-80 standardised rows, 2 and 3 classes, weight decay 1 and 0.1, data from a fixed
torch.Generator) the student's regularised loss must come within 1e-3 of the optimum found by
L-BFGS in float64; the objective is strictly convex, so the weights are then close to the
optimum's too. A probe that misses is compared with the optima of plausible wrong objectives
(no decay, bias penalised, no 1/2, summed cross-entropy) to name the mistake. The student's
function is called as the notebook calls it, with gradients off, four times at most (Adam for a
few hundred steps is fine). 7.3 is checked by its properties (one class per type, class
frequencies, determinism for a generator seed, no global randomness), not by the exact draws.
The other checks compare with the reference on hand-made inputs after ruling out the
recognisable wrong formulas.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor
from transformer_lens.hook_points import HookPoint

from interp_helpers.checkers.core import Exercise, Wrong, as_number, assert_close
from interp_helpers.probes import ccs, linear, steering

__all__ = ["train_probe", "mass_mean_direction", "control_labels", "add_direction", "ccs_loss"]


# ------------------------------------------------------------------------------ helpers


def _same(got: Any, expected: Tensor, atol: float = 1e-5) -> bool:
    """Whether `got` is a tensor of `expected`'s shape and values (for spotting a known wrong formula)."""
    return (
        isinstance(got, Tensor)
        and tuple(got.shape) == tuple(expected.shape)
        and torch.allclose(got.detach().double(), expected.detach().double(), atol=atol, rtol=1e-4)
    )


def _pair(got: Any, what: str) -> tuple[Any, Any]:
    if not isinstance(got, tuple | list) or len(got) != 2:
        raise Wrong(f"return a tuple {what}, got {type(got).__name__}")
    return got[0], got[1]


# ------------------------------------------------------------------- 7.1 a logistic probe

_PROBE_GAP = 1e-3  # how far above the optimum the regularised loss may be
_MISTAKE_GAP = 1e-4  # how close to a wrong objective's optimum a probe must be to be named after it
# What each wrong objective's optimum means (the objectives themselves are in `_decays`).
_MISTAKES = {
    "no decay": "your probe minimises the cross-entropy alone: add weight_decay / 2 * ||weight||^2 to the loss",
    "bias penalised": (
        "the bias is penalised too: only the weight pays weight_decay / 2 * ||weight||^2 "
        "(an optimiser's weight_decay applies to every parameter it is given)"
    ),
    "double decay": (
        "your probe is the optimum for twice the weight decay: the penalty is weight_decay / 2 * ||weight||^2, "
        "mind the 1/2"
    ),
    "summed": (
        "your probe is the optimum of the summed cross-entropy: take the mean over rows "
        "(F.cross_entropy's default), so weight_decay means the same for any number of rows"
    ),
}
# (seed, n_classes, weight_decay, rows, d_model): the first is called twice (determinism), then the others once.
_PROBE_PROBLEMS = ((71, 2, 1.0, 60, 5), (72, 3, 0.1, 60, 5), (74, 3, 1.0, 80, 4))


def _objective(w: Tensor, b: Tensor, x: Tensor, y: Tensor, weight_decay: float, bias_decay: float = 0.0) -> Tensor:
    w, b = w.double(), b.double()
    return (
        F.cross_entropy(x.double() @ w + b, y) + 0.5 * weight_decay * w.pow(2).sum() + 0.5 * bias_decay * b.pow(2).sum()
    )


def _minimise(x: Tensor, y: Tensor, n_classes: int, weight_decay: float, bias_decay: float) -> tuple[Tensor, Tensor]:
    """The optimum of `_objective` in float64 by L-BFGS, to far tighter tolerances than the check needs."""
    w = torch.zeros(x.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, b], max_iter=500, tolerance_grad=1e-10, tolerance_change=1e-14, line_search_fn="strong_wolfe"
    )

    def closure() -> Tensor:
        opt.zero_grad()
        loss = _objective(w, b, x, y, weight_decay, bias_decay)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach(), b.detach()


def _decays(index: int) -> dict[str, tuple[float, float]]:
    """(weight decay, bias decay) of the right objective ("optimum") and of each wrong one.

    Each is mean cross-entropy + weight decay / 2 * ||weight||^2 + bias decay / 2 * ||bias||^2; the summed
    cross-entropy's optimum is the mean one's with the weight decay divided by the number of rows.
    """
    _, _, weight_decay, rows, _ = _PROBE_PROBLEMS[index]
    return {
        "optimum": (weight_decay, 0.0),
        "no decay": (0.0, 0.0),
        "bias penalised": (weight_decay, weight_decay),
        "double decay": (2 * weight_decay, 0.0),
        "summed": (weight_decay / rows, 0.0),
    }


@functools.cache
def _probe_problem(index: int) -> dict[str, Any]:
    """Standardised rows, labels from a noisy linear model (not separable: every objective has an optimum),
    unequal class sizes (a bias worth having), and the optimum of the right objective."""
    seed, n_classes, weight_decay, rows, d_model = _PROBE_PROBLEMS[index]
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, d_model, generator=g)
    x = (x - x.mean(0)) / x.std(0)
    w_true = torch.randn(d_model, n_classes, generator=g)
    logits = x @ w_true + torch.linspace(1.0, -1.0, n_classes)
    y = torch.multinomial(logits.softmax(-1), 1, generator=g).squeeze(1)
    best = _minimise(x, y, n_classes, weight_decay, 0.0)
    return dict(
        index=index,
        x=x,
        y=y,
        n_classes=n_classes,
        weight_decay=weight_decay,
        optimum=best,
        value=float(_objective(*best, x, y, weight_decay)),
    )


@functools.cache
def _mistaken_optima(index: int) -> dict[str, float]:
    """The optimal value of each wrong objective (computed only when a probe misses the right optimum)."""
    problem = _probe_problem(index)
    x, y, n_classes = problem["x"], problem["y"], problem["n_classes"]
    values = {}
    for name, decay in _decays(index).items():
        if name != "optimum":
            values[name] = float(_objective(*_minimise(x, y, n_classes, *decay), x, y, *decay))
    return values


def _call_probe(fn: Callable[..., Any], problem: dict[str, Any]) -> tuple[Tensor, Tensor]:
    """Call as the notebook does (gradients off) and check the types and shapes of (weight, bias)."""
    x, y, n_classes = problem["x"], problem["y"], problem["n_classes"]
    try:
        with torch.no_grad():
            got = fn(x.clone(), y.clone(), n_classes, problem["weight_decay"])
    except RuntimeError as err:
        if "does not require grad" in str(err):
            raise Wrong("the notebook runs with gradients off: train inside `with torch.enable_grad():`") from err
        raise
    weight, bias = _pair(got, "(weight, bias)")
    d_model = x.shape[1]
    for value, name in ((weight, "weight"), (bias, "bias")):
        if not isinstance(value, Tensor):
            raise Wrong(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    if tuple(weight.shape) == (n_classes, d_model):
        raise Wrong(
            f"weight has shape {tuple(weight.shape)}: it is [d_model, n_classes] = {(d_model, n_classes)}, "
            "so that logits = x @ weight + bias"
        )
    if tuple(weight.shape) != (d_model, n_classes):
        raise Wrong(f"weight: expected shape [d_model, n_classes] = {(d_model, n_classes)}, got {tuple(weight.shape)}")
    if tuple(bias.shape) != (n_classes,):
        raise Wrong(
            f"bias: expected shape [n_classes] = ({n_classes},), got {tuple(bias.shape)} (one logit per class, "
            "cross-entropy over all of them)"
        )
    return weight.detach().double(), bias.detach().double()


def _judge_probe(weight: Tensor, bias: Tensor, problem: dict[str, Any]) -> None:
    x, y, (best_w, best_b) = problem["x"], problem["y"], problem["optimum"]
    what = f"{problem['n_classes']} classes, weight_decay {problem['weight_decay']}"
    if not (weight.isfinite().all() and bias.isfinite().all()):
        raise Wrong(f"with {what}, your probe has NaN or infinite entries: lower the learning rate")
    gap = float(_objective(weight, bias, x, y, problem["weight_decay"])) - problem["value"]
    if gap > _PROBE_GAP:
        decays = _decays(problem["index"])
        gaps = {
            name: float(_objective(weight, bias, x, y, *decays[name])) - value
            for name, value in _mistaken_optima(problem["index"]).items()
        }
        matches = [name for name in _MISTAKES if gaps[name] <= _MISTAKE_GAP]
        if matches:
            raise Wrong(_MISTAKES[min(matches, key=gaps.__getitem__)])
        if bool((bias == 0).all()):
            raise Wrong(
                "the bias never moved from zero: train it too (requires_grad=True, and give it to the optimiser)"
            )
        fit, best_fit = (float(F.cross_entropy(x.double() @ w + b, y)) for w, b in ((weight, bias), (best_w, best_b)))
        if fit < best_fit - 1e-3:
            raise Wrong(
                "your probe fits the rows better than the optimum, with larger weights: the penalty "
                "weight_decay / 2 * ||weight||^2 is missing or too weak (AdamW's decoupled decay is not this penalty)"
            )
        raise Wrong(
            f"with {what}, your regularised loss is {gap:.2g} above the optimum {problem['value']:.4f}: "
            "train longer or raise the learning rate (the loss: mean cross-entropy + weight_decay / 2 * ||weight||^2)"
        )
    # Strict convexity: a loss within 1e-3 of the optimum (weight_decay >= 0.1) puts the weights within 0.15 of it.
    # The bias is only defined up to a constant shared by all classes (softmax ignores it): compare it centred.
    assert_close(weight, best_w, f"probe weight ({what})", atol=0.15)
    assert_close(bias - bias.mean(), best_b - best_b.mean(), f"probe bias, centred ({what})", atol=0.2)


def _check_train_probe(fn: Callable[..., Any]) -> None:
    first = _probe_problem(0)
    weight, bias = _call_probe(fn, first)
    again_w, again_b = _call_probe(fn, first)
    same = (torch.allclose(a, b, atol=1e-5, equal_nan=True) for a, b in ((weight, again_w), (bias, again_b)))
    if not all(same):
        raise Wrong(
            "two calls on the same data returned different probes: start from zeros and draw no random numbers "
            "(the optimum is unique)"
        )
    _judge_probe(weight, bias, first)
    for index in range(1, len(_PROBE_PROBLEMS)):
        _judge_probe(*_call_probe(fn, _probe_problem(index)), _probe_problem(index))


train_probe = Exercise(
    "7.1",
    "Training a logistic-regression probe",
    reference=linear.train_probe,
    check=_check_train_probe,
)


# ------------------------------------------------------------------------ 7.2 mass-mean


def _mass_mean_data(seed: int, n_0: int, n_1: int, d_model: int) -> tuple[Tensor, Tensor]:
    """Unequal classes, interleaved (not sorted by class), far from the origin (the threshold is not 0)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.cat([torch.zeros(n_0, dtype=torch.long), torch.ones(n_1, dtype=torch.long)])
    y = y[torch.randperm(n_0 + n_1, generator=g)]
    x = torch.randn(n_0 + n_1, d_model, generator=g) + 2.0 * torch.randn(d_model, generator=g)
    x[y == 1] += torch.randn(d_model, generator=g)
    return x, y


def _check_mass_mean_direction(fn: Callable[..., Any]) -> None:
    for seed, n_0, n_1, d_model in ((81, 7, 4, 5), (82, 2, 6, 3)):
        x, y = _mass_mean_data(seed, n_0, n_1, d_model)
        theta, threshold = _pair(fn(x.clone(), y.clone()), "(theta, threshold)")
        mu_0, mu_1, mu = x[y == 0].mean(0), x[y == 1].mean(0), x.mean(0)
        expected, expected_threshold = linear.mass_mean_direction(x, y)
        if _same(theta, -expected):
            raise Wrong("theta points from class 1 to class 0: theta = mean(x | y = 1) - mean(x | y = 0)")
        if _same(theta, expected / expected.norm()):
            raise Wrong("theta is normalised: return mu_1 - mu_0 as it is (its length is the distance between means)")
        if _same(theta, mu_1 - mu) or _same(theta, mu - mu_0):
            raise Wrong("theta uses the mean of all rows: it is the difference of the two class means, mu_1 - mu_0")
        n = min(n_0, n_1)
        if _same(theta, (x[y == 1][:n] - x[y == 0][:n]).mean(0)):
            raise Wrong(
                "theta pairs rows of the two classes and drops the rest: take each class's mean over all its rows "
                "(the classes differ in size)"
            )
        assert_close(theta, expected, f"theta for {n_0} rows of class 0 and {n_1} of class 1", atol=1e-4)
        got = as_number(threshold, "threshold")
        wrong_thresholds = {
            0.0: "the threshold is 0: it is theta . (mu_0 + mu_1) / 2, the projection of the midpoint of the two means",
            float(expected @ mu): (
                "the threshold projects the mean of all rows: use the midpoint of the two class means, "
                "(mu_0 + mu_1) / 2 (the classes differ in size)"
            ),
            float(expected @ (mu_0 + mu_1)): "the threshold is twice too large: theta . (mu_0 + mu_1) / 2",
            float(expected @ mu_0): "the threshold projects mu_0 alone: use the midpoint (mu_0 + mu_1) / 2",
            float(expected @ mu_1): "the threshold projects mu_1 alone: use the midpoint (mu_0 + mu_1) / 2",
        }
        for value, message in wrong_thresholds.items():
            if abs(value - expected_threshold) > 1e-3 and abs(got - value) < 1e-4 * max(1.0, abs(value)):
                raise Wrong(message)
        if abs(got - expected_threshold) > 1e-4 * max(1.0, abs(expected_threshold)):
            raise Wrong(f"threshold: expected theta . (mu_0 + mu_1) / 2 = {expected_threshold:.4g}, got {got:.4g}")


mass_mean_direction = Exercise(
    "7.2", "The mass-mean probe", reference=linear.mass_mean_direction, check=_check_mass_mean_direction
)


# ---------------------------------------------------------------------- 7.3 control task


def _classes_by_type(word_types: Tensor, classes: Tensor) -> tuple[Tensor, bool]:
    """Each type's class (of its first occurrence) and whether all occurrences of every type agree."""
    types, inverse = torch.unique(word_types, return_inverse=True)
    where = torch.full((len(types),), len(word_types)).scatter_reduce(0, inverse, torch.arange(len(word_types)), "amin")
    first = classes.long()[where]
    return first, bool((first[inverse] == classes.long()).all())


def _control_output(got: Any, word_types: Tensor, labels: Tensor) -> Tensor:
    if not isinstance(got, Tensor):
        raise Wrong(f"expected a torch.Tensor of classes, got {type(got).__name__}")
    if tuple(got.shape) != tuple(word_types.shape):
        raise Wrong(f"expected one class per token, shape {tuple(word_types.shape)}, got {tuple(got.shape)}")
    if got.dtype.is_floating_point or got.dtype.is_complex or got.dtype == torch.bool:
        raise Wrong(f"return integer classes (torch.long), got {got.dtype}")
    if torch.equal(got.long(), labels.long()):
        raise Wrong("you returned the labels themselves: the control task gives every word TYPE a random class")
    if not _classes_by_type(word_types, got)[1]:
        raise Wrong(
            "occurrences of one word type got different classes: draw one class per type "
            "(torch.unique(..., return_inverse=True)) and give it to all its occurrences"
        )
    absent = sorted(set(got.tolist()) - set(labels.tolist()))
    if absent:
        raise Wrong(f"class {absent[0]} never occurs in labels: draw classes from the labels' distribution")
    return got.long()


def _control_small() -> tuple[Tensor, Tensor]:
    """8 types of 5 tokens each, non-contiguous ids, shuffled; labels 0 and 2 (never 1), mixed within a type."""
    g = torch.Generator().manual_seed(91)
    word_types = torch.tensor([3, 17, 42, 5, 99, 260, 7, 31]).repeat(5)
    labels = torch.tensor([0, 0, 2, 0, 0, 2, 0, 0] * 4 + [2, 0, 0, 2, 0, 0, 0, 0])
    order = torch.randperm(len(word_types), generator=g)
    return word_types[order], labels[order]


def _control_large() -> tuple[Tensor, Tensor]:
    """3000 types of 2 tokens each; 80% of the tokens are labelled 0 and 20% 1, at random."""
    g = torch.Generator().manual_seed(92)
    ids = torch.randperm(20000, generator=g)[:3000]
    word_types = ids.repeat(2)[torch.randperm(6000, generator=g)]
    labels = (torch.arange(6000) >= 4800).long()[torch.randperm(6000, generator=g)]
    return word_types, labels


def _check_control_labels(fn: Callable[..., Any]) -> None:
    word_types, labels = _control_small()
    _control_output(fn(word_types.clone(), labels.clone(), torch.Generator().manual_seed(0)), word_types, labels)

    word_types, labels = _control_large()
    state = torch.random.get_rng_state()
    first = _control_output(
        fn(word_types.clone(), labels.clone(), torch.Generator().manual_seed(0)), word_types, labels
    )
    if not torch.equal(state, torch.random.get_rng_state()):
        raise Wrong("your function used the global random generator: pass generator=generator to every random draw")
    again = _control_output(
        fn(word_types.clone(), labels.clone(), torch.Generator().manual_seed(0)), word_types, labels
    )
    if not torch.equal(first, again):
        raise Wrong(
            "two generators with the same seed gave different classes: draw every random number from `generator`"
        )
    share_0 = (_classes_by_type(word_types, first)[0] == 0).float().mean().item()
    # 3000 types with p = 0.8: one standard deviation is 0.0073, so 0.04 is more than five.
    if abs(share_0 - 0.5) < 0.04:
        raise Wrong(
            f"{share_0:.0%} of the types got class 0 although 80% of the labels are 0: draw classes with the "
            "labels' frequencies, not uniformly"
        )
    if abs(share_0 - 0.8) > 0.04:
        raise Wrong(
            f"{share_0:.0%} of the types got class 0 although 80% of the labels are 0: draw each class with "
            "probability (labels == c).mean()"
        )
    other = _control_output(
        fn(word_types.clone(), labels.clone(), torch.Generator().manual_seed(1)), word_types, labels
    )
    if torch.equal(first, other):
        by_type, _ = _classes_by_type(word_types, labels)  # the label of each type's first occurrence
        if torch.equal(_classes_by_type(word_types, first)[0], by_type):
            raise Wrong("every type took the label of its first occurrence: draw its class at random from `generator`")
        raise Wrong(
            "generators with different seeds gave the same classes: draw the classes at random from `generator`"
        )


control_labels = Exercise("7.3", "A control task", reference=linear.control_labels, check=_check_control_labels)


# --------------------------------------------------------------------------- 7.5 CCS loss


def _ccs_variants(p_pos: Tensor, p_neg: Tensor) -> dict[str, Tensor]:
    consistency = (p_pos - (1 - p_neg)).pow(2)
    confidence = torch.minimum(p_pos, p_neg).pow(2)
    return {
        "consistency compares p_pos with p_neg: it is (p_pos - (1 - p_neg))^2, the two sides should sum to 1": (
            (p_pos - p_neg).pow(2).mean() + confidence.mean()
        ),
        "the confidence term uses the max: it is min(p_pos, p_neg)^2, pushing one side of each pair to 0": (
            consistency.mean() + torch.maximum(p_pos, p_neg).pow(2).mean()
        ),
        "the loss sums over pairs: take the mean of each term": consistency.sum() + confidence.sum(),
        "the min is not squared: the confidence term is mean(min(p_pos, p_neg)^2)": (
            consistency.mean() + torch.minimum(p_pos, p_neg).mean()
        ),
        "the confidence term is missing: add mean(min(p_pos, p_neg)^2), or p = 0.5 everywhere scores well": (
            consistency.mean()
        ),
        "the consistency term is missing: add mean((p_pos - (1 - p_neg))^2)": confidence.mean(),
    }


def _check_ccs_loss(fn: Callable[..., Any]) -> None:
    cases = (
        (torch.tensor([0.9, 0.2, 0.6, 0.3, 0.75, 0.1]), torch.tensor([0.15, 0.7, 0.55, 0.4, 0.05, 0.8])),
        # exact, nearly undecided, exact but reversed; no ties (min's gradient at a tie depends on how it is taken)
        (torch.tensor([1.0, 0.5, 0.0]), torch.tensor([0.0, 0.45, 1.0])),
    )
    for pos, neg in cases:
        with torch.enable_grad():  # the notebook runs with gradients off; CCS trains inside enable_grad
            p_pos, p_neg = pos.clone().requires_grad_(), neg.clone().requires_grad_()
            got = fn(p_pos, p_neg)
            if not isinstance(got, Tensor):
                raise Wrong(f"return a tensor, not a {type(got).__name__}: CCS minimises the loss by gradient descent")
            if got.numel() != 1:
                raise Wrong(f"expected one number (a 0-dim tensor), got shape {tuple(got.shape)}: average over pairs")
            if not got.requires_grad:
                raise Wrong(
                    "the loss carries no gradient: compute it with torch operations on p_pos and p_neg "
                    "(no .item(), float() or torch.tensor(...))"
                )
            expected = ccs.ccs_loss(pos, neg)
            for message, value in _ccs_variants(pos, neg).items():
                if not torch.isclose(value, expected, atol=1e-6) and _same(got.reshape(()), value):
                    raise Wrong(message)
            assert_close(got.reshape(()), expected, f"CCS loss of {len(pos)} pairs")
            got.reshape(()).backward()
            ref_pos, ref_neg = pos.clone().requires_grad_(), neg.clone().requires_grad_()
            ccs.ccs_loss(ref_pos, ref_neg).backward()
        if p_pos.grad is None or p_neg.grad is None:
            raise Wrong("no gradient reached p_pos or p_neg: compute the loss from them with torch operations")
        assert_close(p_pos.grad, ref_pos.grad, "gradient of the loss with respect to p_pos")
        assert_close(p_neg.grad, ref_neg.grad, "gradient of the loss with respect to p_neg")


ccs_loss = Exercise("7.5", "The CCS loss", reference=ccs.ccs_loss, check=_check_ccs_loss)


# ------------------------------------------------------------------------ 7.4 steering


def _steered(
    act: Float[Tensor, "batch pos d_model"], direction: Float[Tensor, " d_model"], alpha: float, positions: Tensor
) -> Tensor:
    out = act.clone()
    out[:, positions] += alpha * direction
    return out


def _check_add_direction(fn: Callable[..., Any]) -> None:
    g = torch.Generator().manual_seed(95)
    cases = ((3, 6, 4, 2.5, 2), (1, 5, 4, -1.5, 0), (2, 4, 3, 0.75, 3))  # batch, pos, d_model, alpha, start
    for batch, pos, d_model, alpha, start in cases:
        act = torch.randn(batch, pos, d_model, generator=g)
        direction = torch.randn(d_model, generator=g)
        direction *= 3.0 / direction.norm()  # not a unit vector: normalising it shows
        given = direction.clone()
        got = fn(act.clone(), HookPoint(), given, alpha, start)
        what = f"act [{batch}, {pos}, {d_model}] steered with alpha = {alpha} from start = {start}"
        if got is None:
            raise Wrong(
                "the hook returned None: return the steered activations (a hook's return value replaces act, "
                "even after an in-place edit)"
            )
        if not torch.equal(given, direction):
            raise Wrong("your hook changed `direction` in place: leave it as it is, it is reused for every batch")
        expected = steering.add_direction(act, HookPoint(), direction, alpha, start)
        every = torch.arange(pos)
        wrong = {
            "positions before start must stay unchanged: add only at act[:, start:]": _steered(
                act, direction, alpha, every
            ),
            "add at every position from start on, act[:, start:], not only at start": _steered(
                act, direction, alpha, every[start : start + 1]
            ),
            "position start itself is steered too: act[:, start:], not from start + 1": _steered(
                act, direction, alpha, every[start + 1 :]
            ),
            "the direction is not scaled by alpha: add alpha * direction": _steered(act, direction, 1.0, every[start:]),
            "add alpha * direction as given, without normalising the direction": _steered(
                act, direction / direction.norm(), alpha, every[start:]
            ),
            "add alpha * direction, do not subtract it": _steered(act, direction, -alpha, every[start:]),
        }
        if batch > start:  # act[start:] slices the batch
            batch_slice = act.clone()
            batch_slice[start:] += alpha * direction
            wrong["act is [batch pos d_model]: slice the positions, the second axis (act[:, start:])"] = batch_slice
        for message, value in wrong.items():
            if not torch.allclose(value, expected) and _same(got, value):
                raise Wrong(message)
        assert_close(got, expected, what)


add_direction = Exercise(
    "7.4",
    "A steering hook",
    reference=steering.add_direction,
    check=_check_add_direction,
)
