# %% [markdown]
# # 03 · Indirect object identification: finding a circuit end to end
#
# **Promise.** By the end you can take a behaviour, "When Mary and John went to the store, John gave a drink to" ->
# " Mary", and find the components that compute it: which write the answer (direct logit attribution), which matter
# (activation patching, and its cheap approximation, attribution patching), how they talk to each other (path
# patching), what each one does (attention and copying evidence), whether the circuit you found is the whole story
# (faithfulness), and what happens when you remove part of it (backup).
#
# **Paper.** Wang et al. (2022), *Interpretability in the Wild: a Circuit for Indirect Object Identification in GPT-2
# small*; Nanda (2023) and Syed et al. (2023) for attribution patching.
# **Prerequisites.** 00 (the zoo and its IOI prompts), 02 (attention heads, ablation). **Runtime on a 2-core CPU:**
# default about 45 s, fast mode (`fast=True`) about 30 s (up to 75 s and 55 s on a machine busy with other work).
#
# **What we reproduce, and how ours differs.** The whole method of the paper, on `zoo-gelu-4l-dup` (4 layers x 4
# heads, 512-neuron MLPs, trained on our corpus; IO beats S on 100% of held-out prompts, logit difference about 8.5).
# Its corpus was built to rule out the shortcut an earlier model took: beside the two-name IOI sentences, where the
# subject is always the last name before the answer, it has three-name sentences ("A, B and C were at the park.
# Later, B and C passed a ball to" -> A) with the answer introduced first, second or third, so "not the most recent
# name" no longer works; and half of both kinds are composed from interchangeable parts, some with an aside that
# puts one repeated name in a sentence of its own ("... B was tired. Later, C gave a ball to" -> A). The answer is
# still *not* the paper's circuit. GPT-2 small uses 26 heads: duplicate-token and induction heads notice that S is
# repeated, S-inhibition heads pass that on to the name movers' queries, and name-mover heads copy the other name
# into the logits. Our model has none of these with an effect: the four layer-0 heads bring the names to END,
# weighted towards the final clause, and the MLPs write the answer, mostly "a name from the sentence, but not one
# from the clause that gives". Section 7 sets it beside `zoo-gelu-4l`, the same architecture trained without
# three-name sentences, which learned the narrower rule "not the most recent name": a model takes the shortcut its
# data allows, and the asides moved the default model only part of the way from its shortcut towards repetition.
# Finding that out, and proving it, uses every tool of the paper, which is the point: a method that can only confirm
# the circuit you expected is not a method.
#
# `model_name="zoo-gelu-4l"` runs every section on the recency model (the text describes the default model; section
# 7 describes both), and `zoo-gelu-4l-dup-dropout` is the default model's recipe trained with dropout (section 9).
# With a network, `model_name="gpt2-small"` runs the same code on GPT-2 (not tested offline; prompts whose names are
# not single GPT-2 tokens are skipped, `ioi.usable_names`).
#
# **A real model.** `model_name="smollm2-135m-instruct-q4"` runs the notebook on SmolLM2-135M-Instruct (4-bit weights;
# 30 layers x 9 heads, grouped-query attention, rotary positions, RMSNorm; notebook 06 studies it further). Every
# section that applies runs, with the per-head loops cut to what a 2-core CPU affords: 8 prompts (16 in default
# mode); heads patched by the package's stacked kernels instead of your loop, on the last third of the layers (default
# mode: the last half; the other heads NaN); by position and along paths only the heads that matter most; total
# effects by stacked patching (`ioi_circuit.total_effects`) and the knockout by direct effects
# (`ioi_circuit.backup_direct`), as in notebook 06. The comparisons with the zoo's other IOI models (sections 7 and 9)
# are skipped with a one-line reason, and the checks assert what was measured on this model. About 65-90 s in fast
# mode and 5 minutes in default mode with one torch thread on a busy 2-core machine.

# %% tags=["parameters"]
seed: int = 0  # 0 <= seed < 2**32; picks the held-out prompts and the ABC names (the model is fixed)
fast: bool = False  # fewer prompts and ABC sets; every section and check still runs
model_name: str = "zoo-gelu-4l-dup"  # model_name in ("zoo-gelu-4l-dup", "zoo-gelu-4l", "zoo-gelu-4l-dup-dropout", "smollm2-135m-instruct-q4", "gpt2-small"); the zoo's IOI models (zoo-gelu-4l: the recency shortcut of section 7), the real SmolLM2-135M (4-bit, 30 layers: costly sections on chosen heads); gpt2-small needs a network
n_prompts: int = 100  # 10 <= n_prompts <= 2000; held-out IOI prompts, ABBA and BABA, every template (fast: at most 40)
corruption: str = "abc"  # corruption in ("abc", "flipped"); corrupted run for patching: "abc" (three new names) or "flipped" (the other name repeated)
n_abc_sets: int = 3  # 1 <= n_abc_sets <= 20; ABC name draws pooled for the mean-ablation baseline (fast: at most 2)
circuit_threshold: float = 0.1  # 0.0 <= circuit_threshold <= 1.0; a component joins the circuit if ablating it moves the logit diff by this fraction

# %%
import functools

import einops
import numpy as np
import torch
from IPython.display import display
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import ActivationCache, HookedTransformer
from transformer_lens.hook_points import HookPoint

from interp_helpers import check_parameters, record, seed_everything
from interp_helpers.checkers import Exercises
from interp_helpers.checkers import ioi as checks
from interp_helpers.figures import plots
from interp_helpers.modelzoo.corpus_view import html_table
from interp_helpers.modelzoo.models import list_zoo, load_model
from interp_helpers.modelzoo.real_model import NAME as REAL_MODEL
from interp_helpers.transformer_circuits import circuits, figures, ioi, ioi_circuit, patching
from interp_helpers.transformer_circuits.ioi_circuit import Receiver

check_parameters("03", globals())  # the conditions declared in the parameters cell
ex = Exercises("03")
if fast:
    n_prompts, n_abc_sets = min(n_prompts, 40), min(n_abc_sets, 2)
real = model_name == REAL_MODEL  # 270 heads: per-head loops run on chosen layers and heads (see the header)
if real:
    n_prompts = min(n_prompts, 8 if fast else 16)
