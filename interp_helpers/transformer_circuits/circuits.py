"""Circuit kernels for attention heads: copying scores, composition scores, head ablation.

Conventions (TransformerLens): residual vectors are rows, so a head's OV circuit is
`W_OV = W_V @ W_O` ([d_model, d_model], x -> x @ W_OV) and its QK circuit is
`W_QK = W_Q @ W_K.T` (score = x_q @ W_QK @ x_k.T). `model.OV` and `model.QK` hold them
for every [layer, head_index] as FactoredMatrix, so nothing of size d_vocab x d_vocab
is ever formed unless asked. Weights are used as they are: LayerNorm scales and biases
are ignored, as in Elhage et al. (2021). For exact numbers on a model with LN weights,
fold them first (`model.process_weights_(fold_ln=True)` where available, or load with
`fold_ln=True`).

Head ablation replaces `blocks.{l}.attn.hook_z` (shape [batch, pos, head_index, d_head],
before W_O) for one head; losses follow `induction.per_token_loss` (target i predicts
tokens[:, i + 1]) and masks follow `induction.masked_mean` (a [batch, pos] mask marks the
*predicted* tokens).

`transformer_lens.head_detector.detect_head` measures the same previous-token,
duplicate-token and induction attention as `induction.head_scores`, normalised
differently: it divides by the number of query positions (every row of the pattern
sums to 1), whereas `induction` averages over the queries where the pattern is
defined. On one sequence of `pos` tokens, with BOS and no token occurring more than
twice, detect_head = induction score x n_valid / pos, where n_valid is pos - 1 for
previous-token and the number of repeated tokens for duplicate-token and induction
(tests/test_circuits.py checks this). `induction.head_scores(..., queries="all")` uses
detect_head's denominator directly, and `induction.head_detector_scores` runs
detect_head itself (tests/test_induction.py checks they agree). With a token occurring
three or more times detect_head counts every earlier occurrence, induction.py only the latest.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import einops
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import FactoredMatrix, HookedTransformer
from transformer_lens.hook_points import HookPoint

from interp_helpers.core.validation import check_choice, check_range
from interp_helpers.transformer_circuits.induction import ablated_loss, per_token_loss

# --------------------------------------------------------------------------------------
# Copying: the full OV circuit W_E W_OV W_U
# --------------------------------------------------------------------------------------


def full_ov_circuit(model: HookedTransformer, layer: int, vocab: Int[Tensor, " vocab"] | None = None) -> FactoredMatrix:
    """W_E @ W_OV @ W_U for every head of `layer`: [head_index, d_vocab, d_vocab], factored through d_head.

    This is the direct path "attend to token s -> change the logit of token t" of each
    head. Stored as [d_vocab, d_head] @ [d_head, d_vocab], about 2 x d_vocab x d_head floats
    per head instead of d_vocab^2. `vocab` restricts both sides to those token ids (e.g. the
    words a task uses), leaving out tokens whose embeddings never trained.
    """
    check_range("layer", layer, 0, model.cfg.n_layers - 1)
    W_E, W_U = (model.W_E, model.W_U) if vocab is None else (model.W_E[vocab], model.W_U[:, vocab])
    attn = model.blocks[layer].attn  # its W_V and W_O are model.W_V[layer] and model.W_O[layer], without stacking all
    return FactoredMatrix(W_E @ attn.W_V, attn.W_O @ W_U)


def copying_eigen_score(circuit: FactoredMatrix) -> Float[Tensor, ...]:
    """Sum of eigenvalues / sum of their magnitudes (real part), in [-1, 1]; 1 = pure copying.

    Elhage et al.'s "positive eigenvalue" summary: a matrix that maps every token to
    itself (up to a positive scale) has only positive eigenvalues. The nonzero
    eigenvalues of A @ B equal those of the small B @ A, so this costs one
    d_head x d_head eigendecomposition per head whatever d_vocab is.
    """
    eig = circuit.eigenvalues  # of B @ A: [..., d_head], complex
    return (eig.sum(-1) / eig.abs().sum(-1)).real


def diagonal_top_k_accuracy(circuit: FactoredMatrix, k: int = 5, chunk: int = 512) -> Float[Tensor, ...]:
    """Fraction of tokens t whose own logit is among the k largest of row t of the circuit.

    A complement to the eigenvalue score that reads "does attending to t raise t above
    the rest of the vocabulary". Rows are computed `chunk` at a time, so memory is
    chunk x d_vocab per head, never d_vocab^2. Ties count in t's favour.
    """
    check_range("k", k, 1, circuit.rdim)
    check_range("chunk", chunk, 1)
    d_vocab = circuit.ldim
    hits = torch.zeros(circuit.shape[:-2])
    for start in range(0, d_vocab, chunk):
        rows = torch.arange(start, min(start + chunk, d_vocab))
        block = circuit.A[..., rows, :] @ circuit.B  # [..., rows, d_vocab]
        own = block[..., torch.arange(len(rows)), rows]  # [..., rows]
        rank = (block > own[..., None]).sum(-1)  # how many tokens beat t
        hits += (rank < k).sum(-1)
    return hits / d_vocab


@dataclass(frozen=True)
class CopyingScores:
    eigen: Float[Tensor, "layer head_index"]  # copying_eigen_score, in [-1, 1]
    top_k: Float[Tensor, "layer head_index"]  # diagonal_top_k_accuracy, in [0, 1]
    k: int


@torch.no_grad()
def copying_scores(
    model: HookedTransformer, k: int = 5, chunk: int = 512, vocab: Int[Tensor, " vocab"] | None = None
) -> CopyingScores:
    """Both copying scores of every head's full OV circuit (over `vocab` only, if given), one layer at a time."""
    eigen, top_k = [], []
    for layer in range(model.cfg.n_layers):
        circuit = full_ov_circuit(model, layer, vocab)
        eigen.append(copying_eigen_score(circuit))
        top_k.append(diagonal_top_k_accuracy(circuit, k, chunk))
    return CopyingScores(torch.stack(eigen), torch.stack(top_k), k)


