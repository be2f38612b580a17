# %% [markdown]
# # 04 · Sparse autoencoders, scored against the truth
#
# **Promise.** By the end you can train a sparse autoencoder (SAE) on a model's MLP activations, judge it by the
# numbers the field uses (L0, explained variance, dead latents, loss recovered), read a latent from its dashboard,
# and, what real text never allows, measure how many of the concepts that generated the text it recovered, next to
# the model's own neurons.
#
# **Papers.** Bricken et al. (2023), *Towards Monosemanticity* (the ReLU + L1 recipe, a 1-layer model with 512 MLP
# neurons); Gao et al. (2024), *Scaling and evaluating sparse autoencoders* (TopK, AuxK); Bussmann et al. (2024),
# *BatchTopK*; Rajamanoharan et al. (2024), *Jumping Ahead* (JumpReLU).
# **Prerequisites.** 00 (the corpus and its labels), 01 (superposition). **Runtime on a 2-core CPU:** default about
# 2.5 minutes, fast mode (`fast=True`) about 1.5 minutes.
#
# **What we reproduce, and how ours differs.** The paper's setting in miniature: `zoo-gelu-1l-a` has one layer and 512
# GELU neurons, like the paper's model A, but d_model 128 was trained on 12M tokens of our synthetic corpus (theirs:
# billions of tokens of the Pile). The paper analyses a 4,096-latent dictionary trained on billions of activations;
# ours has 2,048 latents (4x) trained on a few hundred thousand, in about a minute. The paper's SAE recovers 79% of
# the MLP's loss contribution at L0 of 10-20; our TopK default runs at L0 = 32.

# %% tags=["parameters"]
seed: int = 0  # 0 <= seed < 2**32; SAE initialisation and batch order (the model and the corpus are fixed)
fast: bool = False  # fewer tokens and steps; every section and check still runs
model_name: str = "zoo-gelu-1l-a"  # a zoo model with an MLP; a hub name needs a network and has no corpus labels
hook_name: str = "blocks.0.mlp.hook_post"  # activations the SAEs reconstruct (MLP neurons, d_mlp wide)
architecture: str = "topk"  # architecture in ("topk", "batchtopk", "relu", "jumprelu"); the default SAE: topk, batchtopk, relu or jumprelu
expansion: int = 4  # 1 <= expansion <= 64; d_sae = expansion x d_in
k: int = 32  # 1 <= k; active latents per token (topk, batchtopk)
steps: int = 1000  # 10 <= steps <= 1_000_000; training steps of the default SAE (fast: at most 300)
batch_size: int = 512  # 16 <= batch_size <= 65_536; activations per step
n_train_tokens: int = 200_000  # 4 * batch_size <= n_train_tokens <= 50_000_000; activations cached to disk for training (fast: at most 50_000)
n_eval_rows: int = 400  # 20 <= n_eval_rows <= 10_000; held-out rows of 128 tokens for every metric and the recovery table (fast: at most 100)
compare: bool = True  # also train ReLU + L1, BatchTopK and JumpReLU on the same cache (half the steps each)
cache_dir: str = ""  # where to cache activations; "" = a temporary directory, deleted at the end

# %%
import functools
import tempfile
from collections.abc import Callable

import torch
from IPython.display import display
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from interp_helpers import check_choice, check_parameters, check_range, record, seed_everything
from interp_helpers.checkers import Exercises
from interp_helpers.checkers import sae as checks
from interp_helpers.dictionaries import activations, features, figures, recovery
from interp_helpers.dictionaries import sae as sae_lib
from interp_helpers.modelzoo import zoo
from interp_helpers.modelzoo.corpus_view import html_table
from interp_helpers.modelzoo.models import load_model

check_parameters("04", globals())  # the conditions declared in the parameters cell
ex = Exercises("04")
check_choice("model_name", model_name, [name for name, spec in zoo.ZOO.items() if spec.d_mlp])
if fast:
    steps, n_train_tokens, n_eval_rows = min(steps, 300), min(n_train_tokens, 50_000), min(n_eval_rows, 100)
_ = seed_everything(seed)
model = load_model(model_name)
spec = zoo.get_spec(model_name)
d_in = activations.hook_width(model, hook_name)  # also rejects a hook the model does not have
check_range("k", k, 1, expansion * d_in)

# %% [markdown]
# ## 1 · Activations: run the model only as far as the hook, cache them once
#
# **Why this matters.** An SAE is trained on millions of activation vectors; every architecture we compare below
# should see the same ones. Computing them is the expensive part on real models, so the pipeline runs the model only
# up to the hooked layer (`stop_at_layer`) and writes the vectors to disk once, as safetensors shards. Training then
# reads shuffled batches, one shard in memory at a time. (For a stream that never touches the disk,
# `activations.ActivationBuffer` mixes batches in a fixed-size buffer instead.)
#
# **Do it.** Cache `n_train_tokens` activations of training text; collect held-out activations, with every token's
# corpus labels, for evaluation.

