"""Linear probes: what a direction in activation space can tell you, and what it cannot.

A probe is a classifier trained to read a label off activations (Alain & Bengio 2016). The
workbook uses two kinds:

- **Logistic regression** with an L2 penalty, fitted on standardised activations (each
  dimension centred and scaled on the training rows, so one penalty means the same thing at
  every layer, whose norms differ tenfold), scored on held-out rows. Multinomial for several
  classes. Trained in torch with full-batch L-BFGS: the objective is convex and a few hundred
  rows by a few hundred dimensions fit in one batch, so L-BFGS reaches the optimum in tens of
  iterations, deterministically, with no learning rate to tune, and the probe's weights stay
  torch tensors that a steering hook can use directly. (scikit-learn would do the same, but
  is not a workbook dependency.)
- **Mass-mean** (difference-of-means) probes (Marks & Tegmark 2023): the direction from the
  mean of class 0 to the mean of class 1, thresholded at the midpoint. No training, no
  regularisation, less prone to latching onto a small but spurious dimension.

What a probe's accuracy means depends on controls:

- **Control tasks** (Hewitt & Liang 2019): give every word type a random class, drawn from the
  real labels' distribution, and train the same probe. A probe that also learns the control
  task is memorising word identity; *selectivity* is real accuracy minus control accuracy.
- **Baselines**: the embedding layer and a randomly initialised copy of the model. A label a
  probe reads off either says little about what the trained model computes.
- **Random labels** (`random_label_curve`): with n < 2 d points in general position, some
  hyperplane separates any labelling (Cover 1965), so a probe fits random labels perfectly and
  scores chance on held-out data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from interp_helpers.core.validation import check_range

# (standardised activations, labels, n_classes, weight_decay) -> (weight [d_model n_classes], bias [n_classes])
Trainer = Callable[..., tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class LinearProbe:
    """A linear read-out on raw activations: logits = x @ weight + bias."""

    weight: Float[Tensor, "d_model n_classes"]
    bias: Float[Tensor, " n_classes"]

    def logits(self, x: Float[Tensor, "sample d_model"]) -> Float[Tensor, "sample n_classes"]:
        return x @ self.weight + self.bias

    def predict(self, x: Float[Tensor, "sample d_model"]) -> Int[Tensor, " sample"]:
        return self.logits(x).argmax(-1)

    def accuracy(self, x: Float[Tensor, "sample d_model"], y: Int[Tensor, " sample"]) -> float:
        return (self.predict(x) == y).float().mean().item()

    def direction(self, positive: int = 1, negative: int = 0) -> Float[Tensor, " d_model"]:
        """The direction along which class `positive` gains on class `negative` (raw activation space)."""
        return self.weight[:, positive] - self.weight[:, negative]


def regularised_loss(
    weight: Float[Tensor, "d_model n_classes"],
    bias: Float[Tensor, " n_classes"],
    x: Float[Tensor, "sample d_model"],
    y: Int[Tensor, " sample"],
    weight_decay: float,
) -> Tensor:
    """Mean cross-entropy plus weight_decay / 2 * ||weight||^2 (the bias is not penalised)."""
    return F.cross_entropy(x @ weight + bias, y) + 0.5 * weight_decay * weight.pow(2).sum()


def train_probe(
    x: Float[Tensor, "sample d_model"],
    y: Int[Tensor, " sample"],
    n_classes: int,
    weight_decay: float = 1e-2,
    max_iter: int = 200,
) -> tuple[Float[Tensor, "d_model n_classes"], Float[Tensor, " n_classes"]]:
    """The minimiser of `regularised_loss`, from zeros, by full-batch L-BFGS (deterministic).

    With weight_decay > 0 the objective is strictly convex, so its minimiser is unique: any
    optimiser that converges gives the same probe.
    """
    weight = torch.zeros(x.shape[1], n_classes, requires_grad=True)
    bias = torch.zeros(n_classes, requires_grad=True)
    opt = torch.optim.LBFGS(
        [weight, bias], max_iter=max_iter, tolerance_grad=1e-6, tolerance_change=1e-9, line_search_fn="strong_wolfe"
    )

    def closure() -> Tensor:
        opt.zero_grad()
        loss = regularised_loss(weight, bias, x, y, weight_decay)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return weight.detach(), bias.detach()


def _check_labels(x: Tensor, y: Tensor, n_classes: int | None) -> int:
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"probe: x must be [sample, d_model] and y [sample]; got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.shape[0] < 2:
        raise ValueError(f"probe: need at least 2 samples, got {x.shape[0]}")
    n = int(y.max()) + 1 if n_classes is None else n_classes
    if int(y.min()) < 0 or int(y.max()) >= n:
        raise ValueError(f"probe: labels must lie in [0, {n}); got [{int(y.min())}, {int(y.max())}]")
    return max(n, 2)


def fit_logistic_probe(
    x: Float[Tensor, "sample d_model"],
    y: Int[Tensor, " sample"],
    n_classes: int | None = None,
    weight_decay: float = 1e-2,
    trainer: Trainer = train_probe,
) -> LinearProbe:
    """Logistic regression on standardised `x`, returned as a probe on raw activations.

    `trainer` fits (weight, bias) on the standardised rows; the notebook passes the student's
    own (Exercise 7.1). The standardisation is folded back into the weights.
    """
    check_range("weight_decay", weight_decay, 0.0)
    n = _check_labels(x, y, n_classes)
    x = x.float()
    mean, scale = x.mean(0), x.std(0).clamp(min=1e-6)
    weight, bias = trainer((x - mean) / scale, y, n, weight_decay)
    raw_weight = weight / scale[:, None]
    return LinearProbe(raw_weight, bias - mean @ raw_weight)


def mass_mean_direction(
    x: Float[Tensor, "sample d_model"], y: Int[Tensor, " sample"]
) -> tuple[Float[Tensor, " d_model"], float]:
    """theta = mean(x | y=1) - mean(x | y=0), and the threshold theta . (mu_0 + mu_1) / 2."""
    mu_1, mu_0 = x[y == 1].mean(0), x[y == 0].mean(0)
    theta = mu_1 - mu_0
    return theta, float(theta @ (mu_0 + mu_1) / 2)


def mass_mean_probe(
    x: Float[Tensor, "sample d_model"],
    y: Int[Tensor, " sample"],
    direction_fn: Callable[[Tensor, Tensor], tuple[Tensor, float]] = mass_mean_direction,
) -> LinearProbe:
    """A binary probe predicting 1 where x . theta > threshold (Marks & Tegmark's mass-mean probe)."""
    _check_labels(x, y, 2)
    if not (y == 0).any() or not (y == 1).any():
        raise ValueError("mass_mean_probe: both classes must occur in y")
    theta, threshold = direction_fn(x.float(), y)
    weight = torch.stack([-theta / 2, theta / 2], dim=1)
    return LinearProbe(weight, torch.tensor([threshold / 2, -threshold / 2]))


def control_labels(
    word_types: Int[Tensor, " sample"], labels: Int[Tensor, " sample"], generator: torch.Generator
) -> Int[Tensor, " sample"]:
    """Hewitt & Liang's control task: each word type gets one class, drawn from the labels' distribution.

    Every occurrence of a type shares its class, so a probe can learn the control task only
    by memorising word identity. Types are numbered in sorted order and their classes drawn
    from `generator` in that order: deterministic for a generator state.
    """
    types, inverse = torch.unique(word_types, return_inverse=True)
    freq = torch.bincount(labels).float()
    classes = torch.multinomial(freq / freq.sum(), len(types), replacement=True, generator=generator)
    return classes[inverse]


def held_out_accuracy(
    x: Float[Tensor, "sample d_model"],
    y: Int[Tensor, " sample"],
    train: Tensor,
    n_classes: int | None = None,
    weight_decay: float = 1e-2,
    trainer: Trainer = train_probe,
) -> tuple[float, float]:
    """(train accuracy, test accuracy) of a logistic probe fitted on the rows `train` selects."""
    n = _check_labels(x, y, n_classes)
    probe = fit_logistic_probe(x[train], y[train], n, weight_decay, trainer)
    test = ~train if train.dtype == torch.bool else _complement(train, x.shape[0])
    return probe.accuracy(x[train], y[train]), probe.accuracy(x[test], y[test])


def _complement(index: Tensor, n: int) -> Tensor:
    mask = torch.ones(n, dtype=torch.bool)
    mask[index] = False
    return mask


def random_label_curve(
    x: Float[Tensor, "sample d_model"],
    n_train: Sequence[int],
    n_test: int,
    generator: torch.Generator,
    weight_decay: float = 1e-4,
) -> list[dict[str, int | float]]:
    """Fit probes to coin-flip labels on n rows of real activations; score on `n_test` other rows.

    Below about 2 d_model rows a hyperplane separates any labelling (Cover's bound), so
    training accuracy is 1 while test accuracy stays at chance: the probe found a direction
    that means nothing. Rows are drawn without replacement from `x`.
    """
    check_range("n_test", n_test, 2)
    check_range("max(n_train) + n_test", max(n_train) + n_test, 2, x.shape[0])
    out = []
    for n in tqdm(n_train, desc="random-label probes", leave=False):
        check_range("n_train", n, 2)
        rows = torch.randperm(x.shape[0], generator=generator)[: n + n_test]
        y = torch.randint(0, 2, (n + n_test,), generator=generator)
        train = torch.zeros(n + n_test, dtype=torch.bool)
        train[:n] = True
        acc_train, acc_test = held_out_accuracy(x[rows], y, train, 2, weight_decay)
        out.append({"n_train": n, "n_over_d": n / x.shape[1], "train": acc_train, "test": acc_test})
    return out


def accuracy_by_layer(
    acts: Float[Tensor, "sample layer d_model"],
    y: Int[Tensor, " sample"],
    train: Tensor,
    n_classes: int | None = None,
    weight_decay: float = 1e-2,
    trainer: Trainer = train_probe,
) -> list[float]:
    """Held-out accuracy of one logistic probe per probe site (the layer axis)."""
    return [held_out_accuracy(acts[:, i], y, train, n_classes, weight_decay, trainer)[1] for i in range(acts.shape[1])]


def majority_accuracy(y: Int[Tensor, " sample"], train: Tensor) -> float:
    """Accuracy on the test rows of always answering the training rows' most frequent class."""
    test = ~train if train.dtype == torch.bool else _complement(train, y.shape[0])
    return (y[test] == torch.bincount(y[train]).argmax()).float().mean().item()
