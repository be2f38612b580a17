"""Matryoshka SAEs and the feature-absorption metric.

Matryoshka SAE (Bussmann, Nabeshima, Karvonen & Nanda 2025, "Learning Multi-Level Features
with Matryoshka Sparse Autoencoders"; Nabeshima 2024, "Matryoshka Sparse Autoencoders"):
an ordinary TopK or BatchTopK SAE (`interp_helpers.dictionaries.sae.SAE`) trained on a different loss.
Pick nested prefixes m_1 < m_2 < ... < m_n = d_sae of the latents; each prefix on its own
must reconstruct the input:

    codes   = the SAE's TopK / BatchTopK codes over all d_sae latents (selection is unchanged)
    recon_i = codes[:, :m_i] @ W_dec[:m_i] + b_dec
    loss    = sum_i ||x - recon_i||^2  (or the mean over i)  +  aux_coeff * AuxK(full recon)

Latents in the first prefix take part in every term, so they are pushed to carry what is
shared by many inputs ("birds"), and later latents add detail ("raven"). A plain SAE is free
to let a "raven" latent write bird + raven and leave the "birds" latent silent on raven
tokens, which saves one active latent: that is feature absorption (Chanin et al. 2024,
"A is for Absorption"), measured by `absorption` below. Matryoshka training makes absorption
costly, because the first prefix has to reconstruct the bird part of a raven token without
the raven latent.

The result of `train_matryoshka` is a plain `SAE`: `encode`, `decode`, `evaluate`,
`save_sae(sae, cfg.sae, ...)` and splicing all work on it unchanged. Only training differs;
the prefixes are not stored in the SAE (keep `MatryoshkaConfig` if you need them).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from interp_helpers.core.validation import check_choice, check_range
from interp_helpers.dictionaries.sae import SAE, SAEConfig, train_sae
from interp_helpers.dictionaries.sae.active import ActiveDecode

ARCHITECTURES: tuple[str, ...] = ("topk", "batchtopk")  # the sae.ARCHITECTURES that have no sparsity penalty to weigh
REDUCTIONS: tuple[str, ...] = ("sum", "mean")


@dataclass(frozen=True)
class MatryoshkaConfig:
    """An SAEConfig (shape, k, lr, steps, seed, AuxK ...) plus the nested prefixes of its latents.

    `prefixes`: strictly increasing latent counts, the last equal to sae.d_sae; (d_sae,)
    is an ordinary TopK/BatchTopK SAE. `reduction`: combine the prefixes' squared errors
    by their "sum" (as written in Bussmann et al.) or "mean" (the same gradient directions,
    smaller relative to the AuxK term). `prefixes` must be a tuple (a list from JSON needs
    tuple(...)): the config is frozen and hashable, and the runtime type checks insist.
    """

    sae: SAEConfig
    prefixes: tuple[int, ...]
    reduction: str = "sum"  # one of REDUCTIONS

    def __post_init__(self) -> None:
        if not isinstance(self.sae, SAEConfig):
            raise TypeError(f"MatryoshkaConfig.sae must be an SAEConfig, got {type(self.sae).__name__}")
        check_choice("MatryoshkaConfig.sae.architecture", self.sae.architecture, ARCHITECTURES)
        check_choice("MatryoshkaConfig.reduction", self.reduction, REDUCTIONS)
        prefixes = self.prefixes
        if not isinstance(prefixes, tuple):
            raise TypeError(f"MatryoshkaConfig.prefixes must be a tuple of ints, got {type(prefixes).__name__}")
        if not prefixes:
            raise ValueError(
                f"parameter MatryoshkaConfig.prefixes=() is empty; "
                f"allowed: increasing ints ending at d_sae={self.sae.d_sae}"
            )
        low = 1
        for i, m in enumerate(prefixes):
            if isinstance(m, bool) or not isinstance(m, int):
                raise TypeError(f"parameter MatryoshkaConfig.prefixes[{i}]={m!r} is not an int")
            # Strictly increasing: each prefix must be above the previous one, and within d_sae.
            check_range(f"MatryoshkaConfig.prefixes[{i}]", m, low, self.sae.d_sae)
            low = m + 1
        if prefixes[-1] != self.sae.d_sae:
            raise ValueError(
                f"parameter MatryoshkaConfig.prefixes={prefixes!r} must end at d_sae={self.sae.d_sae}, "
                f"so that the last term trains every latent"
            )


def doubling_prefixes(first: int, d_sae: int) -> tuple[int, ...]:
    """first, 2*first, 4*first, ... below d_sae, then d_sae: group sizes that double, as in Bussmann et al."""
    check_range("first", first, 1, d_sae)
    prefixes = []
    m = first
    while m < d_sae:
        prefixes.append(m)
        m *= 2
    return (*prefixes, d_sae)


@dataclass(frozen=True)
class MatryoshkaOutput:
    """One forward pass under the Matryoshka loss; units as in `sae.SAEOutput` (squared error summed over d_in).

    mse and recon are those of the full SAE (the last prefix), so they compare with train_sae's.
    """

    recon: Float[Tensor, "batch d_in"]
    codes: Float[Tensor, "batch d_sae"] | None  # None on the sparse (training) path
    fired: Bool[Tensor, " d_sae"]
    l0: Float[Tensor, ""]
    prefix_mse: Float[Tensor, " prefix"]  # ||x - recon_i||^2, mean over the batch, one per prefix
    mse: Float[Tensor, ""]
    aux: Float[Tensor, ""]
    loss: Float[Tensor, ""]
    smallest_code: Float[Tensor, ""] | None = None  # training mode: the smallest nonzero code (BatchTopK threshold)


def matryoshka_forward(
    sae: SAE, x: Float[Tensor, "batch d_in"], prefixes: tuple[int, ...], reduction: str = "sum"
) -> MatryoshkaOutput:
    """Codes, full reconstruction and the Matryoshka loss of `sae` on `x` (train or eval mode as `sae` is).

    Where the SAE has a sparse selection (`SAE.sparse_select`, active.py: TopK, and BatchTopK in
    training mode) it gives the active entries, and one bag sum per (row, prefix band) decodes every
    band at once: band i holds latents [m_{i-1}, m_i), so recon_i is b_dec plus the cumulative sum of
    the bands up to i, at a cost of nnz x d_in for all prefixes together. Otherwise (BatchTopK's eval
    threshold) codes are dense and decoded cumulatively, recon_i = recon_{i-1} + codes[:, m_{i-1}:m_i]
    @ W_dec[m_{i-1}:m_i].
    """
    check_choice("reduction", reduction, REDUCTIONS)
    if sae.cfg.architecture not in ARCHITECTURES:
        raise ValueError(
            f"matryoshka_forward needs architecture in {ARCHITECTURES}, this SAE is {sae.cfg.architecture!r}"
        )
    if not prefixes or prefixes[-1] != sae.cfg.d_sae or any(a >= b for a, b in zip(prefixes, prefixes[1:])):
        raise ValueError(f"prefixes {prefixes!r} must increase strictly and end at d_sae={sae.cfg.d_sae}")
    pre = sae.pre_acts(x)
    errors = []
    selected = sae.sparse_select(x, pre.detach()) if x.ndim == 2 else None
    if selected is not None:  # the SAE's own selection, so the two losses select alike
        active, values = selected
        band_of_latent = torch.bucketize(
            torch.arange(sae.cfg.d_sae, device=x.device), torch.tensor(prefixes, device=x.device), right=True
        )
        bands = ActiveDecode.apply(values, sae.W_dec, active.banded(band_of_latent, len(prefixes)))
        recons = bands.view(x.shape[0], len(prefixes), -1).cumsum(1) + sae.b_dec
        errors = list((recons - x[:, None]).pow(2).sum(-1).mean(0).unbind())
        recon = recons[:, -1]
        codes = None
        fired = active.fired(values)
        n_active, smallest = active.kept(values)
    else:
        codes = sae._activate(pre)  # batch-wide selection in train mode, the threshold in eval mode
        recon = sae.b_dec.expand_as(x)
        start = 0
        for m in prefixes:
            recon = recon + codes[:, start:m] @ sae.W_dec[start:m]
            errors.append((recon - x).pow(2).sum(-1).mean())
            start = m
        fired = (codes > 0).any(dim=0)
        n_active = (codes.detach() != 0).sum(-1).float().mean()
        smallest = None
    prefix_mse = torch.stack(errors)
    aux = sae.aux_loss(x, recon, pre)  # AuxK on the full residual, as for a plain TopK SAE
    total = prefix_mse.sum() if reduction == "sum" else prefix_mse.mean()
    loss = total + sae.cfg.aux_coeff * aux
    return MatryoshkaOutput(recon, codes, fired, n_active.detach(), prefix_mse, prefix_mse[-1], aux, loss, smallest)


def train_matryoshka(
    cfg: MatryoshkaConfig, batches: Iterable[Tensor], progress: bool = True, log_every: int = 50
) -> tuple[SAE, list[dict[str, int | float]]]:
    """Train a Matryoshka SAE on `batches` ([batch, d_in]) for cfg.sae.steps steps; return it (eval mode) and a log.

    The loop is `sae.train_sae`'s: same init from cfg.sae.seed, b_dec at the first batch's
    geometric median, Adam with optional warmup, parallel-gradient removal, unit decoder rows,
    dead-latent counters, BatchTopK threshold; only the loss is `matryoshka_forward`'s. The
    history has train_sae's keys (step, loss, mse, explained_variance, l0, dead_fraction),
    with mse and explained_variance of the full SAE and loss the Matryoshka loss.
    Bit-identical for a seed and the same batches on one torch thread.
    """
    forward = functools.partial(matryoshka_forward, prefixes=cfg.prefixes, reduction=cfg.reduction)
    return train_sae(cfg.sae, batches, progress=progress, log_every=log_every, forward=forward)


# ------------------------------------------------------------------------------ absorption


def absorption(
    parent_codes: Float[Tensor, " token"],
    child_codes: Float[Tensor, "token child"],
    parent_truth: Bool[Tensor, " token"],
    child_truth: Bool[Tensor, " token"],
) -> dict[str, int | float]:
    """How often a parent latent stays silent on child tokens while a child latent fires instead.

    The parent latent should fire on every child-labelled token (a raven paragraph is a birds
    paragraph). On the n tokens labelled both child and parent:
      parent_fires  fraction where the parent latent is > 0
      absorbed      fraction where it is 0 but some child latent (a column of child_codes) is > 0
      missed        fraction where neither fires
    so the three add to 1. This is Chanin et al.'s "A is for Absorption" idea with known
    labels in place of their probe; which latents are "parent" and "child" is the caller's
    choice (e.g. `closest_latents` to known directions). With n = 0 the fractions are NaN.
    """
    n_tokens = parent_codes.shape[0]
    if child_codes.shape[0] != n_tokens or parent_truth.shape[0] != n_tokens or child_truth.shape[0] != n_tokens:
        raise ValueError(
            f"absorption: token counts differ: parent_codes {n_tokens}, child_codes {child_codes.shape[0]}, "
            f"parent_truth {parent_truth.shape[0]}, child_truth {child_truth.shape[0]}"
        )
    both = parent_truth & child_truth
    n = int(both.sum())
    if n == 0:
        return {"n": 0, "parent_fires": math.nan, "absorbed": math.nan, "missed": math.nan}
    parent_on = parent_codes[both] > 0
    child_on = (child_codes[both] > 0).any(dim=-1)
    return {
        "n": n,
        "parent_fires": parent_on.float().mean().item(),
        "absorbed": (~parent_on & child_on).float().mean().item(),
        "missed": (~parent_on & ~child_on).float().mean().item(),
    }


def closest_latents(
    W_dec: Float[Tensor, "d_sae d_in"],
    directions: Float[Tensor, "feature d_in"],
    among: Int[Tensor, " candidate"] | None = None,
) -> Int[Tensor, " feature"]:
    """For each direction, the latent (optionally only `among` some) whose decoder row is closest by cosine."""
    W = torch.nn.functional.normalize(W_dec.detach(), dim=-1)
    cosine = torch.nn.functional.normalize(directions, dim=-1) @ W.T
    if among is None:
        return cosine.argmax(-1)
    return among[cosine[:, among].argmax(-1)]
