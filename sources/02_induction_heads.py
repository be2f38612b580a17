# %% [markdown]
# # 02 · Induction heads: from phase change to circuit
#
# **Promise.** By the end you can find the two attention heads that let a transformer copy from its context, say
# what each one computes (previous token; match and copy), prove it by reading their weights and by knocking them
# out, and watch the moment in training when they appear.
#
# **Paper.** Olsson et al. (2022), *In-context Learning and Induction Heads*; Elhage et al. (2021), *A Mathematical
# Framework for Transformer Circuits* (composition, the OV and QK circuits).
# **Prerequisites.** 00 (the model zoo). **Runtime on a 2-core CPU:** default about 70 s, fast mode
# (`fast=True`) about 25 s; `retrain=True` adds about 2.5 minutes per 1000 steps (one thread).
#
# **The circuit in one picture.** Reading `... A B ... A` the model should predict `B`. Two heads in two layers do it:
#
# 1. a **previous-token head** in layer 0 writes, at every position, "the token before me was `A`" (at the position
#    of `B`, it writes `A`);
# 2. an **induction head** in layer 1, at the second `A`, looks for a position whose *previous token* was `A` (its key
#    is read from the previous-token head's output: **K-composition**), finds `B`, and copies `B` to the output
#    (its OV circuit is a copying matrix).
#
# The model is `zoo-attn-only-2l` (2 layers, 4 heads each, no MLPs, d_model = 64), trained by
# `workbook train-zoo zoo-attn-only-2l` on our corpus plus rows of random tokens with a repeated segment. Positions enter only the queries and keys ("shortformer"
# embeddings), so the residual stream carries tokens alone and the weight-reading sections stay clean.
#
# **A real model.** `model_name="smollm2-135m-instruct-q4"` runs the same sections on SmolLM2-135M-Instruct (4-bit
# weights; 30 layers x 9 heads, grouped-query attention, rotary positions, RMSNorm, MLPs; notebook 06 goes further).
# "Layer 0" and "layer 1" become the best previous-token head's layer and the best induction head's, and the costly
# parts shrink to what a 2-core CPU affords: 8 rows (16 in default mode), OV circuits over 1,000 random tokens of its
# 49,135, head ablation on the induction head's layer and the previous-token head (default mode: every head of the
# layers between them). The phase change needs a training log and is skipped; the checks assert what was measured on
# this model. About 90 s in fast mode and 3 minutes in default mode with one torch thread on a busy 2-core machine.

# %% tags=["parameters"]
seed: int = 0  # 0 <= seed < 2**32; picks the repeated random-token rows (the model itself is fixed)
fast: bool = False  # fewer rows and a smaller cross-check; every section and check still runs
model_name: str = "zoo-attn-only-2l"  # model_name in ("zoo-attn-only-2l", "smollm2-135m-instruct-q4", "attn-only-2l"); the zoo's 2-layer attention-only model, the real SmolLM2-135M (4-bit, 30 layers: costly sections on a subset) or attn-only-2l (TransformerLens, needs a network)
seq_len: int = 64  # 2 * segment_min + 2 <= seq_len <= 4096; tokens per row, BOS included (at most the model's n_ctx)
n_prompts: int = 128  # 4 <= n_prompts <= 4096; rows of repeated random tokens (fast: at most 32)
segment_min: int = 8  # 2 <= segment_min <= 1000; shortest repeated segment (tokens)
segment_max: int = 31  # segment_min <= segment_max <= (seq_len - 1) // 2; longest repeated segment
view_row: int = 0  # 0 <= view_row < n_prompts; the row shown token by token and in the attention views
retrain: bool = False  # retrain the zoo model live (progress bar) instead of reading its training log
retrain_steps: int = 6000  # 100 <= retrain_steps <= 100_000; steps of that run; the phase change comes after about 3000

# %%
import functools
import math
import tempfile
from pathlib import Path

import torch
from IPython.display import display
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens.hook_points import HookPoint

from interp_helpers import check_choice, check_parameters, check_range, record, seed_everything
from interp_helpers.checkers import Exercises
from interp_helpers.checkers import induction as checks
from interp_helpers.modelzoo import zoo
from interp_helpers.modelzoo.models import ZOO_DIR, load_model
from interp_helpers.modelzoo.real_model import NAME as REAL_MODEL
from interp_helpers.modelzoo.tokenizer import ordinary_tokens
from interp_helpers.transformer_circuits import attention_view, circuits, figures, induction

check_parameters("02", globals())  # the conditions declared in the parameters cell
ex = Exercises("02")
real = model_name == REAL_MODEL  # 30 layers x 9 heads: per-head loops run on the layers that matter
kept = min(n_prompts, 32) if fast else n_prompts  # fast mode keeps 32 rows
if real:
    kept = min(kept, 8 if fast else 16)  # the real model keeps 8 (fast) or 16: a forward of 8 rows takes about 1 s
check_range("view_row", view_row, 0, kept - 1)
if retrain:
    check_choice("model_name (with retrain=True)", model_name, list(zoo.ZOO))
n_prompts = kept
torch.set_grad_enabled(False)  # only the optional retraining needs gradients
_ = seed_everything(seed)
model = load_model(model_name)
check_range("seq_len", seq_len, 2 * segment_min + 2, model.cfg.n_ctx)
print(
    f"{model_name}: {model.cfg.n_layers} layers x {model.cfg.n_heads} heads, d_model {model.cfg.d_model}, "
    f"n_ctx {model.cfg.n_ctx}, attention only: {model.cfg.attn_only}"
)

# %% [markdown]
# ## 1 · The task: repeated random tokens
#
# **Why this matters.** Random tokens have no structure a model could have memorised, so the only way to predict
# a token is to have seen it before *in this context*. A row is BOS, random tokens, a segment of
# `segment_min`..`segment_max` tokens, the same segment again, more random tokens; segment length and position vary
# per row, so no fixed positional offset solves it. The tokens come from the whole vocabulary (every id but the
# special BOS: words, names, BPE fragments, base64 pieces), because an induction head is defined by copying *any*
# token that followed an earlier occurrence of the current one. On the first copy the best possible loss is
# ln(pool size) (a uniform guess); on the second copy an induction circuit can be nearly certain.
#
# This is also why the zoo model saw such rows in training, beside the corpus. Trained on the corpus alone (whose
# repeat documents string together 630 content words), an earlier version copied those words only: on rows drawn
# from the whole vocabulary its best induction score was 0.01 and its second copy cost as much as its first.

