"""BatchTopK SAE (Bussmann et al. 2024, "BatchTopK Sparse Autoencoders").

While training, the k x batch largest ReLU(pre) over the whole batch are kept, so rows share
a budget: on average k latents per row, more on rich rows and fewer on plain ones. That
selection depends on the other rows, so at eval each code is thresholded instead, against
one global threshold: an exponential moving average (decay `threshold_beta`) of the smallest
kept activation of each training batch (`update_threshold_`, called by the trainer after
each step), and, when training ends, the smallest kept activation over the last training
batches (train.FINISH_ROWS rows) under the final weights (`finish_training_`). Loss:
mse + aux_coeff x AuxK, as for TopK.

Why the last step (issue #18): the smallest kept activation falls while the SAE learns (on
SAELens' synthetic bench, k 16: 0.80 at step 0, 0.42 from about step 100 on), and an average
over past batches lags behind it. After 293 steps the EMA still stood at 0.454, and eval kept
11.9 latents per row instead of 16. SAELens' EMA (rate 0.01 from 0) errs the other way by
about 0.99^steps of its value. Rows differ in how many latents they take, so one batch of a
hundred rows still leaves the eval L0 some 10% off k either way; eight thousand rows pin it
down. The EMA stays for evaluation during training.

Training runs a sparse path (active.py): the k x batch largest ReLU(pre) are found without
sorting the whole batch (`batch_topk_entries`), then gathered and decoded as TopK's are.
"""

from __future__ import annotations

from typing import Any

import einops
import torch
from jaxtyping import Float
from torch import Tensor

from interp_helpers.dictionaries.sae.active import Active, ActiveCodes
from interp_helpers.dictionaries.sae.base import SAE, SAEConfig

GROUP = 8  # `batch_topk_entries`' group size


def batch_topk_entries(pre: Float[Tensor, "batch d_sae"], n_keep: int) -> Active:
    """The n_keep largest entries of ReLU(pre) over the whole batch, as active entries (row-major).

    As in topk.row_topk: the n_keep largest entries lie in the n_keep groups with the largest maxima (an entry
    outside them has n_keep larger group maxima above it), so topk over those groups' members finds them without
    sorting the batch, and without a bool mask or nonzero() over it (each costs a few ms on a CPU). At batch
    1,024, d_sae 1,024, k 16 on one thread this whole selection takes about as long as torch.topk over the
    flattened batch alone (10 ms), and the mask and nonzero() it would still need are saved. With ties at the
    smallest kept value, which of the tied entries are kept may differ from topk's choice over the flat batch.
    """
    flat = torch.relu(pre).reshape(-1)
    n_keep = min(n_keep, flat.numel())
    n_groups = flat.numel() // GROUP
    if flat.numel() % GROUP == 0 and n_groups >= 4 * n_keep:
        groups = flat.view(GROUP, n_groups).amax(0).topk(n_keep, sorted=False).indices  # group g: {g + n_groups*i}
        members = (groups[:, None] + n_groups * torch.arange(GROUP, device=pre.device)).reshape(-1)
        positions = members[flat[members].topk(n_keep, sorted=False).indices]
    else:
        positions = flat.topk(n_keep, sorted=False).indices
    positions = positions.sort().values
    return Active.from_entries(positions // pre.shape[1], positions % pre.shape[1], tuple(pre.shape))


class BatchTopKSAE(SAE):
    """k x batch largest codes over the batch in training, a learned global threshold at eval; AuxK."""

    architecture = "batchtopk"
    has_sparse_path = True
    uses_auxk = True

    def __init__(self, cfg: SAEConfig, generator: torch.Generator | None = None) -> None:
        super().__init__(cfg, generator)
        self.register_buffer("threshold", torch.zeros(()))  # 0 until estimated: eval is then a plain ReLU

    def _activate(self, pre: Float[Tensor, "batch d_sae"]) -> Float[Tensor, "batch d_sae"]:
        if not self.training:
            return torch.relu(pre) * (pre > self.threshold)
        flat = einops.rearrange(torch.relu(pre), "batch d_sae -> (batch d_sae)")
        n_keep = min(self.cfg.k * pre.shape[0], flat.shape[0])
        values, indices = flat.topk(n_keep, sorted=False)
        kept = torch.zeros_like(flat).scatter(-1, indices, values)
        return einops.rearrange(kept, "(batch d_sae) -> batch d_sae", batch=pre.shape[0])

    def sparse_select(
        self, x: Float[Tensor, "batch d_in"], pre: Float[Tensor, "batch d_sae"]
    ) -> tuple[Active, Float[Tensor, " nnz"]] | None:
        """The entries at or above the batch's threshold (training mode; eval thresholds densely)."""
        if not self.training or pre.ndim != 2:
            return None
        active = batch_topk_entries(pre, self.cfg.k * pre.shape[0])
        # ReLU as in the dense path: with fewer positive entries than kept ones, some kept codes are 0.
        return active, torch.relu(ActiveCodes.apply(pre, active, x, self.W_enc, self.b_enc, self.b_dec))

    @torch.no_grad()
    def update_threshold_(
        self, codes: Float[Tensor, "batch d_sae"] | None, smallest: Float[Tensor, ""] | None = None
    ) -> None:
        """EMA of the smallest kept (positive) activation, the eval threshold (Bussmann et al.).

        From the codes, or `smallest` itself where a sparse path found it (its codes are None).
        """
        if smallest is None:
            positive = codes[codes > 0] if codes is not None else codes
            if positive is None or positive.numel() == 0:
                return
            smallest = positive.min()
        beta = self.cfg.threshold_beta
        # The first estimate replaces the 0 placeholder instead of being averaged with it.
        new = smallest if self.threshold <= 0 else beta * self.threshold + (1 - beta) * smallest
        self.threshold.copy_(new)

    def after_step_(
        self, x: Float[Tensor, "batch d_in"], out: Any, step: int, generator: torch.Generator, optimizer: Any
    ) -> None:
        """Update the eval threshold from this step's (training-mode) codes."""
        codes = None if out.codes is None else out.codes.detach()
        self.update_threshold_(codes, getattr(out, "smallest_code", None))

    @torch.no_grad()
    def finish_training_(self, x: Float[Tensor, "batch d_in"]) -> None:
        """Set the eval threshold to the smallest of the k x rows largest codes of `x` (the last training rows).

        BatchTopK's own selection over all of `x` at once, under the final weights: on rows like these, eval keeps
        k per row on average.
        """
        super().finish_training_(x)
        was_training = self.training
        self.train()
        codes = self._activate(self.pre_acts(x))
        self.train(was_training)
        positive = codes[codes > 0]
        if positive.numel():
            self.threshold.copy_(positive.min())