# --------------------------------------------------------------------------------------
# Composition
# --------------------------------------------------------------------------------------


def composition_score(
    W_A: Float[Tensor, "head_index_0 d_model d_model"], W_B: Float[Tensor, "head_index_1 d_model d_model"]
) -> Float[Tensor, "head_index_0 head_index_1"]:
    """||W_A W_B||_F / (||W_A||_F ||W_B||_F) for every pair (earlier head a, later head b).

    High when W_B reads mostly the directions W_A writes to (exactly 1 only for aligned
    rank-1 maps; a shared rank-r projection gives 1/sqrt(r)), ~1/sqrt(d_model) for unrelated
    random matrices (see `composition_baseline`). One earlier head at a time keeps memory
    at head_index_1 x d_model^2.
    """
    norm_A = W_A.norm(dim=(-2, -1))
    norm_B = W_B.norm(dim=(-2, -1))
    rows = [torch.linalg.matrix_norm(W_A[a] @ W_B) for a in range(W_A.shape[0])]
    return torch.stack(rows) / (norm_A[:, None] * norm_B[None, :])


@torch.no_grad()
def composition_scores(
    model: HookedTransformer, layer_0: int = 0, layer_1: int = 1
) -> dict[str, Float[Tensor, "head_index_0 head_index_1"]]:
    """Q-, K- and V-composition of every head of `layer_0` into every head of `layer_1`.

    The earlier head's output x @ W_OV0 can enter the later head as its query
    (x @ W_OV0 @ W_QK1: Q), as its key (W_QK1 @ (x @ W_OV0).T; the norm is that of
    W_OV0 @ W_QK1.T: K) or as its value (x @ W_OV0 @ W_OV1: V). Induction heads are
    K-composition with a previous-token head.
    """
    check_range("layer_0", layer_0, 0, model.cfg.n_layers - 2)
    check_range("layer_1", layer_1, layer_0 + 1, model.cfg.n_layers - 1)
    ov_0 = model.OV[layer_0].AB
    qk_1 = model.QK[layer_1].AB
    ov_1 = model.OV[layer_1].AB
    return {
        "q": composition_score(ov_0, qk_1),
        "k": composition_score(ov_0, qk_1.transpose(-2, -1)),
        "v": composition_score(ov_0, ov_1),
    }