# %% [markdown]
# ### Exercise 2.1 · Per-token loss
#
# > **Difficulty** 🔴⚪⚪⚪⚪ · **Importance** 🔵🔵🔵🔵⚪ · about 5 minutes
#
# Every number in this notebook is a loss per token. Write `per_token_loss`: from `logits` [batch, pos, d_vocab]
# and the `tokens` [batch, pos] they were computed from, return the loss (in nats) of predicting `tokens[:, i + 1]`
# at position `i`, that is $-\log \mathrm{softmax}(\text{logits}[b, i])[\text{tokens}[b, i + 1]]$, shape
# [batch, pos - 1] (the last position has no next token).
#
# <details><summary>Hint</summary>
#
# `logits[:, :-1].log_softmax(dim=-1)` are the log-probabilities of the positions that have a next token;
# `.gather(-1, tokens[:, 1:, None])` picks the next token's entry (then drop the last axis and negate).
#
# </details>


# %%
def per_token_loss(
    logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "batch pos-1"]:
    """Cross-entropy (nats) of predicting tokens[:, i + 1] from logits[:, i], for i < pos - 1."""
    # BEGIN SOLUTION
    logprobs = logits[:, :-1].log_softmax(dim=-1)  # the last position predicts nothing we can score
    return -logprobs.gather(-1, tokens[:, 1:, None])[..., 0]
    # END SOLUTION


per_token_loss = ex.check(checks.per_token_loss, per_token_loss)

# %% [markdown]
# **Do it.**

# %%
pool = ordinary_tokens(model.tokenizer)  # every token id but the special ones
rep = induction.repeated_random_tokens(
    pool,
    n_prompts,
    seq_len,
    (segment_min, segment_max),
    model.tokenizer.bos_token_id,
    torch.Generator().manual_seed(seed),
)
loss = per_token_loss(model(rep.tokens), rep.tokens)  # [batch, pos - 1]: loss of predicting token i + 1
loss_first, loss_second = induction.repeat_losses(loss, rep)
ln_pool = math.log(len(pool))
print(f"pool of {len(pool)} tokens: ln(pool) = {ln_pool:.2f} nats")
print(f"loss on the first copy {loss_first:.2f} nats, on the second copy {loss_second:.2f} nats")
record("loss_first_repeat", loss_first, unit="nats")
record("loss_second_repeat", loss_second, unit="nats")

# %% [markdown]
# **Look.** One row, token by token. Grey bars are random tokens (and the first token of each copy, which nothing
# predicts); the second copy's bars should collapse towards zero.

# %%
groups = [
    "first copy" if f else "second copy" if s else "random"
    for f, s in zip(rep.first[view_row, 1:], rep.second[view_row, 1:])
]
figures.token_loss_figure(
    attention_view.str_tokens(model, rep.tokens[view_row]),
    loss[view_row],
    groups,
    f"Row {view_row}: the model predicts the second copy, not the first",
    ln_pool,
    "ln(pool)",
).show()

# %% [markdown]
# **Takeaway.** The first copy costs about as much as a uniform guess, or a little more: the model expects tokens to
# recur, so it spreads some probability over the tokens it has already seen, which on a first copy are always wrong.
# The paper's models show the same "in-context" bet on natural text. SmolLM2 (seed 0, fast mode) pays 14.0 nats on
# the first copy, more than a uniform guess over its 49,135 tokens (10.8), and 2.8 on the second: it copies, less
# sharply than the zoo model, which saw such rows in training.

# %% [markdown]
# ## 2 · The phase change
#
# **Why this matters.** Olsson et al. saw induction heads form in a short window of training, and at the same moment
# the in-context learning score (loss late in a context minus loss early) fall: the model suddenly gets better at
# using its context. Our zoo model logged, every 100 steps, its loss on repeated tokens, its ICL score on held-out
# corpus documents, and the best previous-token and induction scores of its heads (`metrics.csv` beside the weights),
# so we can watch it without retraining. With `retrain=True` the notebook trains a fresh copy here, with a progress bar.
#
# **Do it.** `induction.phase_change_step` finds the window where second-repeat loss falls fastest.

# %%
if retrain:
    run_dir = Path(tempfile.mkdtemp(prefix="induction-retrain-"))
    with torch.enable_grad():
        card = zoo.train(zoo.get_spec(model_name), run_dir, steps=retrain_steps)
    metrics_path = run_dir / model_name / "metrics.csv"
else:
    metrics_path = ZOO_DIR / model_name / "metrics.csv"
has_log = metrics_path.exists()  # hub models come without a training log
if has_log:
    evals = [r for r in zoo.read_metrics(metrics_path) if "loss_second_repeat" in r]
    steps = torch.tensor([r["step"] for r in evals])
    phase_start, phase_end = induction.phase_change_step(
        steps, torch.tensor([r["loss_second_repeat"] for r in evals]), window=min(3, len(evals) - 1)
    )
    before, after = evals[int((steps == phase_start).nonzero())], evals[int((steps == phase_end).nonzero())]
    print(
        f"phase change between steps {phase_start} and {phase_end} "
        f"({before['tokens']:,.0f} to {after['tokens']:,.0f} tokens)"
    )
    for key in ("loss_second_repeat", "icl_score", "best_prev_token_score", "best_induction_score"):
        print(f"  {key:22s} {before[key]:7.3f} -> {after[key]:7.3f}")
    record("phase_start_step", phase_start)
    record("phase_end_step", phase_end)
else:
    print(f"{model_name} has no training log (only the zoo's models keep one): the phase change is skipped")

# %% [markdown]
# **Look.** Three panels on one time axis; the dotted line is the middle of the window found above.

# %%
if has_log:
    figures.phase_change_figure(
        evals,
        "Repeat loss, ICL score and head scores change together",
        ln_pool,
        phase_tokens=(before["tokens"] + after["tokens"]) / 2,
    ).show()

