"""Sparse autoencoders on model activations: ReLU + L1, TopK, BatchTopK and JumpReLU.

The four forms share one module. An input x (a residual-stream or MLP activation,
`d_in` wide) is encoded into `d_sae` latents and decoded back:

    pre   = (x - b_dec) @ W_enc + b_enc        the pre-encoder bias is the decoder bias
    codes = activation(pre)                     per architecture, below
    recon = codes @ W_dec + b_dec               rows of W_dec (the latents' directions) have unit norm

    relu       ReLU(pre), penalised by L1 on codes weighted by decoder norms
               (Bricken et al. 2023, "Towards Monosemanticity"; Anthropic's April 2024 update)
    topk       the k largest ReLU(pre) of each row (Gao et al. 2024, "Scaling and evaluating
               sparse autoencoders"); no sparsity coefficient, plus the AuxK loss
    batchtopk  the k * batch largest over the whole batch while training, a global
               threshold at eval (Bussmann et al. 2024, "BatchTopK Sparse Autoencoders")
    jumprelu   pre * (pre > threshold) with a learned threshold per latent, trained with
               straight-through estimators on an L0 penalty (Rajamanoharan et al. 2024,
               "Jumping Ahead")

Loss conventions (`SAEOutput`): `mse` is the squared error summed over d_in and averaged
over the batch, ||x - recon||^2 as written in Bricken et al. and Rajamanoharan et al.,
so their sparsity coefficients apply when the inputs are scaled as theirs are. The
coefficients depend on the scale of the data: `l1_coeff=5` is Anthropic's value for
inputs scaled to E||x|| = sqrt(d_in); JumpReLU's `l0_coeff` needs a sweep. TopK needs
neither, which is why it is the default.

Randomness comes from `SAEConfig.seed` (or an explicit torch.Generator): same seed,
same data order, one thread -> the same weights.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import einops
import torch
from jaxtyping import Bool, Float, Int
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.nn import functional as F
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint

from interp_helpers.core.validation import check_choice, check_range
from interp_helpers.modelzoo.models import CheckpointError
from interp_helpers.transformer_circuits.induction import per_token_loss

ARCHITECTURES: tuple[str, ...] = ("relu", "topk", "batchtopk", "jumprelu")
SPARSE_ARCHITECTURES: tuple[str, ...] = ("relu", "topk")  # those with a sparse training path (`SAE.forward`)
# relu, sparse=True: the active-entry path runs when at most this fraction of the codes is
# nonzero, else the dense one (same loss and gradients either way). Forward + backward at
# d_in 512, d_sae 4096, batch 4096, one CPU thread: dense 1.17 s at any density; sparse
# 0.45 s at density 0.05, 0.68 s at 0.1, 1.11 s at 0.2, 1.96 s at 0.3.
RELU_SPARSE_MAX_DENSITY = 0.15
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "sae.safetensors"


@dataclass(frozen=True)
class SAEConfig:
    """Shape, architecture and training settings of one SAE.

    Defaults suit the small SAEs a laptop CPU trains in minutes (d_sae of a few
    thousand, some thousands of steps), not the papers' runs:
    - `dead_tokens`: Gao et al. call a latent dead after 10M tokens without firing;
      200k is a few hundred of our steps, so AuxK and resampling act within a short run.
    - `aux_k`: None means d_in // 2 (capped at d_sae), Gao et al.'s "a power of two close
      to d_model / 2"; see `effective_aux_k`.
    - `lr`: 1e-3 is larger than the papers' 5e-5 to 7e-4, which train for 10^5+ steps.
    """

    d_in: int
    d_sae: int
    architecture: str = "topk"  # one of ARCHITECTURES
    k: int = 32  # active latents per row (topk), on average per row (batchtopk)
    aux_k: int | None = None  # dead latents used by AuxK; None -> d_in // 2
    aux_coeff: float = 1 / 32  # weight of AuxK (Gao et al.)
    dead_tokens: int = 200_000  # a latent that has not fired for this many training tokens is dead
    l1_coeff: float = 5.0  # relu only
    l0_coeff: float = 1e-3  # jumprelu only
    jumprelu_bandwidth: float = 0.001  # width of the rectangle kernel of the straight-through estimators
    jumprelu_init_threshold: float = 0.001
    threshold_beta: float = 0.99  # batchtopk: EMA decay of the eval threshold estimate
    lr: float = 1e-3
    warmup_steps: int = 0  # linear lr warmup; 0 = none
    batch_size: int = 1024  # rows per batch, for `iterate_batches` (train_sae takes whatever batches come)
    steps: int = 2000
    seed: int = 0
    resample_every: int = 0  # relu: resample dead latents every this many steps; 0 = never

    def __post_init__(self) -> None:
        check_range("SAEConfig.d_in", self.d_in, 1, 1_000_000)
        check_range("SAEConfig.d_sae", self.d_sae, 1, 10_000_000)
        check_choice("SAEConfig.architecture", self.architecture, ARCHITECTURES)
        # k only matters for the TopK family; elsewhere any positive value is harmless.
        check_range("SAEConfig.k", self.k, 1, self.d_sae if self.architecture in ("topk", "batchtopk") else None)
        if self.aux_k is not None:
            check_range("SAEConfig.aux_k", self.aux_k, 1, self.d_sae)
        check_range("SAEConfig.aux_coeff", self.aux_coeff, 0.0, 100.0)
        check_range("SAEConfig.dead_tokens", self.dead_tokens, 1)
        check_range("SAEConfig.l1_coeff", self.l1_coeff, 0.0, 1e6)
        check_range("SAEConfig.l0_coeff", self.l0_coeff, 0.0, 1e6)
        check_range("SAEConfig.jumprelu_bandwidth", self.jumprelu_bandwidth, 0.0, 1e3, low_inclusive=False)
        check_range("SAEConfig.jumprelu_init_threshold", self.jumprelu_init_threshold, 0.0, 1e3, low_inclusive=False)
        check_range("SAEConfig.threshold_beta", self.threshold_beta, 0.0, 1.0, high_inclusive=False)
        check_range("SAEConfig.lr", self.lr, 0.0, 10.0, low_inclusive=False)
        check_range("SAEConfig.warmup_steps", self.warmup_steps, 0, 10_000_000)
        check_range("SAEConfig.batch_size", self.batch_size, 1, 10_000_000)
        check_range("SAEConfig.steps", self.steps, 0, 100_000_000)
        check_range("SAEConfig.seed", self.seed, 0, 2**32 - 1)
        check_range("SAEConfig.resample_every", self.resample_every, 0, 100_000_000)

    @property
    def expansion_factor(self) -> float:
        return self.d_sae / self.d_in

    @property
    def effective_aux_k(self) -> int:
        """aux_k, or d_in // 2 (at least 1, at most d_sae) when it is None."""
        return self.aux_k if self.aux_k is not None else min(self.d_sae, max(1, self.d_in // 2))


@dataclass(frozen=True)
class SAEOutput:
    """One forward pass: reconstruction, codes, and the loss terms (scalars, in `mse` units).

    loss = mse + coeff * sparsity + aux_coeff * aux, with coeff = l1_coeff (relu),
    l0_coeff (jumprelu) or 0 (topk, batchtopk, whose sparsity is 0).
    """

    recon: Float[Tensor, "batch d_in"]
    codes: Float[Tensor, "batch d_sae"] | None  # None on the sparse TopK path
    fired: Bool[Tensor, " d_sae"]  # latents nonzero on at least one row (dead-latent bookkeeping)
    l0: Float[Tensor, ""]  # mean number of nonzero codes per row (not differentiable)
    mse: Float[Tensor, ""]
    sparsity: Float[Tensor, ""]  # relu: sum |code| x ||W_dec row||; jumprelu: L0 with a gradient; else 0
    aux: Float[Tensor, ""]  # AuxK (topk, batchtopk); 0 when no latent is dead or for other architectures
    loss: Float[Tensor, ""]


# ------------------------------------------------------------------------ JumpReLU pieces


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


# ------------------------------------------------------------------ encoder and sparse codes


class _Encode(torch.autograd.Function):
    """pre = (x - b_dec) @ W_enc + b_enc, with a backward that skips x's gradient unless x needs one.

    Plain autograd forms grad_pre @ W_enc.T ([batch, d_in], as costly as the forward matmul)
    only to sum it over the batch for b_dec; summing grad_pre first gives b_dec's gradient
    from one [d_sae] vector: -W_enc @ grad_pre.sum(0).
    """

    @staticmethod
    def forward(ctx, x, W_enc, b_enc, b_dec):
        centered = (x - b_dec).reshape(-1, W_enc.shape[0])  # any leading axes, as `@` would take
        ctx.save_for_backward(centered, W_enc)
        ctx.lead_shape = x.shape[:-1]
        return torch.addmm(b_enc, centered, W_enc).reshape(*x.shape[:-1], W_enc.shape[1])

    @staticmethod
    def backward(ctx, grad_pre):
        centered, W_enc = ctx.saved_tensors
        grad_pre = grad_pre.reshape(-1, W_enc.shape[1])
        grad_b_enc = grad_pre.sum(0)
        grad_x = (grad_pre @ W_enc.T).reshape(*ctx.lead_shape, W_enc.shape[0]) if ctx.needs_input_grad[0] else None
        grad_W_enc = centered.T @ grad_pre if ctx.needs_input_grad[1] else None
        return grad_x, grad_W_enc, grad_b_enc, -(W_enc @ grad_b_enc)


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
    b_enc's is a scatter-add and b_dec's -W_enc @ b_enc's (as in `_Encode`).
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


# ---------------------------------------------------------------------------------- model


class SAE(nn.Module):
    """A sparse autoencoder of one `cfg.architecture` (see the module docstring).

    Parameters: W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in] (unit rows),
    b_dec [d_in]; jumprelu adds log_threshold [d_sae] (threshold = exp, so it stays positive).
    Buffers: tokens_since_fired [d_sae] (dead-latent counter) and, for batchtopk, the
    eval threshold (0 until estimated, which makes eval a plain ReLU).
    """

    def __init__(self, cfg: SAEConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        if generator is None:
            generator = torch.Generator().manual_seed(cfg.seed)
        W_dec = torch.randn(cfg.d_sae, cfg.d_in, generator=generator)
        W_dec /= W_dec.norm(dim=-1, keepdim=True)
        self.W_dec = nn.Parameter(W_dec)
        # Tied init (Gao et al.): each latent starts reading the direction it writes.
        self.W_enc = nn.Parameter(W_dec.T.clone())
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in))
        if cfg.architecture == "jumprelu":
            self.log_threshold = nn.Parameter(torch.full((cfg.d_sae,), math.log(cfg.jumprelu_init_threshold)))
        if cfg.architecture == "batchtopk":
            self.register_buffer("threshold", torch.zeros(()))
        self.register_buffer("tokens_since_fired", torch.zeros(cfg.d_sae, dtype=torch.long))

    # ---------------------------------------------------------------- encode / decode

    def pre_acts(self, x: Float[Tensor, "batch d_in"]) -> Float[Tensor, "batch d_sae"]:
        """(x - b_dec) @ W_enc + b_enc."""
        return _Encode.apply(x, self.W_enc, self.b_enc, self.b_dec)

    def encode(self, x: Float[Tensor, "batch d_in"]) -> Float[Tensor, "batch d_sae"]:
        """Dense codes. BatchTopK selects over the batch in training mode, thresholds in eval mode."""
        return self._activate(self.pre_acts(x))

    def _activate(self, pre: Float[Tensor, "batch d_sae"]) -> Float[Tensor, "batch d_sae"]:
        arch = self.cfg.architecture
        if arch == "relu":
            return torch.relu(pre)
        if arch == "topk":
            values, indices = self._topk(pre)
            return torch.zeros_like(pre).scatter(-1, indices, values)
        if arch == "batchtopk":
            if not self.training:
                return torch.relu(pre) * (pre > self.threshold)
            flat = einops.rearrange(torch.relu(pre), "batch d_sae -> (batch d_sae)")
            n_keep = min(self.cfg.k * pre.shape[0], flat.shape[0])
            values, indices = flat.topk(n_keep, sorted=False)
            kept = torch.zeros_like(flat).scatter(-1, indices, values)
            return einops.rearrange(kept, "(batch d_sae) -> batch d_sae", batch=pre.shape[0])
        return _JumpReLU.apply(pre, self.log_threshold.exp(), self.cfg.jumprelu_bandwidth)

    def _topk(self, pre: Float[Tensor, "batch d_sae"]) -> tuple[Float[Tensor, "batch k"], Int[Tensor, "batch k"]]:
        # ReLU after the selection (Gao et al.): same set as before it, and never a negative code.
        values, indices = pre.topk(self.cfg.k, dim=-1, sorted=False)
        return torch.relu(values), indices

    def encode_sparse(self, x: Float[Tensor, "batch d_in"]) -> tuple[Float[Tensor, "batch k"], Int[Tensor, "batch k"]]:
        """TopK codes as (values, latent indices); values may be 0 where fewer than k pre-activations are positive."""
        if self.cfg.architecture != "topk":
            raise ValueError(f"encode_sparse needs architecture='topk', this SAE is {self.cfg.architecture!r}")
        return self._topk(self.pre_acts(x))

    def decode(self, codes: Float[Tensor, "batch d_sae"]) -> Float[Tensor, "batch d_in"]:
        return codes @ self.W_dec + self.b_dec

    def decode_sparse(
        self, values: Float[Tensor, "batch k"], indices: Int[Tensor, "batch k"]
    ) -> Float[Tensor, "batch d_in"]:
        """sum_j values[:, j] * W_dec[indices[:, j]] + b_dec, touching only the k chosen rows.

        embedding_bag gathers and sums the rows in one kernel, and its backward scatters into
        those rows only: O(batch * k * d_in) both ways, against O(batch * d_sae * d_in) for `decode`.
        """
        return self._gather_decode(values, indices) + self.b_dec

    def _gather_decode(
        self, values: Float[Tensor, "batch k"], indices: Int[Tensor, "batch k"]
    ) -> Float[Tensor, "batch d_in"]:
        return F.embedding_bag(indices, self.W_dec, per_sample_weights=values, mode="sum")

    # -------------------------------------------------------------------------- losses

    def forward(self, x: Float[Tensor, "batch d_in"], *, sparse: bool = False) -> SAEOutput:
        """Reconstruct `x` and compute the loss terms.

        sparse=True (topk, relu) skips the dense [batch, d_sae] codes where that pays: TopK
        decodes its k latents per row; ReLU runs on its nonzero codes only when at most
        RELU_SPARSE_MAX_DENSITY of them are nonzero (early in training they are about half,
        and the dense path is faster). Loss and gradients are the dense path's, up to
        float rounding; `codes` is None when a sparse path ran.
        """
        cfg = self.cfg
        if sparse and cfg.architecture not in SPARSE_ARCHITECTURES:
            raise ValueError(
                f"sparse=True needs architecture in {SPARSE_ARCHITECTURES}, this SAE is {cfg.architecture!r}"
            )
        pre = self.pre_acts(x)
        if sparse and cfg.architecture == "relu":
            active = _sparse_enough(pre.detach())
            if active is not None:
                return self._active_relu_forward(x, pre.detach(), active)
        if sparse and cfg.architecture == "topk":
            values, indices = self._topk(pre)
            recon = self.decode_sparse(values, indices)
            codes = None
            fired = torch.zeros(cfg.d_sae, dtype=torch.bool, device=x.device)
            fired[indices[values > 0]] = True
            n_active = (values > 0).sum(-1).float().mean()
        else:
            codes = self._activate(pre)
            recon = self.decode(codes)
            fired = (codes > 0).any(dim=0)
            n_active = l0(codes.detach())
        mse = (recon - x).pow(2).sum(-1).mean()
        zero = mse.new_zeros(())
        if cfg.architecture == "relu":
            # codes >= 0, so |codes| = codes; a matrix-vector product, no [batch, d_sae] temporary.
            sparsity = (codes @ self.W_dec.norm(dim=-1)).mean()
            coeff = cfg.l1_coeff
        elif cfg.architecture == "jumprelu":
            sparsity = _Step.apply(pre, self.log_threshold.exp(), cfg.jumprelu_bandwidth).sum(-1).mean()
            coeff = cfg.l0_coeff
        else:
            sparsity, coeff = zero, 0.0
        aux = self.aux_loss(x, recon, pre) if cfg.architecture in ("topk", "batchtopk") else zero
        loss = mse + coeff * sparsity + cfg.aux_coeff * aux
        return SAEOutput(recon, codes, fired, n_active.detach(), mse, sparsity, aux, loss)

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

    def aux_loss(
        self, x: Float[Tensor, "batch d_in"], recon: Float[Tensor, "batch d_in"], pre: Float[Tensor, "batch d_sae"]
    ) -> Float[Tensor, ""]:
        """AuxK (Gao et al.): the top `aux_k` dead latents reconstruct the residual x - recon.

        Only dead latents' pre-activations are eligible and the residual is detached, so
        the term moves dead latents (and b_dec) and nothing else. Gao et al. normalise it
        by the residual's variance so that it keeps its weight as the error shrinks; here it
        is that normalised MSE times the variance of x, i.e. in the units of `mse`, so that
        loss = mse + aux_coeff * aux weighs the two as their normalised-MSE sum does.
        """
        dead = self.dead_mask()
        n_aux = min(self.cfg.effective_aux_k, int(dead.sum()))
        if n_aux == 0:
            return pre.new_zeros(())
        values, indices = pre.masked_fill(~dead, -torch.inf).topk(n_aux, dim=-1, sorted=False)
        residual = (x - recon).detach()
        residual_hat = self._gather_decode(torch.relu(values), indices)
        err = (residual_hat - residual).pow(2).sum(-1).mean()
        scale = _total_variance(x) / _total_variance(residual).clamp(min=1e-12)
        return err * scale.detach()

    # ---------------------------------------------------------------- decoder geometry

    @torch.no_grad()
    def set_decoder_norm_to_unit_(self) -> None:
        self.W_dec /= self.W_dec.norm(dim=-1, keepdim=True).clamp(min=1e-12)

    @torch.no_grad()
    def remove_parallel_grad_(self) -> None:
        """Project each decoder row's gradient onto the plane orthogonal to the row.

        With rows renormalised after every step, the parallel component only changes a
        norm that is reset anyway, and it would interact with Adam's per-coordinate scaling
        (Bricken et al.).
        """
        if self.W_dec.grad is None:
            return
        W, grad = self.W_dec, self.W_dec.grad
        parallel = (grad * W).sum(-1, keepdim=True) / W.pow(2).sum(-1, keepdim=True).clamp(min=1e-12)
        grad -= parallel * W

    @torch.no_grad()
    def init_b_dec_geometric_median(self, x: Float[Tensor, "batch d_in"], iters: int = 100) -> None:
        """b_dec <- geometric median of `x`: a robust centre, so outlier rows do not drag it (Bricken et al.)."""
        self.b_dec.copy_(geometric_median(x, iters))

    # --------------------------------------------------------------- dead latents

    @torch.no_grad()
    def update_dead_counts_(self, fired: Bool[Tensor, " d_sae"], n_tokens: int) -> None:
        self.tokens_since_fired += n_tokens
        self.tokens_since_fired[fired] = 0

    def dead_mask(self) -> Bool[Tensor, " d_sae"]:
        return self.tokens_since_fired >= self.cfg.dead_tokens

    @torch.no_grad()
    def update_threshold_(self, codes: Float[Tensor, "batch d_sae"]) -> None:
        """BatchTopK: EMA of the smallest kept (positive) activation, the eval threshold (Bussmann et al.)."""
        if self.cfg.architecture != "batchtopk":
            raise ValueError(f"update_threshold_ needs architecture='batchtopk', this SAE is {self.cfg.architecture!r}")
        positive = codes[codes > 0]
        if positive.numel() == 0:
            return
        smallest = positive.min()
        beta = self.cfg.threshold_beta
        # The first estimate replaces the 0 placeholder instead of being averaged with it.
        new = smallest if self.threshold <= 0 else beta * self.threshold + (1 - beta) * smallest
        self.threshold.copy_(new)

    @torch.no_grad()
    def resample_dead_(
        self, x: Float[Tensor, "batch d_in"], generator: torch.Generator, optimizer: torch.optim.Optimizer | None = None
    ) -> int:
        """Re-initialise dead latents toward badly reconstructed inputs; return how many.

        A simplified Towards Monosemanticity procedure: draw inputs with probability
        proportional to their squared reconstruction loss, point each dead latent's decoder
        row at the normalised (input - b_dec), its encoder column the same way scaled to
        0.2 x the mean encoder norm of alive latents, b_enc 0, and zero the Adam moments of
        those entries (stale moments would push them straight back).
        """
        dead = self.dead_mask()
        n_dead = int(dead.sum())
        if n_dead == 0:
            return 0
        was_training = self.training
        self.eval()
        loss = (self(x).recon - x).pow(2).sum(-1)
        self.train(was_training)
        weights = loss.pow(2)
        if not torch.isfinite(weights.sum()) or weights.sum() <= 0:
            weights = torch.ones_like(weights)
        rows = torch.multinomial(weights, n_dead, replacement=True, generator=generator)
        direction = x[rows] - self.b_dec
        direction /= direction.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        alive = ~dead
        enc_norm = self.W_enc[:, alive].norm(dim=0).mean() if alive.any() else torch.tensor(1.0)
        index = dead.nonzero()[:, 0]
        self.W_dec[index] = direction
        self.W_enc[:, index] = direction.T * 0.2 * enc_norm
        self.b_enc[index] = 0.0
        self.tokens_since_fired[index] = 0
        if optimizer is not None:
            for param, select in ((self.W_dec, (index,)), (self.W_enc, (slice(None), index)), (self.b_enc, (index,))):
                state = optimizer.state.get(param, {})
                for key in ("exp_avg", "exp_avg_sq"):
                    if key in state:
                        state[key][select] = 0.0
        return n_dead


def _total_variance(x: Float[Tensor, "batch d_in"]) -> Float[Tensor, ""]:
    """Mean over rows of ||x - mean row||^2: the mse of always predicting the batch mean."""
    return (x - x.mean(dim=0)).pow(2).sum(-1).mean()


def geometric_median(
    points: Float[Tensor, "batch d_in"], iters: int = 100, eps: float = 1e-8
) -> Float[Tensor, " d_in"]:
    """The point minimising the sum of Euclidean distances to `points` (Weiszfeld's iterations).

    Each step is the mean weighted by 1 / distance, starting from the plain mean; `eps`
    keeps the weight of a point that the estimate lands on finite.
    """
    check_range("iters", iters, 0)
    median = points.mean(dim=0)
    for _ in range(iters):
        weights = 1.0 / (points - median).norm(dim=-1).clamp(min=eps)
        median = (weights[:, None] * points).sum(0) / weights.sum()
    return median


# --------------------------------------------------------------------------------- metrics


def l0(codes: Float[Tensor, "batch d_sae"]) -> Float[Tensor, ""]:
    """Mean number of nonzero latents per row."""
    return (codes != 0).sum(-1).float().mean()


def explained_variance(x: Float[Tensor, "batch d_in"], recon: Float[Tensor, "batch d_in"]) -> Float[Tensor, ""]:
    """1 - sum of squared errors / total variance around the batch mean (1 = perfect, 0 = the mean)."""
    return 1.0 - normalized_mse(x, recon)


def normalized_mse(x: Float[Tensor, "batch d_in"], recon: Float[Tensor, "batch d_in"]) -> Float[Tensor, ""]:
    """Squared error / that of predicting the batch mean (Gao et al.); = 1 - explained_variance."""
    return (recon - x).pow(2).sum() / (x - x.mean(dim=0)).pow(2).sum().clamp(min=1e-12)


def feature_density(codes: Float[Tensor, "batch d_sae"]) -> Float[Tensor, " d_sae"]:
    """Fraction of rows on which each latent is nonzero."""
    return (codes != 0).float().mean(dim=0)


def dead_and_dense(
    density: Float[Tensor, " d_sae"], dead_below: float = 0.0, dense_above: float = 0.1
) -> tuple[Bool[Tensor, " d_sae"], Bool[Tensor, " d_sae"]]:
    """(dead, dense) masks: density <= dead_below (default: never fired), density > dense_above."""
    check_range("dead_below", dead_below, 0.0, 1.0)
    check_range("dense_above", dense_above, 0.0, 1.0)
    return density <= dead_below, density > dense_above


@torch.no_grad()
def evaluate(
    sae: SAE, acts: Float[Tensor, "token d_in"], dense_above: float = 0.1, chunk: int = 16_384
) -> dict[str, float | Tensor]:
    """Held-out metrics of one SAE: explained_variance, normalized_mse, l0, dead/dense fractions, density.

    dead = never nonzero on `acts`; dense = nonzero on more than `dense_above` of them.
    Rows are encoded `chunk` at a time, so a [token, d_sae] code matrix is never held.
    """
    was_training = sae.training
    sae.eval()
    sq_err, fired, nonzero = 0.0, torch.zeros(sae.cfg.d_sae), 0.0
    for start in range(0, acts.shape[0], chunk):
        x = acts[start : start + chunk]
        codes = sae.encode(x)
        sq_err += (sae.decode(codes) - x).pow(2).sum().item()
        fired += (codes != 0).sum(0)
        nonzero += (codes != 0).sum().item()
    sae.train(was_training)
    density = fired / acts.shape[0]
    nmse = sq_err / (acts - acts.mean(dim=0)).pow(2).sum().clamp(min=1e-12).item()
    dead, dense = dead_and_dense(density, dense_above=dense_above)
    return {
        "explained_variance": 1.0 - nmse,
        "normalized_mse": nmse,
        "l0": nonzero / acts.shape[0],
        "dead_fraction": dead.float().mean().item(),
        "dense_fraction": dense.float().mean().item(),
        "density": density,
    }


# -------------------------------------------------------------------------------- training


def iterate_batches(data: Float[Tensor, "n d_in"], batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    """Shuffled batches of stored activations, epoch after epoch, forever (the last partial batch is dropped)."""
    check_range("batch_size", batch_size, 1, data.shape[0])
    while True:
        order = torch.randperm(data.shape[0], generator=generator)
        for start in range(0, data.shape[0] - batch_size + 1, batch_size):
            yield data[order[start : start + batch_size]]


def train_sae(
    cfg: SAEConfig,
    batches: Iterable[Tensor],
    progress: bool = True,
    log_every: int = 50,
    sae: SAE | None = None,
    forward: Callable[[SAE, Tensor], Any] | None = None,
) -> tuple[SAE, list[dict[str, int | float]]]:
    """Train an SAE on `batches` ([batch, d_in] tensors) for cfg.steps steps; return it (eval mode) and a log.

    Adam (0.9, 0.999) with optional linear warmup; b_dec starts at the first batch's
    geometric median. Each step: forward, backward, remove_parallel_grad_, Adam step,
    renormalise the decoder, update dead-latent counters (and the BatchTopK threshold),
    resample dead latents (relu, every `resample_every` steps). TopK and ReLU train with
    `sparse=True` (see `SAE.forward`). Training stops early if `batches` runs out. History
    rows, every `log_every` steps and at the last: step, loss, mse, explained_variance, l0,
    dead_fraction, all on that step's batch. Bit-identical for a seed and the same batches
    when torch uses one thread. `sae` (built with `cfg`): train it further, in place, with
    a fresh optimizer and its b_dec as it is, instead of a new SAE. `forward(sae, x)`
    replaces the loss (it returns an object with SAEOutput's recon, codes, fired, l0, mse
    and loss fields), e.g. `matryoshka.matryoshka_forward`; the rest of the loop is the same.
    """
    check_range("log_every", log_every, 1)
    batches = iter(batches)
    generator = torch.Generator().manual_seed(cfg.seed)
    if sae is not None and sae.cfg != cfg:
        raise ValueError("train_sae: cfg differs from the config `sae` was built with (sae.cfg)")
    fresh = sae is None
    sae = SAE(cfg, generator) if fresh else sae
    history: list[dict[str, int | float]] = []
    try:
        first = next(batches)
    except StopIteration:
        raise ValueError("train_sae got no batches") from None
    if fresh:
        sae.init_b_dec_geometric_median(first)
    optimizer = torch.optim.Adam(sae.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
    sparse = cfg.architecture in SPARSE_ARCHITECTURES
    bar = tqdm(
        range(cfg.steps),
        desc=f"training {cfg.architecture} SAE {cfg.d_in}->{cfg.d_sae}",
        leave=False,
        disable=not progress,
    )
    sae.train()
    x = first
    with torch.enable_grad():
        for step in bar:
            if step > 0:
                try:
                    x = next(batches)
                except StopIteration:
                    break
            if cfg.warmup_steps:
                for group in optimizer.param_groups:
                    group["lr"] = cfg.lr * min(1.0, (step + 1) / cfg.warmup_steps)
            out = sae(x, sparse=sparse) if forward is None else forward(sae, x)
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            sae.remove_parallel_grad_()
            optimizer.step()
            sae.set_decoder_norm_to_unit_()
            sae.update_dead_counts_(out.fired, x.shape[0])
            if cfg.architecture == "batchtopk":
                sae.update_threshold_(out.codes.detach())
            if cfg.architecture == "relu" and cfg.resample_every and (step + 1) % cfg.resample_every == 0:
                sae.resample_dead_(x, generator, optimizer)
            if step % log_every == 0 or step == cfg.steps - 1:
                row = _log_row(step, x, out, sae)
                history.append(row)
                bar.set_postfix(mse=f"{row['mse']:.4g}", L0=f"{row['l0']:.1f}", dead=f"{row['dead_fraction']:.2f}")
    sae.eval()
    return sae, history


def _log_row(step: int, x: Float[Tensor, "batch d_in"], out: Any, sae: SAE) -> dict[str, int | float]:
    """One history row; `out` is an SAEOutput or anything with its fields (train_sae's `forward`)."""
    return {
        "step": step,
        "loss": out.loss.item(),
        "mse": out.mse.item(),
        "explained_variance": explained_variance(x, out.recon.detach()).item(),
        "l0": out.l0.item(),
        "dead_fraction": sae.dead_mask().float().mean().item(),
    }


# ------------------------------------------------------------------- splicing into a model


def _flat_pattern(act: Tensor, d_in: int) -> str:
    """einops pattern that flattens a hook's activation to rows of d_in (hook_z's heads are concatenated)."""
    if act.shape[-1] == d_in:
        return "... d_in -> (...) d_in"
    if act.ndim == 4 and act.shape[-2] * act.shape[-1] == d_in:
        return "batch pos head_index d_head -> (batch pos) (head_index d_head)"
    raise ValueError(f"activation of shape {tuple(act.shape)} does not flatten to rows of d_in={d_in}")


def sae_splice_hook(act: Tensor, hook: HookPoint, sae: SAE) -> Tensor:
    """Return the SAE's reconstruction of `act` in its shape (a new tensor; `act` is untouched)."""
    pattern = _flat_pattern(act, sae.cfg.d_in)
    flat = einops.rearrange(act, pattern)
    return sae.decode(sae.encode(flat)).reshape(act.shape)  # encode/decode only: no loss terms to compute


def zero_ablate_hook(act: Tensor, hook: HookPoint) -> Tensor:
    return torch.zeros_like(act)


@torch.no_grad()
def ce_loss_recovered(
    model: HookedTransformer, sae: SAE, hook_name: str, tokens: Int[Tensor, "batch pos"]
) -> dict[str, float]:
    """Next-token loss (nats, mean over targets) clean, with the SAE spliced in at `hook_name`, and zero-ablated.

    recovered = (zero - spliced) / (zero - clean): 1 when splicing costs nothing, 0 when
    it is as bad as deleting the activation. The SAE runs in eval mode (BatchTopK's
    threshold) and is put back in its previous mode.
    """
    was_training = sae.training
    sae.eval()
    try:
        clean = per_token_loss(model(tokens), tokens).mean().item()
        hook = functools.partial(sae_splice_hook, sae=sae)
        spliced = per_token_loss(model.run_with_hooks(tokens, fwd_hooks=[(hook_name, hook)]), tokens).mean().item()
        zero_logits = model.run_with_hooks(tokens, fwd_hooks=[(hook_name, zero_ablate_hook)])
        zero = per_token_loss(zero_logits, tokens).mean().item()
    finally:
        sae.train(was_training)
    recovered = (zero - spliced) / (zero - clean) if zero != clean else math.nan
    return {"clean": clean, "spliced": spliced, "zero_ablated": zero, "recovered": recovered}


# ----------------------------------------------------------------------------- checkpoints


def save_sae(sae: SAE, cfg: SAEConfig, directory: str | Path) -> None:
    """Write `config.json` (the SAEConfig fields) and `sae.safetensors` (parameters and buffers)."""
    if cfg != sae.cfg:
        raise ValueError("save_sae: cfg differs from the config the SAE was built with (sae.cfg)")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().contiguous() for name, tensor in sae.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE))
    (directory / CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(cfg), indent=2, sort_keys=True))


def load_sae(directory: str | Path) -> SAE:
    """Rebuild the SAE written by `save_sae` (eval mode); its config is `sae.cfg`."""
    directory = Path(directory)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (directory / name).exists():
            raise CheckpointError(f"{directory / name}: missing")
    try:
        fields: dict[str, Any] = json.loads((directory / CONFIG_FILE).read_text())
        cfg = SAEConfig(**fields)
    except (json.JSONDecodeError, TypeError, ValueError) as err:
        raise CheckpointError(f"{directory / CONFIG_FILE}: invalid SAE config ({err})") from None
    try:
        weights = load_file(str(directory / WEIGHTS_FILE))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{directory / WEIGHTS_FILE}: cannot read weights ({err})") from None
    sae = SAE(cfg)
    expected = sae.state_dict()
    if set(weights) != set(expected):
        raise CheckpointError(
            f"{directory / WEIGHTS_FILE}: tensors {sorted(weights)} do not match the config's {sorted(expected)}"
        )
    for name, tensor in weights.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(
                f"{directory / WEIGHTS_FILE}: {name} has shape {tuple(tensor.shape)}, "
                f"config.json implies {tuple(expected[name].shape)}"
            )
    sae.load_state_dict(weights)
    sae.eval()
    return sae