# %%
workdir = tempfile.TemporaryDirectory() if not cache_dir else None
cache_path = cache_dir or workdir.name
token_batches = zoo.packed_batches(spec.corpus(), model.tokenizer, 16, spec.n_ctx)
cache = activations.cache_activations(
    activations.iter_activations(model, token_batches, hook_name),
    cache_path,
    n_tokens=n_train_tokens,
    shard_tokens=32_768,
    hook_name=hook_name,
)
held_out = activations.labelled_rows(spec.corpus("eval", zoo.EVAL_SEED), model.tokenizer, n_eval_rows, spec.n_ctx)
eval_acts = activations.collect_activations(model, held_out.tokens, hook_name, keep=held_out.keep)
eval_labels = activations.flatten_labels(held_out.labels, held_out.keep)
print(cache)
print(
    f"held out: {eval_acts.shape[0]} tokens x {eval_acts.shape[1]}; "
    f"mean activation norm {eval_acts.norm(dim=-1).mean():.1f}"
)


# %% [markdown]
# ## 2 · Train one SAE
#
# **Why this matters.** The SAE writes each activation as a sparse sum of learned directions (latents). TopK keeps
# exactly `k` latents per token, so sparsity is a setting, not a penalty to tune; AuxK gives latents that stopped
# firing a gradient so they come back (Gao et al.). The progress bar shows the loss, L0 and dead fraction as it trains.

# %% [markdown]
# ### Exercise 4.1 · The SAE forward pass
#
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵🔵🔵 · about 10 minutes
#
# All four architectures of this notebook share one forward pass; only the activation differs. Write `sae_forward`:
# from activations `x` [batch, d_in], subtract the decoder bias `b_dec` [d_in] (the SAE's estimate of the data's
# centre), encode with `W_enc` [d_in, d_sae] and `b_enc` [d_sae], apply `activation` to get the codes
# [batch, d_sae], then decode with `W_dec` [d_sae, d_in] (one unit-norm row per latent: its direction) and add
# `b_dec` back:
#
#     pre   = (x - b_dec) @ W_enc + b_enc
#     codes = activation(pre)
#     recon = codes @ W_dec + b_dec
#
# Return `(codes, recon)`. With `activation=torch.relu` this is the SAE of Bricken et al.
#
# <details><summary>Hint</summary>
#
# Three lines, one per equation. Call `activation(pre)`, not `torch.relu(pre)`: the notebook passes the TopK of the
# next exercise.
#
# </details>


# %%
def sae_forward(
    x: Float[Tensor, "batch d_in"],
    W_enc: Float[Tensor, "d_in d_sae"],
    b_enc: Float[Tensor, " d_sae"],
    W_dec: Float[Tensor, "d_sae d_in"],
    b_dec: Float[Tensor, " d_in"],
    activation: Callable[[Tensor], Tensor] = torch.relu,
) -> tuple[Float[Tensor, "batch d_sae"], Float[Tensor, "batch d_in"]]:
    """(codes, recon): codes = activation((x - b_dec) @ W_enc + b_enc), recon = codes @ W_dec + b_dec."""
    # BEGIN SOLUTION
    pre = (x - b_dec) @ W_enc + b_enc  # the decoder bias centres the input first
    codes = activation(pre)
    recon = codes @ W_dec + b_dec
    return codes, recon
    # END SOLUTION
    # BEGIN STUB
    # raise NotImplementedError("exercise: replace this line with your code")
    # END STUB


sae_forward = ex.check(checks.sae_forward, sae_forward)

# %% [markdown]
# ### Exercise 4.2 · TopK activation
#
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵🔵⚪ · about 10 minutes
#
# TopK (Gao et al.) replaces ReLU's "every positive pre-activation" by "the `k` largest of each token". Write
# `topk_activation`: from pre-activations `pre` [batch, d_sae], keep the `k` largest entries of each row, apply ReLU
# to the kept values (a row with fewer than `k` positive entries keeps zeros there, never a negative code), and set
# every other entry to 0. The result has the shape of `pre` and at most `k` nonzero entries per row.
#
# <details><summary>Hint</summary>
#
# `pre.topk(k, dim=-1)` gives each row's `values` and `indices`; `torch.zeros_like(pre).scatter(-1, indices, ...)`
# writes the ReLU'd values back at those indices.
#
# </details>


# %%
def topk_activation(pre: Float[Tensor, "batch d_sae"], k: int) -> Float[Tensor, "batch d_sae"]:
    """ReLU of the k largest entries of each row of `pre`; every other entry 0."""
    # BEGIN SOLUTION
    values, indices = pre.topk(k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, indices, torch.relu(values))  # ReLU after the selection (Gao et al.)
    # END SOLUTION
    # BEGIN STUB
    # raise NotImplementedError("exercise: replace this line with your code")
    # END STUB


topk_activation = ex.check(checks.topk_activation, topk_activation)

# %% [markdown]
# **Do it.** `sae_lib.SAEConfig` validates every field; `train_sae` takes any iterator of batches. The trainer runs
# this forward pass with a sparse backward and AuxK; the held-out codes below come from your two functions, with each
# architecture's activation in eval mode (BatchTopK's global threshold, JumpReLU's learned ones).


# %%
def train(arch: str, n_steps: int, **extra) -> tuple[sae_lib.SAE, list[dict]]:
    cfg = sae_lib.SAEConfig(
        d_in=d_in,
        d_sae=expansion * d_in,
        architecture=arch,
        k=k,
        steps=n_steps,
        batch_size=batch_size,
        seed=seed,
        dead_tokens=100_000,
        **extra,
    )
    batches = cache.iter_batches(batch_size, torch.Generator().manual_seed(seed))
    return sae_lib.train_sae(cfg, batches)


