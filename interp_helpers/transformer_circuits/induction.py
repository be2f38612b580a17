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
from jaxtyping import Bool, Float, Int, Real
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint

from interp_helpers.core.validation import check_choice, check_range


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


def per_token_loss(
    logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "batch target_pos"]:
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


# Every score averages attention to the expected key over the queries that have one
# (queries="matched": the convention of Olsson et al., so a perfect head scores 1 however
# few tokens repeat). queries="all" divides by every query position instead, which is what
# transformer_lens.head_detector's "mul" measure does; on rows whose only repeats are the
# planted ones the two differ by that denominator alone (tested).
QUERY_CONVENTIONS = ("matched", "all")


def previous_token_score(
    pattern: Float[Tensor, "batch head_index query_pos key_pos"], queries: str = "matched"
) -> Float[Tensor, " head_index"]:
    """Mean attention from each query (after BOS) to the position just before it."""
    check_choice("queries", queries, QUERY_CONVENTIONS)
    diagonal = pattern.diagonal(offset=-1, dim1=-2, dim2=-1)  # batch head_index query_pos-1
    if queries == "all":
        return diagonal.sum(dim=(0, 2)) / (pattern.shape[0] * pattern.shape[-2])
    return diagonal.mean(dim=(0, 2))


def _score_at(
    pattern: Float[Tensor, "batch head_index query_pos key_pos"],
    key: Int[Tensor, "batch query_pos"],
    valid: Bool[Tensor, "batch query_pos"],
    queries: str,
) -> Float[Tensor, " head_index"]:
    """Mean of pattern[b, h, q, key[b, q]] over the (b, q) where `valid` (or over all (b, q))."""
    check_choice("queries", queries, QUERY_CONVENTIONS)
    index = key.clamp(min=0)[:, None, :, None].expand(-1, pattern.shape[1], -1, 1)
    picked = pattern.gather(-1, index)[..., 0]  # batch head_index query_pos
    weights = valid[:, None, :].to(pattern.dtype)
    if queries == "all":
        return (picked * weights).sum(dim=(0, 2)) / (pattern.shape[0] * pattern.shape[-2])
    return (picked * weights).sum(dim=(0, 2)) / weights.sum(dim=(0, 2)).clamp(min=1)


def duplicate_token_score(
    pattern: Float[Tensor, "batch head_index query_pos key_pos"],
    earlier: Int[Tensor, "batch query_pos"],
    queries: str = "matched",
) -> Float[Tensor, " head_index"]:
    """Mean attention from a repeated token to its previous occurrence (`previous_occurrence`)."""
    return _score_at(pattern, earlier, earlier >= 0, queries)


def induction_score(
    pattern: Float[Tensor, "batch head_index query_pos key_pos"],
    earlier: Int[Tensor, "batch query_pos"],
    queries: str = "matched",
) -> Float[Tensor, " head_index"]:
    """Prefix matching: mean attention from a repeated token to the token after its previous occurrence."""
    query = torch.arange(pattern.shape[-2])
    return _score_at(pattern, earlier + 1, (earlier >= 0) & (earlier + 1 <= query), queries)


HEAD_KINDS = ("previous_token", "duplicate_token", "induction")


def head_scores(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], queries: str = "matched"
) -> dict[str, Float[Tensor, "layer head_index"]]:
    """Previous-token, duplicate-token and induction scores of every head on `tokens`."""
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("attn.hook_pattern"))
    earlier = previous_occurrence(tokens)
    scores: dict[str, list[Tensor]] = {kind: [] for kind in HEAD_KINDS}
    for layer in range(model.cfg.n_layers):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"]
        scores["previous_token"].append(previous_token_score(pattern, queries))
        scores["duplicate_token"].append(duplicate_token_score(pattern, earlier, queries))
        scores["induction"].append(induction_score(pattern, earlier, queries))
    return {name: torch.stack(rows) for name, rows in scores.items()}


def head_detector_scores(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"]
) -> dict[str, Float[Tensor, "layer head_index"]]:
    """The same three scores from `transformer_lens.head_detector.detect_head`, averaged over rows.

    detect_head takes text, so each row (after BOS) is decoded and re-tokenized; a row
    that does not survive the round trip raises, since the scores would then be of
    other tokens. Slow (one forward per row and kind): a cross-check, not a kernel.
    """
    from transformer_lens.head_detector import detect_head

    if tokens.shape[1] >= model.cfg.n_ctx:  # detect_head asserts pos < n_ctx
        raise ValueError(
            f"head_detector_scores needs fewer than n_ctx={model.cfg.n_ctx} tokens per row, got {tokens.shape[1]}"
        )
    texts = [model.tokenizer.decode(row[1:]) for row in tokens]
    for text, row in zip(texts, tokens):
        if not torch.equal(model.to_tokens(text)[0].cpu(), row.cpu()):
            raise ValueError(
                f"row {row.tolist()[:8]}... does not round-trip through text; head_detector would score other tokens"
            )
    return {kind: detect_head(model, texts, f"{kind}_head") for kind in HEAD_KINDS}


# --------------------------------------------------------------------------------------
# Ablation
# --------------------------------------------------------------------------------------


def zero_head_hook(
    z: Float[Tensor, "batch pos head_index d_head"], hook: HookPoint, head: int
) -> Float[Tensor, "batch pos head_index d_head"]:
    """Return z with one head's output zeroed (a new tensor: the cache and caller are untouched)."""
    return z.index_fill(2, torch.tensor([head], device=z.device), 0.0)


def ablated_loss(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], layer: int, head: int
) -> Float[Tensor, "batch target_pos"]:
    """Per-token loss with head `layer`.`head` zero-ablated."""
    check_range("layer", layer, 0, model.cfg.n_layers - 1)
    check_range("head", head, 0, model.cfg.n_heads - 1)
    hook = functools.partial(zero_head_hook, head=head)
    logits = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", hook)])
    return per_token_loss(logits, tokens)


def clean_loss(model: HookedTransformer, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch target_pos"]:
    return per_token_loss(model(tokens), tokens)


def phase_change_step(
    steps: Real[Tensor, " eval"], second_repeat_loss: Float[Tensor, " eval"], window: int = 3
) -> tuple[int, int]:
    """(start, end) training steps of the steepest fall of second-repeat loss over `window` evals.

    The induction phase change is a short window in which loss on repeated tokens drops
    by several nats; outside it the curve is nearly flat. Returns the steps at the
    beginning and end of the `window`-eval stretch with the largest drop.
    """
    check_range("window", window, 1, len(steps) - 1)
    drop = second_repeat_loss[:-window] - second_repeat_loss[window:]
    i = int(drop.argmax())
    return int(steps[i]), int(steps[i + window])
