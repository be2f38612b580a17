"""JumpReLU SAE (Rajamanoharan et al. 2024, "Jumping Ahead: Improving Reconstruction Fidelity with JumpReLU
Sparse Autoencoders").

codes = pre x (pre > threshold), with a learned threshold per latent, and the loss is
mse + l0_coeff x L0. Both the jump and the L0 count are step functions with zero gradient
almost everywhere, so they train with straight-through estimators: the derivative with
respect to the threshold, a Dirac delta, is spread over a rectangle kernel of width
`jumprelu_bandwidth` (`_JumpReLU` for the codes, eq. 11; `_Step` for the L0 penalty, eq. 12).

The threshold is a parameter itself, projected back to >= 0 after each step, not its log as
in Rajamanoharan et al. Adam moves a parameter by about lr per step whatever the gradient's
size, so a log-threshold moves by a factor of at most e^(lr x steps): from 0.001, 1,000
steps at lr 1e-3 reach 0.003 at best, while our pre-activations are O(1). Thresholds then
never reached the pre-activations, L0 was whatever the encoder gave, and, as the L0 term
dominated the threshold's (tiny) gradient and Adam ignores a gradient's scale, l0_coeff 0.01
and 0.03 trained bit-identical SAEs (issue #18's bench: L0 294 for both). SAELens made the
same change (its issue #494). Defaults follow SAELens: threshold 0.01, bandwidth 0.05. The
old bandwidth, 0.001, trains too once the threshold is direct, but a window that narrow
catches few pre-activations and its estimates come in rare spikes: on the unit test's data
L0 fell from 15 to 9 between l0_coeff 0.01 and 0.1, against 13 to 5 with 0.05.
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn

from interp_helpers.dictionaries.sae.base import SAE, SAEConfig


def _rectangle(x: Tensor) -> Tensor:
    return ((x > -0.5) & (x < 0.5)).to(x.dtype)


class _JumpReLU(torch.autograd.Function):
    """z * (z > threshold); d/dthreshold by a rectangle-kernel estimate (Rajamanoharan et al. eq. 11).

    The true derivative with respect to the threshold is a Dirac delta at z = threshold;
    the kernel spreads it over a window of width `bandwidth`, so thresholds near some
    pre-activations get a gradient from the reconstruction loss.
    """

    @staticmethod
    def forward(ctx, z, threshold, bandwidth):
        ctx.save_for_backward(z, threshold)
        ctx.bandwidth = bandwidth
        return z * (z > threshold)

    @staticmethod
    def backward(ctx, grad_out):
        z, threshold = ctx.saved_tensors
        grad_z = (z > threshold) * grad_out
        grad_threshold = -(threshold / ctx.bandwidth) * _rectangle((z - threshold) / ctx.bandwidth) * grad_out
        return grad_z, grad_threshold.sum(0), None


class _Step(torch.autograd.Function):
    """Heaviside H(z - threshold) for the L0 penalty; gradient to the threshold only (eq. 12)."""

    @staticmethod
    def forward(ctx, z, threshold, bandwidth):
        ctx.save_for_backward(z, threshold)
        ctx.bandwidth = bandwidth
        return (z > threshold).to(z.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        z, threshold = ctx.saved_tensors
        grad_threshold = -(1.0 / ctx.bandwidth) * _rectangle((z - threshold) / ctx.bandwidth) * grad_out
        return torch.zeros_like(z), grad_threshold.sum(0), None


class JumpReLUSAE(SAE):
    """pre x (pre > threshold), a learned threshold per latent; L0 penalty by straight-through estimators."""

    architecture = "jumprelu"
    # Not the small encoder of the other architectures (base.py): with it (and a 3x decoder lr) L0 answered
    # l0_coeff less (tests/test_sae.py::test_jumprelu_l0_responds_to_l0_coeff: 12.2 -> 8.1 between 0.01 and 0.1,
    # against 13.4 -> 5.0), and on SAELens' bench neither init reaches L0 16 in 300k tokens (Adam moves a
    # threshold by at most lr a step; issue #18), so there was no like-for-like gain to weigh against that.
    encoder_init_norm = 1.0

    def __init__(self, cfg: SAEConfig, generator: torch.Generator | None = None) -> None:
        super().__init__(cfg, generator)
        self.threshold = nn.Parameter(torch.full((cfg.d_sae,), cfg.jumprelu_init_threshold))

    def _activate(self, pre: Float[Tensor, "batch d_sae"]) -> Float[Tensor, "batch d_sae"]:
        return _JumpReLU.apply(pre, self.threshold, self.cfg.jumprelu_bandwidth)

    def sparsity_loss(
        self, pre: Float[Tensor, "batch d_sae"], codes: Float[Tensor, "batch d_sae"] | None
    ) -> tuple[Float[Tensor, ""], float]:
        l0_estimate = _Step.apply(pre, self.threshold, self.cfg.jumprelu_bandwidth).sum(-1).mean()
        return l0_estimate, self.cfg.l0_coeff

    @torch.no_grad()
    def after_step_(
        self, x: Float[Tensor, "batch d_in"], out: Any, step: int, generator: torch.Generator, optimizer: Any
    ) -> None:
        """Project thresholds back to >= 0: below 0 the gate would pass negative pre-activations.

        A projection, not a clamp in the graph, which would zero the gradient of a threshold at 0 for good.
        """
        self.threshold.clamp_(min=0.0)