sae, history = train(architecture, steps)
torch.set_grad_enabled(False)  # nothing below trains
activation = {
    "topk": functools.partial(topk_activation, k=k),
    "relu": torch.relu,
    "batchtopk": lambda pre: torch.relu(pre) * (pre > sae.threshold),
    "jumprelu": lambda pre: pre * (pre > sae.threshold),
}[architecture]
# token d_sae, exactly 0 where a latent is off; token d_in
codes, recon = sae_forward(eval_acts, sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec, activation)

# %% [markdown]
# The numbers an SAE is judged by, on held-out tokens: L0 (active latents per token), explained variance, dead and
# dense latents, and the next-token loss with the SAE spliced into the model. The next three exercises write all
# but L0.
#
# ### Exercise 4.3 · Explained variance
#
# > **Difficulty** 🔴⚪⚪⚪⚪ · **Importance** 🔵🔵🔵🔵⚪ · about 5 minutes
#
# Write `explained_variance`: 1 minus the squared error of `recon` summed over all rows and dimensions, divided by the
# squared distance of `x` [batch, d_in] to its batch mean (each dimension's own mean), summed the same way. A perfect
# reconstruction scores 1; predicting the batch mean for every row scores 0. Gao et al. report the complement, the
# normalised MSE (1 minus this). Return a 0-d tensor.
#
# <details><summary>Hint</summary>
#
# `x - x.mean(dim=0)` centres each dimension. One ratio of two sums, not an average of per-row or per-dimension
# ratios.
#
# </details>


# %%
def explained_variance(x: Float[Tensor, "batch d_in"], recon: Float[Tensor, "batch d_in"]) -> Float[Tensor, ""]:
    """1 - sum of squared errors / sum of squared distances to the batch mean (1 = perfect, 0 = the mean)."""
    # BEGIN SOLUTION
    squared_error = (recon - x).pow(2).sum()
    total_variance = (x - x.mean(dim=0)).pow(2).sum()  # the error of always predicting the mean
    return 1 - squared_error / total_variance
    # END SOLUTION
    # BEGIN STUB
    # raise NotImplementedError("exercise: replace this line with your code")
    # END STUB


explained_variance = ex.check(checks.explained_variance, explained_variance)

# %% [markdown]
# ### Exercise 4.4 · Dead and dense latents
#
# > **Difficulty** 🔴⚪⚪⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 5 minutes
#
# A latent's *density* is the fraction of rows on which its code is nonzero. It is *dead* when its density is 0 (it
# never fires: wasted capacity) and *dense* when its density is above `dense_above` (it fires on so many tokens that
# it is unlikely to mean one thing). Write `dead_and_dense_fractions`: from codes [batch, d_sae], return (the
# fraction of latents that are dead, the fraction that are dense), each a 0-d tensor.
#
# <details><summary>Hint</summary>
#
# `(codes != 0).float().mean(dim=0)` is the density of every latent; a dead or dense latent is a column, not a row.
#
# </details>


# %%
def dead_and_dense_fractions(
    codes: Float[Tensor, "batch d_sae"], dense_above: float = 0.1
) -> tuple[Float[Tensor, ""], Float[Tensor, ""]]:
    """(fraction of latents never nonzero, fraction nonzero on more than `dense_above` of the rows)."""
    # BEGIN SOLUTION
    density = (codes != 0).float().mean(dim=0)  # fraction of rows on which each latent fires
    return (density == 0).float().mean(), (density > dense_above).float().mean()
    # END SOLUTION
    # BEGIN STUB
    # raise NotImplementedError("exercise: replace this line with your code")
    # END STUB


dead_and_dense_fractions = ex.check(checks.dead_and_dense_fractions, dead_and_dense_fractions)

# %% [markdown]
# ### Exercise 4.5 · Loss recovered by splicing the SAE in
#
# > **Difficulty** 🔴🔴🔴⚪⚪ · **Importance** 🔵🔵🔵🔵🔵 · about 15 minutes
#
# The test that matters: put the reconstruction in place of the activations at `hook_name` and see what happens to
# the model's next-token loss. Write `ce_loss_recovered`, returning a dict of Python floats:
#
# - `clean`: the mean next-token cross-entropy of `model` on `tokens` [batch, pos] (the logits at position i predict
#   `tokens[:, i + 1]`), without hooks;
# - `spliced`: the same with a hook at `hook_name` that returns the SAE's reconstruction of the activation
#   [batch, pos, d_in], in its shape: `sae.encode` and `sae.decode` take rows [batch, d_in], so flatten the
#   activation to rows, reconstruct them, and reshape back;
# - `zero_ablated`: the same with a hook that returns `torch.zeros_like(act)`, as if the MLP were deleted;
# - `recovered` = (zero_ablated - spliced) / (zero_ablated - clean): 1 when splicing costs nothing, 0 when it is as
#   bad as deleting the activations.
#
# <details><summary>Hint</summary>
#
# A TransformerLens hook is a function `(act, hook) -> new act`, and
# `model.run_with_hooks(tokens, fwd_hooks=[(hook_name, fn)])` returns the logits; `act.reshape(-1, act.shape[-1])`
# gives the rows and `.reshape(act.shape)` restores the shape. For the loss,
# `-logits[:, :-1].log_softmax(dim=-1).gather(-1, tokens[:, 1:, None]).mean()`, and `.item()` for a float.
#
# </details>


