"""BatchTopK SAE (Bussmann et al. 2024, "BatchTopK Sparse Autoencoders").

While training, the k x batch largest ReLU(pre) over the whole batch are kept, so rows share
a budget: on average k latents per row, more on rich rows and fewer on plain ones. That
selection depends on the other rows, so at eval each code is thresholded instead, against
one global threshold: an exponential moving average (decay `threshold_beta`) of the smallest
kept activation of each training batch (`update_threshold_`, called by the trainer after
each step). Loss: mse + aux_coeff x AuxK, as for TopK.
"""

from __future__ import annotations

from typing import Any

import einops
import torch
from jaxtyping import Float
from torch import Tensor

from interp_helpers.dictionaries.sae.base import SAE, SAEConfig


class BatchTopKSAE(SAE):
    """k x batch largest codes over the batch in training, a learned global threshold at eval; AuxK."""

    architecture = "batchtopk"
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

    @torch.no_grad()
    def update_threshold_(self, codes: Float[Tensor, "batch d_sae"]) -> None:
        """EMA of the smallest kept (positive) activation, the eval threshold (Bussmann et al.)."""
        positive = codes[codes > 0]
        if positive.numel() == 0:
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
        self.update_threshold_(out.codes.detach())