def composition_baseline(
    d_model: int, d_head: int, n_samples: int, generator: torch.Generator
) -> Float[Tensor, " sample"]:
    """Composition scores of random pairs of rank-d_head matrices shaped like W_OV and W_QK.

    Composition scores are never 0, even for unrelated heads; compare a model's scores with
    the spread of these samples (mean about 1/sqrt(d_model)) to say which pairs stand out.
    """
    check_range("n_samples", n_samples, 1)

    def low_rank() -> Tensor:
        left = torch.randn(n_samples, d_model, d_head, generator=generator)
        right = torch.randn(n_samples, d_head, d_model, generator=generator)
        return left @ right

    W_A, W_B = low_rank(), low_rank()
    product = torch.linalg.matrix_norm(W_A @ W_B)
    return product / (torch.linalg.matrix_norm(W_A) * torch.linalg.matrix_norm(W_B))


# --------------------------------------------------------------------------------------
# Head ablation: every head, one at a time
# --------------------------------------------------------------------------------------

ABLATIONS = ("zero", "mean")
MAX_TOKENS = 2048  # default tokens per forward of the stacked batch


@dataclass(frozen=True)
class HeadAblation:
    clean: float  # mean loss of the unablated model on the selected targets (nats)
    ablated: Float[Tensor, "layer head_index"]  # the same loss with one head ablated

    @property
    def increase(self) -> Float[Tensor, "layer head_index"]:
        return self.ablated - self.clean


def replace_heads_hook(
    z: Float[Tensor, "batch pos head_index d_head"],
    hook: HookPoint,
    ablate: Bool[Tensor, "batch head_index"],
    value: Float[Tensor, "pos head_index d_head"],
) -> Float[Tensor, "batch pos head_index d_head"]:
    """z with head h of row b replaced by value[:, h] wherever ablate[b, h] (a new tensor).

    One hook serves both the stacked batch (a different head per block of rows) and
    the one-head reference (the same head in every row).
    """
    return torch.where(ablate[:, None, :, None], value.to(z.dtype), z)


def ablation_values(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], kind: str
) -> list[Float[Tensor, "pos head_index d_head"]]:
    """What each layer's heads are replaced with: zeros, or hook_z averaged over the batch.

    The mean keeps the position axis because position 0 (BOS) behaves unlike every
    other position; averaging over positions too would write a BOS-flavoured output
    everywhere.
    """
    check_choice("kind", kind, ABLATIONS)
    shape = (tokens.shape[1], model.cfg.n_heads, model.cfg.d_head)
    if kind == "zero":
        return [torch.zeros(shape) for _ in range(model.cfg.n_layers)]
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("attn.hook_z"))
    return [cache[f"blocks.{layer}.attn.hook_z"].mean(0) for layer in range(model.cfg.n_layers)]


def _loss_mask(
    tokens: Int[Tensor, "batch pos"], loss_mask: Bool[Tensor, "batch pos"] | None
) -> Bool[Tensor, "batch target_pos"]:
    """Target mask ([batch, pos - 1]) from a token mask; every target when None."""
    if loss_mask is None:
        return torch.ones(tokens.shape[0], tokens.shape[1] - 1, dtype=torch.bool)
    if loss_mask.shape != tokens.shape:
        raise ValueError(f"parameter loss_mask has shape {tuple(loss_mask.shape)}, tokens {tuple(tokens.shape)}")
    return loss_mask[:, 1:]


def _target_loss(
    model: HookedTransformer,
    resid: Float[Tensor, "batch pos d_model"],
    tokens: Int[Tensor, "batch pos"],
    targets: Bool[Tensor, "batch target_pos"],
) -> Float[Tensor, " n_target"]:
    """Loss at the selected targets only, from the final residual stream.

    The unembedding and log-softmax over d_vocab cost more than an attention-only
    model's blocks, so skipping the targets nobody scores is the cheapest speed-up.
    """
    picked = resid[:, :-1][targets]  # [n_target, d_model]
    logprobs = model.unembed(model.ln_final(picked[None]))[0].log_softmax(-1)
    return -logprobs.gather(-1, tokens[:, 1:][targets][:, None])[:, 0]