# %%
def ce_loss_recovered(
    model: HookedTransformer, sae: sae_lib.SAE, hook_name: str, tokens: Int[Tensor, "batch pos"]
) -> dict[str, float]:
    """Next-token loss clean, with the SAE spliced in at `hook_name`, zero-ablated; and the share recovered."""

    # BEGIN SOLUTION
    def next_token_loss(logits: Float[Tensor, "batch pos d_vocab"]) -> float:
        logprobs = logits[:, :-1].log_softmax(dim=-1)  # position i predicts token i + 1
        return -logprobs.gather(-1, tokens[:, 1:, None]).mean().item()

    def splice(act: Float[Tensor, "batch pos d_in"], hook) -> Float[Tensor, "batch pos d_in"]:
        rows = act.reshape(-1, act.shape[-1])  # the SAE reads rows of d_in
        return sae.decode(sae.encode(rows)).reshape(act.shape)

    def zero(act, hook):
        return torch.zeros_like(act)

    clean = next_token_loss(model(tokens))
    spliced = next_token_loss(model.run_with_hooks(tokens, fwd_hooks=[(hook_name, splice)]))
    zero_ablated = next_token_loss(model.run_with_hooks(tokens, fwd_hooks=[(hook_name, zero)]))
    recovered = (zero_ablated - spliced) / (zero_ablated - clean)
    return {"clean": clean, "spliced": spliced, "zero_ablated": zero_ablated, "recovered": recovered}
    # END SOLUTION
    # BEGIN STUB
    # raise NotImplementedError("exercise: replace this line with your code")
    # END STUB


ce_loss_recovered = ex.check(checks.ce_loss_recovered, ce_loss_recovered)

# %%
ev = explained_variance(eval_acts, recon).item()
metrics = {"explained_variance": ev, "normalized_mse": 1 - ev, "l0": sae_lib.l0(codes).item()}
metrics["dead_fraction"], metrics["dense_fraction"] = (f.item() for f in dead_and_dense_fractions(codes))
metrics["density"] = sae_lib.feature_density(codes)  # per latent, for the histogram below
ce = ce_loss_recovered(model, sae, hook_name, held_out.tokens[:64])
print({key: round(value, 3) for key, value in metrics.items() if key != "density"})
print(
    f"next-token loss: clean {ce['clean']:.3f}, SAE spliced in {ce['spliced']:.3f}, "
    f"MLP zero-ablated {ce['zero_ablated']:.3f} -> loss recovered {ce['recovered']:.3f}"
)
for key in ("explained_variance", "l0", "dead_fraction", "dense_fraction"):
    record(key, round(metrics[key], 4))
record("ce_loss_recovered", round(ce["recovered"], 4))

# %% [markdown]
# **Look.** Training curves, then how often each latent fires on held-out tokens, next to the neurons. A healthy
# dictionary has few latents that never fire (dead) and few that fire on a large share of tokens (dense).

# %%
figures.sae_training_figure(
    {architecture: history},
    f"{architecture} SAE, {expansion * d_in} latents: explained variance rises while L0 stays at k",
).show()
neuron_density = (eval_acts > 0).float().mean(0)
figures.density_histogram(
    {"SAE latents": metrics["density"], "MLP neurons (> 0)": neuron_density},
    "Latents fire on a few tokens each; neurons are positive on a large share of them",
).show()

# %% [markdown]
# **Takeaway.** Loss recovered is the number that matters most: splicing the SAE's reconstruction into the model in
# place of the MLP's activations must keep the model's predictions. Explained variance can look good while the small
# residual error lands exactly where the model is sensitive. The neurons' density shows why they are hard to read:
# GELU is positive on a large share of tokens for many of them.

# %% [markdown]
# ## 3 · Four architectures on the same activations
#
# **Why this matters.** The field moved from ReLU + L1 (which shrinks every active latent toward zero and needs a
# penalty tuned per model) to TopK, BatchTopK and JumpReLU, which set the sparsity more directly. Trained here on the
# same cache with half the steps, they show the trade-off on one table: reconstruction (explained variance, loss
# recovered) against sparsity (L0). The coefficients are set for this model's activation scale; on another model,
# tune `l1_coeff` and `l0_coeff` first.