# %% [markdown]
# **Takeaway.** It happens in two steps. First (around step 2,000, 4 million tokens) the ICL score on held-out
# corpus documents falls by about 3 nats in a few hundred steps: the model learns to copy the *corpus'* words, which
# its repeat documents string together. Only later (the window above, around step 3,000) does the loss on the second
# copy of random tokens from the whole vocabulary collapse, while both head scores jump: the heads now copy *any*
# token. Copying a few hundred frequent words is learned first; the general mechanism, the one Olsson et al. call an
# induction head, comes once the whole-vocabulary rows (a quarter of each batch) make it pay. The paper's phase change
# sits at 2.5-5 billion tokens in much larger models; ours comes after a few million because the data was built to
# reward copying and the models are tiny.
#
# **Exercise.** Rerun with `retrain=True, retrain_steps=2000`. Does either step happen before the learning rate
# decays? (The schedule is cosine over `retrain_steps`.)

# %% [markdown]
# ## 3 · Which heads do what: attention-pattern scores
#
# **Why this matters.** A head's job is visible in where it attends. Three scores average one kind of attention
# over every query that has the expected key: **previous-token** (query to the position just before it),
# **duplicate-token** (a repeated token to its earlier occurrence) and **induction** (a repeated token to the token
# *after* its earlier occurrence, "prefix matching"). A perfect head scores 1.
#
# All three read a layer's attention pattern, `blocks.{layer}.attn.hook_pattern`, of shape
# [batch, head_index, query_pos, key_pos]: `pattern[b, h, q, k]` is how much head `h` at query `q` attends to key `k`
# (each row sums to 1 over the keys `k <= q`).

# %% [markdown]
# ### Exercise 2.2 · Previous-token scores
#
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵🔵⚪ · about 10 minutes
#
# Write `previous_token_scores`: for every head, the mean of `pattern[b, h, q, q - 1]` over every row `b` and every
# query `q` from 1 on (query 0 has no previous token). Shape [head_index]; a head that always attends to the
# previous token scores 1.
#
# <details><summary>Hint</summary>
#
# `pattern.diagonal(offset=-1, dim1=-2, dim2=-1)` holds exactly the entries `pattern[..., q, q - 1]` for q >= 1,
# as a [batch, head_index, pos - 1] tensor: average it over every axis but the heads.
#
# </details>


# %%
def previous_token_scores(
    pattern: Float[Tensor, "batch head_index query_pos key_pos"],
) -> Float[Tensor, " head_index"]:
    """Mean attention from each query to the key just before it, over rows and queries >= 1."""
    # BEGIN SOLUTION
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(0, -1))
    # END SOLUTION


previous_token_scores = ex.check(checks.previous_token_scores, previous_token_scores)

# %% [markdown]
# ### Exercise 2.3 · Induction scores
#
# > **Difficulty** 🔴🔴🔴⚪⚪ · **Importance** 🔵🔵🔵🔵🔵 · about 15 minutes
#
# The induction score needs to know where each token was seen before. `earlier = induction.previous_occurrence(tokens)`
# [batch, query_pos] holds, for each position, the latest earlier position with the same token, or -1 where the token
# is new. An induction head at query `q` attends to the token *after* that occurrence, key `earlier[b, q] + 1`
# (which can be `q` itself when a token repeats at once).
#
# Write `induction_scores`: for every head, the mean of `pattern[b, h, q, earlier[b, q] + 1]` over all the
# (row, query) pairs with `earlier[b, q] >= 0`, pooled over rows (not averaged row by row). Shape [head_index].
#
# <details><summary>Hint</summary>
#
# Build the key index `(earlier + 1)`, clamp the -1 entries to a harmless 0, expand it to
# [batch, head_index, query_pos, 1] and `pattern.gather(-1, index)`. Then weight by the mask `earlier >= 0`
# (broadcast over heads): sum of weighted attention over rows and queries, divided by the number of matched queries.
#
# </details>


# %%
def induction_scores(
    pattern: Float[Tensor, "batch head_index query_pos key_pos"],
    earlier: Int[Tensor, "batch query_pos"],
) -> Float[Tensor, " head_index"]:
    """Mean attention from each repeated token to the token after its previous occurrence (earlier + 1).

    Averaged over the (row, query) pairs with earlier >= 0; `earlier` is induction.previous_occurrence(tokens).
    """
    # BEGIN SOLUTION
    matched = (earlier >= 0).to(pattern.dtype)[:, None, :]  # batch 1 query_pos
    key = (earlier + 1).clamp(min=0)  # new tokens point at BOS, but their weight is 0
    index = key[:, None, :, None].expand(-1, pattern.shape[1], -1, 1)
    attention = pattern.gather(-1, index)[..., 0]  # batch head_index query_pos
    return (attention * matched).sum(dim=(0, 2)) / matched.sum(dim=(0, 2))
    # END SOLUTION


induction_scores = ex.check(checks.induction_scores, induction_scores)

# %% [markdown]
# **Do it.** One forward pass caches every layer's pattern; your two functions score them. The duplicate-token score is
# the package's (`induction.duplicate_token_score`: the same average at key `earlier` instead of `earlier + 1`).

# %%
_, cache = model.run_with_cache(rep.tokens, names_filter=lambda name: name.endswith("attn.hook_pattern"))
patterns = [
    cache["pattern", layer] for layer in range(model.cfg.n_layers)
]  # each [batch, head_index, query_pos, key_pos]
earlier = induction.previous_occurrence(rep.tokens)
scores = {
    "previous_token": torch.stack([previous_token_scores(p) for p in patterns]),  # each [layer, head_index]
    "duplicate_token": torch.stack([induction.duplicate_token_score(p, earlier) for p in patterns]),
    "induction": torch.stack([induction_scores(p, earlier) for p in patterns]),
}
n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
ind_layer, ind_head = divmod(int(scores["induction"][1:].argmax()), n_heads)
ind_layer += 1
# the best previous-token head before the induction head's layer (the zoo model: layer 0)
prev_layer, prev_head = divmod(int(scores["previous_token"][:ind_layer].argmax()), n_heads)
best_prev = scores["previous_token"][prev_layer, prev_head].item()
best_ind = scores["induction"][ind_layer, ind_head].item()
print(
    f"previous-token head L{prev_layer}H{prev_head}: {best_prev:.2f};  induction head L{ind_layer}H{ind_head}: {best_ind:.2f}"
)
record("prev_token_score", best_prev)
record("induction_score", best_ind)
figures.head_score_heatmaps(
    scores,
    f"Previous-token heads (L{prev_layer}H{prev_head} best) come before the prefix-matching heads (L{ind_layer}H{ind_head})"
    if real
    else "Layer 0 looks back one token; layer 1 does prefix matching",
    height=20 * n_layers + 120 if real else 300,
).show()

