"""Induction-head kernels: repeated random tokens, per-position loss, head scores, ablation.

Shared by the model zoo's acceptance checks and the induction-heads notebook, so a
number in a model card and the same number in a notebook come from one function.

Conventions (TransformerLens): attention patterns are `blocks.{l}.attn.hook_pattern`
with shape [batch, head_index, query_pos, key_pos]; head outputs before W_O are
`blocks.{l}.attn.hook_z` with shape [batch, pos, head_index, d_head]. Losses are per
*target*: `target_pos` i is the loss of predicting tokens[:, i + 1] from position i.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint

from interp_helpers.params import check_range


@dataclass(frozen=True)
class RepeatedTokens:
    """BOS, random prefix, a random segment, the same segment again, random tail.

    `first` / `second` mark the positions (in `tokens`) of the segment's tokens that a
    model could predict by induction on the second pass: every segment token except
    the segment's first (which follows unrelated context in both copies). Segment
    length and offset vary per row, so no fixed positional offset solves the task.
    """

    tokens: Int[Tensor, "batch pos"]
    first: Bool[Tensor, "batch pos"]
    second: Bool[Tensor, "batch pos"]


def repeated_random_tokens(
    pool: Int[Tensor, " pool"],
    batch: int,
    total_len: int,
    seg_len: tuple[int, int],
    bos: int,
    generator: torch.Generator,
) -> RepeatedTokens:
    """Rows of `total_len` tokens: BOS + distinct random tokens from `pool`, one segment repeated.

    Tokens in a row are drawn without replacement, so the only repeats are the planted
    ones and induction targets are unambiguous. `seg_len` is the (min, max) segment length.
    """
    check_range("seg_len[0]", seg_len[0], 2)
    check_range("seg_len[1]", seg_len[1], seg_len[0], (total_len - 1) // 2)
    check_range("total_len", total_len, 5, len(pool) + 1)
    tokens = torch.full((batch, total_len), bos, dtype=torch.long)
    first = torch.zeros((batch, total_len), dtype=torch.bool)
    second = torch.zeros((batch, total_len), dtype=torch.bool)
    for b in range(batch):
        tokens[b, 1:] = pool[torch.randperm(len(pool), generator=generator)[: total_len - 1]]
        length = int(torch.randint(seg_len[0], seg_len[1] + 1, (), generator=generator))
        start = 1 + int(torch.randint(0, total_len - 2 * length, (), generator=generator))
        tokens[b, start + length : start + 2 * length] = tokens[b, start : start + length]
        first[b, start + 1 : start + length] = True
        second[b, start + length + 1 : start + 2 * length] = True
    return RepeatedTokens(tokens, first, second)


def previous_occurrence(tokens: Int[Tensor, "batch pos"]) -> Int[Tensor, "batch pos"]:
    """For each position, the latest earlier position holding the same token (-1 if none)."""
    pos = tokens.shape[1]
    same = tokens[:, :, None] == tokens[:, None, :]
    earlier = torch.ones(pos, pos, dtype=torch.bool).tril(-1)
    keys = torch.arange(pos).expand(pos, pos)
    return torch.where(same & earlier, keys, -1).max(dim=-1).values


def per_token_loss(logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch target_pos"]:
    """Cross-entropy of predicting tokens[:, i + 1] at position i (nats)."""
    logprobs = logits[:, :-1].log_softmax(dim=-1)
    return -logprobs.gather(-1, tokens[:, 1:, None])[..., 0]


def masked_mean(loss: Float[Tensor, "batch target_pos"], target_mask: Bool[Tensor, "batch pos"]) -> float:
    """Mean of `loss` over the targets marked in a [batch, pos] token mask."""
    mask = target_mask[:, 1:]
    return loss[mask].mean().item()


def repeat_losses(loss: Float[Tensor, "batch target_pos"], rep: RepeatedTokens) -> tuple[float, float]:
    """(first-repeat loss, second-repeat loss) in nats."""
    return masked_mean(loss, rep.first), masked_mean(loss, rep.second)


def icl_score(loss: Float[Tensor, "batch target_pos"], early: int, late: int, width: int = 5) -> float:
    """In-context learning score: mean loss around `late` minus around `early` (negative = better).

    Olsson et al. use token 500 minus token 50; our contexts are shorter, so the caller
    picks positions, and `width` targets on each side are averaged to reduce noise.
    """
    check_range("early", early, width, loss.shape[1] - width - 1)
    check_range("late", late, early, loss.shape[1] - width - 1)
    at = lambda p: loss[:, p - width : p + width + 1].mean()  # noqa: E731
    return (at(late) - at(early)).item()


# --------------------------------------------------------------------------------------
# Head scores from attention patterns
# --------------------------------------------------------------------------------------


def previous_token_score(pattern: Float[Tensor, "batch head_index query_pos key_pos"]) -> Float[Tensor, " head_index"]:
    """Mean attention from each query (after BOS) to the position just before it."""
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(0, 2))


def _score_at(pattern: Float[Tensor, "batch head_index query_pos key_pos"],
              key: Int[Tensor, "batch query_pos"], valid: Bool[Tensor, "batch query_pos"]) -> Float[Tensor, " head_index"]:
    """Mean of pattern[b, h, q, key[b, q]] over the (b, q) where `valid`."""
    index = key.clamp(min=0)[:, None, :, None].expand(-1, pattern.shape[1], -1, 1)
    picked = pattern.gather(-1, index)[..., 0]  # batch head_index query_pos
    weights = valid[:, None, :].to(pattern.dtype)
    return (picked * weights).sum(dim=(0, 2)) / weights.sum(dim=(0, 2)).clamp(min=1)


def duplicate_token_score(pattern: Float[Tensor, "batch head_index query_pos key_pos"],
                          earlier: Int[Tensor, "batch query_pos"]) -> Float[Tensor, " head_index"]:
    """Mean attention from a repeated token to its previous occurrence (`previous_occurrence`)."""
    return _score_at(pattern, earlier, earlier >= 0)


def induction_score(pattern: Float[Tensor, "batch head_index query_pos key_pos"],
                    earlier: Int[Tensor, "batch query_pos"]) -> Float[Tensor, " head_index"]:
    """Prefix matching: mean attention from a repeated token to the token after its previous occurrence."""
    query = torch.arange(pattern.shape[-2])
    return _score_at(pattern, earlier + 1, (earlier >= 0) & (earlier + 1 <= query))


def head_scores(model: HookedTransformer, tokens: Int[Tensor, "batch pos"]) -> dict[str, Float[Tensor, "layer head_index"]]:
    """Previous-token, duplicate-token and induction scores of every head on `tokens`."""
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("attn.hook_pattern"))
    earlier = previous_occurrence(tokens)
    scores: dict[str, list[Tensor]] = {"previous_token": [], "duplicate_token": [], "induction": []}
    for layer in range(model.cfg.n_layers):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"]
        scores["previous_token"].append(previous_token_score(pattern))
        scores["duplicate_token"].append(duplicate_token_score(pattern, earlier))
        scores["induction"].append(induction_score(pattern, earlier))
    return {name: torch.stack(rows) for name, rows in scores.items()}


# --------------------------------------------------------------------------------------
# Ablation
# --------------------------------------------------------------------------------------


def zero_head_hook(z: Float[Tensor, "batch pos head_index d_head"], hook: HookPoint, head: int) -> Float[Tensor, "batch pos head_index d_head"]:
    """Return z with one head's output zeroed (a new tensor: the cache and caller are untouched)."""
    return z.index_fill(2, torch.tensor([head], device=z.device), 0.0)


def ablated_loss(model: HookedTransformer, tokens: Int[Tensor, "batch pos"], layer: int, head: int) -> Float[Tensor, "batch target_pos"]:
    """Per-token loss with head `layer`.`head` zero-ablated."""
    check_range("layer", layer, 0, model.cfg.n_layers - 1)
    check_range("head", head, 0, model.cfg.n_heads - 1)
    hook = functools.partial(zero_head_hook, head=head)
    logits = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", hook)])
    return per_token_loss(logits, tokens)


def clean_loss(model: HookedTransformer, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch target_pos"]:
    return per_token_loss(model(tokens), tokens)
