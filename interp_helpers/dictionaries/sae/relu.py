"""ReLU SAE with an L1 penalty (Bricken et al. 2023, "Towards Monosemanticity"; Anthropic's April 2024 update).

codes = ReLU(pre), and the loss adds l1_coeff x sum_j |code_j| x ||W_dec row j||: weighting
each code by its decoder norm stops the model from shrinking codes and growing decoder rows
to dodge the penalty, so the rows can train with free norms: they start at norm 0.1 (encoder
tied, W_dec.T) and are folded to unit norm, codes rescaled to match, when training ends
(`SAE.finish_training_`); see the comment in `ReLUSAE` for why. Dead latents
can be resampled toward badly reconstructed inputs every `resample_every` steps
(`SAE.resample_dead_`).

Training runs a sparse path when the codes are sparse enough: at most RELU_SPARSE_MAX_DENSITY
of the [batch, d_sae] codes nonzero. Then every product the loss and its gradients need is a
sum over the active entries only (active.py: `Active`, `ActiveCodes`, `ActiveDecode`, shared
with TopK and BatchTopK); the loss and gradients are the dense
path's up to float rounding.
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from interp_helpers.dictionaries.sae.active import SPARSE_MAX_DENSITY, Active, ActiveCodes, ActiveDecode
from interp_helpers.dictionaries.sae.base import SAE, SAEOutput

# relu, sparse=True: the active-entry path runs when at most this fraction of the codes is nonzero (active.py).
RELU_SPARSE_MAX_DENSITY = SPARSE_MAX_DENSITY


class ReLUSAE(SAE):
    """ReLU codes, L1 penalty weighted by decoder norms (free while training), optional resampling of dead latents."""

    architecture = "relu"
    has_sparse_path = True
    # Decoder rows start at norm 0.1, train with free norms and are folded to unit norm at the end; the
    # encoder starts tied at norm 0.1 too (Anthropic's April 2024 update, SAELens' standard SAE).
    # Issue #18: with unit rows renormalised after every step (and the encoder at 0.1 x W_dec.T) our ReLU died at
    # high L1: on SAELens' synthetic bench, l1_coeff 1.3 left 47% of latents dead, 1.5 and above all of them,
    # where SAELens kept all alive at 2.0. Why: Adam moves each weight by about lr a step whatever its size, so
    # a row of norm n turns by about lr x sqrt(d_in) / n radians a step. At init a random direction is worth
    # less to the reconstruction than the L1 it costs (2 |r . d| < l1_coeff on nearly every latent), so every
    # latent's gradient says "shrink": the encoder's small weights (0.1 / sqrt(d_in) each) fall to about zero
    # and b_enc below it within some 20 steps at lr 1e-3, the codes to 0 and with them every gradient. A latent
    # survives only if its decoder row turns toward the data first, and a unit row turns ten times slower than
    # a row of norm 0.1. With free rows the L1 can also shrink a row's norm instead of switching the latent
    # off. The weighted penalty, sum_j code_j x ||W_dec[j]||, makes the norm a matter of parametrisation only.
    # tests/test_sae.py::test_relu_survives_a_strong_l1 fails with unit rows.
    unit_decoder_rows = False
    decoder_init_norm = 0.1
    # SAELens' trainer clips the gradient norm to 1. With Adam a constant factor changes nothing; what clipping does
    # is damp the first steps, whose L1 gradients on every latent are the largest of the run, in Adam's second
    # moments. Issue #18, SAELens' synthetic bench at 2M tokens, seed 0, MCC at L0 16 (interpolated): 0.773 without,
    # 0.783 with (SAELens 0.785); at l1_coeff 1.7, L0 15.1 -> 14.7 and MCC 0.762 -> 0.772.
    default_grad_clip = 1.0

    def _activate(self, pre: Float[Tensor, "batch d_sae"]) -> Float[Tensor, "batch d_sae"]:
        return torch.relu(pre)

    def sparsity_loss(
        self, pre: Float[Tensor, "batch d_sae"], codes: Float[Tensor, "batch d_sae"] | None
    ) -> tuple[Float[Tensor, ""], float]:
        # codes >= 0, so |codes| = codes; a matrix-vector product, no [batch, d_sae] temporary.
        return (codes @ self.W_dec.norm(dim=-1)).mean(), self.cfg.l1_coeff

    def _sparse_forward(self, x: Float[Tensor, "batch d_in"], pre: Float[Tensor, "batch d_sae"]) -> SAEOutput | None:
        active = _sparse_enough(pre.detach())
        return None if active is None else self._active_relu_forward(x, pre.detach(), active)

    def _active_relu_forward(
        self, x: Float[Tensor, "batch d_in"], pre: Float[Tensor, "batch d_sae"], active: Active
    ) -> SAEOutput:
        """ReLU + L1 on the nonzero codes only; `pre` is detached, gradients go through `ActiveCodes`."""
        values = ActiveCodes.apply(pre, active, x, self.W_enc, self.b_enc, self.b_dec)
        recon = ActiveDecode.apply(values, self.W_dec, active) + self.b_dec
        mse = (recon - x).pow(2).sum(-1).mean()
        sparsity = torch.dot(values, self.W_dec.norm(dim=-1)[active.cols]) / x.shape[0]
        fired = torch.zeros(self.cfg.d_sae, dtype=torch.bool, device=x.device)
        fired[active.cols] = True
        n_active = mse.new_tensor(active.rows.shape[0] / x.shape[0])
        loss = mse + self.cfg.l1_coeff * sparsity
        return SAEOutput(recon, None, fired, n_active, mse, sparsity, mse.new_zeros(()), loss)

    def after_step_(
        self, x: Float[Tensor, "batch d_in"], out: Any, step: int, generator: torch.Generator, optimizer: Any
    ) -> None:
        """Resample dead latents every `resample_every` steps (if it is not 0)."""
        if self.cfg.resample_every and (step + 1) % self.cfg.resample_every == 0:
            self.resample_dead_(x, generator, optimizer)


def _sparse_enough(pre: Float[Tensor, "batch d_sae"]) -> Active | None:
    """The active entries of ReLU(pre) if at most RELU_SPARSE_MAX_DENSITY of them are nonzero, else None."""
    if pre.ndim != 2:
        return None
    positive = torch.relu(pre).sign_()  # a float mask: a bool one and its count cost several times more on a CPU
    if positive.sum().item() > RELU_SPARSE_MAX_DENSITY * positive.numel():
        return None
    return Active.of(positive)