# %% [markdown]
# **Cross-check with TransformerLens.** `transformer_lens.head_detector.detect_head` measures the same three kinds of
# attention, but divides by *every* query position rather than the queries that have the expected key. Our kernels
# with `queries="all"` use its convention; on the same rows the two must agree to float precision. (It takes text, so
# each row is decoded and re-tokenized; `head_detector_scores` refuses rows that do not survive the round trip. Rows of
# random BPE fragments do not, so the cross-check draws its rows from the corpus words that are single tokens.)

# %%
n_check = (2 if fast else 4) if real else (4 if fast else 16)
check_len = seq_len - 1 if real else model.cfg.n_ctx - 1  # detect_head wants fewer than n_ctx tokens
check_rep = induction.repeated_random_tokens(
    zoo.token_pool(model.tokenizer),  # whole words with a leading space: they survive decode -> re-tokenize
    n_check,
    check_len,
    (segment_min, min(segment_max, (check_len - 1) // 2)),
    model.tokenizer.bos_token_id,
    torch.Generator().manual_seed(seed),
)
check_tokens = check_rep.tokens
theirs = induction.head_detector_scores(model, check_tokens)
ours_all = induction.head_scores(model, check_tokens, queries="all")
detector_gap = max((ours_all[k] - theirs[k]).abs().max().item() for k in induction.HEAD_KINDS)
print(f"largest difference from head_detector over {n_check} rows: {detector_gap:.1e}")
record("head_detector_max_abs_diff", detector_gap)
figures.agreement_scatter(
    ours_all,
    theirs,
    "Our scores (queries='all') and head_detector's agree",
    "induction.head_scores(queries='all')",
    "transformer_lens detect_head",
).show()

# %% [markdown]
# **Takeaway.** One layer-0 head attends mostly to the previous token and the layer-1 heads do prefix matching;
# no head is a duplicate-token head, which a two-layer model doing induction does not need. The paper's 2-layer model
# has one previous-token head and two induction heads; ours spreads the previous-token job over more than one layer-0
# head (the heatmap shows the shares) and makes several layer-1 heads induction heads. SmolLM2 has the same roles deep
# inside: previous-token heads (L16H0 0.91 is the best before the induction heads) and about ten induction heads
# scoring above 0.3 in layers 17-24, the best L18H6 (0.91).

# %% [markdown]
# ## 4 · Attention patterns, up close
#
# **Look.** Hover a token to see where each head attends from it. In layer 0 find the head whose pattern is a
# diagonal one below the main one; in layer 1, hover a word in the second copy: the induction head looks at the word
# that followed the same word in the first copy. (The views are self-contained HTML: they work offline and in the
# exported notebook.)

# %%
display(attention_view.attention_heads(model, rep.tokens[view_row], layer=prev_layer))

# %%
display(attention_view.attention_heads(model, rep.tokens[view_row], layer=ind_layer))

# %% [markdown]
# ## 5 · Reading the weights: the OV circuit copies
#
# **Why this matters.** Attending to `B` is half the job; the head must also *write* `B` into the logits. The direct
# path of a head from the token it attends to to the logits is its full OV circuit $W_E W_V W_O W_U$, a
# d_vocab x d_vocab matrix (kept factored). A copying head has large positive diagonal entries. Two summaries: the
# **eigenvalue score** (sum of eigenvalues over sum of their magnitudes: 1 for a pure copying matrix, -1 for pure
# anti-copying) and **diagonal top-k accuracy** (how often a token's own logit is among the k largest of its row).
# The matrix is taken over the same pool as the rows: the whole vocabulary but BOS (4,095 x 4,095 per head).

# %% [markdown]
# ### Exercise 2.4 · Copying score of the OV circuit
#
# > **Difficulty** 🔴🔴🔴⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 15 minutes
#
# Write `copying_eigen_score`: for every head of one layer, the eigenvalue score of its full OV circuit
# $W_E W_V^h W_O^h W_U$: $\sum_i \lambda_i / \sum_i |\lambda_i|$, real part, shape [head_index]. The inputs are
# `W_E` [d_vocab, d_model], the layer's `W_V` [head_index, d_model, d_head] and `W_O` [head_index, d_head, d_model],
# and `W_U` [d_model, d_vocab]. The circuit is d_vocab x d_vocab but has rank at most d_head: do not form it. For
# $A$ [d_vocab, d_head] and $B$ [d_head, d_vocab], the nonzero eigenvalues of $AB$ are those of the small $BA$.
#
# <details><summary>Hint</summary>
#
# `A = W_E @ W_V` and `B = W_O @ W_U` broadcast over heads; `torch.linalg.eigvals(B @ A)` gives complex eigenvalues
# [head_index, d_head] (a non-symmetric matrix: not `eigvalsh`). Sum them, divide by the sum of their `.abs()`,
# take `.real`.
#
# </details>


# %%
def copying_eigen_score(
    W_E: Float[Tensor, "d_vocab d_model"],
    W_V: Float[Tensor, "head_index d_model d_head"],
    W_O: Float[Tensor, "head_index d_head d_model"],
    W_U: Float[Tensor, "d_model d_vocab"],
) -> Float[Tensor, " head_index"]:
    """Sum of eigenvalues / sum of their magnitudes of each head's W_E W_V W_O W_U, in [-1, 1]; 1 = pure copying."""
    # BEGIN SOLUTION
    small = (W_O @ W_U) @ (W_E @ W_V)  # head_index d_head d_head: the circuit's nonzero eigenvalues
    eigenvalues = torch.linalg.eigvals(small)  # complex: the matrix is not symmetric
    return (eigenvalues.sum(-1) / eigenvalues.abs().sum(-1)).real
    # END SOLUTION


copying_eigen_score = ex.check(checks.copying_eigen_score, copying_eigen_score)

# %% [markdown]
# **Do it.** Your eigenvalue score for every layer, and the package's diagonal top-k accuracy, over the tokens the
# rows use.

# %%
ov_pool = pool  # the real model: 1,000 tokens drawn from its 49,135 (a full circuit would be 49,135^2 per head)
if real:
    ov_pool = pool[torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))[:1000]].sort().values