@torch.no_grad()
def ablate_each_head(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    loss_mask: Bool[Tensor, "batch pos"] | None = None,
    kind: str = "zero",
    mean_tokens: Int[Tensor, "mean_batch pos"] | None = None,
    max_batch: int | None = None,
    progress: bool = True,
    heads: Sequence[tuple[int, int]] | None = None,
) -> HeadAblation:
    """Loss with each head ablated alone, all heads in one stacked batch.

    Row block 0 of the stacked batch is the clean model and block 1 + i ablates head i
    (layer-major), so the batch is (n_layers x n_heads + 1) x batch rows. Rows go through
    the model `max_batch` at a time (a chunk may cut a block anywhere), which bounds
    memory at about max_batch x pos x d_model activations, max_batch x n_heads x pos^2
    attention scores, plus the selected targets' logits. The default, MAX_TOKENS // pos
    rows, was the fastest on a CPU: bigger chunks fall out of cache. `mean_tokens` (default `tokens`)
    supplies the mean activations for kind="mean". Logits are computed only at the
    targets in `loss_mask`. A tqdm bar appears after 3 s.

    `heads` (default: every head) ablates only those (layer, head) pairs, NaN elsewhere in
    `ablated`: a 30-layer model with 270 heads cannot afford them all. Their rows start at
    their own layer, from the unablated run's residual stream there (`_ablate_chosen_heads`).
    """
    max_batch = max(1, MAX_TOKENS // tokens.shape[1]) if max_batch is None else max_batch
    check_range("max_batch", max_batch, 1)
    values = ablation_values(model, tokens if mean_tokens is None else mean_tokens, kind)
    if heads is not None:
        return _ablate_chosen_heads(model, tokens, _loss_mask(tokens, loss_mask), values, heads, max_batch, progress)
    batch, n_heads = tokens.shape[0], model.cfg.n_heads
    n_variants = model.cfg.n_layers * n_heads + 1
    targets = _loss_mask(tokens, loss_mask)
    sums = torch.zeros(n_variants, dtype=torch.float64)
    counts = torch.zeros(n_variants, dtype=torch.float64)
    heads = torch.arange(n_heads)
    total = n_variants * batch
    for start in tqdm(range(0, total, max_batch), desc="ablating heads", delay=3.0, disable=not progress):
        rows = torch.arange(start, min(start + max_batch, total))
        variant, row = rows // batch, rows % batch
        fwd_hooks = []
        for layer in range(model.cfg.n_layers):
            ablate = (variant - 1)[:, None] == layer * n_heads + heads[None, :]  # [rows, head_index]
            if ablate.any():
                hook = functools.partial(replace_heads_hook, ablate=ablate, value=values[layer])
                fwd_hooks.append((f"blocks.{layer}.attn.hook_z", hook))
        chunk_tokens, mask = tokens[row], targets[row]
        resid = model.run_with_hooks(chunk_tokens, fwd_hooks=fwd_hooks, stop_at_layer=model.cfg.n_layers)
        loss = _target_loss(model, resid, chunk_tokens, mask)
        sums.index_add_(0, variant[:, None].expand_as(mask)[mask], loss.double())
        counts.index_add_(0, variant, mask.sum(-1).double())
    losses = (sums / counts).float()
    return HeadAblation(losses[0].item(), losses[1:].view(model.cfg.n_layers, n_heads))


def _ablate_chosen_heads(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    targets: Bool[Tensor, "batch target_pos"],
    values: list[Float[Tensor, "pos head_index d_head"]],
    heads: Sequence[tuple[int, int]],
    max_batch: int,
    progress: bool,
) -> HeadAblation:
    """`ablate_each_head` for chosen heads: each head's rows join at its layer (the layers before it are the
    unablated run's, the same for every head), a layer's heads stacked along the batch."""
    n_layers, n_heads, batch = model.cfg.n_layers, model.cfg.n_heads, tokens.shape[0]
    for layer, head in heads:
        check_range("heads[].layer", layer, 0, n_layers - 1)
        check_range("heads[].head", head, 0, n_heads - 1)
    final = f"blocks.{n_layers - 1}.hook_resid_post"
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_resid_pre") or name == final)
    _, _, shortformer, attention_mask = model.input_to_embed(tokens)
    ablated = torch.full((n_layers, n_heads), float("nan"))
    chosen = sorted(set(map(tuple, heads)))
    blocks = [(layer, head, row) for layer, head in chosen for row in range(batch)]  # one row per (head, prompt)
    sums = torch.zeros(n_layers, n_heads, dtype=torch.float64)
    for start in tqdm(range(0, len(blocks), max_batch), desc="ablating heads", delay=3.0, disable=not progress):
        chunk = blocks[start : start + max_batch]
        for layer in sorted({layer for layer, _, _ in chunk}):  # one forward per layer in the chunk
            part = [(h, r) for l, h, r in chunk if l == layer]
            head_idx, row = torch.tensor([h for h, _ in part]), torch.tensor([r for _, r in part])
            ablate = head_idx[:, None] == torch.arange(n_heads)[None, :]
            hook = functools.partial(replace_heads_hook, ablate=ablate, value=values[layer])
            kwargs = {}
            if shortformer is not None:
                kwargs["shortformer_pos_embed"] = shortformer[row]
            if attention_mask is not None:
                kwargs["attention_mask"] = attention_mask[row]
            resid = model.run_with_hooks(
                cache[f"blocks.{layer}.hook_resid_pre"][row],
                start_at_layer=layer,
                stop_at_layer=n_layers,
                fwd_hooks=[(f"blocks.{layer}.attn.hook_z", hook)],
                **kwargs,
            )
            loss = _target_loss(model, resid, tokens[row], targets[row]).double()
            owner = head_idx[:, None].expand_as(targets[row])[targets[row]]
            sums[layer].index_add_(0, owner, loss)
    counts = targets.sum().double()
    for layer, head in chosen:
        ablated[layer, head] = (sums[layer, head] / counts).float()
    clean = _target_loss(model, cache[final], tokens, targets).double().mean().float().item()
    return HeadAblation(clean, ablated)


@torch.no_grad()
def ablate_each_head_naive(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    loss_mask: Bool[Tensor, "batch pos"] | None = None,
    kind: str = "zero",
    mean_tokens: Int[Tensor, "mean_batch pos"] | None = None,
    progress: bool = True,
) -> HeadAblation:
    """Reference for `ablate_each_head`: one forward pass per head, as a for loop would do it."""
    values = ablation_values(model, tokens if mean_tokens is None else mean_tokens, kind)
    targets = _loss_mask(tokens, loss_mask)
    clean = per_token_loss(model(tokens), tokens)[targets].mean().item()
    ablated = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    pairs = [(layer, head) for layer in range(model.cfg.n_layers) for head in range(model.cfg.n_heads)]
    for layer, head in tqdm(pairs, desc="ablating heads (one by one)", delay=3.0, disable=not progress):
        if kind == "zero":  # induction.py's own zero-ablation: an independent code path
            loss = ablated_loss(model, tokens, layer, head)
        else:
            hook = functools.partial(_set_head_hook, head=head, value=values[layer][:, head])
            loss = per_token_loss(
                model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", hook)]), tokens
            )
        ablated[layer, head] = loss[targets].mean().item()
    return HeadAblation(clean, ablated)


def _set_head_hook(
    z: Float[Tensor, "batch pos head_index d_head"], hook: HookPoint, head: int, value: Float[Tensor, "pos d_head"]
) -> Float[Tensor, "batch pos head_index d_head"]:
    """z with one head's output set to `value` in every row (a copy; the caller's z is untouched)."""
    z = z.clone()
    z[:, :, head] = value
    return z


@torch.no_grad()
def ablate_heads(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    heads: list[tuple[int, int]],
    loss_mask: Bool[Tensor, "batch pos"] | None = None,
    kind: str = "zero",
    mean_tokens: Int[Tensor, "mean_batch pos"] | None = None,
) -> float:
    """Mean loss on the selected targets with every (layer, head) in `heads` ablated together."""
    for layer, head in heads:
        check_range("layer", layer, 0, model.cfg.n_layers - 1)
        check_range("head", head, 0, model.cfg.n_heads - 1)
    values = ablation_values(model, tokens if mean_tokens is None else mean_tokens, kind)
    fwd_hooks = []
    for layer in sorted({layer for layer, _ in heads}):
        ablate = torch.zeros(tokens.shape[0], model.cfg.n_heads, dtype=torch.bool)
        ablate[:, [h for l, h in heads if l == layer]] = True
        hook = functools.partial(replace_heads_hook, ablate=ablate, value=values[layer])
        fwd_hooks.append((f"blocks.{layer}.attn.hook_z", hook))
    targets = _loss_mask(tokens, loss_mask)
    return per_token_loss(model.run_with_hooks(tokens, fwd_hooks=fwd_hooks), tokens)[targets].mean().item()


def unembed_directions(model: HookedTransformer, token_ids: Int[Tensor, ...]) -> Float[Tensor, "... d_model"]:
    """The residual-stream direction whose dot product (after ln_final's centring and scale) is each token's logit.

    W_U's column for the token, times ln_final's elementwise weight when the model has one
    (unfolded LayerNorm); with folded weights (LNPre) that factor is already inside W_U.
    """
    directions = model.W_U.T[token_ids]
    weight = getattr(model.ln_final, "w", None)
    return directions * weight if weight is not None else directions


def _direct_per_head(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    batch_idx: Int[Tensor, " site"],
    pos_idx: Int[Tensor, " site"],
    directions: Float[Tensor, "site d_model"],
    fwd_hooks: list[tuple[str, object]] | None,
) -> Float[Tensor, "layer head_index"]:
    """Mean over sites (row, position) of each head's centred, ln_final-scaled output . the site's direction."""
    with model.hooks(fwd_hooks=fwd_hooks or []):
        _, cache = model.run_with_cache(
            tokens, names_filter=lambda name: name.endswith("attn.hook_z") or name == "ln_final.hook_scale"
        )
    scale = cache["ln_final.hook_scale"][batch_idx, pos_idx]  # site 1
    out = []
    for layer in range(model.cfg.n_layers):
        z = cache[f"blocks.{layer}.attn.hook_z"][batch_idx, pos_idx]  # site head_index d_head
        head_out = einops.einsum(
            z, model.W_O[layer], "site head_index d_head, head_index d_head d_model -> site head_index d_model"
        )
        if model.cfg.normalization_type in ("LN", "LNPre"):
            head_out = head_out - head_out.mean(-1, keepdim=True)
        direct = einops.einsum(
            head_out / scale[:, :, None], directions, "site head_index d_model, site d_model -> site head_index"
        )
        out.append(direct.mean(0))
    return torch.stack(out)


@torch.no_grad()
def head_direct_attribution(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    positions: Int[Tensor, " batch"],
    directions: Float[Tensor, "batch d_model"],
    fwd_hooks: list[tuple[str, object]] | None = None,
) -> Float[Tensor, "layer head_index"]:
    """Mean over rows of each head's output at positions[b], through ln_final, dotted with directions[b].

    The head's output z @ W_O is centred and divided by ln_final's scale at that position,
    as the whole residual stream is there, so attributions add up (with the other
    components and ln_final's bias) to the logit along `directions` (see
    `unembed_directions`; a difference of two gives a logit difference, as in IOI).
    `fwd_hooks` (e.g. an ablation) are attached for this one run and removed after it.
    """
    return _direct_per_head(model, tokens, torch.arange(tokens.shape[0]), positions, directions, fwd_hooks)


@torch.no_grad()
def head_logit_attribution(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    loss_mask: Bool[Tensor, "batch pos"] | None = None,
    fwd_hooks: list[tuple[str, object]] | None = None,
) -> Float[Tensor, "layer head_index"]:
    """Direct logit attribution: each head's mean direct push on the logit of the correct next token.

    The per-head attribution of `head_direct_attribution` at every target in `loss_mask`
    (position i, the direction of tokens[:, i + 1]), averaged over those targets.
    """
    batch_idx, pos_idx = _loss_mask(tokens, loss_mask).nonzero(as_tuple=True)
    directions = unembed_directions(model, tokens[batch_idx, pos_idx + 1])
    return _direct_per_head(model, tokens, batch_idx, pos_idx, directions, fwd_hooks)


def hooks_attached(model: HookedTransformer) -> int:
    """Number of forward/backward hooks left on the model's hook points (0 after a clean run)."""
    return sum(len(hp._forward_hooks) + len(hp._backward_hooks) for hp in model.hook_dict.values())


__all__ = [
    "ABLATIONS",
    "MAX_TOKENS",
    "CopyingScores",
    "HeadAblation",
    "ablate_each_head",
    "ablate_heads",
    "ablate_each_head_naive",
    "ablation_values",
    "composition_baseline",
    "composition_score",
    "composition_scores",
    "copying_eigen_score",
    "copying_scores",
    "diagonal_top_k_accuracy",
    "full_ov_circuit",
    "head_direct_attribution",
    "head_logit_attribution",
    "hooks_attached",
    "replace_heads_hook",
    "unembed_directions",
]
