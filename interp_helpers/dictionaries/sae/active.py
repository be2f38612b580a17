"""Training on the active entries only: the sparse paths of every SAE architecture, Matryoshka included.

Once the codes are sparse, every product an SAE's loss and gradients need is a sum over the
nonzero (row, latent) entries: decoding sums decoder rows by row, the weight gradients sum
inputs or output gradients by latent, and the codes' gradient is one dot product per entry.
A dense [batch, d_sae] path pays for every entry instead. Here those sums run over the
entries (`Active`) with embedding_bag and a sampled matmul on the CSR pattern:

    pre    = (x - b_dec) @ W_enc + b_enc     computed once, without autograd
    values = pre at the entries              `ActiveCodes`: its backward is a sum by latent
    recon  = sum of values x W_dec rows      `ActiveDecode`: a bag sum by row (or by (row, prefix))

Which entries are active is the architecture's: ReLU's positive codes, TopK's k per row,
BatchTopK's k x batch over the batch, JumpReLU's codes and the entries in its estimators'
windows. A selection is piecewise constant in pre, so its
gradient is the identity on the kept entries and zero elsewhere, which is what these
functions compute. Loss and gradients equal the dense path's up to float rounding
(tests/test_sae.py). Matryoshka prefixes are bags by (row, prefix band) (`Active.banded`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from torch.nn import functional as F

# ReLU and JumpReLU (whose active entries vary) run their sparse paths when at most this fraction of the
# [batch, d_sae] entries is active, else the dense one (same loss and gradients either way). Forward + backward
# at d_in 512, d_sae 4096, batch 4096, one CPU thread: dense 1.17 s at any density; sparse 0.45 s at density
# 0.05, 0.68 s at 0.1, 1.11 s at 0.2, 1.96 s at 0.3.
SPARSE_MAX_DENSITY = 0.15


@dataclass(frozen=True)
class Active:
    """The nonzero entries of a [batch, d_sae] code matrix, in row-major order, plus a column-major view.

    Everything a sparse path multiplies is a sum over these entries: by row (decode, x's
    gradient), by column (the weight gradients), or a dot product per entry (the codes'
    gradient). embedding_bag does the first two without a [nnz, d_in] temporary; the third
    is a sampled matmul on the CSR pattern. `rows` may index bags finer than the batch rows
    (`banded`); `shape` is (bags, d_sae) then.
    """

    rows: Int[Tensor, " nnz"]
    cols: Int[Tensor, " nnz"]
    row_offsets: Int[Tensor, " batch"]  # where each row's entries start
    col_order: Int[Tensor, " nnz"]  # permutation to column-major order
    col_offsets: Int[Tensor, " d_sae"]
    shape: tuple[int, int]

    @classmethod
    def of(cls, mask: Bool[Tensor, "batch d_sae"] | Float[Tensor, "batch d_sae"]) -> Active:
        """The nonzero entries of a mask, bool or float (a float 0/1 mask is cheaper to build on a CPU)."""
        rows, cols = mask.nonzero().unbind(-1)
        return cls.from_entries(rows, cols, tuple(mask.shape))

    @classmethod
    def from_entries(cls, rows: Int[Tensor, " nnz"], cols: Int[Tensor, " nnz"], shape: tuple[int, int]) -> Active:
        """Entries given in row-major order (rows nondecreasing, columns increasing within a row)."""
        return cls(
            rows,
            cols,
            _starts(torch.bincount(rows, minlength=shape[0])),
            torch.argsort(cols, stable=True),
            _starts(torch.bincount(cols, minlength=shape[1])),
            shape,
        )

    @classmethod
    def of_topk(cls, indices: Int[Tensor, "batch k"], d_sae: int) -> Active:
        """k distinct latents per row (TopK, AuxK), sorted within each row here."""
        batch, k = indices.shape
        rows = torch.arange(batch, device=indices.device).repeat_interleave(k)
        return cls.from_entries(rows, indices.sort(dim=-1).values.reshape(-1), (batch, d_sae))

    def banded(self, band_of_latent: Int[Tensor, " d_sae"], n_bands: int) -> Active:
        """The same entries, with each row split into bags by the band of its latent (row-major order kept).

        For Matryoshka prefixes: with bands [0, m_1), [m_1, m_2), ... a bag sums one row's latents of one band,
        and a cumulative sum over bands gives every prefix's reconstruction.
        """
        rows = self.rows * n_bands + band_of_latent[self.cols]
        bags = self.shape[0] * n_bands
        return replace(
            self, rows=rows, row_offsets=_starts(torch.bincount(rows, minlength=bags)), shape=(bags, self.shape[1])
        )

    @property
    def nnz(self) -> int:
        return self.rows.shape[0]

    def fired(self, values: Float[Tensor, " nnz"]) -> Bool[Tensor, " d_sae"]:
        """Latents with a nonzero value at some entry."""
        return torch.bincount(self.cols[values.detach() != 0], minlength=self.shape[1]) > 0

    def kept(self, values: Float[Tensor, " nnz"]) -> tuple[Float[Tensor, ""], Float[Tensor, ""] | None]:
        """(mean nonzero values per batch row, the smallest positive value or None): L0 and BatchTopK's threshold."""
        positive = values.detach()[values.detach() > 0]
        n_active = positive.new_tensor(positive.numel() / self.row_offsets.shape[0])
        return n_active, positive.min() if positive.numel() else None

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
        crow = F.pad(self.row_offsets, (0, 1), value=self.nnz)
        with warnings.catch_warnings():  # "CSR support is in beta": sampled_addmm is what we use, and tested
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)
            pattern = torch.sparse_csr_tensor(
                crow, self.cols, a.new_zeros(self.nnz), self.shape, check_invariants=False
            )  # row-major with sorted columns: valid
            return torch.sparse.sampled_addmm(pattern, a, b.T, beta=0.0).values()


def _starts(counts: Int[Tensor, " n"]) -> Int[Tensor, " n"]:
    """Offsets of consecutive runs of these lengths: 0, c0, c0 + c1, ..."""
    return F.pad(counts.cumsum(0)[:-1], (1, 0))


class ActiveCodes(torch.autograd.Function):
    """pre at the active entries (pre computed without autograd); the backward touches those entries only.

    Off the active entries the selection's gradient is zero, so W_enc's gradient centered.T @ grad_pre
    is a column sum over nnz entries instead of a [d_in, batch] @ [batch, d_sae] matmul;
    b_enc's is a scatter-add and b_dec's -W_enc @ b_enc's (as in `base._Encode`).
    Call as ActiveCodes.apply(pre, active, x, W_enc, b_enc, b_dec).
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


class ActiveDecode(torch.autograd.Function):
    """Sparse codes @ W_dec, given as values at `active` (one output row per bag); sparse backward.

    Call as ActiveDecode.apply(values, W_dec, active).
    """

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