W_E, W_U = model.W_E[ov_pool], model.W_U[:, ov_pool]  # restricted to the pool (no BOS)
W_V, W_O = model.W_V, model.W_O  # [layer, head_index, ...]; TransformerLens stacks every layer's on each access
eigen = torch.stack([copying_eigen_score(W_E, W_V[layer], W_O[layer], W_U) for layer in range(model.cfg.n_layers)])
top_k = torch.stack(
    [
        circuits.diagonal_top_k_accuracy(circuits.full_ov_circuit(model, layer, ov_pool), k=5)
        for layer in range(model.cfg.n_layers)
    ]
)
copying = circuits.CopyingScores(eigen, top_k, k=5)  # [layer, head_index] each, as circuits.copying_scores returns
print(
    f"induction head L{ind_layer}H{ind_head}: eigenvalue score {copying.eigen[ind_layer, ind_head]:.2f}, "
    f"top-{copying.k} accuracy {copying.top_k[ind_layer, ind_head]:.2f}"
)
record("induction_head_copying_eigen", copying.eigen[ind_layer, ind_head])
induction_heads = [(l, h) for l in range(1, n_layers) for h in range(n_heads) if scores["induction"][l, h] >= 0.3]
shown_layers = sorted({prev_layer, ind_layer} | {l for l, _ in induction_heads}) if real else None  # bars: 270 heads
figures.head_bars(
    {"eigenvalue score": copying.eigen, f"top-{copying.k} diagonal accuracy": copying.top_k},
    "Induction heads copy the token they attend to" if real else "Layer-1 heads copy the token they attend to",
    "score",
    layers=shown_layers,
).show()

# %% [markdown]
# **Takeaway.** The layer-1 induction heads are copying heads: eigenvalue scores near 1 (a checked claim: at least
# 0.9), and their own token lands in the top 5 of 4,095 far more often than chance (5 / 4,095 = 0.001; checked: at
# least 100 times that). No single head ranks it in the top 5 every time: with 16 dimensions per head, one OV circuit
# cannot tell 4,095 tokens apart cleanly, and the induction heads share the work (on the 630 corpus words alone, the
# best head reaches 0.96). Layer-0 heads do not copy (top-5 accuracy near 0) (a previous-token head's job is
# to move a token's identity to the next position, not to predict it as the next token). These numbers ignore
# LayerNorm (as Elhage et al. do), so they are a reading of the weights, not of the running model; section 8 measures
# the running model's direct effect on the logits.
#
# **On SmolLM2 the reading is mixed.** The best induction head's circuit copies (eigenvalue score 0.41, top-5 accuracy
# 0.05 of 1,000 tokens, ten times chance), and one later induction head copies almost perfectly (L22H7: 0.95, 0.60);
# but several (L20H6, L23H2, L23H7) are *anti*-copying (eigenvalue scores -0.4 to -0.6): they attend like induction
# heads and push the attended token down, the signature of copy suppression. The previous-token head L16H0 does not
# copy (-0.08). The weights skip RMSNorm's scales (folding them in moves the scores by up to 0.6 but keeps the signs of
# the clear cases), and 30 layers of MLPs sit between a head and the logits, so this is a weaker reading than in the
# attention-only zoo model.

# %% [markdown]
# ## 6 · Composition: which layer-0 head feeds which layer-1 head
#
# **Why this matters.** A layer-1 head can read a layer-0 head's output through its queries (Q-composition), its keys
# (K-composition) or its values (V-composition). The composition score is $\lVert W_A W_B \rVert_F / (\lVert W_A
# \rVert_F \lVert W_B \rVert_F)$ with $W_A = W_{OV}$ of the earlier head and $W_B$ the later head's $W_{QK}^\top$ (Q),
# $W_{QK}$ (K) or $W_{OV}$ (V). Unrelated matrices still score above 0, so we compare with random rank-d_head pairs.
# The induction mechanism predicts **K-composition** from the previous-token head into the induction heads.
#
# In TransformerLens' row-vector convention a head's OV circuit is `W_OV = W_V @ W_O` (it maps x to x @ W_OV) and its
# QK circuit is `W_QK = W_Q @ W_K.T` (the attention score is x_q @ W_QK @ x_k.T); `model.OV[layer].AB` and
# `model.QK[layer].AB` hold them, [head_index, d_model, d_model].

# %% [markdown]
# ### Exercise 2.5 · K-composition scores
#
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵🔵⚪ · about 10 minutes
#
# Write `k_composition_scores`: for every layer-0 head `a` (rows) and layer-1 head `b` (columns),
# $\lVert W_{OV,0}^a (W_{QK,1}^b)^\top \rVert_F / (\lVert W_{OV,0}^a \rVert_F \lVert W_{QK,1}^b \rVert_F)$,
# shape [head_index, head_index]. The transpose is what makes it *K*-composition: the key x_k enters the score through
# `W_QK.T`, so head `a`'s output x @ W_OV reaches the key side as x @ W_OV @ W_QK.T (without the transpose it would
# reach the query side: Q-composition).
#
# <details><summary>Hint</summary>
#
# `W_OV_0[:, None] @ W_QK_1.transpose(-2, -1)[None]` is [head_index, head_index, d_model, d_model];
# `torch.linalg.matrix_norm` takes the Frobenius norm of the last two axes, and `W.norm(dim=(-2, -1))` that of each head.
#
# </details>


