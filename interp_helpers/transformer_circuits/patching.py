"""Activation patching: every patch site of a kind in one stacked batch.

Denoising, as in `transformer_lens.patching`: run the *corrupted* prompts, replace one
activation (a site) with its value from the *clean* run, and score the patched logits of
the whole prompt batch with `metric(logits) -> scalar`. Each function here returns what
the TransformerLens function of the same role returns (same shape, same values to about
1e-6): `resid_pre_by_pos` = `get_act_patch_resid_pre`, `attn_head_out_all_pos` =
`get_act_patch_attn_head_out_all_pos`, and so on (tests/test_patching.py checks each).

How it differs: TransformerLens runs one forward pass per site. Here every site becomes a
block of `batch` rows (copies of the corrupted prompts) in one stacked batch, and one pure
hook per hook point replaces, in each block, that block's site with the clean activation
(`torch.where` with a per-row mask, like `circuits.replace_heads_hook`). Rows go through
the model `max_batch` at a time; a chunk may cut a block anywhere. On top of that, three
short cuts that leave the result unchanged:

- Layers before the patched one compute the same thing for every block, so rows of sites at
  layer l join the run at layer l, from the corrupted run's `blocks.{l}.hook_resid_pre`: a
  chunk runs one layer at a time (`model(resid, start_at_layer=l, stop_at_layer=l + 1)`,
  with the shortformer positional embedding and the attention mask as the full forward
  computes them), appending the rows that join there (sites are sorted by layer).
- The model is causal: a patch at position p cannot change positions before p. Rows of a
  site at position p run positions p.. only, reading the earlier positions' keys and
  values from the corrupted run through TransformerLens's (frozen) key-value cache; the
  logits before p are the corrupted ones. Used for the hook points whose position axis is
  known (`_CAUSAL_HOOKS`), with standard, shortformer or rotary positions and no padding
  mask; everything else starts at position 0.
- A site whose clean activation equals the corrupted one (compared exactly, from the
  corrupted run's own cache) changes nothing and gets the corrupted value without a
  forward; a site over all positions of a causal hook point starts at the first position
  where the two differ. IOI's clean and ABC prompts share every token before the first
  name, so every site there is skipped, all-positions rows start at the first name, and
  layer 0's residual stream is skipped wherever the tokens agree.
- A site whose patch changes its block's output at p alone (z, q, pattern, attn_out,
  mlp_out, resid_mid/post: `_LOCAL_HOOKS`) runs that block at p only; its rows join the
  others after the block, with the corrupted residual stream at the later positions.
- A metric that reads one position per prompt (a `PositionMetric`, such as
  `logit_diff_metric`) gets the unembedding of those positions only (up to half the work of
  a small model with a large vocabulary). Any other callable gets full logits. With causal
  attention, positions after the last read one are never run, sites there (and last-block
  sites of `_LOCAL_HOOKS` at an unread position) get the corrupted value without a forward,
  and when every prompt reads the same position the last block computes only keys and
  values elsewhere (`_last_block`).

On one CPU thread the forward passes are compute-bound, so stacking alone gains ~10%; the
short cuts are what count. benchmarks/bench_patching.py (zoo-gelu-4l: 4 layers, d_model
128, d_vocab 4096; 8 prompts of 20 tokens, read at the last) measured 3.9x
(attn_head_out_all_pos), 4.8x (resid_pre_by_pos) and 10.6x (attn_head_out_by_pos) against
transformer_lens.patching with a PositionMetric. Exact patching cannot do much better on
the first two: a site at layer l over all positions (or at position p) must rerun layers
l.. at every position (p..) to the last, which is about 40% (30%) of a TransformerLens
forward on average.

Sites are `Site(hook, pos, head)`: a hook point name (`blocks.{l}.attn.hook_z`), a query
(destination) position or None for all positions, and a head or None for all heads. With
grouped-query attention (`n_key_value_heads`, e.g. SmolLM2) hook_k and hook_v have one head
per key-value head, so a k or v site's head is a key-value head, shared by n_heads /
n_key_value_heads query heads (as in `transformer_lens.patching`); q, z and patterns keep
n_heads. On SmolLM2-135M (4-bit; 30 layers, d_vocab 49152; 2 IOI prompts of 14 tokens, one
thread, a loaded 2-core machine) benchmarks/bench_real_patching.py measured 13-15.5x
(resid_pre_by_pos), 7.2-7.5x (attn_head_out_all_pos) and 13-17.5x (attn_head_out_by_pos) against
transformer_lens.patching, TransformerLens' time extrapolated from 12 sampled sites per kind.
The all-positions kind stays below 10x for the reason above, in numbers: a head patched at
every position from the first name on reruns, on average, 14.5 of the 30 layers at 12 of the 14
positions, 712 GFLOP for all 270 heads (torch's profiler), against TransformerLens' 2043 (30
layers and the 49152-way unembedding at every position, per head): 2.9x fewer operations.
TransformerLens' small forwards run at about 60 GFLOP/s here, ours at about 150, which is what
one core's float32 matrix products reach (a 2048 x 576 x 1536 product: 146 GFLOP/s), so 10x
would need the arithmetic itself to shrink, and exact patching cannot skip any of it.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import einops
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import ActivationCache, HookedTransformer
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache
from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry
from transformer_lens.hook_points import HookPoint
from transformer_lens.utilities import get_act_name
from transformer_lens.utilities.architectures import POST_NORM_ARCHITECTURES

from interp_helpers.core.validation import check_range
from interp_helpers.transformer_circuits.circuits import MAX_TOKENS

Metric = Callable[[Float[Tensor, "batch pos d_vocab"]], Float[Tensor, ""]]
Cache = ActivationCache | Mapping[str, Tensor]  # the clean run's activations, by hook name

# --------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------


class PositionMetric:
    """A metric of the logits at one position per prompt; patching unembeds only those positions.

    Subclasses give `positions` (which position of each prompt is read) and `at_positions`
    (the metric of those logits, [batch, d_vocab]); calling the metric on full logits
    [batch, pos, d_vocab] picks the positions and calls `at_positions`, so it works
    wherever a plain metric does (e.g. in `transformer_lens.patching`).
    """

    def positions(self, n_pos: int) -> Int[Tensor, " batch"]:
        raise NotImplementedError

    def at_positions(self, logits: Float[Tensor, "batch d_vocab"]) -> Float[Tensor, ""]:
        raise NotImplementedError

    def __call__(self, logits: Float[Tensor, "batch pos d_vocab"]) -> Float[Tensor, ""]:
        positions = self.positions(logits.shape[1]).to(logits.device)
        return self.at_positions(logits[torch.arange(logits.shape[0], device=logits.device), positions])


@dataclass(frozen=True, eq=False)
class LogitDiff(PositionMetric):
    """Mean over prompts of logit[correct] - logit[wrong] at position `pos` (an int, or one per prompt)."""

    answer_tokens: Int[Tensor, "batch 2"]  # [:, 0] correct, [:, 1] wrong
    pos: int | Int[Tensor, " batch"] = -1

    def positions(self, n_pos: int) -> Int[Tensor, " batch"]:
        pos = torch.as_tensor(self.pos).expand(self.answer_tokens.shape[0])
        if ((pos < -n_pos) | (pos >= n_pos)).any():
            raise ValueError(f"parameter pos={self.pos!r} is out of range for prompts of {n_pos} tokens")
        return pos % n_pos

    def at_positions(self, logits: Float[Tensor, "batch d_vocab"]) -> Float[Tensor, ""]:
        picked = logits.gather(-1, self.answer_tokens.to(logits.device))  # [batch, 2]
        return (picked[:, 0] - picked[:, 1]).mean()


def logit_diff_metric(answer_tokens: Int[Tensor, "batch 2"], pos: int | Int[Tensor, " batch"] = -1) -> LogitDiff:
    """metric(logits) = mean of logit[answer_tokens[:, 0]] - logit[answer_tokens[:, 1]] at `pos`.

    `pos` is one position for every prompt (default the last; negative counts from the end)
    or a [batch] tensor of per-prompt positions, e.g. the last real token of padded prompts.
    """
    if answer_tokens.ndim != 2 or answer_tokens.shape[1] != 2:
        raise ValueError(f"parameter answer_tokens has shape {tuple(answer_tokens.shape)}; expected (batch, 2)")
    if isinstance(pos, Tensor) and pos.shape != answer_tokens.shape[:1]:
        raise ValueError(
            f"parameter pos has shape {tuple(pos.shape)}; expected ({answer_tokens.shape[0]},), one per prompt"
        )
    return LogitDiff(answer_tokens, pos)


@dataclass(frozen=True, eq=False)
class Normalised:
    """(metric - corrupted_value) / (clean_value - corrupted_value): 0 = corrupted, 1 = clean."""

    metric: Metric
    clean_value: float
    corrupted_value: float

    def scale(self, value: Float[Tensor, ""]) -> Float[Tensor, ""]:
        return (value - self.corrupted_value) / (self.clean_value - self.corrupted_value)

    def __call__(self, logits: Float[Tensor, "batch pos d_vocab"]) -> Float[Tensor, ""]:
        return self.scale(self.metric(logits))


@dataclass(frozen=True, eq=False)
class NormalisedAtPositions(Normalised, PositionMetric):
    """`Normalised` of a `PositionMetric`, itself a PositionMetric (so patching stays fast)."""

    def positions(self, n_pos: int) -> Int[Tensor, " batch"]:
        return self.metric.positions(n_pos)

    def at_positions(self, logits: Float[Tensor, "batch d_vocab"]) -> Float[Tensor, ""]:
        return self.scale(self.metric.at_positions(logits))


def normalised_metric(metric: Metric, clean_value: float | Tensor, corrupted_value: float | Tensor) -> Normalised:
    """`metric` rescaled so that the corrupted run scores 0 and the clean run 1."""
    clean_value, corrupted_value = float(clean_value), float(corrupted_value)
    if clean_value == corrupted_value:
        raise ValueError(f"parameter clean_value={clean_value!r} equals corrupted_value: nothing to normalise by")
    kind = NormalisedAtPositions if isinstance(metric, PositionMetric) else Normalised
    return kind(metric, clean_value, corrupted_value)


# --------------------------------------------------------------------------------------
# Sites and the stacked run
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    """One patch: hook point `hook`, at query position `pos` (None: all), head `head` (None: all).

    Activations shaped [batch, pos, ...] (residual stream, attn_out, mlp_out, ...) take
    `pos`; those shaped [batch, pos, head_index, ...] (q, k, v, z, result) also `head`.
    For hook_pattern and hook_attn_scores ([batch, head_index, dest_pos, src_pos]) `pos` is
    the destination position, and every source position is patched.
    """

    hook: str
    pos: int | None = None
    head: int | None = None

    @classmethod
    def of(cls, name: str, layer: int, pos: int | None = None, head: int | None = None) -> Site:
        """Site from a short activation name, e.g. Site.of("z", 3, head=1) -> blocks.3.attn.hook_z."""
        return cls(get_act_name(name, layer), pos, head)


# Hook points whose activations keep the usual layout when only positions p.. are run
# through the key-value cache: [rows, pos, ...], or [rows, head_index, dest_pos, src_pos]
# with every source position (the pattern kinds).
_PATTERN_HOOKS = ("attn.hook_pattern", "attn.hook_attn_scores")
_CAUSAL_HOOKS = (
    "hook_resid_pre",
    "hook_resid_mid",
    "hook_resid_post",
    "hook_attn_out",
    "hook_mlp_out",
    "attn.hook_q",
    "attn.hook_k",
    "attn.hook_v",
    "attn.hook_z",
    "attn.hook_result",
    "mlp.hook_pre",
    "mlp.hook_post",
    *_PATTERN_HOOKS,
)
# Of those, the ones whose patch at position p changes that block's output at p alone (the
# keys and values of the block stay the corrupted ones): the block runs position p only.
_LOCAL_HOOKS = (
    "hook_resid_mid",
    "hook_resid_post",
    "hook_attn_out",
    "hook_mlp_out",
    "attn.hook_q",
    "attn.hook_z",
    "attn.hook_result",
    "mlp.hook_pre",
    "mlp.hook_post",
    *_PATTERN_HOOKS,
)
_CAUSAL_POSITIONS = ("standard", "shortformer", "rotary")
_BLOCK = re.compile(r"blocks\.(\d+)\.(.+)")


def _causal_hook(hook: str) -> bool:
    match = _BLOCK.fullmatch(hook)
    return match is not None and match.group(2) in _CAUSAL_HOOKS


@dataclass(frozen=True)
class _Plan:
    """A validated site: layer (None: not in a block), first position to run, patch position and head."""

    hook: str
    layer: int | None
    start_pos: int
    pos: int | None
    head: int | None
    pattern: bool  # [batch, head_index, dest_pos, src_pos] layout
    local: bool  # the block runs start_pos alone (its output elsewhere is the corrupted one)


def _plan(
    model: HookedTransformer, clean_cache: Cache, corrupted_shape: tuple[int, int], site: Site, causal: bool
) -> _Plan:
    if site.hook not in model.hook_dict:
        raise ValueError(f"parameter sites: {site} names no hook point of the model")
    store = getattr(clean_cache, "cache_dict", clean_cache)
    if site.hook not in store:
        raise ValueError(f"parameter clean_cache has no activation {site.hook!r} (needed by {site})")
    clean = store[site.hook]
    match = _BLOCK.fullmatch(site.hook)
    pattern = match is not None and match.group(2) in _PATTERN_HOOKS
    batch, n_pos = corrupted_shape
    clean_shape = (clean.shape[0], clean.shape[2]) if pattern else tuple(clean.shape[:2])
    if clean_shape != (batch, n_pos):
        raise ValueError(
            f"parameter corrupted_tokens has shape {corrupted_shape} but clean_cache holds activations "
            f"of {clean_shape} prompts x positions ({site.hook}): clean and corrupted tokens must have the same shape"
        )
    pos = site.pos
    if pos is not None:
        check_range("sites[].pos", pos, -n_pos, n_pos - 1)
        pos %= n_pos
    if site.head is not None:
        if not pattern and clean.ndim != 4:
            raise ValueError(f"parameter sites: {site} gives a head, but {site.hook} has no head axis")
        check_range("sites[].head", site.head, 0, clean.shape[1 if pattern else 2] - 1)
    layer = int(match.group(1)) if match else None
    start_pos = pos if causal and pos and _causal_hook(site.hook) else 0
    # Not in the last block: its rows would leave it at one position, not at the chunk's.
    local = (
        causal
        and pos is not None
        and layer is not None
        and layer < model.cfg.n_layers - 1
        and match.group(2) in _LOCAL_HOOKS
    )
    return _Plan(site.hook, layer, start_pos, pos, site.head, pattern, local)


def patch_hook(
    activation: Float[Tensor, ...],
    hook: HookPoint,
    mask: Bool[Tensor, ...],
    clean: Float[Tensor, ...],
) -> Float[Tensor, ...]:
    """`activation` with the clean value wherever `mask` (broadcast over the last axis) is set (a new tensor).

    `mask` and `clean` cover every row of the chunk; while only the first rows have
    entered (rows join at their site's layer), the first activation.shape[0] are used.
    """
    rows = activation.shape[0]
    return torch.where(mask[:rows], clean[:rows].to(activation.dtype), activation)


def _frozen_kv_cache(
    keys: Float[Tensor, "rows past head_index d_head"],
    values: Float[Tensor, "rows past head_index d_head"],
    layer: int,
) -> TransformerLensKeyValueCache:
    """A frozen cache holding these keys and values for `layer` (the only entry a one-layer forward reads)."""
    entries = [None] * layer + [TransformerLensKeyValueCacheEntry(keys, values, frozen=True)]
    mask = torch.ones(keys.shape[0], keys.shape[1], dtype=torch.int, device=keys.device)
    return TransformerLensKeyValueCache(entries, mask, frozen=True)  # type: ignore[arg-type]


@dataclass(frozen=True)
class _Corrupted:
    """What the chunks read from the corrupted run."""

    tokens: Int[Tensor, "batch pos"]
    logits: Float[Tensor, "batch pos d_vocab"] | None  # only for a plain metric
    resid_pre: list[Tensor]  # per layer, [batch, pos, d_model]
    final_resid: Float[Tensor, "batch pos d_model"]  # blocks.{n_layers - 1}.hook_resid_post
    keys: list[Tensor]  # per layer, [batch, pos, head_index, d_head] (empty unless a site starts after position 0)
    values: list[Tensor]
    shortformer: Float[Tensor, "batch pos d_model"] | None  # as forward() computes them
    attention_mask: Int[Tensor, "batch pos"] | None


def _corrupted_run(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    with_kv: bool,
    with_logits: bool,
    site_hooks: set[str] | frozenset[str] = frozenset(),
) -> tuple[_Corrupted, dict[str, Tensor]]:
    """One forward of the corrupted prompts, caching what the chunks start from, and the sites' own activations."""
    n_layers = model.cfg.n_layers
    _, _, shortformer, attention_mask = model.input_to_embed(tokens)
    names = {f"blocks.{layer}.hook_resid_pre" for layer in range(n_layers)} | {f"blocks.{n_layers - 1}.hook_resid_post"}
    if with_kv:
        names |= {f"blocks.{layer}.attn.hook_{name}" for layer in range(n_layers) for name in "kv"}
    names |= set(site_hooks)
    logits, cache = model.run_with_cache(
        tokens, names_filter=lambda name: name in names, return_type="logits" if with_logits else None
    )
    kv_layers = range(n_layers) if with_kv else range(0)
    corrupted = _Corrupted(
        tokens,
        logits,
        [cache[f"blocks.{layer}.hook_resid_pre"] for layer in range(n_layers)],
        cache[f"blocks.{n_layers - 1}.hook_resid_post"],
        [cache[f"blocks.{layer}.attn.hook_k"] for layer in kv_layers],
        [cache[f"blocks.{layer}.attn.hook_v"] for layer in kv_layers],
        shortformer,
        attention_mask,
    )
    return corrupted, {name: cache[name] for name in site_hooks}


def _first_change(plan: _Plan, clean: Tensor, corrupted: Tensor, end_pos: int) -> int | None:
    """The first position (before end_pos) where the site's clean activation differs from the corrupted one.

    None when they are equal wherever the site patches: the patch then writes what is
    already there, and the patched run is the corrupted run. Compared exactly (the clean
    and corrupted runs compute a prompt's positions before its first changed token alike).
    """
    pos_axis, head_axis = (2, 1) if plan.pattern else (1, 2)
    if plan.head is not None:
        clean, corrupted = clean.select(head_axis, plan.head), corrupted.select(head_axis, plan.head)
        pos_axis -= int(head_axis < pos_axis)
    differs = (clean != corrupted.to(clean.device)).movedim(pos_axis, 0).flatten(1).any(1)  # [pos]
    if plan.pos is not None:
        return plan.pos if bool(differs[plan.pos]) else None
    changed = differs[:end_pos].nonzero()
    return int(changed[0]) if len(changed) else None


def _window_hook(
    activation: Float[Tensor, ...],
    hook: HookPoint,
    mask: Bool[Tensor, ...],
    clean: Float[Tensor, ...],
    window: list[int],
    pattern: bool,
) -> Float[Tensor, ...]:
    """`patch_hook` for one forward of a chunk: rows window[0]:window[1], positions window[2].. of the chunk's window.

    The forward may cover fewer positions than the chunk (the last block runs the read
    position apart from the others), so the positions are as many as `activation` has; a
    pattern's source axis is as long as the keys (cached and new).
    """
    rows, lo = slice(window[0], window[1]), window[2]
    if pattern:  # [rows, head_index, dest_pos, src_pos]
        dest = slice(lo, lo + activation.shape[2])
        return torch.where(
            mask[rows, :, dest], clean[rows, :, dest, : activation.shape[3]].to(activation.dtype), activation
        )
    here = slice(lo, lo + activation.shape[1])
    return torch.where(mask[rows, here], clean[rows, here].to(activation.dtype), activation)


def _reads_last_alone(model: HookedTransformer) -> bool:
    """Whether `_last_block` can split the last block: keys and values from ln1 alone, as TransformerBlock does it."""
    cfg = model.cfg
    return not (
        cfg.use_attn_in
        or cfg.use_split_qkv_input
        or cfg.parallel_attn_mlp
        or cfg.use_qk_norm
        or cfg.clip_qkv is not None
        or cfg.load_in_4bit
        or cfg.original_architecture in POST_NORM_ARCHITECTURES
    )


def _last_block(
    model: HookedTransformer,
    corrupted: _Corrupted,
    resid: Float[Tensor, "rows new_pos d_model"],
    here: Int[Tensor, " rows"],
    start_pos: int,
    window: list[int],
) -> Float[Tensor, "rows 1 d_model"]:
    """The last block's output at the window's last position (the one the metric reads) only.

    Nothing after the last block mixes positions, so the other positions need only their
    keys and values (ln1, W_K, W_V: a sixth of the block's work); the read position then
    runs the whole block on them through the key-value cache. Hooks see the same values
    as in a full forward at every position that can reach the metric.
    """
    layer = model.cfg.n_layers - 1
    block = model.blocks[layer]
    end_pos = start_pos + resid.shape[1]
    shortformer = None if corrupted.shortformer is None else corrupted.shortformer[here, start_pos:end_pos]
    earlier = block.hook_resid_pre(resid[:, :-1])
    values_in = block.ln1(earlier)
    keys_in = values_in if shortformer is None else values_in + shortformer[:, :-1]
    _, keys, values = block.attn.calculate_qkv_matrices(keys_in[:, :0], keys_in, values_in)  # no queries needed
    if start_pos > 0:
        keys = torch.cat([corrupted.keys[layer][here, :start_pos], keys], dim=1)
        values = torch.cat([corrupted.values[layer][here, :start_pos], values], dim=1)
    window[2] = resid.shape[1] - 1
    kwargs = {} if shortformer is None else {"shortformer_pos_embed": shortformer[:, -1:]}
    return model(
        resid[:, -1:],
        start_at_layer=layer,
        stop_at_layer=layer + 1,
        past_kv_cache=_frozen_kv_cache(keys, values, layer),
        **kwargs,
    )


def _run_block(
    model: HookedTransformer,
    corrupted: _Corrupted,
    resid: Float[Tensor, "rows new_pos d_model"],
    here: Int[Tensor, " rows"],
    layer: int,
    start_pos: int,
) -> Float[Tensor, "rows new_pos d_model"]:
    """Block `layer` at positions start_pos:start_pos + new_pos, earlier keys and values from the corrupted run."""
    end_pos = start_pos + resid.shape[1]
    kwargs = {}
    if corrupted.shortformer is not None:
        kwargs["shortformer_pos_embed"] = corrupted.shortformer[here, start_pos:end_pos]
    if corrupted.attention_mask is not None:
        kwargs["attention_mask"] = corrupted.attention_mask[here, :end_pos]
    if start_pos > 0:
        kwargs["past_kv_cache"] = _frozen_kv_cache(
            corrupted.keys[layer][here, :start_pos], corrupted.values[layer][here, :start_pos], layer
        )
    return model(resid, start_at_layer=layer, stop_at_layer=layer + 1, **kwargs)


def _run_chunk(
    model: HookedTransformer,
    corrupted: _Corrupted,
    fwd_hooks: list,
    window: list[int],
    prompts: Int[Tensor, " rows"],
    entries: list[tuple[int, bool] | None],
    start_pos: int,
    end_pos: int,
    final: bool,
    last_alone: bool,
) -> Float[Tensor, "rows new_pos d_out"]:
    """Final residual stream (`final`) or logits of the chunk's rows at positions start_pos:end_pos.

    Rows whose site is not in a block (entry None) run from the tokens. Otherwise row r
    with entries[r] = (l, local) joins at layer l (sorted by (l, local)), from the corrupted
    run's resid_pre there; layers are run one at a time through `model(...,
    start_at_layer=l, stop_at_layer=l + 1)`, with positions before start_pos read from the
    corrupted keys and values. A `local` row runs block l at start_pos alone and joins the
    others after it, with the corrupted resid_post at the later positions. With
    `last_alone` the last block runs the last position only (`_last_block`), so only that
    one comes back. `window` tells the hooks which rows and positions each forward covers.
    """
    n_layers = model.cfg.n_layers
    with model.hooks(fwd_hooks=fwd_hooks):
        if None in entries:
            assert start_pos == 0
            window[:] = [0, len(prompts), 0]
            return model(corrupted.tokens[prompts, :end_pos], stop_at_layer=n_layers if final else None)
        resid, entered = None, 0
        for layer in range(entries[0][0], n_layers):
            joining = sum(1 for entry in entries[entered:] if entry == (layer, False))
            if joining:
                new = corrupted.resid_pre[layer][prompts[entered : entered + joining], start_pos:end_pos]
                resid = new if resid is None else torch.cat([resid, new])
                entered += joining
            here = prompts[:entered]
            window[:] = [0, entered, 0]
            if resid is None:
                pass  # only local rows so far
            elif last_alone and layer == n_layers - 1 and resid.shape[1] > 1:
                resid = _last_block(model, corrupted, resid, here, start_pos, window)
            else:
                resid = _run_block(model, corrupted, resid, here, layer, start_pos)
            joining = sum(1 for entry in entries[entered:] if entry == (layer, True))
            if joining:
                local = prompts[entered : entered + joining]
                window[:] = [entered, entered + joining, 0]
                at_start = _run_block(
                    model,
                    corrupted,
                    corrupted.resid_pre[layer][local, start_pos : start_pos + 1],
                    local,
                    layer,
                    start_pos,
                )
                new = torch.cat([at_start, corrupted.resid_pre[layer + 1][local, start_pos + 1 : end_pos]], dim=1)
                resid = new if resid is None else torch.cat([resid, new])
                entered += joining
    return resid if final else model(resid, start_at_layer=n_layers)  # ln_final, unembed, softcap


@torch.no_grad()
def patch_sites(
    model: HookedTransformer,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: Cache,
    metric: Metric,
    sites: Sequence[Site],
    max_batch: int | None = None,
    progress: bool = True,
) -> Float[Tensor, " site"]:
    """metric of the corrupted run with each site patched from `clean_cache`, one value per site.

    Every site is one block of `batch` rows in a stacked batch, run `max_batch` rows at a
    time (default: about `circuits.MAX_TOKENS` = 2048 tokens a chunk, counting only the
    positions a chunk runs). Rows join the run at their site's layer and, for sites at one
    position, start at that position (see the module docstring). `metric` is called once
    per site on [batch, pos, d_vocab] logits, or, for a `PositionMetric`, with the logits of
    the read positions only. A tqdm bar appears after 3 s.
    """
    if max_batch is not None:
        check_range("max_batch", max_batch, 1)
    batch, n_pos = corrupted_tokens.shape
    cfg, device = model.cfg, model.cfg.device
    corrupted_tokens = corrupted_tokens.to(device)
    causal = cfg.positional_embedding_type in _CAUSAL_POSITIONS
    if causal:  # a padding mask (left padding) rules out the key-value cache short cut
        causal = model.input_to_embed(corrupted_tokens[:1])[3] is None
    plans = [_plan(model, clean_cache, (batch, n_pos), site, causal) for site in sites]
    results = torch.zeros(len(plans), device=device)
    if not plans:
        return results
    store = getattr(clean_cache, "cache_dict", clean_cache)
    fast = isinstance(metric, PositionMetric) and not any(p.hook.startswith(("ln_final", "unembed")) for p in plans)
    read = metric.positions(n_pos).to(device) if fast else None
    if read is not None and read.shape != (batch,):
        raise ValueError(f"parameter metric reads {tuple(read.shape)} positions; corrupted_tokens has {batch} prompts")
    n_layers = cfg.n_layers
    # With causal attention nothing after the last read position reaches the metric: the run
    # stops there, and a site after it leaves the corrupted value. When every prompt reads
    # the same (last run) position, the last block runs that position alone (`_last_block`).
    end_pos = int(read.max()) + 1 if fast and cfg.attention_dir == "causal" else n_pos
    last_alone = fast and causal and bool((read == end_pos - 1).all()) and _reads_last_alone(model)
    unreached = [i for i, plan in enumerate(plans) if plan.pos is not None and plan.pos >= end_pos]
    if fast and cfg.attention_dir == "causal":  # a last block's patch at a position the metric never reads
        unreached += [
            i
            for i, plan in enumerate(plans)
            if plan.layer == n_layers - 1
            and plan.pos is not None
            and plan.pos < end_pos
            and plan.hook.split(".", 2)[2] in _LOCAL_HOOKS
            and not (read == plan.pos).any()
        ]
    corrupted, site_acts = _corrupted_run(
        model,
        corrupted_tokens,
        with_kv=causal or last_alone,
        with_logits=not fast,
        site_hooks={plan.hook for plan in plans},
    )
    # A site whose clean activation equals the corrupted one changes nothing; an all-positions
    # site of a causal hook changes nothing before its first differing position, so it starts
    # there (IOI prompts: the words before the first name are the same in both runs).
    for i, plan in enumerate(plans):
        if i in unreached:
            continue
        first = _first_change(plan, store[plan.hook].to(device), site_acts[plan.hook], end_pos)
        if first is None:
            unreached.append(i)
        elif plan.pos is None and causal and first > 0 and plan.layer is not None and _causal_hook(plan.hook):
            plans[i] = dataclasses.replace(plan, start_pos=first)
    if unreached:
        if fast:
            logits = model(
                corrupted.final_resid[torch.arange(batch, device=device), read][:, None], start_at_layer=n_layers
            )
            results[unreached] = metric.at_positions(logits[:, 0]).item()
        else:
            results[unreached] = metric(corrupted.logits).item()

    # Sites sorted by (first position, layer): a chunk never mixes first positions, and its rows join in order.
    order = sorted(
        set(range(len(plans))) - set(unreached),
        key=lambda i: (plans[i].start_pos, -1 if plans[i].layer is None else plans[i].layer, plans[i].local),
    )
    chunks = []
    group_start = 0
    for k in range(1, len(order) + 1):
        start_pos = plans[order[group_start]].start_pos
        if k == len(order) or plans[order[k]].start_pos != start_pos:
            rows = max_batch or max(1, MAX_TOKENS // (end_pos - start_pos))
            chunks += [(start, min(start + rows, k * batch)) for start in range(group_start * batch, k * batch, rows)]
            group_start = k

    pending: list[Tensor] = []
    for start, end in tqdm(chunks, desc="patching", delay=3.0, disable=not progress):
        prompts = torch.arange(start, end, device=device) % batch
        chunk_sites = range(start // batch, (end - 1) // batch + 1)
        chunk_plans = [plans[order[k]] for k in chunk_sites]
        p0 = chunk_plans[0].start_pos

        masks: dict[str, Tensor] = {}
        cleans: dict[str, Tensor] = {}
        patterns: dict[str, bool] = {}
        entries: list[tuple[int, bool] | None] = []
        for k, plan in zip(chunk_sites, chunk_plans):
            lo, hi = max(k * batch, start) - start, min((k + 1) * batch, end) - start
            entries += [None if plan.layer is None else (plan.layer, plan.local)] * (hi - lo)
            if plan.hook not in masks:
                clean = store[plan.hook].to(device)
                clean = clean[prompts, :, p0:end_pos] if plan.pattern else clean[prompts, p0:end_pos]
                cleans[plan.hook], patterns[plan.hook] = clean, plan.pattern
                masks[plan.hook] = torch.zeros(*clean.shape[:-1], 1, dtype=torch.bool, device=device)
            index: list[slice | int] = [slice(lo, hi)] + [slice(None)] * (masks[plan.hook].ndim - 1)
            pos_axis, head_axis = (2, 1) if plan.pattern else (1, 2)
            if plan.pos is not None:
                index[pos_axis] = plan.pos - p0
            if plan.head is not None:
                index[head_axis] = plan.head
            masks[plan.hook][tuple(index)] = True
        window = [0, 0, 0]  # rows and first position of each forward, set by _run_chunk
        fwd_hooks = [
            (
                name,
                functools.partial(
                    _window_hook, mask=masks[name], clean=cleans[name], window=window, pattern=patterns[name]
                ),
            )
            for name in masks
        ]

        out = _run_chunk(
            model, corrupted, fwd_hooks, window, prompts, entries, p0, end_pos, final=fast, last_alone=last_alone
        )
        if fast:
            at = read[prompts]
            first = end_pos - out.shape[1]  # out holds positions first:end_pos (only the last with last_alone)
            new = out[torch.arange(len(prompts), device=device), (at - first).clamp(min=0)]
            picked = torch.where((at >= p0)[:, None], new, corrupted.final_resid[prompts, at])  # before p0: unchanged
            out = model(picked[:, None], start_at_layer=n_layers)[:, 0]  # ln_final, unembed, softcap: [rows, d_vocab]
        elif p0 > 0:
            out = torch.cat([corrupted.logits[prompts, :p0], out], dim=1)

        for k in chunk_sites:  # hand every completed block of rows to the metric
            lo, hi = max(k * batch, start) - start, min((k + 1) * batch, end) - start
            pending.append(out[lo:hi])
            if (k + 1) * batch <= end:
                block = torch.cat(pending) if len(pending) > 1 else pending[0]
                pending = []
                value = metric.at_positions(block) if fast else metric(block)
                results[order[k]] = value.item()
    return results


# --------------------------------------------------------------------------------------
# The TransformerLens kinds
# --------------------------------------------------------------------------------------
# Each takes `layers` (default: all): only those layers are patched, the others' rows are NaN
# (a 30-layer model can patch the layers that matter and skip the rest).


def _n_kv_heads(model: HookedTransformer) -> int:
    return model.cfg.n_key_value_heads if model.cfg.n_key_value_heads is not None else model.cfg.n_heads


def chosen_layers(model: HookedTransformer, layers: Sequence[int] | None) -> list[int]:
    """The layers a kind patches: every layer by default; the others' rows of the result are NaN."""
    if layers is None:
        return list(range(model.cfg.n_layers))
    for layer in layers:
        check_range("layers[]", layer, 0, model.cfg.n_layers - 1)
    return sorted(set(layers))


def _grid(model: HookedTransformer, values: Tensor, layers: list[int], shape: tuple[int, ...]) -> Tensor:
    """[layer, *shape] with the patched layers' values and NaN in the other layers."""
    if len(layers) == model.cfg.n_layers:
        return values.view(model.cfg.n_layers, *shape)
    grid = torch.full((model.cfg.n_layers, *shape), float("nan"), device=values.device)
    grid[layers] = values.view(len(layers), *shape)
    return grid


def _by_pos(
    model: HookedTransformer,
    corrupted_tokens: Tensor,
    clean_cache: Cache,
    metric: Metric,
    name: str,
    max_batch: int | None,
    progress: bool,
    layers: Sequence[int] | None = None,
) -> Tensor:
    chosen, n_pos = chosen_layers(model, layers), corrupted_tokens.shape[1]
    sites = [Site.of(name, layer, pos=pos) for layer in chosen for pos in range(n_pos)]
    values = patch_sites(model, corrupted_tokens, clean_cache, metric, sites, max_batch, progress)
    return _grid(model, values, chosen, (n_pos,))


def _head_all_pos(
    model: HookedTransformer,
    corrupted_tokens: Tensor,
    clean_cache: Cache,
    metric: Metric,
    name: str,
    n_heads: int,
    max_batch: int | None,
    progress: bool,
    layers: Sequence[int] | None = None,
) -> Tensor:
    chosen = chosen_layers(model, layers)
    sites = [Site.of(name, layer, head=head) for layer in chosen for head in range(n_heads)]
    values = patch_sites(model, corrupted_tokens, clean_cache, metric, sites, max_batch, progress)
    return _grid(model, values, chosen, (n_heads,))


def resid_pre_by_pos(
    model: HookedTransformer,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: Cache,
    metric: Metric,
    max_batch: int | None = None,
    progress: bool = True,
    layers: Sequence[int] | None = None,
) -> Float[Tensor, "layer pos"]:
    """Patch the residual stream before each block at each position (TL: get_act_patch_resid_pre)."""
    return _by_pos(model, corrupted_tokens, clean_cache, metric, "resid_pre", max_batch, progress, layers)


def attn_out_by_pos(
    model: HookedTransformer,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: Cache,
    metric: Metric,
    max_batch: int | None = None,
    progress: bool = True,
    layers: Sequence[int] | None = None,
) -> Float[Tensor, "layer pos"]:
    """Patch each attention layer's output at each position (TL: get_act_patch_attn_out)."""
    return _by_pos(model, corrupted_tokens, clean_cache, metric, "attn_out", max_batch, progress, layers)


def mlp_out_by_pos(
    model: HookedTransformer,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: Cache,
    metric: Metric,
    max_batch: int | None = None,
    progress: bool = True,
    layers: Sequence[int] | None = None,
) -> Float[Tensor, "layer pos"]:
    """Patch each MLP layer's output at each position (TL: get_act_patch_mlp_out)."""
    return _by_pos(model, corrupted_tokens, clean_cache, metric, "mlp_out", max_batch, progress, layers)


def attn_head_out_all_pos(
    model: HookedTransformer,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: Cache,
    metric: Metric,
    max_batch: int | None = None,
    progress: bool = True,
    layers: Sequence[int] | None = None,
) -> Float[Tensor, "layer head_index"]:
    """Patch each head's output (hook_z) at every position (TL: get_act_patch_attn_head_out_all_pos)."""
    return _head_all_pos(
        model, corrupted_tokens, clean_cache, metric, "z", model.cfg.n_heads, max_batch, progress, layers
    )


def attn_head_q_all_pos(
    model: HookedTransformer,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: Cache,
    metric: Metric,
    max_batch: int | None = None,
    progress: bool = True,
    layers: Sequence[int] | None = None,
) -> Float[Tensor, "layer head_index"]:
    """Patch each head's queries at every position (TL: get_act_patch_attn_head_q_all_pos)."""
    return _head_all_pos(
        model, corrupted_tokens, clean_cache, metric, "q", model.cfg.n_heads, max_batch, progress, layers
    )


def attn_head_k_all_pos(
    model: HookedTransformer,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: Cache,
    metric: Metric,
    max_batch: int | None = None,
    progress: bool = True,
    layers: Sequence[int] | None = None,
) -> Float[Tensor, "layer head_index"]:
    """Patch each (key-value) head's keys at every position (TL: get_act_patch_attn_head_k_all_pos)."""
    return _head_all_pos(
        model, corrupted_tokens, clean_cache, metric, "k", _n_kv_heads(model), max_batch, progress, layers
    )


def attn_head_v_all_pos(
    model: HookedTransformer,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: Cache,
    metric: Metric,
    max_batch: int | None = None,
    progress: bool = True,
    layers: Sequence[int] | None = None,
) -> Float[Tensor, "layer head_index"]:
    """Patch each (key-value) head's values at every position (TL: get_act_patch_attn_head_v_all_pos)."""
    return _head_all_pos(
        model, corrupted_tokens, clean_cache, metric, "v", _n_kv_heads(model), max_batch, progress, layers
    )


def attn_head_pattern_all_pos(
    model: HookedTransformer,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: Cache,
    metric: Metric,
    max_batch: int | None = None,
    progress: bool = True,
    layers: Sequence[int] | None = None,
) -> Float[Tensor, "layer head_index"]:
    """Patch each head's whole attention pattern (TL: get_act_patch_attn_head_pattern_all_pos)."""
    return _head_all_pos(
        model, corrupted_tokens, clean_cache, metric, "pattern", model.cfg.n_heads, max_batch, progress, layers
    )


def attn_head_out_by_pos(
    model: HookedTransformer,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: Cache,
    metric: Metric,
    max_batch: int | None = None,
    progress: bool = True,
    layers: Sequence[int] | None = None,
) -> Float[Tensor, "layer pos head_index"]:
    """Patch each head's output (hook_z) at each position (TL: get_act_patch_attn_head_out_by_pos)."""
    chosen, n_pos, n_heads = chosen_layers(model, layers), corrupted_tokens.shape[1], model.cfg.n_heads
    sites = [
        Site.of("z", layer, pos=pos, head=head) for layer in chosen for pos in range(n_pos) for head in range(n_heads)
    ]
    values = patch_sites(model, corrupted_tokens, clean_cache, metric, sites, max_batch, progress)
    return _grid(model, values, chosen, (n_pos, n_heads))


__all__ = [
    "LogitDiff",
    "Normalised",
    "NormalisedAtPositions",
    "PositionMetric",
    "Site",
    "attn_head_k_all_pos",
    "attn_head_out_all_pos",
    "attn_head_out_by_pos",
    "attn_head_pattern_all_pos",
    "attn_head_q_all_pos",
    "attn_head_v_all_pos",
    "attn_out_by_pos",
    "logit_diff_metric",
    "mlp_out_by_pos",
    "normalised_metric",
    "patch_hook",
    "patch_sites",
    "resid_pre_by_pos",
]


# --------------------------------------------------------------------------------------
# Attribution patching: every site from two forwards and one backward
# --------------------------------------------------------------------------------------


def attribution_head_out_all_pos(
    model: HookedTransformer,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: Cache,
    metric: Metric,
) -> Float[Tensor, "layer head_index"]:
    """Linear estimate of `attn_head_out_all_pos`: metric change if each head's z were the clean one.

    Attribution patching (Nanda 2023; Syed et al. 2023): metric(corrupted + delta) is about
    metric(corrupted) + grad . delta, with delta = clean z - corrupted z and the gradient of
    the metric at the corrupted run. One corrupted forward with a backward gives every
    head's gradient, so every site costs one dot product instead of one forward. Returns
    the estimated metric value after patching (the same quantity as exact patching), so
    the two can be plotted against each other. Exact only where the model is linear in z.
    """
    if tuple(corrupted_tokens.shape) != tuple(clean_cache["hook_embed"].shape[:2]):
        raise ValueError(
            f"parameter corrupted_tokens has shape {tuple(corrupted_tokens.shape)}; "
            f"the clean cache holds {tuple(clean_cache['hook_embed'].shape[:2])}"
        )
    names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)]
    graph_z: dict[str, Tensor] = {}  # local to this call: the activations inside the autograd graph

    def keep(z: Tensor, hook: HookPoint) -> None:
        graph_z[hook.name] = z

    with torch.enable_grad(), model.hooks(fwd_hooks=[(n, keep) for n in names]):
        base = metric(model(corrupted_tokens))
        grads = torch.autograd.grad(base, [graph_z[n] for n in names])
    rows = [
        einops.einsum(
            clean_cache[n] - graph_z[n].detach(),
            g,
            "batch pos head_index d_head, batch pos head_index d_head -> head_index",
        )
        for n, g in zip(names, grads)
    ]
    return base.detach() + torch.stack(rows)
