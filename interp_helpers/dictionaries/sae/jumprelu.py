"""JumpReLU SAE (Rajamanoharan et al. 2024, "Jumping Ahead: Improving Reconstruction Fidelity with JumpReLU
Sparse Autoencoders").

codes = pre x (pre > threshold), with a learned threshold per latent, and the loss is
mse + l0_coeff x L0. Both the jump and the L0 count are step functions with zero gradient
almost everywhere, so they train with straight-through estimators: the derivative with
respect to the threshold, a Dirac delta, is spread over a rectangle kernel of width
`jumprelu_bandwidth` (`_JumpReLU`: eq. 11 for the codes, eq. 12 for the L0 penalty).

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

from interp_helpers.dictionaries.sae.active import SPARSE_MAX_DENSITY, Active, ActiveCodes, ActiveDecode
from interp_helpers.dictionaries.sae.base import SAE, SAEConfig, SAEOutput


class _JumpReLU(torch.autograd.Function):
    """(codes, L0) = (z * (z > threshold), mean over rows of #{z > threshold}), with straight-through estimates.

    The derivatives with respect to the threshold are Dirac deltas at z = threshold (from the jump, eq. 11 of
    Rajamanoharan et al.; from the step in the L0 count, eq. 12); a rectangle kernel spreads each over a
    window |z - threshold| < bandwidth / 2, so thresholds near some pre-activations get a gradient:

        d codes / d threshold ~ -(threshold / bandwidth) K,    d H(z - threshold) / d threshold ~ -K / bandwidth

    Codes and L0 come from one function because they share z - threshold and its masks, and every
    [batch, d_sae] pass counts on a CPU. The masks are float 0/1 tensors (sign of a ReLU), never bool: on
    one thread with torch 2.13 a [1024, 1024] comparison costs 0.56 ms, torch.where on its result 3.8 ms and
    a product with it 2.4 ms, against 0.5 ms for relu_().sign_() and 0.38 ms for a product with the float
    mask. Issue #18's bench: JumpReLU went from 23 ms a step (more in these estimators than in its four
    matmuls) to about 12.
    """

    @staticmethod
    def forward(ctx, z, threshold, bandwidth):
        shifted = z - threshold
        above = torch.relu(shifted).sign_()
        window = shifted.abs_().neg_().add_(bandwidth / 2).relu_().sign_()  # in place: shifted is spent
        rows = z.numel() // z.shape[-1]
        ctx.save_for_backward(threshold, above, window)
        ctx.bandwidth, ctx.rows = bandwidth, rows
        return z * above, above.sum() / rows

    @staticmethod
    def backward(ctx, grad_codes, grad_l0):
        threshold, above, window = ctx.saved_tensors
        d = threshold.shape[0]
        through_codes = (window * grad_codes).reshape(-1, d).sum(0)
        in_window = window.reshape(-1, d).sum(0)
        grad_threshold = -(threshold * through_codes + (grad_l0 / ctx.rows) * in_window) / ctx.bandwidth
        return grad_codes * above, grad_threshold, None


class JumpReLUSAE(SAE):
    """pre x (pre > threshold), a learned threshold per latent; L0 penalty by straight-through estimators."""

    architecture = "jumprelu"
    has_sparse_path = True
    # The small encoder of the other architectures (base.py). Issue #18, SAELens' synthetic bench at 2M tokens,
    # seed 0: with the encoder at full scale (W_dec.T) MCC stayed at 0.345 (L0 6.1, l0_coeff 1), where SAELens'
    # JumpReLU reached 0.613 (L0 3.1); at 0.1, 0.601 (L0 13.5) and 0.561 (L0 18.1, l0_coeff 0.3). Unclipped, L0
    # answered l0_coeff less with it on tests/test_sae.py::test_jumprelu_l0_responds_to_l0_coeff (13.4 -> 8.1
    # between 0.01 and 0.1, against 13.4 -> 5.0 at full scale); clipped (below), 13.1 -> 3.8.
    encoder_init_norm = 0.1
    # Clipped like ReLU (relu.py says why clipping matters under Adam), as SAELens' trainer clips every
    # architecture. Issue #18, same bench, seed 0: l0_coeff 0.3 gave L0 18.1 and MCC 0.555 unclipped, L0 12.1 and
    # 0.703 clipped; at L0 16, 0.578 -> 0.648 (SAELens 0.619). The L0 term's threshold gradients are largest in the
    # first steps; unclipped, they fill Adam's second moments and the thresholds climb slowly for the rest of the
    # run (l0_coeff 1 and 3 both ended near L0 13), clipped, L0 answers l0_coeff (1: L0 3.5).
    default_grad_clip = 1.0

    def __init__(self, cfg: SAEConfig, generator: torch.Generator | None = None) -> None:
        super().__init__(cfg, generator)
        self.threshold = nn.Parameter(torch.full((cfg.d_sae,), cfg.jumprelu_init_threshold))

    def _activate(self, pre: Float[Tensor, "batch d_sae"]) -> Float[Tensor, "batch d_sae"]:
        return _JumpReLU.apply(pre, self.threshold, self.cfg.jumprelu_bandwidth)[0]

    def sparsity_loss(
        self, pre: Float[Tensor, "batch d_sae"], codes: Float[Tensor, "batch d_sae"] | None
    ) -> tuple[Float[Tensor, ""], float]:
        """The L0 estimate (its gradient reaches the threshold only) and l0_coeff."""
        return _JumpReLU.apply(pre, self.threshold, self.cfg.jumprelu_bandwidth)[1], self.cfg.l0_coeff

    def forward(self, x: Float[Tensor, "batch d_in"], *, sparse: bool = False) -> SAEOutput:
        """SAE.forward's loss, mse + l0_coeff x L0, with codes and L0 from one pass of `_JumpReLU`.

        sparse=True runs on the entries within reach of their thresholds (z > threshold - bandwidth / 2: the
        codes and the estimators' windows) when at most SPARSE_MAX_DENSITY of them are, else densely.
        """
        pre = self.pre_acts(x)
        if sparse and x.ndim == 2:
            out = self._sparse_jump_forward(x, pre.detach())
            if out is not None:
                return out
        codes, l0_estimate = _JumpReLU.apply(pre, self.threshold, self.cfg.jumprelu_bandwidth)
        recon = self.decode(codes)
        mse = (recon - x).pow(2).sum(-1).mean()
        fired = codes.detach().reshape(-1, codes.shape[-1]).amax(0) > 0  # codes >= 0 (thresholds are kept >= 0)
        loss = mse + self.cfg.l0_coeff * l0_estimate
        return SAEOutput(recon, codes, fired, l0_estimate.detach(), mse, l0_estimate, mse.new_zeros(()), loss)

    def _sparse_jump_forward(
        self, x: Float[Tensor, "batch d_in"], pre: Float[Tensor, "batch d_sae"]
    ) -> SAEOutput | None:
        """The dense forward's loss and gradients from the entries that can have any (active.py), or None.

        An entry below threshold - bandwidth / 2 is off and outside both windows, so it adds nothing to the
        codes, the L0 count or any gradient. The rest go through `_JumpReLU` one by one, each with its
        latent's threshold gathered (the gather's backward sums the threshold's gradient per latent).
        """
        bandwidth = self.cfg.jumprelu_bandwidth
        reach = (pre - (self.threshold.detach() - bandwidth / 2)).relu_().sign_()
        if reach.sum().item() > SPARSE_MAX_DENSITY * reach.numel():
            return None
        active = Active.of(reach)
        z = ActiveCodes.apply(pre, active, x, self.W_enc, self.b_enc, self.b_dec)
        codes, l0_sum = _JumpReLU.apply(z, self.threshold[active.cols], bandwidth)
        l0_estimate = l0_sum / x.shape[0]
        recon = ActiveDecode.apply(codes, self.W_dec, active) + self.b_dec
        mse = (recon - x).pow(2).sum(-1).mean()
        loss = mse + self.cfg.l0_coeff * l0_estimate
        fired = active.fired(codes)
        return SAEOutput(recon, None, fired, l0_estimate.detach(), mse, l0_estimate, mse.new_zeros(()), loss)

    @torch.no_grad()
    def after_step_(
        self, x: Float[Tensor, "batch d_in"], out: Any, step: int, generator: torch.Generator, optimizer: Any
    ) -> None:
        """Project thresholds back to >= 0: below 0 the gate would pass negative pre-activations.

        A projection, not a clamp in the graph, which would zero the gradient of a threshold at 0 for good.
        """
        self.threshold.clamp_(min=0.0)