# %%
def k_composition_scores(
    W_OV_0: Float[Tensor, "head_index d_model d_model"],
    W_QK_1: Float[Tensor, "head_index d_model d_model"],
) -> Float[Tensor, "head_index head_index"]:
    """||W_OV_0[a] @ W_QK_1[b].T||_F / (||W_OV_0[a]||_F ||W_QK_1[b]||_F); rows a: layer-0 heads, columns b: layer-1 heads."""
    # BEGIN SOLUTION
    product = W_OV_0[:, None] @ W_QK_1.transpose(-2, -1)[None]  # a b d_model d_model: a's output read by b's keys
    norms_0, norms_1 = W_OV_0.norm(dim=(-2, -1)), W_QK_1.norm(dim=(-2, -1))
    return torch.linalg.matrix_norm(product) / (norms_0[:, None] * norms_1[None, :])
    # END SOLUTION


k_composition_scores = ex.check(checks.k_composition_scores, k_composition_scores)

# %% [markdown]
# **Do it.** Your K-composition beside the package's Q- and V-composition (the same score with $W_{QK,1}$ and
# $W_{OV,1}$ in place of $W_{QK,1}^\top$), and random pairs for scale.

# %%
# the previous-token head's layer and the induction head's (the zoo model: 0 and 1); [head_index, d_model, d_model] each
ov_0, qk_1, ov_1 = model.OV[prev_layer].AB, model.QK[ind_layer].AB, model.OV[ind_layer].AB
composition = {
    "q": circuits.composition_score(ov_0, qk_1),
    "k": k_composition_scores(ov_0, qk_1),
    "v": circuits.composition_score(ov_0, ov_1),
}  # each [layer-0 head, layer-1 head]
random_scores = circuits.composition_baseline(
    model.cfg.d_model, model.cfg.d_head, 100 if real else 200 if fast else 1000, torch.Generator().manual_seed(seed)
)  # the real model: 100 pairs (each pair is two 576 x 576 matrices)
baseline_mean, baseline_p95 = random_scores.mean().item(), random_scores.quantile(0.95).item()
k_comp = composition["k"]
writer, reader = divmod(int(k_comp.argmax()), k_comp.shape[1])  # the strongest of all layer-0 -> layer-1 pairs
pair_k = k_comp[writer, reader].item()
print(
    f"strongest K-composition of all {k_comp.numel()} pairs: L{prev_layer}H{writer} -> L{ind_layer}H{reader}, {pair_k:.3f} "
    f"(Q {composition['q'][writer, reader]:.3f}, V {composition['v'][writer, reader]:.3f}; "
    f"random pairs: mean {baseline_mean:.3f}, 95th percentile {baseline_p95:.3f})"
)
print(
    f"L{ind_layer}H{reader}'s induction score {scores['induction'][ind_layer, reader]:.2f}; the top-scoring induction "
    f"head L{ind_layer}H{ind_head} reads L{prev_layer}H{prev_head} with K-composition {k_comp[prev_head, ind_head]:.3f}"
)
record("k_composition_pair", pair_k)
figures.composition_figure(
    composition,
    baseline_mean,
    "Composition in the weights; white is the random-pair mean"
    if real
    else "K-composition dominates; white is the random-pair mean",
    layers=(prev_layer, ind_layer),
).show()

# %% [markdown]
# **Takeaway.** K-composition is the strongest of the three kinds, as the mechanism predicts, and the strongest
# K-composition of all 16 pairs runs from the previous-token head into an induction head. Which induction head wins is
# close to a tie: all four layer-1 heads read the previous-token head, with scores within about 0.01. The margins are small: with d_model = 64 and
# d_head = 16 an OV matrix has rank 16 of 64, which caps the score of perfectly aligned maps at 1/sqrt(16) = 0.25 and
# puts random pairs near 0.13, so the Frobenius score can separate kinds of composition better than individual heads.
# The paper's models (d_model 768) have far more room. On SmolLM2 (d_model 576, d_head 64) the separation is clear:
# the strongest of the 81 pairs runs from the previous-token head L16H0 into L18H7 (induction score 0.5), K 0.21
# against Q 0.05, V 0.03 and random pairs at 0.04; the top induction head L18H6 reads L16H0 almost as strongly (0.20).
# The reading ignores the rotary positions between W_Q and W_K, so it shows which subspace a head reads its keys from,
# not the positional part of the match.

# %% [markdown]
# ## 7 · Ablation: knock out each head
#
# **Why this matters.** Scores and weights suggest a story; ablation tests it. Replace one head's output with zeros
# (**zero-ablation**) or with its mean over the batch at each position (**mean-ablation**, gentler: it removes what
# the head says about *this* row but keeps its average effect) and measure second-copy loss. Every head is ablated in
# one stacked forward pass (`circuits.ablate_each_head`; `make bench` compares it with one forward per head).
#
# Both are a TransformerLens hook on `blocks.{layer}.attn.hook_z`, the heads' outputs before W_O, shape
# [batch, pos, head_index, d_head]: `model.run_with_hooks(tokens, fwd_hooks=[(name, hook)])` calls `hook(z, hook=...)`
# and carries on with whatever it returns.

# %% [markdown]
# ### Exercise 2.6 · Head ablation hook
#
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵🔵⚪ · about 10 minutes
#
# Write `ablate_head_hook(z, hook, head, kind)`: return `z` with head `head`'s output replaced, every other head
# untouched. `kind="zero"` puts zeros there; `kind="mean"` puts that head's mean over the batch, separately at each
# position (a [pos, d_head] mean broadcast over the rows). Shape [batch, pos, head_index, d_head] in and out.
#
# <details><summary>Hint</summary>
#
# The head is axis 2: work on `z[:, :, head]` ([batch, pos, d_head]), whose batch mean is `.mean(dim=0)`.
# Editing a `z.clone()` and returning it keeps the caller's tensor intact.
#
# </details>


