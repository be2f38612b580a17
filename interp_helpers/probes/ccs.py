"""Contrast-consistent search (Burns et al. 2022, "Discovering Latent Knowledge in Language
Models Without Supervision") and why it finds what is salient, not what is true (Farquhar et
al. 2023, "Challenges with unsupervised LLM knowledge discovery").

CCS takes contrast pairs (x+, x-): two texts of which exactly one is true (here: "A raven is a
bird." and "A raven is a fish.", in random order). Each side is normalised on its own (centred
and scaled per dimension), which removes whatever is constant within a side. A probe
p(x) = sigmoid(w . x + b) is then trained without labels to be

    consistent:  p(x+) = 1 - p(x-)          confident:  min(p(x+), p(x-)) = 0

and the pair's credence is (p(x+) + 1 - p(x-)) / 2. Nothing in the loss says "truth": any
feature that flips across every pair satisfies it. Farquhar et al. append one of two random
words to each side (banana / shed, swapped at random): the word flips across the pair just
as truth does, is far more salient, and CCS finds it instead.

CCS's sign is arbitrary (a probe and its negation have the same loss), so its accuracy is
max(acc, 1 - acc). In high dimensions with few pairs, CCS can fit the training pairs with
meaningless directions (the random-label problem of `linear.py`), so activations are
projected on their top principal components first (`n_dims`), as replications commonly do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp_helpers.core.validation import check_range


def ccs_loss(p_pos: Float[Tensor, " pair"], p_neg: Float[Tensor, " pair"]) -> Tensor:
    """Burns et al.'s loss: mean (p+ - (1 - p-))^2 + mean min(p+, p-)^2."""
    consistency = (p_pos - (1 - p_neg)).pow(2).mean()
    confidence = torch.minimum(p_pos, p_neg).pow(2).mean()
    return consistency + confidence


@dataclass(frozen=True)
class CCSProbe:
    """Normalisation of each side, a projection, and the probe found on it."""

    mean_pos: Float[Tensor, " d_model"]
    scale_pos: Float[Tensor, " d_model"]
    mean_neg: Float[Tensor, " d_model"]
    scale_neg: Float[Tensor, " d_model"]
    projection: Float[Tensor, "d_model n_dims"]
    weight: Float[Tensor, " n_dims"]
    bias: float
    loss: float

    def probabilities(
        self, pos: Float[Tensor, "pair d_model"], neg: Float[Tensor, "pair d_model"]
    ) -> tuple[Float[Tensor, " pair"], Float[Tensor, " pair"]]:
        z_pos = ((pos - self.mean_pos) / self.scale_pos) @ self.projection
        z_neg = ((neg - self.mean_neg) / self.scale_neg) @ self.projection
        return torch.sigmoid(z_pos @ self.weight + self.bias), torch.sigmoid(z_neg @ self.weight + self.bias)

    def credence(
        self, pos: Float[Tensor, "pair d_model"], neg: Float[Tensor, "pair d_model"]
    ) -> Float[Tensor, " pair"]:
        """(p(x+) + 1 - p(x-)) / 2: the probe's belief that x+ is the true side."""
        p_pos, p_neg = self.probabilities(pos, neg)
        return (p_pos + 1 - p_neg) / 2

    def accuracy(
        self, pos: Float[Tensor, "pair d_model"], neg: Float[Tensor, "pair d_model"], y: Int[Tensor, " pair"]
    ) -> float:
        """Agreement of credence > 1/2 with y, up to CCS's arbitrary sign: max(acc, 1 - acc)."""
        acc = ((self.credence(pos, neg) > 0.5).long() == y).float().mean().item()
        return max(acc, 1 - acc)


def fit_ccs(
    pos: Float[Tensor, "pair d_model"],
    neg: Float[Tensor, "pair d_model"],
    generator: torch.Generator,
    n_dims: int = 16,
    restarts: int = 5,
    steps: int = 300,
    lr: float = 1e-2,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = ccs_loss,
) -> CCSProbe:
    """CCS from `restarts` random starts (Adam, full batch); the lowest final loss wins, as in Burns et al."""
    if pos.shape != neg.shape or pos.ndim != 2:
        raise ValueError(
            f"fit_ccs: pos and neg must both be [pair, d_model]; got {tuple(pos.shape)}, {tuple(neg.shape)}"
        )
    check_range("n_dims", n_dims, 1, min(pos.shape[1], 2 * pos.shape[0]))
    check_range("restarts", restarts, 1)
    check_range("steps", steps, 1)
    pos, neg = pos.float(), neg.float()
    mean_pos, scale_pos = pos.mean(0), pos.std(0).clamp(min=1e-6)
    mean_neg, scale_neg = neg.mean(0), neg.std(0).clamp(min=1e-6)
    z_pos, z_neg = (pos - mean_pos) / scale_pos, (neg - mean_neg) / scale_neg
    # Principal directions of both sides together (already centred): an SVD, no randomness.
    _, _, vh = torch.linalg.svd(torch.cat([z_pos, z_neg]), full_matrices=False)
    projection = vh[:n_dims].T
    z_pos, z_neg = z_pos @ projection, z_neg @ projection
    best: tuple[float, Tensor, float] | None = None
    for _ in range(restarts):
        weight = (torch.randn(n_dims, generator=generator) / n_dims**0.5).requires_grad_()
        bias = torch.zeros(1, requires_grad=True)
        opt = torch.optim.Adam([weight, bias], lr=lr)
        with torch.enable_grad():
            for _ in range(steps):
                loss = loss_fn(torch.sigmoid(z_pos @ weight + bias), torch.sigmoid(z_neg @ weight + bias))
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            final = float(loss_fn(torch.sigmoid(z_pos @ weight + bias), torch.sigmoid(z_neg @ weight + bias)))
        if best is None or final < best[0]:
            best = (final, weight.detach().clone(), bias.detach().item())
    assert best is not None
    return CCSProbe(mean_pos, scale_pos, mean_neg, scale_neg, projection, best[1], best[2], best[0])
