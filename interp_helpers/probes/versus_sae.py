"""A supervised probe against an unsupervised SAE latent, on the same label (notebook 07, section 6).

The probe is fitted to the label; the latent is chosen afterwards as the one whose firing best
matches it (F1 on the training rows, `recovery.best_f1`). Both are scored on held-out rows, and
their directions compared: the probe's weight direction against the latent's encoder column
(what it reads) and decoder row (what it writes).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from interp_helpers.core.validation import stream_generator
from interp_helpers.dictionaries import activations, recovery
from interp_helpers.dictionaries import sae as sae_lib
from interp_helpers.modelzoo import zoo
from interp_helpers.probes.linear import fit_logistic_probe

HOOK = "blocks.0.mlp.hook_post"


def _f1(pred: Tensor, truth: Tensor) -> float:
    tp = (pred & truth).sum().item()
    return 2 * tp / max(pred.sum().item() + truth.sum().item(), 1)


def train_topk_sae(
    model: HookedTransformer, steps: int, seed: int, fast: bool, model_name: str = "zoo-gelu-1l-a"
) -> tuple[sae_lib.SAE, Float[Tensor, "token d_mlp"], dict[str, Int[Tensor, " token"]], Bool[Tensor, " token"]]:
    """A TopK SAE (4x, k 16) on the MLP neurons of a one-layer zoo model, and held-out labelled activations.

    Returns (sae, held-out activations, their labels, split): `split` is True on the first 70% of
    the held-out tokens (whole rows), used to choose latents and fit probes; the rest is the test.
    """
    spec = zoo.get_spec(model_name)
    train_rows = next(zoo.packed_batches(spec.corpus(), model.tokenizer, 200 if fast else 400, spec.n_ctx))
    train_acts = activations.collect_activations(model, train_rows, HOOK, progress=False)
    cfg = sae_lib.SAEConfig(
        d_in=train_acts.shape[1], d_sae=4 * train_acts.shape[1], k=16, steps=steps, batch_size=512, seed=seed
    )
    order = stream_generator(seed, "probes.sae_batches")

    def batches() -> Iterator[Tensor]:
        while True:
            perm = torch.randperm(train_acts.shape[0], generator=order)
            for start in range(0, len(perm) - cfg.batch_size + 1, cfg.batch_size):
                yield train_acts[perm[start : start + cfg.batch_size]]

    sae, _ = sae_lib.train_sae(cfg, batches())
    held = activations.labelled_rows(
        spec.corpus("eval", zoo.EVAL_SEED), model.tokenizer, 50 if fast else 100, spec.n_ctx
    )
    acts = activations.collect_activations(model, held.tokens, HOOK, keep=held.keep, progress=False)
    labels = activations.flatten_labels(held.labels, held.keep)
    row = torch.arange(held.tokens.shape[0])[:, None].expand_as(held.tokens)[held.keep]
    return sae, acts, labels, row < int(0.7 * held.tokens.shape[0])


@torch.no_grad()
def probe_vs_latent(
    sae: sae_lib.SAE,
    acts: Float[Tensor, "token d_mlp"],
    labels: dict[str, Int[Tensor, " token"]],
    split: Bool[Tensor, " token"],
    field: str,
    weight_decay: float,
) -> list[dict[str, Any]]:
    """For each value of `field`: held-out F1 of a one-vs-rest probe and of the best latent, and direction cosines."""
    truth, names = recovery.label_matrix(labels, [field])
    codes = sae.encode(acts)
    table = recovery.best_f1(codes[split], truth[split], names)
    out = []
    for j, name in enumerate(names):
        y = truth[:, j].long()
        probe = fit_logistic_probe(acts[split], y[split], 2, weight_decay)
        unit = int(table.best_unit[j])
        direction = probe.direction()
        out.append(
            {
                "label": name,
                "probe F1": _f1(probe.predict(acts[~split]) == 1, truth[~split, j]),
                "latent": unit,
                "latent F1": _f1(codes[~split, unit] > 0, truth[~split, j]),
                "cos(probe, encoder)": F.cosine_similarity(direction, sae.W_enc[:, unit], dim=0).item(),
                "cos(probe, decoder)": F.cosine_similarity(direction, sae.W_dec[unit], dim=0).item(),
            }
        )
    return out