# %%
def ablate_head_hook(
    z: Float[Tensor, "batch pos head_index d_head"],
    hook: HookPoint,
    head: int,
    kind: str = "zero",
) -> Float[Tensor, "batch pos head_index d_head"]:
    """z with one head's output zeroed (kind="zero") or set to its batch mean at each position (kind="mean")."""
    # BEGIN SOLUTION
    z = z.clone()  # the caller's tensor stays as it was
    z[:, :, head] = 0.0 if kind == "zero" else z[:, :, head].mean(dim=0)  # [pos, d_head] broadcasts over rows
    return z
    # END SOLUTION


ablate_head_hook = ex.check(checks.ablate_head_hook, ablate_head_hook)

# %% [markdown]
# **Do it.**

# %%
# The real model's 270 heads: the induction head's layer and the previous-token head (default mode: every head of
# the layers from the one to the other); the others stay NaN. Each head's rows start at its own layer.
ablation_layers, chosen = None, None
if real:
    ablation_layers = sorted({prev_layer, ind_layer}) if fast else list(range(prev_layer, ind_layer + 1))
    chosen = [
        (l, h)
        for l in ablation_layers
        for h in range(n_heads)
        if not fast or l == ind_layer or (l, h) == (prev_layer, prev_head)
    ]
ablation = {
    kind: circuits.ablate_each_head(model, rep.tokens, rep.second, kind=kind, heads=chosen)
    for kind in circuits.ABLATIONS
}
prev_increase = ablation["zero"].increase[prev_layer, prev_head].item()
ind_increase = ablation["zero"].increase[ind_layer, ind_head].item()
print(
    f"second-copy loss {ablation['zero'].clean:.2f} nats; zero-ablating L{prev_layer}H{prev_head} adds "
    f"{prev_increase:.2f}, zero-ablating L{ind_layer}H{ind_head} adds {ind_increase:.2f}"
)
record("prev_token_ablation_increase", prev_increase, unit="nats")
figures.head_bars(
    {f"{kind}-ablation": a.increase for kind, a in ablation.items()},
    "Without the previous-token head, induction collapses",
    "increase in second-copy loss (nats)",
    layers=ablation_layers,
).show()

# %% [markdown]
# **Your hook, one head at a time**, must give the stacked pass's number: mean-ablate the previous-token head with
# `ablate_head_hook` and score the second copies with `per_token_loss`.

# %%
mean_hook = functools.partial(ablate_head_hook, head=prev_head, kind="mean")
logits = model.run_with_hooks(rep.tokens, fwd_hooks=[(f"blocks.{prev_layer}.attn.hook_z", mean_hook)])
yours = induction.masked_mean(per_token_loss(logits, rep.tokens), rep.second)
print(
    f"mean-ablating L{prev_layer}H{prev_head}: second-copy loss {yours:.4f} nats with your hook, "
    f"{ablation['mean'].ablated[prev_layer, prev_head]:.4f} from the stacked pass"
)

# %% [markdown]
# **Takeaway.** Ablating the previous-token head costs more than any single induction head: every induction head
# reads it, so it is a bottleneck, while the induction heads share their work. Mean-ablation costs less than
# zero-ablation for heads whose average output carries information of its own (such as a bias towards common words).
# SmolLM2 shows the same bottleneck: zero-ablating L16H0 adds 5.5 nats to the second copy, L18H6 1.8.

# %% [markdown]
# ## 8 · Backup or redundancy?
#
# **Why this matters.** In large models, knocking out a head can make *later* heads change their behaviour and take
# over (backup heads; see notebook 03). In a two-layer attention-only model nothing comes after layer 1, so no head can
# react to an ablated layer-1 head. Whatever survives the ablation of the top induction head is **redundancy**: other
# heads already did part of the job. Direct logit attribution shows it: each head's direct push on the correct next
# token's logit (through the final LayerNorm), before and after an ablation.
#
# **Do it.**

# %%
loss_top = circuits.ablate_heads(model, rep.tokens, [(ind_layer, ind_head)], rep.second)
loss_all = circuits.ablate_heads(model, rep.tokens, induction_heads, rep.second)
print(
    f"second-copy loss: clean {loss_second:.2f}, top induction head ablated {loss_top:.2f}, "
    f"all {len(induction_heads)} induction heads ablated {loss_all:.2f} (first copy: {loss_first:.2f})"
)


def zero_head(layer: int, head: int) -> list:
    return [(f"blocks.{layer}.attn.hook_z", functools.partial(ablate_head_hook, head=head))]


attribution = {
    "clean": circuits.head_logit_attribution(model, rep.tokens, rep.second),
    f"L{ind_layer}H{ind_head} ablated": circuits.head_logit_attribution(
        model, rep.tokens, rep.second, zero_head(ind_layer, ind_head)
    ),
    f"L{prev_layer}H{prev_head} ablated": circuits.head_logit_attribution(
        model, rep.tokens, rep.second, zero_head(prev_layer, prev_head)
    ),
}
record("loss_top_induction_ablated", loss_top, unit="nats")
record("loss_all_induction_ablated", loss_all, unit="nats")
figures.head_bars(
    attribution,
    "Other induction heads do not step in; they were already working",
    "direct logit attribution to the correct token",
    layers=shown_layers,
).show()

# %% [markdown]
# **Takeaway.** With the top induction head gone, the other layer-1 heads attend and write exactly as before; their
# bars move only because the final LayerNorm divides by a smaller residual norm once a large writer is missing. Yet
# much of the loss survives: that is redundancy, not backup. Ablating all induction heads together costs far more than
# the top one alone. Ablating the previous-token head instead weakens every layer-1 head at once: all their keys read it.
# On SmolLM2 the same holds (top induction head ablated: 2.8 -> 4.6 nats; all ten: 11.9, near the first copy's 14.0),
# but unlike in a 2-layer model, later layers could react to an ablation, so its bars are a test of backup, not only
# a picture of redundancy.

# %%
record("exercises_solved", ex.summary())

# %% [markdown]
# ## Checks
#
# The claims above, asserted. Thresholds come from the issue (induction score, composition, ablation) and from the
# paper's qualitative claims. The zoo model's claims come first; with the real model the second cell asserts what was
# measured on it instead.

# %%
if real:
    print(f"{model_name} is not a 2-layer model: the next cell checks what was measured on it instead")
