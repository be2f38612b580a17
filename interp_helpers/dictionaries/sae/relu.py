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
sum over the active entries only (`_Active`), done with embedding_bag and a sampled matmul
on the CSR pattern (`_ActiveCodes`, `_ActiveDecode`); the loss and gradients are the dense
path's up to float rounding.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from torch.nn import functional as F

from interp_helpers.dictionaries.sae.base import SAE, SAEOutput

# relu, sparse=True: the active-entry path runs when at most this fraction of the codes is
# nonzero, else the dense one (same loss and gradients either way). Forward + backward at
# d_in 512, d_sae 4096, batch 4096, one CPU thread: dense 1.17 s at any density; sparse
# 0.45 s at density 0.05, 0.68 s at 0.1, 1.11 s at 0.2, 1.96 s at 0.3.
RELU_SPARSE_MAX_DENSITY = 0.15


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
        self, x: Float[Tensor, "batch d_in"], pre: Float[Tensor, "batch d_sae"], active: _Active
    ) -> SAEOutput:
        """ReLU + L1 on the nonzero codes only; `pre` is detached, gradients go through `_ActiveCodes`."""
        values = _ActiveCodes.apply(pre, active, x, self.W_enc, self.b_enc, self.b_dec)
        recon = _ActiveDecode.apply(values, self.W_dec, active) + self.b_dec
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


# ------------------------------------------------------------------ the sparse training path


@dataclass(frozen=True)
class _Active:
    """The nonzero entries of a [batch, d_sae] code matrix, in row-major order, plus a column-major view.

    Everything the sparse ReLU path multiplies is a sum over these entries: by row (decode,
    x's gradient), by column (the weight gradients), or a dot product per entry (the codes'
    gradient). embedding_bag does the first two without a [nnz, d_in] temporary; the third
    is a sampled matmul on the CSR pattern.
    """

    rows: Int[Tensor, " nnz"]
    cols: Int[Tensor, " nnz"]
    row_offsets: Int[Tensor, " batch"]  # where each row's entries start
    col_order: Int[Tensor, " nnz"]  # permutation to column-major order
    col_offsets: Int[Tensor, " d_sae"]
    shape: tuple[int, int]

    @classmethod
    def of(cls, mask: Bool[Tensor, "batch d_sae"]) -> _Active:
        rows, cols = mask.nonzero().unbind(-1)
        col_order = torch.argsort(cols, stable=True)
        return cls(
            rows,
            cols,
            _starts(torch.bincount(rows, minlength=mask.shape[0])),
            col_order,
            _starts(torch.bincount(cols, minlength=mask.shape[1])),
            tuple(mask.shape),
        )

    def gather(self, dense: Float[Tensor, "batch d_sae"]) -> Float[Tensor, " nnz"]:
        return dense.reshape(-1)[self.rows * self.shape[1] + self.cols]

    def row_sum(self, values: Float[Tensor, " nnz"], table: Float[Tensor, "d_sae d"]) -> Float[Tensor, "batch d"]:
        """out[b] = sum over b's entries (b, j) of values * table[j]: the sparse codes @ table."""
        return F.embedding_bag(self.cols, table, self.row_offsets, per_sample_weights=values, mode="sum")

    def col_sum(self, values: Float[Tensor, " nnz"], table: Float[Tensor, "batch d"]) -> Float[Tensor, "d_sae d"]:
        """out[j] = sum over j's entries (b, j) of values * table[b]: the sparse codes' transpose @ table."""
        return F.embedding_bag(
            self.rows[self.col_order], table, self.col_offsets, per_sample_weights=values[self.col_order], mode="sum"
        )

    def sampled_dot(self, a: Float[Tensor, "batch d"], b: Float[Tensor, "d_sae d"]) -> Float[Tensor, " nnz"]:
        """out[i] = a[rows[i]] . b[cols[i]]: (a @ b.T) at the entries only."""
        crow = F.pad(self.row_offsets, (0, 1), value=self.rows.shape[0])
        with warnings.catch_warnings():  # "CSR support is in beta": sampled_addmm is what we use, and tested
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)
            pattern = torch.sparse_csr_tensor(
                crow, self.cols, a.new_zeros(self.rows.shape[0]), self.shape, check_invariants=False
            )  # built from nonzero(): valid
            return torch.sparse.sampled_addmm(pattern, a, b.T, beta=0.0).values()


def _starts(counts: Int[Tensor, " n"]) -> Int[Tensor, " n"]:
    """Offsets of consecutive runs of these lengths: 0, c0, c0 + c1, ..."""
    return F.pad(counts.cumsum(0)[:-1], (1, 0))


class _ActiveCodes(torch.autograd.Function):
    """ReLU codes at the active entries of pre; the backward touches those entries only.

    Off the active entries ReLU's gradient is zero, so W_enc's gradient centered.T @ grad_pre
    is a column sum over nnz entries instead of a [d_in, batch] @ [batch, d_sae] matmul;
    b_enc's is a scatter-add and b_dec's -W_enc @ b_enc's (as in `base._Encode`).
    """

    @staticmethod
    def forward(ctx, pre, active, x, W_enc, b_enc, b_dec):
        ctx.active = active
        ctx.save_for_backward(x, W_enc, b_dec)
        return active.gather(pre)

    @staticmethod
    def backward(ctx, grad_values):
        x, W_enc, b_dec = ctx.saved_tensors
        active = ctx.active
        grad_b_enc = grad_values.new_zeros(W_enc.shape[1]).index_add_(0, active.cols, grad_values)
        grad_W_enc = active.col_sum(grad_values, x - b_dec).T
        grad_x = active.row_sum(grad_values, W_enc.T.contiguous()) if ctx.needs_input_grad[2] else None
        return None, None, grad_x, grad_W_enc, grad_b_enc, -(W_enc @ grad_b_enc)


class _ActiveDecode(torch.autograd.Function):
    """Sparse codes @ W_dec, given as values at `active`; the backward touches the active entries only."""

    @staticmethod
    def forward(ctx, values, W_dec, active):
        ctx.active = active
        ctx.save_for_backward(values, W_dec)
        return active.row_sum(values, W_dec)

    @staticmethod
    def backward(ctx, grad_out):
        values, W_dec = ctx.saved_tensors
        grad_values = ctx.active.sampled_dot(grad_out, W_dec) if ctx.needs_input_grad[0] else None
        grad_W_dec = ctx.active.col_sum(values, grad_out) if ctx.needs_input_grad[1] else None
        return grad_values, grad_W_dec, None


def _sparse_enough(pre: Float[Tensor, "batch d_sae"]) -> _Active | None:
    """The active entries of ReLU(pre) if at most RELU_SPARSE_MAX_DENSITY of them are nonzero, else None."""
    mask = pre > 0
    if pre.ndim != 2 or torch.count_nonzero(mask).item() > RELU_SPARSE_MAX_DENSITY * mask.numel():
        return None
    return _Active.of(mask)
