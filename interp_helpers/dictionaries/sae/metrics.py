"""How good an SAE is: sparsity, reconstruction, dead and dense latents, and loss recovered in the model.

- `l0`, `feature_density`, `dead_and_dense`: how many latents fire per row, how often each
  fires, which never do and which fire too often.
- `explained_variance` / `normalized_mse`: squared error against that of predicting the batch
  mean (Gao et al. 2024 report normalised MSE).
- `evaluate`: all of the above on held-out activations, chunk by chunk.
- `ce_loss_recovered`: splice the reconstruction into the model at a hook (`sae_splice_hook`)
  and compare the next-token loss with the clean model's and with zero-ablating the
  activation (Bricken et al. 2023's "loss recovered").
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import einops
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint

from interp_helpers.core.validation import check_range
from interp_helpers.transformer_circuits.induction import per_token_loss

if TYPE_CHECKING:
    from interp_helpers.dictionaries.sae.base import SAE


def l0(codes: Float[Tensor, "batch d_sae"]) -> Float[Tensor, ""]:
    """Mean number of nonzero latents per row."""
    # sign(|codes|) summed, not count_nonzero or (codes != 0): those branch or build a bool [batch, d_sae] and on
    # one CPU thread cost 2-5x more at the densities SAEs train through.
    return codes.abs().sign_().sum() / (codes.numel() // codes.shape[-1])


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