else:
    # An induction head exists (paper: prefix-matching scores near 1 in layer-1 heads of 2-layer models).
    assert best_ind >= 0.6, f"best induction score {best_ind:.3f} < 0.6"
    # Induction keys read the previous-token head: the largest K-composition of all layer-0 -> layer-1 pairs runs from
    # the previous-token head into an induction head; K is that pair's strongest kind of composition, above random pairs.
    assert writer == prev_head, (
        f"strongest K-composition is from L0H{writer}, not the previous-token head L0H{prev_head}"
    )
    assert scores["induction"][1, reader] >= 0.6, f"L1H{reader} (strongest K-composition) is not an induction head"
    assert pair_k > max(composition["q"][writer, reader], composition["v"][writer, reader]), (
        "K is not the strongest composition"
    )
    assert pair_k > baseline_p95, (
        f"K-composition {pair_k:.3f} is within random pairs (95th percentile {baseline_p95:.3f})"
    )
    # Induction heads copy what they attend to; previous-token-style layer-0 heads do not (section 5's reading of W_OV).
    induction_mask = scores["induction"][1] >= 0.3
    assert (copying.eigen[1][induction_mask] >= 0.9).all(), copying.eigen
    assert (copying.top_k[1][induction_mask] >= 100 * copying.k / len(pool)).all(), copying.top_k
    assert (copying.top_k[0] <= 0.1).all(), copying.top_k
    # Knocking out the previous-token head kills induction (issue: >= 1 nat).
    assert prev_increase >= 1.0, f"ablating L0H{prev_head} raises second-copy loss by only {prev_increase:.2f} nats"
    # The model copies on the second copy and cannot on the first.
    # (Issue: second copy <= 1 nat; first copy within 1 nat of a uniform guess over the vocabulary.)
    assert loss_second <= 1.0 and loss_first >= ln_pool - 1.0, (loss_first, loss_second)
    # Our head scores are TransformerLens' head_detector scores, up to the documented denominator.
    assert detector_gap < 1e-5, detector_gap
    # Redundancy: the other induction heads keep working, so all of them together cost much more than the top one.
    assert loss_all > loss_top + 0.5, (loss_top, loss_all)
    # The phase change: a drop of several nats within a few hundred steps, with both head scores rising. A live run
    # shorter than 6000 steps may end before it (the exercise above), so only the shipped log and long runs are checked.
    if has_log and (not retrain or retrain_steps >= 6000):
        assert before["loss_second_repeat"] - after["loss_second_repeat"] >= 2.0, (before, after)
        assert after["best_induction_score"] > before["best_induction_score"] + 0.2, (before, after)
        # Copying the corpus' words came first: the corpus ICL score had already fallen when general copying began.
        assert before["icl_score"] < evals[0]["icl_score"] - 2.0, (evals[0], before)
    print("all checks passed")

# %%
if real:  # SmolLM2, 4-bit: measured with seeds 0 and 1 in fast mode and seed 0 in default mode (values: seed 0, fast)
    # An induction head and a previous-token head before it (0.91 and 0.91; the zoo's bar: 0.6).
    assert best_ind >= 0.7 and best_prev >= 0.7, (best_ind, best_prev)
    # K-composition: the strongest pair from the previous-token head's layer into the induction head's starts at the
    # previous-token head and ends at an induction head (L16H0 -> L18H7, induction 0.51; 0.45 with seed 1), K beats
    # Q and V (0.21 vs 0.05, 0.03) and is far above random pairs (95th percentile 0.04).
    assert writer == prev_head and scores["induction"][ind_layer, reader] >= 0.3, (writer, reader)
    assert pair_k > max(composition["q"][writer, reader], composition["v"][writer, reader]), composition
    assert pair_k > 3 * baseline_p95, (pair_k, baseline_p95)
    # Copying: the best induction head copies (eigenvalue 0.41, top-5 accuracy 0.046 = 9x chance), some induction
    # heads anti-copy (lowest -0.61), the previous-token head does not copy (-0.08, top-5 0.003).
    chance = copying.k / len(ov_pool)
    assert copying.eigen[ind_layer, ind_head] > 0.2 and copying.top_k[ind_layer, ind_head] >= 4 * chance, copying
    assert min(float(copying.eigen[lh]) for lh in induction_heads) < -0.2, copying.eigen
    assert copying.eigen[prev_layer, prev_head] < 0.2 and copying.top_k[prev_layer, prev_head] < 4 * chance, copying
    # The previous-token head is a bottleneck: ablating it costs more than the top induction head (5.5 vs 1.8 nats).
    assert prev_increase >= 2.0 and prev_increase > ind_increase + 1.0, (prev_increase, ind_increase)
    # It copies: the first copy costs more than a uniform guess (14.0 vs 10.8), the second 2.8 (the zoo's bar: 1).
    assert loss_first >= ln_pool - 1.0 and loss_second <= 4.0, (loss_first, loss_second)
    assert detector_gap < 1e-5, detector_gap  # 1.2e-7
    # Redundancy: all induction heads together cost far more than the top one (11.9 vs 4.6 nats).
    assert loss_all > loss_top + 3.0, (loss_top, loss_all)
    print("all checks passed")

# %% [markdown]
# ## Going further
#
# - **Sweep the segment length**: `workbook sweep 02 -p segment_max 12,20,31 -p seed 0,1 --fast` and compare
#   `loss_second_repeat`; long segments put the second copy late in the row, where more random words compete for the
#   induction head's attention.
# - **Retrain with another seed** (`workbook train-zoo zoo-attn-only-2l --out /tmp/zoo` after changing `seed` in
#   `interp_helpers/zoo.py`'s spec) and see whether the same heads play the same roles.
# - **Hub model**: with a network, `model_name="attn-only-2l"` runs every section on Neel Nanda's 2-layer
#   attention-only model trained on web text (its vocabulary is GPT-2's, and the pool becomes GPT-2's whole vocabulary).
# - **Open question**: induction heads in large models also do "fuzzy" copying (translation, pattern completion).
#   Which of our corpus genres would show it? Try `zoo.icl_score_on_corpus` per genre.
