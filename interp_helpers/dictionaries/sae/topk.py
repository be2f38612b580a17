"""TopK SAE (Gao et al. 2024, "Scaling and evaluating sparse autoencoders").

codes = the k largest pre-activations of each row, through a ReLU (so never negative), every
other code 0. Sparsity is set by k directly, so there is no sparsity coefficient to tune; the
loss is mse + aux_coeff x AuxK, where AuxK (`SAE.aux_loss`) lets the top `aux_k` dead
latents reconstruct the residual, which revives them.

Training runs a sparse path: the k (value, index) pairs per row are decoded by gathering k
decoder rows (`SAE.decode_sparse`), never forming the [batch, d_sae] codes.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp_helpers.dictionaries.sae.base import SAE, SAEOutput


class TopKSAE(SAE):
    """The k largest ReLU(pre) of each row; AuxK on dead latents; a sparse decode while training."""

    architecture = "topk"
    has_sparse_path = True
    uses_auxk = True

    def _activate(self, pre: Float[Tensor, "batch d_sae"]) -> Float[Tensor, "batch d_sae"]:
        values, indices = self._topk(pre)
        return torch.zeros_like(pre).scatter(-1, indices, values)

    def _topk(self, pre: Float[Tensor, "batch d_sae"]) -> tuple[Float[Tensor, "batch k"], Int[Tensor, "batch k"]]:
        # ReLU after the selection (Gao et al.): same set as before it, and never a negative code.
        values, indices = pre.topk(self.cfg.k, dim=-1, sorted=False)
        return torch.relu(values), indices

    def encode_sparse(self, x: Float[Tensor, "batch d_in"]) -> tuple[Float[Tensor, "batch k"], Int[Tensor, "batch k"]]:
        """TopK codes as (values, latent indices); values may be 0 where fewer than k pre-activations are positive."""
        return self._topk(self.pre_acts(x))

    def _sparse_forward(self, x: Float[Tensor, "batch d_in"], pre: Float[Tensor, "batch d_sae"]) -> SAEOutput:
        values, indices = self._topk(pre)
        recon = self.decode_sparse(values, indices)
        fired = torch.zeros(self.cfg.d_sae, dtype=torch.bool, device=x.device)
        fired[indices[values > 0]] = True
        n_active = (values > 0).sum(-1).float().mean()
        return self._output(x, pre, recon, None, fired, n_active)