# %%
trained = {architecture: (sae, history)}
if compare:
    settings = {
        "relu": {"l1_coeff": 1.5},
        "batchtopk": {},
        # Thresholds at the scale of this model's pre-activations at init (encoder columns of norm 0.1 reading
        # activations of norm about 14): from 0.3, above nearly all of them, 87% of the latents never fired.
        "jumprelu": {"l0_coeff": 0.5, "jumprelu_init_threshold": 0.15, "jumprelu_bandwidth": 0.05},
    }
    for arch, extra in settings.items():
        if arch != architecture:
            with torch.enable_grad():
                trained[arch] = train(arch, max(10, steps // 2), **extra)
comparison = []
for arch, (model_sae, _) in trained.items():
    m = sae_lib.evaluate(model_sae, eval_acts)
    c = ce_loss_recovered(model, model_sae, hook_name, held_out.tokens[:64])
    comparison.append(
        {
            "architecture": arch,
            "steps": model_sae.cfg.steps,
            "L0": m["l0"],
            "explained variance": m["explained_variance"],
            "loss recovered": c["recovered"],
            "dead": m["dead_fraction"],
            "dense": m["dense_fraction"],
        }
    )
record(
    "architectures",
    [
        [r["architecture"], round(r["L0"], 1), round(r["explained variance"], 3), round(r["loss recovered"], 3)]
        for r in comparison
    ],
)
display(html_table(comparison))
if compare:
    figures.sae_training_figure(
        {arch: h for arch, (_, h) in trained.items()}, "Same activations, four sparsity mechanisms"
    ).show()

# %% [markdown]
# **Takeaway.** In default mode TopK reconstructs best of the dictionaries at its L0 (seed 0: explained variance
# 0.943 at L0 = 32; BatchTopK 0.926 at 32 with half the steps), with no coefficient to tune. Fast-mode runs are too
# short to rank them, and too short for BatchTopK's AuxK: no latent counts as dead before 100k tokens and 150 steps
# are 77k, so 72% of its latents never fire on the held-out rows (4% in default mode). ReLU + L1 trades
# reconstruction for sparsity through `l1_coeff`, and the same coefficient means a different L0 under another
# recipe: since its decoder rows train with free norms (issue #18), 1.5 runs at L0 about 106 here (0.90), where
# unit rows gave about 30 and lost latents at larger coefficients. JumpReLU reaches 0.936 at L0 45, and its L0 is
# still falling when we stop (seed 0: 378 after 50 steps, 49 then 45 over the last 50): Adam raises each threshold
# by at most about the learning rate per step, so L0 comes down over hundreds of steps and a larger `l0_coeff`
# cannot hurry it past that rate. Its thresholds start at 0.15, near its pre-activations at initialisation (encoder
# columns of norm 0.1 reading activations of norm about 14). Started at 0.3, above nearly all of them, 87% of its
# latents never fired: a latent below its threshold and outside the estimator's window gets no gradient at all.
# Compare at equal L0 before calling one better: the papers' comparisons are Pareto curves of L0 against loss, not
# single points.

# %% [markdown]
# **Where the true directions are known.** On the zoo model nobody knows the true feature directions, so the table
# above can only score reconstruction. On planted data we can score the directions themselves: 64 unit directions
# in 32 dimensions, each on with probability 0.05, and each architecture trained on the same rows. The mean
# correlation coefficient (MCC, `recovery.mean_correlation_coefficient`) matches decoder rows one-to-one to the
# planted directions (Hungarian matching) and averages |cosine|; random directions already score about 0.4 here,
# so each SAE is compared with its own initialisation.


# %%
def planted(n_rows: int = 100_000) -> tuple[Float[Tensor, "n_rows 32"], Float[Tensor, "64 32"]]:
    """Rows that are sparse nonnegative sums of 64 known unit directions in 32 dimensions."""
    g = torch.Generator().manual_seed(seed + 1)
    directions = torch.nn.functional.normalize(torch.randn(64, 32, generator=g), dim=-1)
    on = torch.rand(n_rows, 64, generator=g) < 0.05
    return (on * (0.5 + torch.rand(n_rows, 64, generator=g))) @ directions, directions


planted_x, planted_dirs = planted()
planted_settings = {"topk": {"k": 4}, "batchtopk": {"k": 4}, "relu": {"l1_coeff": 1.0}, "jumprelu": {"l0_coeff": 0.1}}
planted_mcc = {}
for arch, extra in planted_settings.items():
    cfg = sae_lib.SAEConfig(d_in=32, d_sae=64, architecture=arch, steps=600, batch_size=256, seed=seed, **extra)
    start = sae_lib.SAE(cfg).W_dec
    batches = sae_lib.iterate_batches(planted_x, 256, torch.Generator().manual_seed(seed))
    with torch.enable_grad():
        planted_sae, _ = sae_lib.train_sae(cfg, batches, progress=False)
    planted_mcc[arch] = {
        "architecture": arch,
        "MCC at init": recovery.mean_correlation_coefficient(start, planted_dirs),
        "MCC trained": recovery.mean_correlation_coefficient(planted_sae.W_dec, planted_dirs),
        "L0": sae_lib.evaluate(planted_sae, planted_x[:10_000])["l0"],
    }
record(
    "planted_mcc", [[arch, round(r["MCC at init"], 3), round(r["MCC trained"], 3)] for arch, r in planted_mcc.items()]
)
display(html_table(list(planted_mcc.values())))

# %% [markdown]
# **Takeaway.** Every architecture turns its decoder toward the planted directions in 600 steps, but not equally fast
# (seed 0, from 0.415 at initialisation): ReLU + L1 reaches MCC 0.905, TopK 0.828, BatchTopK 0.762 and JumpReLU
# 0.674. JumpReLU's thresholds climb by about the learning rate per step: its L0 peaks at 37 of 64 latents early on
# and is still 6.6 when it stops, where each row holds 3.2 directions, and until L0 comes down its latents stay
# mixtures (with 1,500 steps: L0 3.8 and MCC 0.89). All four start with small encoders (norm 0.1), whose columns turn
# faster under Adam (issue #18; with encoders at full scale, seeds 0 and 1: ReLU 0.87-0.90 with unit decoder rows,
# TopK 0.73-0.76, BatchTopK about 0.69; seed 0: JumpReLU 0.549). ReLU's lead here is at its own L0 (about 4.5, against 4 for
# TopK): MCC, like reconstruction, is compared at equal sparsity in `benchmarks/bench_sae_quality.py`.
#
# **The same comparison on someone else's benchmark.** That bench trains ours and SAELens' trainers on SAELens'
# synthetic features (1,024 of them in 128 dimensions, Zipfian firing, a hierarchy, correlations; true L0 17.6) with
# 2M activations each and scores them with SAELens' own code, at L0 16 (seeds 0 and 1; ours / SAELens):
#
# | | TopK | BatchTopK | Matryoshka | ReLU + L1 | JumpReLU |
# |---|---|---|---|---|---|
# | ours, seed 0 / 1 | 0.664 / 0.661 | 0.589 / 0.584 | 0.402 / 0.403 | 0.783 / 0.779 | 0.648 / 0.662 |
# | SAELens, seed 0 / 1 | 0.487 / 0.493 | 0.388 / 0.390 | 0.370 / 0.377 | 0.785 / 0.785 | 0.619 / 0.605 |
#
# (ReLU's and JumpReLU's MCC is interpolated in log L0 between the points of each side's coefficient sweep.) Set
# these beside the two tables above. On the zoo model the ranking is by reconstruction, each at its own L0; on
# planted features by the directions found. On SAELens' features at equal L0, ReLU + L1 recovers the most directions
# for both libraries, our TopK family and JumpReLU beat SAELens' by 0.03-0.2, and our ReLU sits 0.002-0.006 below
# SAELens' (at equal `l1_coeff` the two trainers agree to 0.006). Matryoshka scores lowest in both
# libraries. A likely reason, not tested here: its first latents are pushed to hold what many features share (the
# parents of the hierarchy), not one true feature each; notebook 05 scores it on a hierarchy built for that.

# %% [markdown]
# ## 4 · Ground truth: which concepts did the dictionary recover?
#
# **Why this matters.** On real text, "latent 1234 is the raven feature" is a judgement made by reading examples. Our
# corpus recorded why every token is there, so recovery becomes a measurement: for every label, the latent (and, as
# a baseline, the neuron) whose firing best matches it, by F1; and AUROC, which forgives a bad threshold. If the SAE
# undoes superposition, its latents should match the generating concepts better than the neurons do.
#
# **Do it.** Labels: `topic` (the leaf of the concept hierarchy a paragraph is about, on every token of it, e.g.
# `animals/birds/raven`), the coarser `node_l1` and `node_l0` levels of the word that was written, the base64 class,
# the word sense, and the name.

# %% [markdown]
# ### Exercise 4.6 · Best F1 of a label by a latent
#
# > **Difficulty** 🔴🔴🔴⚪⚪ · **Importance** 🔵🔵🔵🔵⚪ · about 15 minutes
#
# The recovery score. A latent *fires* on a token when its code is > 0. Against a binary label, its F1 is
# 2 TP / (tokens it fires on + tokens with the label), where TP counts the tokens it fires on that have the label: the
# harmonic mean of precision and recall, written so that it is 0 (not NaN) for a latent that never fires. Write
# `best_latent_f1`: from codes [batch, d_sae] and labels `truth` [batch, label] (bool), return for each label the best
# F1 over all latents [label] and the latent that reaches it [label] (the lowest index on ties, as `max` gives).
# `recovery.best_f1` below does this and more (precision, recall, AUROC, a threshold grid for dense neurons); the
# mean F1 of the paragraph topics, recorded and checked at the end, is computed with yours.
#
# <details><summary>Hint</summary>
#
# With `fired = (codes > 0).float()`, `fired.T @ truth.float()` counts TP for every (latent, label) pair at once,
# [d_sae, label]. Where the denominator is 0, TP is 0 too, so `.clamp(min=1)` on the denominator avoids NaN.
# `.max(dim=0)` gives the best values and their indices.
#
# </details>


# %%
def best_latent_f1(
    codes: Float[Tensor, "batch d_sae"], truth: Bool[Tensor, "batch label"]
) -> tuple[Float[Tensor, " label"], Int[Tensor, " label"]]:
    """For each label, the best F1 of "latent > 0" against it over latents, and that latent (lowest on ties)."""
    # BEGIN SOLUTION
    fired, target = (codes > 0).float(), truth.float()
    true_positives = fired.T @ target  # [d_sae, label]
    denominator = fired.sum(dim=0)[:, None] + target.sum(dim=0)  # tokens fired + tokens labelled
    f1 = 2 * true_positives / denominator.clamp(min=1)  # 0 where both are 0
    best = f1.max(dim=0)
    return best.values, best.indices
    # END SOLUTION
    # BEGIN STUB
    # raise NotImplementedError("exercise: replace this line with your code")
    # END STUB


best_latent_f1 = ex.check(checks.best_latent_f1, best_latent_f1)

# %%
fields = ["topic", "node_l1", "node_l0", "b64_class", "sense", "name"]
truth, label_names = recovery.label_matrix(eval_labels, fields)
fields = [f for f in fields if any(n.startswith(f + "=") for n in label_names)]  # too rare in a short run: dropped
latent_table = recovery.best_f1(codes, truth, label_names)
neuron_table = recovery.best_f1(eval_acts, truth, label_names, thresholds="quantiles")
summary = [
    {
        "field": f,
        "labels": sum(n.startswith(f + "=") for n in label_names),
        "latents: mean F1": latent_table.mean_f1(f + "="),
        "neurons: mean F1": neuron_table.mean_f1(f + "="),
    }
    for f in fields
]
display(html_table(summary))
topic_f1, _ = best_latent_f1(codes, truth[:, [i for i, n in enumerate(label_names) if n.startswith("topic=")]])
leaf_f1 = {"latents": topic_f1.mean().item(), "neurons": neuron_table.mean_f1("topic=")}  # latents: Exercise 4.6
record("leaf_mean_f1_latents", round(leaf_f1["latents"], 4))
record("leaf_mean_f1_neurons", round(leaf_f1["neurons"], 4))

# %% [markdown]
# **Look.** Mean best F1 per field, then every label: points above the diagonal are labels a latent matches better
# than any neuron (hover for the label).

# %%
figures.recovery_figure(
    {"SAE latents": latent_table, "MLP neurons": neuron_table},
    fields,
    "Latents beat neurons on paragraph topics and hierarchy levels",
).show()
figures.recovery_scatter(
    neuron_table, latent_table, "MLP neurons", "SAE latents", "Each label's best latent against its best neuron"
).show()

# %% [markdown]
# **Takeaway.** The SAE recovers the paragraph topics (the leaves of the hierarchy) and the hierarchy's upper
# levels better than the neurons do, and base64 classes about as well. Recovery is far from perfect: a mean F1
# around 0.3 means a topic latent fires on only part of its paragraphs, or also elsewhere. Two kinds of label are
# hard for both, and the reason is worth knowing. The *name* of the current token, and the leaf of the current word
# (`node_l2`, not shown), are properties of the input, while an MLP's activations mostly encode what it is about to
# predict; a residual-stream SAE would find them (try `hook_name="blocks.0.hook_resid_pre"`). And the model was
# trained for 12M tokens: at 1500 steps it did not track topics at all, and no dictionary can recover a concept the
# model does not represent (see `interp_helpers/zoo.py`).

# %% [markdown]
# ## 5 · Reading a latent: the feature dashboard
#
# **Why this matters.** A dashboard is how researchers read latents: the contexts where it fires hardest, how its
# activations are distributed, which output tokens its decoder direction pushes up or down through the unembedding,
# and a label. Here each dashboard also shows the ground truth it matches, so you can see when the automatic label
# (read off the top tokens) is right and when it misleads.
#
# **Do it.** Dashboards for the latents that best match three labels (static HTML, kept in the exported notebook),
# then a picker for any latent. Try the neuron dashboards too (`neuron_card(i)`).

# %%
where = features.token_positions(held_out.keep)
latent_best_labels = recovery.unit_labels(codes, truth, label_names, top=3)
latent_card = functools.partial(
    features.feature_card,
    acts=codes,
    tokens=held_out.tokens,
    where=where,
    model=model,
    hook_name=hook_name,
    directions=sae.W_dec,
    best_labels=latent_best_labels,
)
neuron_card = functools.partial(
    features.feature_card,
    acts=eval_acts,
    tokens=held_out.tokens,
    where=where,
    model=model,
    hook_name=hook_name,
    directions=torch.eye(d_in),
)
best_rows = sorted(latent_table.to_rows(), key=lambda r: -r["f1"])
shown = [next(r for r in best_rows if r["label"].startswith(f + "=")) for f in ("topic", "b64_class", "node_l0")]
for row in shown:
    display(features.dashboard_html(latent_card(row["unit"]), f"best latent for {row['label']}: latent"))

# %%
features.feature_dashboard(latent_card, n_units=sae.cfg.d_sae, start=shown[0]["unit"])

# %% [markdown]
# **Takeaway.** The base64 latent's top tokens and its ground-truth label agree. A topic latent fires on ordinary
# words all over a paragraph about its topic, so its automatic label (the most frequent top tokens) reads like a grab
# bag of function words, while the ground truth says it is a topic feature: labels read off top activations miss
# features that are about context rather than the token itself, which is why automated interpretability scores its
# labels by simulation (notebook 07).

# %% [markdown]
# ## 6 · One polysemantic neuron, several monosemantic latents
#
# **Why this matters.** Superposition predicts neurons that respond to unrelated things, and a dictionary that pulls
# those things apart. With labels we can pick such a neuron by measurement, not by eye: the one matching the most
# unrelated labels (different topics' roots, senses, base64...), each at F1 >= 0.1. Then, for each of its labels: the
# best latent, its F1, and the weight its decoder direction puts on this neuron (a latent that writes to the neuron
# is one of the things the neuron mixes; `weight_rank` 0 is the latent that writes to it most).

# %%
neuron_labels = recovery.unit_labels(eval_acts, truth, label_names, top=8, thresholds="quantiles")
neuron, its_labels = features.polysemantic_units(neuron_labels, min_f1=0.1, fields=["topic", "sense", "b64_class"])[0]
split = features.split_of_neuron(neuron, its_labels, latent_table, sae.W_dec)
print(f"neuron {neuron} matches {len(its_labels)} labels at F1 >= 0.1")
display(html_table(split))
splitting = [r for r in split if r["latent_f1"] > r["neuron_f1"]]
writing = [r for r in splitting if r["weight_on_neuron"] > 0]
record("polysemantic_neuron", neuron)
record("polysemantic_labels_split", [len(splitting), len(split)])
record("splitting_latents_writing_to_neuron", len(writing))
display(features.dashboard_html(neuron_card(neuron), "MLP neuron"))

# %% [markdown]
# **Takeaway.** The neuron fires, weakly, for several unrelated paragraph topics; for most of them a separate latent
# matches the topic better, and its decoder direction raises this neuron (positive weight): the SAE has split one
# polysemantic neuron into more monosemantic pieces. How strongly each piece writes to the neuron varies
# (`weight_rank`): the neuron is one of many places each topic direction touches, which is superposition seen from the
# other side. Where no latent beats the neuron, the dictionary has not separated that meaning: a larger dictionary or
# more training might (notebook 05 grows it).

# %%
record("exercises_solved", ex.summary())

# %% [markdown]
# # Checks
#
# The claims above, asserted. Thresholds come from the issue and the papers, stated next to each; they held for
# seeds 0 and 1 in default and fast mode and were not tuned to make a seed pass. After issue #18's trainer changes
# (encoder init, ReLU's free decoder norms, BatchTopK's threshold) they were rerun for seed 0 in both modes (dead
# latents: 9.6% fast, 1.1% default; the bound is 10%).

# %%
# The default SAE on zoo-gelu-1l-a's MLP: explained variance >= 0.8 at L0 <= 32 with < 10% dead latents
# (held-out tokens), and CE loss recovered >= 0.8 (Bricken et al.: 79% at 4,096 latents).
if architecture in ("topk", "batchtopk"):
    assert metrics["l0"] <= k + 1e-6, metrics["l0"]
assert metrics["explained_variance"] >= 0.8, metrics["explained_variance"]
assert metrics["dead_fraction"] < 0.10, metrics["dead_fraction"]
assert ce["recovered"] >= 0.8, ce
# Every architecture of the comparison keeps its latents alive (JumpReLU with thresholds far above its
# pre-activations lost 87% of them).
# (Not BatchTopK in fast mode: its 150 steps end before AuxK can act; see the takeaway of section 3.)
for row in comparison:
    if not (fast and row["architecture"] == "batchtopk"):
        assert row["dead"] < 0.1, row
# Every architecture turns its decoder toward the planted directions: MCC at least 0.1 above its random start
# (seed 0: JumpReLU +0.26, the others +0.35 or more). ReLU + L1 by at least 0.3 (measured +0.49; issue #18, its
# encoder used to start too large and it stayed at its initialisation).
for row in planted_mcc.values():
    assert row["MCC trained"] >= row["MCC at init"] + 0.1, row
assert planted_mcc["relu"]["MCC trained"] >= planted_mcc["relu"]["MCC at init"] + 0.3, planted_mcc["relu"]
# Latents beat neurons on the leaf labels (paragraph topics), by mean best F1.
assert leaf_f1["latents"] > leaf_f1["neurons"], leaf_f1
# The polysemantic neuron matches at least 3 unrelated labels; for most of them a latent matches better, and most
# of those latents raise the neuron (positive decoder weight on it).
assert len({n.split("/", 1)[0] for n, _ in its_labels}) >= 3, its_labels
assert len(splitting) > len(split) / 2 and len(writing) > len(splitting) / 2, split
# The dashboard agrees with the ground truth: most top contexts of the best base64 latent sit on base64 tokens.
b64_row = shown[1]
card = latent_card(b64_row["unit"])
b64_field = eval_labels["b64_class"]
top_tokens = codes[:, b64_row["unit"]].topk(len(card.contexts)).indices
assert (b64_field[top_tokens] >= 0).float().mean() >= 0.5, b64_field[top_tokens]
if workdir is not None:
    workdir.cleanup()
print("all checks passed")

# %% [markdown]
# ## Going further
#
# - **Sweep the sparsity**: `workbook sweep 04 -p k 8,16,32,64 --fast` and plot `explained_variance` and
#   `ce_loss_recovered` against `k`: the L0-reconstruction frontier that papers compare architectures on.
# - **Another layer**: `hook_name="blocks.0.hook_resid_post"` (d_model = 128 wide): which labels become easier?
# - **The other seed**: `model_name="zoo-gelu-1l-b"` trains on the second seed's MLP; notebook 05 matches the two
#   dictionaries' latents (universality).
# - **Keep the cache**: `cache_dir="/tmp/acts"` keeps the activations, so a sweep over architectures reads them from
#   disk instead of running the model again.
# - **Open question**: our best topic latents reach F1 about 0.3-0.4. Is the gap the SAE's (too small, too short a
#   run) or the model's (it represents topics only partly)? A linear probe on the same activations is one upper bound
#   to compare with.