_ = seed_everything(seed)
torch.set_grad_enabled(False)  # only attribution patching needs a gradient; it turns it on itself
model = load_model(model_name)
tok = model.tokenizer
n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
# whose heads are patched one by one (the real model: the last third in fast mode, the last half by default)
patched_layers = list(range((2 * n_layers // 3 if fast else n_layers // 2) if real else 0, n_layers))
n_chosen = 3 if fast else 6  # the real model: heads patched by position and along paths (and half as many MLPs)

# %% [markdown]
# ## 1 · The task, the datasets and the metric
#
# **Why this matters.** Patching compares a clean run with a corrupted one, position by position, so the two prompt
# sets must line up token for token. Three sets, built from the same held-out prompts (template/name pairs never
# seen in training):
#
# - **clean**: IO and S as in the sentence; the answer is IO;
# - **ABC**: IO, S1 and S2 replaced by three other names; nothing is repeated, so "the name that is not the
#   subject" is undefined (Wang et al.'s baseline for mean ablation);
# - **flipped**: S2 replaced by IO; now the *other* name is repeated and the answer flips.
#
# The metric is the logit difference logit(IO) - logit(S) at the last token, for the clean prompt's IO and S, and its
# normalised version for patching: 1 = the clean value, 0 = the corrupted value.

# %%
clean = ioi.ioi_dataset(tok, n_prompts, seed)
abc = ioi.abc_dataset(clean, tok, seed)
flipped = ioi.flipped_dataset(clean, tok)
corrupted = {"abc": abc, "flipped": flipped}[corruption]  # = ioi.corrupted_dataset(clean, tok, corruption, seed)
abc_sets = [abc] + [ioi.abc_dataset(clean, tok, seed=seed + 1000 * k) for k in range(1, n_abc_sets)]
sets = {"clean": clean, "ABC": abc, "flipped": flipped}
print(f"{clean.texts[0]!r} -> IO {tok.decode([int(clean.io_token[0])])!r}, S {tok.decode([int(clean.s_token[0])])!r}")
print(f"right-padded to {clean.tokens.shape[1]} tokens; END sits at positions {sorted(set(clean.end.tolist()))}")

# %% [markdown]
# ### Exercise 3.1 · Logit difference at END
#
# > **Difficulty** 🔴⚪⚪⚪⚪ · **Importance** 🔵🔵🔵🔵⚪ · about 5 minutes
#
# Write `logit_diff_per_prompt`: for each prompt b, `logits[b, end[b], io_token[b]] - logits[b, end[b], s_token[b]]`,
# one value per prompt, shape [batch] (the notebook takes the mean). The prompts are right-padded, so END is a
# different position in different rows: read each row at its own `end[b]`, not at the last position.
#
# <details><summary>Hint</summary>
#
# `logits[torch.arange(batch), end]` picks each row's END logits, [batch, d_vocab]; pick the token ids from that the
# same way, with `torch.arange(batch)` beside them. `logits[:, end]` would pair every row with every row's END.
#
# </details>


# %%
def logit_diff_per_prompt(
    logits: Float[Tensor, "batch pos d_vocab"],
    end: Int[Tensor, " batch"],
    io_token: Int[Tensor, " batch"],
    s_token: Int[Tensor, " batch"],
) -> Float[Tensor, " batch"]:
    """logit(IO) - logit(S) at each prompt's END position: one value per prompt."""
    # BEGIN SOLUTION
    rows = torch.arange(logits.shape[0])
    end_logits = logits[rows, end]  # batch d_vocab: each prompt at its own END
    return end_logits[rows, io_token] - end_logits[rows, s_token]
    # END SOLUTION


logit_diff_per_prompt = ex.check(checks.logit_diff_per_prompt, logit_diff_per_prompt)

# %%
per_prompt = {
    name: logit_diff_per_prompt(model(ds.tokens), ds.end, ds.io_token, ds.s_token) for name, ds in sets.items()
}  # the clean IO and S in every set: the metric compares those
logit_diff = {name: value.mean().item() for name, value in per_prompt.items()}
accuracy = (per_prompt["clean"] > 0).float().mean().item()  # IO beats S
metric = ioi_circuit.ioi_metric(model, clean, corrupted)  # the same difference at END, normalised for patching
display(
    html_table(
        [{"set": name, "example": ds.texts[0], "logit diff IO - S": logit_diff[name]} for name, ds in sets.items()]
    )
)
print(
    f"clean accuracy {accuracy:.1%}; {len(set(clean.templates.tolist()))} templates, "
    f"{sum(o == 'ABBA' for o in clean.orders)} ABBA / {sum(o == 'BABA' for o in clean.orders)} BABA"
)
record("logit_diff_clean", round(logit_diff["clean"], 3))
record("logit_diff_abc", round(logit_diff["ABC"], 3))
record("logit_diff_flipped", round(logit_diff["flipped"], 3))
record("accuracy_clean", round(accuracy, 3))

# %% [markdown]
# **Takeaway.** A large logit difference on the clean prompts, about zero on ABC (the clean IO and S are not in
# those prompts at all) and the mirror image on flipped prompts: the model follows which name is repeated, or at
# least something that agrees with it on these templates. Section 7 tells the two apart.

# %% [markdown]
# ## 2 · Direct logit attribution: who writes the answer?
#
# **Why this matters.** The logits are a linear read-out of the final residual stream, which is a sum of every
# component's output. Projecting each output on the IO - S unembedding direction (after the final LayerNorm's scale,
# frozen at its clean value) splits the logit difference exactly into per-component shares. In GPT-2 the name-mover
# heads 9.9, 9.6 and 10.0 write most of it.

# %% [markdown]
# ### Exercise 3.2 · Direct logit attribution
#
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵🔵🔵 · about 10 minutes
#
# The final LayerNorm computes `w * (x - mean(x)) / scale + b`, where `scale` is the whole residual stream's
# (cached as `ln_final.hook_scale`, [batch pos 1]). With the scale frozen at its clean value this is linear in x, so a
# component c of the stream adds `(c - mean(c)) / scale · d` to the logit difference, where
# `d = w * (W_U[:, IO] - W_U[:, S])` is the prompt's IO - S direction (`ioi.logit_diff_directions(model, ds)` gives
# it, [batch d_model]). Write `residual_logit_diff_attribution(stack, ln_scale, directions)`: for a stack of component
# vectors at END, [component batch d_model], centre each vector over d_model, divide by its prompt's scale
# (`ln_scale`, [batch 1]), dot it with its prompt's direction, and return the shares, [component batch]. The biases
# after the last block (`b` and `b_U`) add a constant; the cell below adds it.
#
# <details><summary>Hint</summary>
#
# Three steps, each one line: `stack - stack.mean(-1, keepdim=True)`; dividing by `ln_scale` broadcasts
# [component batch d_model] against [batch 1]; `(x * directions).sum(-1)` is a dot product along d_model per prompt.
#
# </details>


# %%
def residual_logit_diff_attribution(
    stack: Float[Tensor, "component batch d_model"],
    ln_scale: Float[Tensor, "batch 1"],
    directions: Float[Tensor, "batch d_model"],
) -> Float[Tensor, "component batch"]:
    """Each component's direct share of each prompt's logit difference, through ln_final with its scale frozen."""
    # BEGIN SOLUTION
    centred = stack - stack.mean(-1, keepdim=True)  # ln_final subtracts the mean over d_model
    return ((centred / ln_scale) * directions).sum(-1)
    # END SOLUTION


residual_logit_diff_attribution = ex.check(checks.residual_logit_diff_attribution, residual_logit_diff_attribution)

# %% [markdown]
# **Do it.** `decompose_resid` splits the final residual stream into the embeddings and every attention and MLP
# output; a layer's attention output splits further into its heads' outputs `z @ W_O` (plus `b_O`, which no head
# owns). Both go through the function above, at each prompt's END.

# %%
_, clean_cache = model.run_with_cache(clean.tokens)
rows, end = torch.arange(len(clean)), clean.end
stack, labels = clean_cache.decompose_resid(return_labels=True)  # component batch pos d_model
ln_scale = clean_cache["ln_final.hook_scale"][rows, end]  # batch 1
directions = ioi.logit_diff_directions(model, clean)  # batch d_model
per_component = residual_logit_diff_attribution(stack[:, rows, end], ln_scale, directions)  # component batch
ln_bias = getattr(model.ln_final, "b", torch.zeros(model.cfg.d_model))  # folded LayerNorms keep it in b_U
if model.cfg.normalization_type in ("RMS", "RMSPre"):  # RMSNorm does not centre: your function's centring is LN's
    per_component = ((stack[:, rows, end] / ln_scale) * directions).sum(-1)
bias = (
    model.b_U[clean.io_token]
    - model.b_U[clean.s_token]
    + ln_bias @ (model.W_U[:, clean.io_token] - model.W_U[:, clean.s_token])
)
shares = {**dict(zip(labels, per_component.mean(-1).tolist())), "bias": bias.mean().item()}
print(f"the shares add up to {sum(shares.values()):.3f}; the model's logit difference is {logit_diff['clean']:.3f}")

# %%
z_end = torch.stack([clean_cache["z", l][rows, end] for l in range(n_layers)])  # layer batch head_index d_head
head_out_end = einops.einsum(
    z_end, model.W_O, "layer batch head_index d_head, layer head_index d_head d_model -> layer head_index batch d_model"
)
head_direct = residual_logit_diff_attribution(head_out_end.flatten(0, 1), ln_scale, directions)
if model.cfg.normalization_type in ("RMS", "RMSPre"):  # as above: no centring
    head_direct = ((head_out_end.flatten(0, 1) / ln_scale) * directions).sum(-1)
head_direct = head_direct.mean(-1).view(n_layers, n_heads)  # layer head_index, averaged over prompts
figures.attribution_figure(
    shares,
    logit_diff["clean"],
    "Direct shares of the logit difference, layer by layer"
    if real
    else "The MLPs write the answer; attention's direct share is small",
).show()
figures.layer_head_heatmap(
    head_direct, "Direct logit attribution of every head (IO - S, nats)", "logit diff", height=20 * n_layers + 120
).show()
record("direct_share_attention", round(sum(v for k, v in shares.items() if "attn" in k), 3))
record("direct_share_mlps", round(sum(v for k, v in shares.items() if "mlp" in k), 3))
record("max_head_direct", round(head_direct.abs().max().item(), 3))

# %% [markdown]
# **Takeaway.** No head writes the answer: the largest direct share of any head is under half a nat (0.28-0.35 by seed
# and mode), against a logit difference of about 8.5. The MLPs write it, all four of them (MLP1 most, 3.6-4.3 nats; MLP0
# 2.5-2.8), and attention's net direct share is slightly negative (-0.2 to -0.6). So there are no name movers in the
# paper's sense, and direct attribution alone cannot say which heads matter: a head can be essential without writing to
# the logits itself. That is what patching is for.

# %% [markdown]
# **SmolLM2** (seed 0, fast mode: 8 prompts; logit difference 3.9, 75% correct, flipped -3.3). Here heads do write
# the answer: attention's direct share is 3.0 of 3.9 nats, the MLPs' 0.9, and the largest head writes 1.3 (seed 1:
# 2.4). RMSNorm does not centre, so the cell above divides by the scale without your function's centring; the shares
# still add up to the logit difference.

# %% [markdown]
# ## 3 · Activation patching: which components matter?
#
# **Why this matters.** Run the corrupted prompts, but put back one component's clean activation; the normalised
# metric says how much of the clean behaviour that one component restores. Our patching helpers stack many patched
# sites along the batch axis and start each at its own layer, so a whole grid costs a few forwards (they match
# `transformer_lens.patching` to 1e-5; `benchmarks/bench_patching.py` times them).

# %% [markdown]
# ### Exercise 3.3 · The activation-patching hook
#
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵🔵🔵 · about 10 minutes
#
# A head's output before `W_O` is `blocks.{layer}.attn.hook_z`, [batch pos head_index d_head]. Write the hook
# `patch_head_z(z, hook, head, clean_z, pos=None)`: return z with head `head` replaced by the clean run's value
# `clean_z` (same shape), at every position when `pos` is None, else only at position `pos[b]` of row b (e.g. END).
# The other heads, and the other positions, keep their corrupted values. Leave `clean_z` untouched; return the
# patched z (a copy, or z edited in place).
#
# <details><summary>Hint</summary>
#
# `z[:, :, head] = clean_z[:, :, head]` on `z.clone()`. For one position per row, index rows and positions together,
# `z[rows, pos, head]` with `rows = torch.arange(z.shape[0])`, as in exercise 3.1.
#
# </details>


# %%
def patch_head_z(
    z: Float[Tensor, "batch pos head_index d_head"],
    hook: HookPoint,
    head: int,
    clean_z: Float[Tensor, "batch pos head_index d_head"],
    pos: Int[Tensor, " batch"] | None = None,
) -> Float[Tensor, "batch pos head_index d_head"]:
    """z with head `head` set to clean_z's value: at every position, or at pos[b] of row b only."""
    # BEGIN SOLUTION
    z = z.clone()
    if pos is None:
        z[:, :, head] = clean_z[:, :, head]
    else:
        rows = torch.arange(z.shape[0])
        z[rows, pos, head] = clean_z[rows, pos, head]
    return z
    # END SOLUTION


patch_head_z = ex.check(checks.patch_head_z, patch_head_z)

# %% [markdown]
# ### Exercise 3.4 · Patch every head
#
# > **Difficulty** 🔴🔴🔴⚪⚪ · **Importance** 🔵🔵🔵🔵🔵 · about 15 minutes
#
# Write `patch_each_head(model, corrupted_tokens, clean_cache, metric, clean_value, corrupted_value)`. For every
# (layer, head): run the corrupted tokens with that head's `hook_z` patched from `clean_cache` at every position
# (your `patch_head_z`), score the logits with `metric` (the raw logit difference, a scalar) and normalise,
# `(patched - corrupted_value) / (clean_value - corrupted_value)`: 1 = this head alone restores the clean behaviour,
# 0 = it changes nothing. Return the grid, [layer head_index]. `model.run_with_hooks(tokens, fwd_hooks=[(name, hook)])`
# runs with a hook and removes it afterwards.
#
# <details><summary>Hint</summary>
#
# `name = f"blocks.{layer}.attn.hook_z"` and `hook = functools.partial(patch_head_z, head=head,
# clean_z=clean_cache[name])`. One forward per head; `patching.attn_head_out_all_pos` computes the same grid with all
# the heads stacked along the batch.
#
# </details>


# %%
def patch_each_head(
    model: HookedTransformer,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    metric: patching.Metric,
    clean_value: float,
    corrupted_value: float,
) -> Float[Tensor, "layer head_index"]:
    """Normalised metric of the corrupted run with each head's z patched from the clean run at every position."""
    # BEGIN SOLUTION
    grid = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        name = f"blocks.{layer}.attn.hook_z"
        for head in range(model.cfg.n_heads):
            hook = functools.partial(patch_head_z, head=head, clean_z=clean_cache[name])
            patched = metric(model.run_with_hooks(corrupted_tokens, fwd_hooks=[(name, hook)]))
            grid[layer, head] = (patched - corrupted_value) / (clean_value - corrupted_value)
    return grid
    # END SOLUTION


patch_each_head = ex.check(checks.patch_each_head, patch_each_head)

# %% [markdown]
# **Do it.** The residual stream by (layer, position) on prompts that share one layout, so positions mean the same
# thing in every row; every head's output over all positions (your `patch_each_head`), and by position; every head's
# queries, keys, values and pattern.

# %%
if real:  # 270 forwards of your loop, or the package's stacked kernel on the patched layers (NaN elsewhere)
    head_out = patching.attn_head_out_all_pos(model, corrupted.tokens, clean_cache, metric, layers=patched_layers)
    top_heads = [divmod(int(i), n_heads) for i in head_out.nan_to_num(0).abs().flatten().topk(n_chosen).indices]
    part_layers = sorted({l for l, _ in top_heads})  # queries, keys, values, patterns: the top heads' layers
else:
    head_out = patch_each_head(
        model, corrupted.tokens, clean_cache, metric.metric, metric.clean_value, metric.corrupted_value
    )  # layer head_index; = patching.attn_head_out_all_pos(..., metric)
    part_layers = None  # every layer
head_parts = {
    kind: getattr(patching, f"attn_head_{kind}_all_pos")(
        model, corrupted.tokens, clean_cache, metric, layers=part_layers
    )
    for kind in ("q", "k", "v", "pattern")
}
many = ioi.ioi_dataset(tok, 20 * n_prompts, seed)  # enough prompts that one layout has several rows
one_layout = ioi.select(many, ioi.same_layout(many, 0)[: (2 if fast else 8) if real else 32])
one_layout_corrupted = ioi.corrupted_dataset(one_layout, tok, corruption, seed)
layout_metric = ioi_circuit.ioi_metric(model, one_layout, one_layout_corrupted)
_, layout_cache = model.run_with_cache(one_layout.tokens)
resid = patching.resid_pre_by_pos(model, one_layout_corrupted.tokens, layout_cache, layout_metric)
if real:  # by position, the heads that matter most over all positions (4,000 sites for all 270)
    n_pos = one_layout.tokens.shape[1]
    sites = [patching.Site.of("z", l, pos=p, head=h) for l, h in top_heads for p in range(n_pos)]
    head_by_pos = patching.patch_sites(model, one_layout_corrupted.tokens, layout_cache, layout_metric, sites)
    head_by_pos = head_by_pos.view(len(top_heads), n_pos)  # head pos
else:
    head_by_pos = patching.attn_head_out_by_pos(model, one_layout_corrupted.tokens, layout_cache, layout_metric)
print(f"one layout: {len(one_layout)} prompts like {one_layout.texts[0]!r}")

# %%
roles = {int(one_layout.positions[r][0]): r for r in ioi.ROLES}
position_labels = [
    f"{t!r}{' (' + roles[i] + ')' if i in roles else ''}"
    for i, t in enumerate(model.to_str_tokens(one_layout.tokens[0]))
]
plots.labelled_heatmap(
    resid,
    title="Residual stream patching: where the name information sits, layer by layer"
    if real
    else "Residual stream patching: the name information moves to END in layer 0",
    x_title="position",
    y_title="block input",
    x_labels=position_labels,
    y_labels=[f"resid_pre {l}" for l in range(n_layers)],
    text_format=".1f",
    width=950,
    height=20 * n_layers + 150 if real else 330,
).show()
kv_group = n_heads // head_parts["k"].shape[1]  # grouped-query attention: each query head shows its k/v head's value
figures.head_bars(
    {"output (all positions)": head_out, **{k: v.repeat_interleave(kv_group, dim=1) for k, v in head_parts.items()}},
    "Patching each head's output, queries, keys, values or pattern (1 = fully restored)",
    "normalised logit difference",
    layers=patched_layers if real else None,
).show()
plots.labelled_heatmap(
    head_by_pos if real else head_by_pos[0].T,
    title="The heads that matter most, patched one position at a time"
    if real
    else "Layer-0 heads' outputs patched one position at a time",
    x_title="position",
    y_title="head",
    x_labels=position_labels,
    y_labels=[f"L{l}H{h}" for l, h in top_heads] if real else [f"L0H{h}" for h in range(n_heads)],
    text_format=".1f",
    width=950,
    height=280,
).show()
if real:
    record("patch_head_out_top", [f"L{l}H{h}: {float(head_out[l, h]):.3f}" for l, h in top_heads])
else:
    record("patch_head_out_L0", [round(v, 3) for v in head_out[0].tolist()])

# %% [markdown]
# **Takeaway.** It happens early. Before layer 0 the difference lives at the name positions; after it, at END: restoring
# END's residual stream alone gives back 0.55-0.7 of the clean behaviour before layer 1, 0.75-0.85 before layer 2 and
# about all of it before layer 3 (0.94-1.05), so layer 0 moves most of it and the MLPs of layers 1 and 2 finish the job.
# Among the heads only layer 0 matters, and each only in part: L0H0 and L0H3 restore about a fifth each (0.19-0.23),
# L0H2 up to a seventh, and L0H1 nothing or a little the *wrong* way with ABC corruption (-0.02 to -0.1), a reminder
# that single-site patching measures one component in the context of all the others. Within each head it is the *values*
# that carry the effect, not the queries, keys or pattern (each under 0.02): the heads look at the same places on clean
# and corrupted prompts and move different names from there. One position at a time, the heads act at END (L0H0 most),
# with effects of either sign at the comma or full stop that closes the first clause (up to +-0.3 on seed 1's layout,
# where L0H2 and L0H3 cancel): four heads share the job.

# %% [markdown]
# **SmolLM2.** Fast mode patches every head of the last third of the layers (default mode: the last half), and
# queries, keys, values and patterns only in the layers of the heads that matter most. Those are L23H3 (0.56 of the
# clean behaviour restored alone; 0.89 on seed 1), L23H0 (0.34) and, the other way, L24H4 (-0.40): the heads notebook
# 06 calls the S-suppressor, a name mover and the negative name mover. Grouped-query attention shares keys and values
# between three query heads, so their bars repeat each key-value head's value.

# %% [markdown]
# ## 4 · Attribution patching: the whole grid from one backward pass
#
# **Why this matters.** Exact patching costs a forward per site; on a large model and every position that is
# millions of forwards. Attribution patching takes the gradient of the metric on the corrupted run and estimates
# every patch at once as gradient x (clean - corrupted activation): 2 forwards and 1 backward for all sites. It is a
# first-order approximation, good where the model is close to linear in that activation (head outputs), poor where
# it is not (the residual stream, MLP0: Nanda 2023).

# %% [markdown]
# ### Exercise 3.5 · Attribution patching
#
# > **Difficulty** 🔴🔴🔴⚪⚪ · **Importance** 🔵🔵🔵🔵⚪ · about 20 minutes
#
# Write `attribution_patch_heads(model, corrupted_tokens, clean_cache, metric)`, the linear estimate of exercise
# 3.4's grid, for a `metric` that is already normalised:
#
# 1. run the corrupted tokens once, with a hook on every layer's `hook_z` that stores z (the tensor itself, inside
#    the autograd graph: no `.detach()`), and compute `base = metric(logits)`;
# 2. `torch.autograd.grad(base, [z of each layer])` gives the gradient of the metric with respect to each z;
# 3. for each head, the estimate is `base + sum of gradient x (clean z - corrupted z)` over batch, pos and d_head.
#
# Return [layer head_index]. The notebook turned gradients off (`torch.set_grad_enabled(False)`), so run steps 1 and
# 2 inside `with torch.enable_grad():`, and attach the hooks with `with model.hooks(fwd_hooks=...):` so they are
# removed afterwards.
#
# <details><summary>Hint</summary>
#
# A hook that stores and returns nothing leaves the activation unchanged: `def keep(z, hook): saved[hook.name] = z`.
# Step 3 per layer: `((clean_cache[name] - saved[name].detach()) * grad).sum(dim=(0, 1, 3))`, one value per head.
#
# </details>


# %%
def attribution_patch_heads(
    model: HookedTransformer,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    metric: patching.Metric,
) -> Float[Tensor, "layer head_index"]:
    """metric(corrupted) + gradient . (clean z - corrupted z) for each head: the first-order patching estimate."""
    # BEGIN SOLUTION
    names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)]
    saved = {}

    def keep(z: Tensor, hook: HookPoint) -> None:
        saved[hook.name] = z  # the graph's own tensor, so autograd can differentiate with respect to it

    with torch.enable_grad(), model.hooks(fwd_hooks=[(name, keep) for name in names]):
        base = metric(model(corrupted_tokens))
        grads = torch.autograd.grad(base, [saved[name] for name in names])
    rows = [((clean_cache[name] - saved[name].detach()) * grad).sum(dim=(0, 1, 3)) for name, grad in zip(names, grads)]
    return base.detach() + torch.stack(rows)
    # END SOLUTION


attribution_patch_heads = ex.check(checks.attribution_patch_heads, attribution_patch_heads)

# %%
estimate = attribution_patch_heads(model, corrupted.tokens, clean_cache, metric)
known = ~head_out.isnan()  # the real model in fast mode: the patched layers only
attribution_corr = float(np.corrcoef(estimate[known].numpy(), head_out[known].numpy())[0, 1])
figures.agreement_scatter(
    {"head output": head_out},
    {"head output": estimate},
    f"Attribution patching against exact patching, every head (r = {attribution_corr:.3f})",
    "exact activation patching",
    "attribution patching (linear estimate)",
).show()
error = (estimate - head_out).abs()  # layer head_index
if real:
    attribution_error = {"every patched head": error[known].max().item(), "median": error[known].median().item()}
else:
    attribution_error = {"layer 0": error[0].max().item(), "later layers": error[1:].max().item()}
print("largest |attribution - exact| per head:", {k: round(v, 3) for k, v in attribution_error.items()})
record("attribution_vs_activation_corr", round(attribution_corr, 4))
if not real:
    record("attribution_error_layer0", round(attribution_error["layer 0"], 3))

# %% [markdown]
# **Takeaway.** Where the model is close to linear the estimate is nearly exact: every head after layer 0 is within
# about 0.015 of its patched value. The layer-0 heads are off by 0.10-0.17, because what they write passes through MLP0
# and the other MLPs, far from linear over the change from ABC names to the clean ones (Nanda 2023: attribution patching
# is poor for MLP0). On this model that error is as large as the effects themselves (0-0.23 per head), so the
# correlation over all heads depends on the draw: 0.86 on seed 0, 0.92 on seed 1, 0.76 and 0.91 in fast mode. On
# zoo-gelu-4l, whose key head alone restores 0.63, it is 0.86 (0.89 in fast mode). Use attribution patching to find
# candidates on big grids, then confirm the few that matter exactly.

# %% [markdown]
# **SmolLM2.** On the heads patched exactly, attribution patching is close to exact: r = 0.996 (seeds 0 and 1; default
# mode, the last half: 0.994), largest error 0.13. These heads sit late, after most of the model's nonlinearity.

# %% [markdown]
# ## 5 · Path patching: where does each head's output go?
#
# **Why this matters.** Activation patching says a head matters, not through what. Path patching corrupts one sender
# and lets the change reach only chosen receivers, with everything else frozen at its clean value (Wang et al.,
# appendix B). In GPT-2 it showed that S-inhibition heads act through the name movers' *queries*. Here we ask the
# same of every head: does its output reach later heads' queries at END, the MLPs at END, or the logits directly?
# Values are damage: the fraction of the corruption's effect that travels along those paths (0 = none, 1 = all).

# %% [markdown]
# ### Exercise 3.6 · Path patching into an MLP
#
# > **Difficulty** 🔴🔴🔴🔴⚪ · **Importance** 🔵🔵🔵🔵⚪ · about 25 minutes
#
# Write `path_patch_head_to_mlp(model, clean_tokens, corrupted_tokens, sender, mlp_layer, pos, metric)`: the metric
# after patching only the path from the head `sender = (layer, head)` into the input of MLP `mlp_layer`, at position
# `pos[b]` of each row b. Three runs:
#
# 1. cache the clean and the corrupted runs (`model.run_with_cache`);
# 2. run the clean tokens with every head's z and every MLP's output (`blocks.{l}.hook_mlp_out`) frozen at its clean
#    value, except the sender's z, which takes its corrupted value (at every position); cache the receiver's input,
#    `blocks.{mlp_layer}.hook_mlp_in`. Only the sender changed, and nothing between it and the receiver can pass the
#    change on, so this input differs from the clean one by the direct path alone;
# 3. run the clean tokens with the receiver's input at `pos[b]` of each row replaced by its value from step 2, and
#    return `metric(logits)`.
#
# `hook_mlp_in` only runs while TransformerLens's `use_hook_mlp_in` is on: run steps 2 and 3 inside
# `with ioi_circuit.input_hooks(model):`, which switches it on and back off. `mlp_layer` is at least the sender's
# layer (an MLP reads the heads of its own layer).
#
# <details><summary>Hint</summary>
#
# Step 2's hooks: one that returns `clean_cache[hook.name]` (frozen) for every `hook_z` and `hook_mlp_out`, and for
# the sender's layer one that returns a copy of the clean z with the sender's head from the corrupted cache. Attach
# them with `with model.hooks(fwd_hooks=hooks):` around `model.run_with_cache(clean_tokens, names_filter=receiver)`.
# Step 3's hook is exercise 3.3's indexing on a [batch pos d_model] tensor.
#
# </details>


# %%
def path_patch_head_to_mlp(
    model: HookedTransformer,
    clean_tokens: Int[Tensor, "batch pos"],
    corrupted_tokens: Int[Tensor, "batch pos"],
    sender: tuple[int, int],
    mlp_layer: int,
    pos: Int[Tensor, " batch"],
    metric: patching.Metric,
) -> Float[Tensor, ""]:
    """metric of the clean run with the path sender -> MLP mlp_layer's input (at pos[b]) carrying the corrupted sender."""
    # BEGIN SOLUTION
    layer, head = sender
    _, clean_cache = model.run_with_cache(clean_tokens)
    _, corrupted_cache = model.run_with_cache(corrupted_tokens)

    def freeze(act: Tensor, hook: HookPoint) -> Tensor:
        return clean_cache[hook.name]

    def corrupt_sender(z: Tensor, hook: HookPoint) -> Tensor:  # exercise 3.3's hook with the roles swapped
        return patch_head_z(clean_cache[hook.name], hook, head, corrupted_cache[hook.name])

    hooks = [(f"blocks.{l}.attn.hook_z", corrupt_sender if l == layer else freeze) for l in range(model.cfg.n_layers)]
    hooks += [(f"blocks.{l}.hook_mlp_out", freeze) for l in range(model.cfg.n_layers)]
    receiver, rows = f"blocks.{mlp_layer}.hook_mlp_in", torch.arange(clean_tokens.shape[0])
    with ioi_circuit.input_hooks(model):
        with model.hooks(fwd_hooks=hooks):  # step 2: only the sender differs from the clean run
            _, patched = model.run_with_cache(clean_tokens, names_filter=receiver)

        def let_in(x: Tensor, hook: HookPoint) -> Tensor:
            x = x.clone()
            x[rows, pos] = patched[receiver][rows, pos]
            return x

        return metric(model.run_with_hooks(clean_tokens, fwd_hooks=[(receiver, let_in)]))  # step 3
    # END SOLUTION
    # BEGIN STUB
    # layer, head = sender
    # _, clean_cache = model.run_with_cache(clean_tokens)
    # _, corrupted_cache = model.run_with_cache(corrupted_tokens)
    # receiver, rows = f"blocks.{mlp_layer}.hook_mlp_in", torch.arange(clean_tokens.shape[0])
    # hooks = []  # step 2: (name, hook) for every blocks.{l}.attn.hook_z and blocks.{l}.hook_mlp_out
    # with ioi_circuit.input_hooks(model):
    #     # step 2: with model.hooks(fwd_hooks=hooks), cache the receiver's input on the clean tokens
    #     # step 3: run the clean tokens with that input let in at (rows, pos); return metric(logits)
    #     raise NotImplementedError("exercise: steps 2 and 3")
    # END STUB


path_patch_head_to_mlp = ex.check(checks.path_patch_head_to_mlp, path_patch_head_to_mlp)

# %% [markdown]
# **Do it.** The package's `ioi_circuit.path_patch_all_heads` does the same for every head, with a list of receivers
# whose changes it lets in together (here every MLP's input at END, every later head's query at END, or the final
# residual stream); `path_patch_all_mlps` sends from each MLP instead.

# %%
end = clean.end
receivers = {
    "MLP inputs at END": [Receiver("mlp", l, pos=end) for l in range(n_layers)],
    "later heads' queries at END": [Receiver("q", l, pos=end) for l in range(1, n_layers)],
    "logits (direct)": [ioi_circuit.final_resid(model, end)],
}
if real:  # two forwards per sender: the heads that matter most (by patching) and the MLPs with the largest direct share
    senders = top_heads
    mlp_senders = sorted(range(n_layers), key=lambda l: -abs(shares[f"{l}_mlp_out"]))[: n_chosen // 2]
    paths = {}
    for name, r in receivers.items():
        paths[name] = torch.full((n_layers, n_heads), float("nan"))
        paths[name][tuple(zip(*senders))] = 1 - ioi_circuit.path_patch_heads(
            model, clean.tokens, corrupted.tokens, senders, r, metric
        )
else:
    mlp_senders = list(range(n_layers))
    paths = {
        name: 1 - ioi_circuit.path_patch_all_heads(model, clean.tokens, corrupted.tokens, r, metric)
        for name, r in receivers.items()
    }
mlp_paths = {
    name: 1 - ioi_circuit.path_patch_mlps(model, clean.tokens, corrupted.tokens, mlp_senders, r, metric)
    for name, r in receivers.items()
    if "queries" not in name
}
figures.head_bars(
    {name: grid.nan_to_num(0.0) for name, grid in paths.items()},
    "Each head's effect, by where it goes (damage; NaN layers show as 0)",
    "damage",
    layers=sorted({l for l, _ in senders}) if real else None,
).show()
display(
    html_table(
        [{"MLP": f"MLP{l}", **{name: float(v[i]) for name, v in mlp_paths.items()}} for i, l in enumerate(mlp_senders)]
    )
)
if real:
    record(
        "paths_top_heads",
        [f"L{l}H{h}: {', '.join(f'{float(g[l, h]):.3f}' for g in paths.values())}" for l, h in senders],
    )
else:
    record("path_L0_to_mlps", [round(v, 3) for v in paths["MLP inputs at END"][0].tolist()])

# %%
# Your function, one receiver: how much of each layer-0 head's effect enters MLP0 alone? (damage, as above)
# (The real model: the chosen senders above, each into the MLP of its own layer.)
yours_senders = senders[:2] if real else [(0, h) for h in range(n_heads)]
into_mlp = [
    1 - float(path_patch_head_to_mlp(model, clean.tokens, corrupted.tokens, (l, h), l, end, metric))
    for l, h in yours_senders
]
display(
    html_table(
        [
            {
                "sender": f"L{l}H{h}",
                "into its layer's MLP at END (yours)" if real else "into MLP0 at END (yours)": into_mlp[i],
                "into every MLP at END (package)": float(paths["MLP inputs at END"][l, h]),
            }
            for i, (l, h) in enumerate(yours_senders)
        ]
    )
)

# %% [markdown]
# **Takeaway.** Each layer-0 head carries a fifth to a half of the corruption's effect into the MLPs at END (L0H0 most,
# 0.45-0.47; L0H1 least, 0.20-0.22), and MLP0 alone receives most of it (the table: one receiver against all four); MLP0
# then passes its result both to the logits and to the later MLPs. The heads barely write to the logits directly
# (|damage| under 0.05), and nothing reaches a later head's query at END (every head: under 0.03). That last bar is the
# paper's S-inhibition test: in GPT-2 the heads that attend END -> S2 act through the name movers' queries. Ours attend
# END -> S2 (section 6), but their output goes into the MLPs, and there are no name movers to receive it. The circuit is
# heads -> MLPs -> logits, with no head-to-head composition: the mechanism is in the MLPs, where attention-pattern tools
# cannot see it.

# %% [markdown]
# **SmolLM2.** Path patching of the three heads that matter most: L23H3 reaches the logits directly (damage 0.33; 0.64
# on seed 1) and the MLPs at END (0.20); L23H0 and L24H4 act on the logits directly (0.18 and -0.17); none reaches a
# later head's query (largest 0.01): these heads write the answer, they do not steer other heads. (Notebook 06
# path-patches the END -> S2 heads into the name movers' queries: S-inhibition depends on the template there.)

# %% [markdown]
# ## 6 · Roles: what does each head do?
#
# **Why this matters.** Wang et al. named each head by what it attends to and what it copies: name movers (END -> IO,
# copying), S-inhibition (END -> S2, changing name movers' queries), induction and duplicate-token heads (at S2,
# finding S1), previous-token heads. `ioi_circuit.classify_heads` applies those criteria, with the thresholds written
# down, to the evidence gathered so far, plus two roles the zoo's models need: a head that moves the *most recent
# name* to the MLPs (END -> S2, path into the MLPs), and one that moves *all* the names. `causal` marks heads whose
# mean ablation moves the logit difference by at least 5%: a role read from attention alone is just a pattern.

# %%
attention = ioi_circuit.ioi_attention_scores(model, clean)
if real:  # Wang et al.'s top-k score unembeds 270 heads x 26 names x 49,152 tokens: the eigenvalue score alone
    copying = ioi_circuit.NameCopying(circuits.copying_scores(model, vocab=ioi_circuit.name_tokens(tok)), None, None)
else:
    copying = ioi_circuit.name_copy_scores(model, ioi_circuit.name_tokens(tok))
if real:  # knockout's two forwards per component would be 600 forwards: stacked patching of the patched layers
    effects = ioi_circuit.total_effects(model, clean, abc_sets, layers=patched_layers)
else:
    effects = ioi_circuit.knockout(model, clean, abc_sets, heads=[])  # each component alone mean-ablated
evidence = {
    **attention,
    "direct": head_direct,
    "total": effects.head_total,
    "copying": copying.raw.eigen,
    "to_mlps": paths["MLP inputs at END"],
    "to_queries": paths["later heads' queries at END"].nan_to_num(0.0),
}
role_table = ioi_circuit.classify_heads(evidence, logit_diff["clean"])
figures.head_score_heatmaps(
    {k: attention[k] for k in ("END->IO", "END->S1", "END->S2", "S2->S1")},
    "Where heads look: from END to each name, and from S2 back to S1",
    height=20 * n_layers + 120 if real else 300,
).show()
display(
    html_table(
        [
            {
                key: row[key]
                for key in (
                    "head",
                    "roles",
                    "causal",
                    "END->IO",
                    "END->S2",
                    "S2->S1",
                    "copying",
                    "to_mlps",
                    "direct",
                    "total",
                )
            }
            for row in role_table
            if not real or row["causal"] or "mover" in row["roles"]  # the real model: heads with an effect or a mover
        ]
    )
)
record("causal_roles", [f"{row['head']}: {row['roles']}" for row in role_table if row["causal"]])

# %% [markdown]
# **Compared with GPT-2 small** (the circuit of Wang et al. 2022, *Interpretability in the Wild*, figure 2 and
# section 3), measured on seed 0:
#
# | class (Wang et al.) | GPT-2 small | zoo-gelu-4l-dup (default) | zoo-gelu-4l (section 7) |
# |---|---|---|---|
# | name movers, backup name movers | 9.9, 9.6, 10.0; 8 backups | none: no head writes more than 0.3 of the 8.5 nats | none |
# | negative name movers | 10.7, 11.10 | none | none |
# | S-inhibition | 7.3, 7.9, 8.6, 8.10 | none: the END -> S2 heads feed the MLPs, no head's query (path damage about 0) | the same, with one head |
# | induction, duplicate-token | 5.5, 5.8, 5.9, 6.9; 0.1, 0.10, 3.0 | duplicate-token attention (L2H3, S2 -> S1 0.39) with no effect (total 0.07 nats); no induction | duplicate-token-like attention only |
# | previous-token | 2.2, 4.11 | patterns in layers 1-3 with no effect; L0H0 and L0H3 near the bar (0.30-0.32), whose effect is the moving at END | patterns only |
# | (none in GPT-2) | | *recent-name movers* L0H0 and L0H3 (END -> S2 0.41 and 0.32), an *all-names mover* L0H2 (L0H3 is one too); with L0H1 (END -> S2 0.21) they carry 0.22-0.47 into the MLPs, 0.9-4.0 nats of total effect each | one recent-name mover (L0H1: END -> S2 0.90, 9.4 nats) and two *all-names movers* |
#
# **Takeaway.** Two classes besides the (absent) name movers are identified with evidence, both in layer 0. L0H0 and
# L0H3 are recent-name movers (attention END -> S2 0.41 and 0.32, total effects 3.5 and 4.0 nats, paths into the
# MLPs 0.47 and 0.42); L0H2 (and L0H3 again) is an all-names mover, looking at IO and S1 as well (0.12-0.16 each,
# END -> S2 0.25; 1.8 nats, path 0.34). L0H1 does a little of both under every attention bar (END -> S2 0.21, IO and
# S1 0.08; 0.9 nats on seed 0, 0.5-0.9 elsewhere); section 7 shows what the four attend to when there are two names
# to avoid. Heads that *look* like GPT-2's classes do nothing for this task: L2H3 attends S2 -> S1 like a
# duplicate-token head and its mean ablation moves the logit difference by under 0.2 nats (0.07 on seed 0).

# %% [markdown]
# **SmolLM2.** The classification finds what notebook 06 found: name movers in layer 23 (L23H1 and L23H7 causal;
# L23H0 writes the answer but its own mean ablation costs under 5%), the negative name mover L24H4, and L23H3, classed a
# recent-name mover (END -> S2, a path into the MLPs), the head 06 calls an S-suppressor since it pushes S down
# directly. Copying is the eigenvalue score of W_E W_OV W_U on the names (Wang et al.'s top-k score would unembed 270
# heads x 26 names x 49,152 tokens), and total effects come from `ioi_circuit.total_effects` (mean ablation as stacked
# patching) on the patched layers only.

# %% [markdown]
# ## 7 · Repetition or recency? A model takes the shortcut its data allows
#
# **Why this matters.** The circuit above never compares S1 with S2, so it cannot know which name is repeated; it
# can know which names came last. Two-name IOI prompts cannot tell those apart, because the repeated name is always
# the last one. Three-name prompts, in wording neither model saw in training, can: "A, B and C went to the park. B
# and C gave a ball to" -> A, with the answer introduced first, second or third. `zoo-gelu-4l` was trained like the
# default model, on the same corpus without three-name or composed sentences. Both models run the same prompts.

# %%
other_name = "zoo-gelu-4l" if model_name != "zoo-gelu-4l" else "zoo-gelu-4l-dup"
compared = {model_name: model} if real else {model_name: model, other_name: load_model(other_name)}
if real:
    print(f"{model_name}: the zoo models' comparison and their layer-0 heads are skipped (zoo-only); its own test:")
n_per_slot = 20 if real and fast else 50  # prompts per answer slot (a forward of 150 short prompts)
three_name = {name: ioi_circuit.three_name_test(m, n_per_slot, seed) for name, m in compared.items()}
figures.slot_accuracy_figure(
    {name: r["accuracy_by_slot"] for name, r in three_name.items()},
    "Three names: which slot's name does the model pick?"
    if real
    else "Three names: the duplicate model finds the name said once in every slot; the recency model does not",
).show()


def layer0_attention(template: str) -> list[dict[str, object]]:
    """Rows of a table: every layer-0 head's attention from END to the names of three-name prompts, per model."""
    rows = []
    for name, m in compared.items():
        attention = ioi_circuit.three_name_attention(m, ioi.three_name_dataset(m.tokenizer, n_per_slot, seed, template))
        rows += [
            {"model": name, "head": f"L0H{h}", **{f"END -> {k}": float(v[0, h]) for k, v in attention.items()}}
            for h in range(n_heads)
        ]
    return rows


if not real:
    display(html_table(layer0_attention(ioi.THREE_NAME_TEMPLATE)))  # layer 0 at END, on the same three-name prompts
record("three_name_accuracy_by_slot", [round(a, 3) for a in three_name[model_name]["accuracy_by_slot"]])
if not real:
    record("three_name_accuracy_by_slot_compared", [round(a, 3) for a in three_name[other_name]["accuracy_by_slot"]])

# %% [markdown]
# **Takeaway: the recency model.** `zoo-gelu-4l` scores far below chance where the answer was introduced first
# (about 0.1) and at most a coin flip elsewhere. Its circuit, run through sections 1-6 with
# `workbook run 03 -p model_name zoo-gelu-4l` (seed 0): one layer-0 head, L0H1, attends END -> S2 (0.90), carries
# the most recent name into MLP0 (path damage 1.3) and is the whole effect (mean-ablating it costs 9.4 nats of a 7.8
# logit difference; knocked out, the model prefers the wrong name, -1.6); two all-names movers bring every name; the
# MLPs write the answer (MLP0 4.1 nats). Its rule is "a name from the sentence, but not the most recent one". With two
# names said again, L0H1 looks only at the last (0.83 in the table above), so the model never picks that one and
# usually picks the other repeated name.
#
# **The duplicate model** passes every slot (0.98-1.0). Its four layer-0 heads look mostly at *both* names of the
# final clause (END -> earlier repeat 0.12-0.23, last repeat 0.18-0.38), less at the repeated names' first mentions
# (0.04-0.19, the two together) and least at the answer (0.02-0.10). No layer-0 head can attend to a name *as
# repeated*: its keys hold a token and a position, and which names came before is not in them yet. So its weights
# follow position, the final clause first, though a name said twice also collects attention twice. Is that
# repetition? Split the two repeated names into two clauses, "A, B and C went to the park, and B sat down. Later, C
# gave a ball to": the name said once is still A, but B is no longer in the clause that gives (and, unlike in the
# three-name sentences, nothing in the grammar rules B out as a recipient). The composed sentences of the corpus do
# this with their asides ("B was tired. Later, C gave ..."), in other words: "sat down" is in none of them.

# %%
display(
    html_table(
        [
            {
                "model": name,
                "prompts": label,
                "accuracy, answer introduced 1st / 2nd / 3rd": " / ".join(
                    f"{a:.2f}" for a in r[f"{key}accuracy_by_slot"]
                ),
                "picks the earlier repeat": r[f"{key}picks_earlier_repeat"],
                "picks the last repeat": r[f"{key}picks_last_repeat"],
            }
            for name, r in three_name.items()
            for label, key in (("B and C gave", ""), ("B sat down. Later, C gave", "split_"))
        ]
    )
)
if not real:  # layer 0 at END on the split prompts: the middle clause's repeat is the "earlier repeat"
    display(html_table(layer0_attention(ioi.SPLIT_THREE_NAME_TEMPLATE)))
record("split_accuracy_by_slot", [round(a, 3) for a in three_name[model_name]["split_accuracy_by_slot"]])
record("split_picks_earlier_repeat", round(three_name[model_name]["split_picks_earlier_repeat"], 3))

# %% [markdown]
# **Takeaway.** The asides moved the duplicate model part of the way from "not a name of the final clause" towards
# repetition. On split prompts it finds the name said once 0.76 / 0.62 / 0.76 of the time by slot (seed 0; seed 1:
# 0.62 / 0.54 / 0.62; chance 1/3) and picks the middle clause's repeat 29% of the time (seed 1: 41%). The same
# recipe trained on the corpus before the composed sentences (its earlier weights, in the repository's history) was
# right 0.12 / 0.20 / 0.30 and picked that repeat 79% of the time, and the recency model picks it almost always
# (96%). Part of the way only: a third of the split prompts still go to the middle clause's name, and the second
# table shows why that is hard for this circuit. With the repeats in two clauses the layer-0 heads look at the final
# clause's name most (0.26-0.47), at the middle clause's repeat less (0.10-0.19) and at the answer least
# (0.01-0.07): nothing in them marks a name as repeated, and at END the middle clause's name differs from the answer
# only by where and how often it drew attention, position first. The heads that look like GPT-2's duplicate-token
# heads still do nothing (section 6: L2H3, S2 -> S1 0.39, no effect). Each corpus got the shortcut it allowed: the
# first "not the most recent name", the second "not a name of the final clause", the third something between that
# and repetition. The three-name sentences changed the circuit (one head became four) and made it right on every
# slot of unseen wording; the asides made it right on most split prompts; neither made it the paper's.

# %% [markdown]
# **SmolLM2.** The comparison with the zoo's models and their layer-0 table are skipped. On three-name prompts
# SmolLM2 finds the name said once above chance in every slot (0.75 / 0.80 / 1.0, 20 prompts per slot; default, 50:
# 0.74 / 0.62 / 0.96), but on split prompts it picks the repeated name of the middle clause about half the time (0.55;
# 0.50 with 50) and is right on first-slot answers in 5-10%: like the zoo's models it avoids the final clause's names
# more than repeated names. Grammar may play a part: in split prompts the middle clause's name is a plausible recipient.

# %% [markdown]
# ## 8 · Faithfulness: is this circuit the whole story?
#
# **Why this matters.** A circuit explains a behaviour if the model keeps the behaviour when everything *outside*
# the circuit is knocked out. Following Wang et al., "knocked out" means replaced by its mean over ABC prompts of the
# same template and layout, so the rest of the model still sees typical activations, just none that depend on the
# names. The circuit: every head and MLP whose own mean ablation moves the logit difference by at least
# `circuit_threshold` of it.

# %%
threshold = circuit_threshold * abs(logit_diff["clean"])
circuit_heads = [(l, h) for l in range(n_layers) for h in range(n_heads) if abs(effects.head_total[l, h]) >= threshold]
circuit_mlps = [l for l in range(n_layers) if abs(effects.mlp_total[l]) >= threshold]
faith = ioi_circuit.faithfulness(model, clean, abc_sets, circuit_heads, circuit_mlps)
print(f"circuit: heads {[f'L{l}H{h}' for l, h in circuit_heads]}, MLPs {circuit_mlps}")
print(
    f"logit diff: model {faith.model:.2f}, circuit alone {faith.circuit:.2f}, nothing {faith.empty:.2f} "
    f"-> faithfulness {faith.fraction:.1%}"
)
record("circuit", [f"L{l}H{h}" for l, h in circuit_heads] + [f"MLP{l}" for l in circuit_mlps])
record("faithfulness", round(faith.fraction, 4))

# %% [markdown]
# **Takeaway.** Three or four layer-0 heads (with L1H1 in fast mode on seed 0) and the four MLPs keep 71-87% of the
# model's logit difference with everything else mean-ablated (seed 0: 80%; the paper: 87% for a circuit of 26
# heads). What is missing sits under the 10% bar: on seed 0 the circuit already has all four layer-0 heads, and
# `circuit_threshold=0.02` adds L1H0, L1H1 and L2H1 (3-4% of the logit difference each, L1H0 against it) and keeps
# all of it; on seed 1 L0H1 (7%) falls under the bar, and 0.05 takes it back (76% -> 84%). Heads that each leave out
# little make a threshold circuit lossy: together they leave out 13-29%. (zoo-gelu-4l's circuit, one recent-name
# mover and two all-names movers, keeps 98%.)

# %% [markdown]
# **SmolLM2.** A threshold circuit explains almost none of a 30-layer model. The components with 10% of the logit
# difference (fast mode: found in the last third: L20H0, L23H3, L24H4, L29H0, L29H1 and MLP20) keep -9% with everything
# else at its ABC mean (default mode, the last half: -10%); with every layer measured (a 10-minute run) 8 heads
# and 3 MLPs keep 7% (GPT-2's 26 heads: 87%). The early layers build what the late heads read, spread over many
# components none of which passes the bar alone.

# %% [markdown]
# ## 9 · Knocking out the key head: is there a backup?
#
# **Why this matters.** In GPT-2, knocking out the three name movers costs only about 5% of the logit difference:
# backup name movers, silent on clean prompts, take over. Redundancy like that hides components from ablation
# studies. Here we knock out the top name mover, or, with none, the head with the largest effect
# (`ioi_circuit.key_head`), and measure every remaining component's effect again.

# %%
key_head = ioi_circuit.key_head(model, clean, abc_sets, effects)
if real:  # every component's total effect twice is 600 forwards: direct effects before and after (notebook 06)
    knocked = ioi_circuit.backup_direct(model, clean, abc_sets, [key_head])
    figures.head_bars(
        {"before": knocked.head_direct, f"after knocking out L{key_head[0]}H{key_head[1]}": knocked.head_direct_after},
        "Each head's direct effect (logit diff it writes), before and after",
        "direct logit attribution",
        layers=list(range(n_layers // 2, n_layers)),
    ).show()
    growth = knocked.growth.nan_to_num(-torch.inf)
else:
    knocked = ioi_circuit.knockout(model, clean, abc_sets, heads=[key_head])
    figures.head_bars(
        {"before": knocked.head_total, f"after knocking out L{key_head[0]}H{key_head[1]}": knocked.head_total_after},
        "Each head's total effect (logit diff lost when it is mean-ablated), before and after",
        "logit difference lost",
    ).show()
survives = knocked.knocked_logit_diff / knocked.logit_diff
print(
    f"knocking out L{key_head[0]}H{key_head[1]}: logit diff {knocked.logit_diff:.2f} -> "
    f"{knocked.knocked_logit_diff:.2f} ({survives:.0%} survives); largest growth of another head "
    + (
        f"(direct effect) {growth.max():.2f} (L{int(growth.argmax()) // n_heads}H{int(growth.argmax()) % n_heads})"
        if real
        else f"{knocked.head_growth.nan_to_num(0).max():.2f}, of an MLP {knocked.mlp_growth.max():.2f}"
    )
)
record("key_head", f"L{key_head[0]}H{key_head[1]}")
record("knockout_survives", round(survives, 3))

# %% [markdown]
# **Takeaway.** Without its key head (L0H3, on seeds 0 and 1; L0H0 costs nearly as much) the model keeps about half of
# its logit difference (52%; 47-56% by seed and mode), still 4.1-4.7 nats in favour of IO. The other heads change
# little: no head's total effect grows by more than 0.11 nats, and no head's *direct* effect by more than 0.08, so
# there are no backup name movers. What keeps the answer is redundancy that was there before the knockout: three more
# layer-0 heads doing the same job. zoo-gelu-4l, whose one recent-name mover does it all, prefers the wrong name
# without it.

# %% [markdown]
# **SmolLM2.** The key head is the name mover L23H0. The full knockout (every component's total effect twice) would
# take 600 forwards, so the cell measures direct effects before and after instead (`backup_direct`, as notebook 06).
# Nothing is lost (104%; seed 1: 103%), and the head that changes most is the negative name mover L24H4, which stops
# writing against IO (+0.37 nats): self-repair by a head backing off, not by a backup name mover.

# %% [markdown]
# **Dropout and backup.** Wang et al. suggest that backup name movers exist because GPT-2 was trained with dropout:
# a model that loses a random part of its heads on every step gains from heads that can stand in. The zoo has the
# default model's recipe trained with dropout 0.1 (`zoo-gelu-4l-dup-dropout`); the same knockout, on its own key head,
# measures whether it grew a backup. `largest ... growth` is another head's effect after the knockout minus before;
# a backup name mover in Wang et al.'s sense is a head whose *direct* effect grows by 10% of the logit difference.

# %%
twin = "zoo-gelu-4l-dup-dropout" if model_name != "zoo-gelu-4l-dup-dropout" else "zoo-gelu-4l-dup"
if real:  # the growth of direct effects (Wang et al.'s backup name movers), not of total effects
    takes_over = {model_name: growth.max().item() / knocked.logit_diff}
    backup_rows = [{"model": model_name, "knocked out": f"L{key_head[0]}H{key_head[1]}", "survives": survives}]
    print(f"{model_name}: the dropout twin belongs to the zoo's default model; the comparison is skipped")
else:
    takes_over = {model_name: knocked.head_growth.nan_to_num(-torch.inf).max().item() / knocked.logit_diff}
    backup_rows = [{"model": model_name, **knocked.summary()}]
    if model_name.startswith("zoo-") and twin in list_zoo():
        twin_model = load_model(twin)
        twin_key = ioi_circuit.key_head(twin_model, clean, abc_sets)
        twin_knocked = ioi_circuit.knockout(twin_model, clean, abc_sets, heads=[twin_key])
        takes_over[twin] = twin_knocked.head_growth.nan_to_num(-torch.inf).max().item() / twin_knocked.logit_diff
        backup_rows.append({"model": twin, **twin_knocked.summary()})
        record("twin_knockout_survives", round(backup_rows[1]["survives"], 3))
    else:
        print(f"{twin} is not in data/models/ (or the model is not a zoo model): the comparison is skipped.")
        print(f"Train it with `workbook train-zoo {twin}` (about 30 minutes on one core) and rerun this cell.")
display(html_table(backup_rows))
print(
    f"largest growth of another head's {'direct' if real else 'total'} effect / logit diff:",
    {k: round(v, 3) for k, v in takes_over.items()},
)
record("largest_growth_fraction", round(takes_over[model_name], 3))
if twin in takes_over:
    record("twin_largest_growth_fraction", round(takes_over[twin], 3))

# %% [markdown]
# **Takeaway.** On this corpus dropout changes neither how much survives nor how the rest of the model reacts. The
# dropout twin (logit difference 5.6, against the default model's 8.5) leans on L0H0 most (2.7 nats) and keeps about
# half of its logit difference without it (51%; 51-55% by seed and mode), as the default model does without L0H3 (52%;
# 47-56%). In neither does another head take over: no head's total effect grows by more than 0.11 nats (the twin: 1-2%
# of its logit difference; the default model: under 1.5%), and no head's *direct* effect grows by 10% of the logit
# difference, so neither has backup name movers, as neither has name movers to back up. What keeps the answer is
# redundancy that was there before the knockout: the other layer-0 heads go on doing their share. The twin trained
# on the first corpus, before the composed sentences, did differ: without its key head another layer-0 head's total
# effect grew by 0.8-1.5 nats (11-20% of the logit difference), backup in the broad sense. So whether dropout breeds
# heads that stand in for each other depended here on the data (or the run), and this pair of models gives Wang et
# al.'s suspicion no support; one pair cannot settle it either way.

# %%
record("exercises_solved", ex.summary())

# %% [markdown]
# # Checks
#
# The claims above, asserted. Thresholds are the (clean logit difference >= 2, corrupted <= 0, attribution
# vs exact patching r >= 0.8, faithfulness >= 70%, a head class other than name movers with evidence); the
# model-specific claims are asserted for the model they describe, with the value seed 0 measured in default mode
# beside each. They hold for seeds 0 and 1 in default and fast mode on zoo-gelu-4l-dup, and for seed 0 in fast mode
# on zoo-gelu-4l. With the real model the last cell asserts what was measured on it instead (seeds 0 and 1 in fast
# mode, seed 0 in default mode): where the bars hold (logit difference, flipped prompts, attribution patching,
# a class besides name movers) and where they do not (faithfulness).

# %%
if real:
    print(f"{model_name}: the zoo models' claims are skipped; the last cell checks what was measured on it")
else:
    assert logit_diff["clean"] >= 2.0 and accuracy >= 0.9, (logit_diff, accuracy)
    # Corrupted <= 0: the flipped set reverses the answer. (ABC has neither clean name, so about 0 there: not asserted.)
    assert logit_diff["flipped"] <= 0, logit_diff
    # Attribution patching is exact where the model is near-linear: heads after layer 0 within 0.05 of exact patching
    # (0.007; at most 0.015), layer 0, read through the MLPs, worse (0.17; 0.10-0.17). r >= 0.8 (the bar)
    # holds on zoo-gelu-4l (0.86) but on the default model only on some draws (0.86, seed 1 0.92, fast mode 0.76 and
    # 0.91, section 4): asserted below for zoo-gelu-4l only.
    assert attribution_error["later layers"] < 0.05 < attribution_error["layer 0"], attribution_error
    assert faith.fraction >= 0.7, faith  # 0.80; 0.71-0.87 by seed and mode (zoo-gelu-4l: 0.98; GPT-2: 0.87)
    # A head class other than name movers, with causal evidence: attention role + path into the MLPs + total effect.
    other = [
        row
        for row in role_table
        if row["causal"]
        and any(r in row["roles"] for r in ("recent-name mover", "all-names mover", "S-inhibition", "duplicate-token"))
    ]
    assert other, role_table
    print("generic checks passed")

# %%
if not real:
    recency = three_name.get("zoo-gelu-4l")  # section 7 always runs the recency model (beside the chosen one)
    # The recency model never picks the name said last, and fails where the answer was introduced first (0.08; chance 1/3).
    assert recency["picks_last_repeat"] <= 0.1 and recency["accuracy_by_slot"][0] <= 0.2, recency
    if model_name in ("zoo-gelu-4l-dup", "zoo-gelu-4l"):
        # No name movers: no head's direct share reaches 10% of the logit difference (0.28 of 8.48); the MLPs write most.
        assert head_direct.abs().max() < 0.1 * logit_diff["clean"], head_direct
        assert sum(v for k, v in shares.items() if "mlp" in k) > 0.5 * logit_diff["clean"], shares  # 9.0 of 8.5
        # No S-inhibition: no head's output reaches a later head's query at END (largest damage 0.02; PATH_MIN 0.1).
        assert paths["later heads' queries at END"].nan_to_num(0).abs().max() < ioi_circuit.PATH_MIN, paths
    if model_name == "zoo-gelu-4l-dup":
        # Duplicate-token attention without effect: heads attending S2 -> S1 move the logit diff by < 5% (L2H3: 0.07
        # nats; -0.06 to 0.19 by seed and mode, against a bar of 0.41-0.44).
        duplicate = attention["S2->S1"] >= ioi_circuit.ATTENTION_MIN
        assert (effects.head_total[duplicate].abs() < ioi_circuit.EFFECT_MIN * logit_diff["clean"]).all(), effects
        mine = three_name[model_name]
        assert min(mine["accuracy_by_slot"]) >= 0.9, mine  # 1.0 / 0.98 / 0.98 (the zoo's acceptance: >= 0.9 per slot)
        # Partly repetition: on split prompts the name said once is found more often than not (0.71 averaged over the
        # slots, seed 1 0.59, seeds 0-4 0.59-0.71; chance 1/3) and the middle clause's repeat is picked less than half
        # the time (0.29; seeds 0-4 0.29-0.41). The same recipe before the composed corpus: 0.14-0.25 and 0.75-0.86;
        # zoo-gelu-4l: 0.04-0.13 and 0.87-0.96. Only partly: it still picks that repeat on some prompts (>= 0.1).
        split = mine["split_accuracy_by_slot"]
        assert sum(split) / len(split) >= 0.5 and 0.1 <= mine["split_picks_earlier_repeat"] < 0.5, mine
        # Distributed: at least three layer-0 heads each cost 10% of the logit difference when ablated (3.5, 0.9, 1.8, 4.0).
        assert (effects.head_total[0] >= 0.1 * logit_diff["clean"]).sum() >= 3, effects.head_total
        # Redundant, not backed up: without the key head about half survives (0.52; 0.47-0.56 by seed and mode; the
        # recency model, one head: -0.2), and no other head's direct effect grows by 10% of the logit difference
        # (largest 0.04 nats; Wang et al.'s backup name movers).
        assert survives >= 0.4 and knocked.summary()["backup name movers (direct +10%)"] == "none", knocked.summary()
        # Nothing takes over, with or without dropout: no other head's total effect grows by 10% of the logit diff
        # (0.5%; at most 1.3% by seed and mode; the dropout twin, where it is in data/models/: 1.0%, at most 1.8%; the
        # twin trained before the composed corpus: 11-20%). The twin keeps about half without its key head (0.51;
        # 0.51-0.55) and has no backup name movers either.
        assert takes_over[model_name] < 0.1, takes_over
        if twin in takes_over:
            assert takes_over[twin] < 0.1 and backup_rows[1]["survives"] >= 0.4, backup_rows
            assert backup_rows[1]["backup name movers (direct +10%)"] == "none", backup_rows
    if model_name == "zoo-gelu-4l":
        assert attribution_corr >= 0.8, attribution_corr  # 0.86, fast 0.89 (Nanda 2023: good for head outputs)
        # One head carries it: without the key head (L0H1) the model prefers the wrong name (-1.6 of 7.8 survives).
        assert survives < 0.5, knocked.knocked_logit_diff
    print("all checks passed")

# %%
if real:  # SmolLM2, 4-bit: values of seed 0 in fast mode (8 prompts, the last third of the layers patched)
    # IOI is solved and the flipped prompts reverse it (3.90, 75% of 8 prompts; flipped -3.26; GPT-2 small 3.56).
    assert logit_diff["clean"] >= 2.0 and accuracy >= 0.6 and logit_diff["flipped"] <= 0, (logit_diff, accuracy)
    # The bar for attribution patching holds on the heads patched exactly (r 0.996; the zoo's: 0.63-0.86).
    assert attribution_corr >= 0.8, attribution_corr
    kinds = {role: [row["head"] for row in role_table if role in row["roles"]] for role in ("name mover", "negative")}
    # Name movers in Wang et al.'s sense and a negative name mover, late (L23H0/1/7 and L24H4 of 30 layers).
    assert kinds["name mover"] and kinds["negative"] and key_head[0] >= n_layers // 2, (kinds, key_head)
    # A class besides name movers, with causal evidence: L23H3 attends END -> S2 and its path reaches the MLPs (0.20).
    mover = [row for row in role_table if row["causal"] and "recent-name mover" in row["roles"]]
    assert mover, role_table
    # The head that matters most (L23H3, 0.56 patched) acts mostly on the logits directly (path damage 0.33).
    top_head = top_heads[0]
    assert paths["logits (direct)"][top_head] >= 0.2, paths
    # No S-inhibition from these heads: none reaches a later head's query at END (largest 0.01; PATH_MIN 0.1).
    assert paths["later heads' queries at END"].nan_to_num(0).max() < ioi_circuit.PATH_MIN, paths
    # A threshold circuit is far from faithful on 30 layers (-9%; every layer measured: 7%; GPT-2: 87%).
    assert faith.fraction < 0.3, faith
    # Knocking out the top name mover costs nothing (104%), and the head whose direct effect grows most is a negative
    # name mover backing off (L24H4, +0.37 nats; notebook 06 found the same), not a backup name mover.
    grower = f"L{int(growth.argmax()) // n_heads}H{int(growth.argmax()) % n_heads}"
    assert survives >= 0.8 and grower in kinds["negative"], (survives, grower, kinds)
    # Three names: above chance in every slot (0.75 / 0.80 / 1.0; chance 1/3), but on split prompts it often picks the
    # repeated name outside the final clause (0.55), as the zoo's models do: not only repetition.
    mine = three_name[model_name]
    assert min(mine["accuracy_by_slot"]) > 1 / 3 and mine["split_picks_earlier_repeat"] >= 0.3, mine
    print("all checks passed")

# %% [markdown]
# ## Going further
#
# - **The other corruption**: `corruption="flipped"` patches with prompts whose answer is reversed; compare the
#   patching grids and the attribution correlation (`workbook run 03 -p corruption flipped`).
# - **Seeds**: `workbook sweep 03 -p seed 0,1,2 --fast` and compare `faithfulness` and `path_L0_to_mlps`.
# - **Force repetition**: section 7's split prompts are where the final-clause rule and repetition disagree. The
#   composed corpus went part of the way: its asides ("B was tired.") name a repeated name in a sentence of its own
#   in 40% of the composed sentences (in three-name ones the final clause then names only the other repeat), and the
#   split prompts went from 0.21 to 0.59-0.71 correct, with no duplicate-token head or S-inhibition path to show for
#   it. What remains: make the final-clause rule fail more often (more asides, `_write_composed`; asides anywhere, not
#   only just before the final clause; two-name sentences whose final clause does not name S at all), retrain
#   (`workbook train-zoo zoo-gelu-4l-dup --out /tmp/zoo`, about 45 minutes) and rerun this notebook: do the split
#   prompts reach the three-name prompts' accuracy, do duplicate-token heads gain an effect, does an S-inhibition path
#   appear?
# - **Where the split prompts are decided**: resample-ablate each head on the split prompts (the five names replaced
#   by fresh ones) at END only and at the middle clause's repeat only. Measured on seed 0: every effect is at END (L0H3
#   0.71 -> 0.45 correct, L1H1 and L2H1 -> 0.54-0.55), none at the repeated name's own position (every head there at
#   once: 0.71 -> 0.70), where a duplicate-token head would act.
# - **The recency model**: `workbook run 03 -p model_name zoo-gelu-4l` runs every section on it; compare the role
#   tables and the knockouts.
# - **GPT-2**: with a network, `model_name="gpt2-small"` (about 500 MB); the paper's heads should show up in the same
#   figures.
# - **Open question**: the interesting computation here is inside the MLPs ("names present minus the names of the
#   final clause"). How would you find it? Notebook 04's SAEs on MLP0 of this model are one way in.
