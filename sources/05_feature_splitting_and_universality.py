# %% [markdown]
# # 05 · Feature splitting, absorption, depth-first expansion and universality
#
# **Promise.** By the end you can grow a dictionary and watch coarse features split into finer ones, measure when a
# fine feature swallows its parent (absorption) and fix it with a nested (Matryoshka) dictionary, expand one region
# of feature space on its own for a fraction of the compute, and test whether two models trained from different
# seeds learned the same features.
#
# **Papers.** Bricken et al. (2023), *Towards Monosemanticity* (feature splitting, universality); Chanin et al.
# (2024), *A is for Absorption*; Bussmann et al. (2025) and Nabeshima (2024), Matryoshka SAEs.
# **Prerequisites.** 04 (training and scoring SAEs). **Runtime on a 2-core CPU:** default about 5 minutes, fast mode
# (`fast=True`, half-size dictionaries) about 90 s.
#
# **What we reproduce, and how ours differs.** The paper's dictionaries run from 512 to 131,072 latents on billions
# of tokens, and it reads splits off examples. Ours are 256 to 4,096 latents on 200k activations of
# `zoo-gelu-1l-a`'s MLP, and every split is scored against the hierarchy that generated the text: a paragraph's topic
# (`topic`, e.g. `animals/birds/raven`) and its ancestors (`topic_l1` = `animals/birds`, `topic_l0` = `animals`). The
# paper's universality number is a median max-correlation of 0.72 for features against 0.46 for neurons.

# %% tags=["parameters"]
seed: int = 0  # 0 <= seed < 2**32; SAE initialisation and batch order (models and corpus are fixed)
fast: bool = False  # fewer tokens and steps; every section and check still runs
model_name: str = "zoo-gelu-1l-a"  # the model whose MLP the dictionaries read
other_model: str = "zoo-gelu-1l-b"  # same data and config, another seed (universality)
hook_name: str = "blocks.0.mlp.hook_post"  # activations the SAEs reconstruct
sizes: list[int] = [256, 1024, 4096]  # max(k, 16) <= sizes <= 65_536; dictionary sizes, smallest first
k: int = 32  # 1 <= k <= 4096; active latents per token (TopK)
steps: int = 1000  # 10 <= steps <= 1_000_000; training steps per SAE (fast: at most 300)
batch_size: int = 512  # 16 <= batch_size <= 65_536; activations per step
n_train_tokens: int = 200_000  # 4 * batch_size <= n_train_tokens <= 50_000_000; activations cached for training
n_eval_rows: int = 400  # 20 <= n_eval_rows <= 10_000; held-out rows of 128 tokens (fast: at most 100)
branch: str = "animals"  # hierarchy root drawn as a family tree
child_size: int = 0  # child_size == 0 or 16 <= child_size <= 65_536; latents of each depth-first child; 0 = the largest power of two within a third of the compute

# %%
import math
import tempfile
import time

import torch
from IPython.display import display
from jaxtyping import Bool, Float, Int
from torch import Tensor

from interp_helpers import check_choice, check_parameters, check_range, record, seed_everything
from interp_helpers.checkers import Exercises
from interp_helpers.checkers import splitting as checks
from interp_helpers.dictionaries import activations, features, figures, matryoshka, recovery, splitting
from interp_helpers.dictionaries import sae as sae_lib
from interp_helpers.modelzoo import corpus, zoo
from interp_helpers.modelzoo.corpus_view import html_table
from interp_helpers.modelzoo.models import load_model

check_parameters("05", globals())  # the conditions declared in the parameters cell
ex = Exercises("05")
one_layer = [name for name, spec in zoo.ZOO.items() if spec.d_mlp and spec.n_layers == 1]
check_choice("model_name", model_name, one_layer)
check_choice("other_model", other_model, [name for name in one_layer if name != model_name])
if len(sizes) < 2 or any(b <= a for a, b in zip(sizes, sizes[1:])):
    raise ValueError(f"parameter sizes={sizes}: needs at least two sizes, strictly increasing")
check_choice("branch", branch, sorted({path.split("/")[0] for path in corpus.LEAVES}))
if fast:  # half-size dictionaries too: the largest ones dominate the runtime
    steps, n_train_tokens, n_eval_rows = min(steps, 300), min(n_train_tokens, 100_000), min(n_eval_rows, 100)
    sizes = [max(k, size // 2) for size in sizes]
# Depth-first must fit in a third of the largest dictionary's training FLOPs, coarse dictionary included.
child_budget = (1 / 3 - sizes[0] / sizes[-1]) * sizes[-1]
if child_budget < k:
    raise ValueError(f"parameter sizes={sizes}: the smallest dictionary must be well under a third of the largest")
child_size = child_size or 2 ** int(math.log2(child_budget))
check_range("child_size", child_size, k, 65_536)
_ = seed_everything(seed)
model, model_b = load_model(model_name), load_model(other_model)
spec = zoo.get_spec(model_name)
d_in = activations.hook_width(model, hook_name)

# %% [markdown]
# ## 1 · One set of activations, many dictionaries
#
# **Why this matters.** Splitting is a statement about dictionaries of different sizes trained on the *same*
# activations, so we cache them once (as in notebook 04) and train a TopK SAE per size. Held-out tokens, with every
# token's labels, score them all.

# %%
workdir = tempfile.TemporaryDirectory()
token_batches = zoo.packed_batches(spec.corpus(), model.tokenizer, 16, spec.n_ctx)
cache = activations.cache_activations(
    activations.iter_activations(model, token_batches, hook_name),
    workdir.name,
    n_tokens=n_train_tokens,
    shard_tokens=32_768,
    hook_name=hook_name,
)
held_out = activations.labelled_rows(spec.corpus("eval", zoo.EVAL_SEED), model.tokenizer, n_eval_rows, spec.n_ctx)
eval_acts = activations.collect_activations(model, held_out.tokens, hook_name, keep=held_out.keep)
fields = ["genre", "topic_l0", "topic_l1", "topic", "b64_class", "b64_ascii"]
eval_labels = activations.flatten_labels(held_out.labels, held_out.keep)
truth, names = recovery.label_matrix(eval_labels, fields)


def sae_config(d_sae: int, n_steps: int = steps) -> sae_lib.SAEConfig:
    return sae_lib.SAEConfig(
        d_in=d_in,
        d_sae=d_sae,
        architecture="topk",
        k=k,
        steps=n_steps,
        batch_size=batch_size,
        seed=seed,
        dead_tokens=100_000,
    )


saes, codes, tables, seconds = {}, {}, {}, {}
for size in sizes:
    start = time.perf_counter()
    with torch.enable_grad():
        saes[size], _ = sae_lib.train_sae(
            sae_config(size), cache.iter_batches(batch_size, torch.Generator().manual_seed(seed))
        )
    seconds[size] = time.perf_counter() - start
    codes[size] = saes[size].encode(eval_acts).detach()
    tables[size] = recovery.best_f1(codes[size], truth, names)
torch.set_grad_enabled(False)

# %%
by_size = [
    {
        "size": size,
        "seconds": seconds[size],
        "explained variance": sae_lib.evaluate(saes[size], eval_acts)["explained_variance"],
        **{f: tables[size].mean_f1(f + "=") for f in ("topic_l0", "topic_l1", "topic", "b64_class")},
    }
    for size in sizes
]
display(html_table(by_size))
figures.recovery_by_size_figure(
    by_size, ["topic_l0", "topic_l1", "topic", "b64_class"], "Finer labels are recovered only by larger dictionaries"
).show()
record("leaf_f1_by_size", [round(r["topic"], 4) for r in by_size])
record("b64_f1_by_size", [round(r["b64_class"], 4) for r in by_size])

# %% [markdown]
# **Takeaway.** Recovery of the leaves (a paragraph's exact topic) climbs steeply with dictionary size, while the
# roots (`topic_l0`) are already as good as they get in the smallest dictionary: a small dictionary spends its
# latents on coarse features, a larger one can afford the fine ones.

# %% [markdown]
# ## 2 · Splitting: who are a coarse latent's children?
#
# **Why this matters.** Bricken et al. saw one base64 feature become three as the dictionary grew. We can ask the
# same question of every coarse label: take the latent that best matches it in one dictionary, find its children in
# the next (the larger dictionary's latents whose nearest neighbour, by decoder cosine, is that latent; the table
# also gives how often the parent still fires where its children do), and score parent and children on the coarse
# label's leaves. A parent *splits* when, for every leaf, some child matches it
# better than the parent does.

# %% [markdown]
# ### Exercise 5.1 · Nearest parent by decoder cosine
#
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵🔵⚪ · about 10 minutes
#
# Write `nearest_parent`: for each latent of the larger dictionary (a row of `W_dec_large`, `[d_sae_large, d_in]`),
# the latent of the smaller dictionary (a row of `W_dec_small`, `[d_sae_small, d_in]`) whose decoder direction has
# the highest cosine with it. Return `(cosine, parent)`, both of shape `[d_sae_large]`: that highest cosine (signed:
# a latent pointing the opposite way is not a parent) and the index of the smaller latent. Every larger latent then
# has exactly one parent, and the children of latent `p` are the latents with `parent == p` (and a cosine above a
# floor, to drop latents that are close to nothing).
#
# <details><summary>Hint</summary>
#
# Divide every row of both matrices by its norm (`W / W.norm(dim=-1, keepdim=True)`); then `small @ large.T` holds
# every cosine, `[d_sae_small, d_sae_large]`, and `.max(dim=0)` gives the values and the indices over the smaller
# dictionary.
#
# </details>


# %%
def nearest_parent(
    W_dec_small: Float[Tensor, "d_sae_small d_in"],
    W_dec_large: Float[Tensor, "d_sae_large d_in"],
) -> tuple[Float[Tensor, " d_sae_large"], Int[Tensor, " d_sae_large"]]:
    """For each latent of the larger dictionary: its highest decoder cosine with a smaller latent, and which."""
    # BEGIN SOLUTION
    small = W_dec_small / W_dec_small.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    large = W_dec_large / W_dec_large.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    cosine, parent = (small @ large.T).max(dim=0)  # the max runs over the smaller dictionary
    return cosine, parent
    # END SOLUTION


nearest_parent = ex.check(checks.nearest_parent, nearest_parent)

# %% [markdown]
# ### Exercise 5.2 · Co-activation of parent and child
#
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 10 minutes
#
# Write `coactivation`: for every latent a of dictionary A and every latent b of dictionary B, encoded on the same
# tokens (`codes_a` `[batch, d_sae_a]`, `codes_b` `[batch, d_sae_b]`), P(a fires | b fires): of the tokens where b's
# code is > 0, the fraction where a's code is > 0 too. Return `[d_sae_a, d_sae_b]`; a latent b that never fires gets
# 0 in its column. With a a parent and b one of its children, near 1 means the parent keeps firing where its child
# does; near 0 means the child fires *instead* of the parent (a hint of absorption, section 3).
#
# <details><summary>Hint</summary>
#
# Binarise first, `(codes > 0).float()`: then one matrix product counts, for every pair, the tokens where both fire.
# Divide each column by the number of tokens where its b fires, clamped to at least 1.
#
# </details>


# %%
def coactivation(
    codes_a: Float[Tensor, "batch d_sae_a"],
    codes_b: Float[Tensor, "batch d_sae_b"],
) -> Float[Tensor, "d_sae_a d_sae_b"]:
    """P(a > 0 | b > 0) for every pair of latents, over the same tokens; 0 where b never fires."""
    # BEGIN SOLUTION
    fired_a, fired_b = (codes_a > 0).float(), (codes_b > 0).float()
    both = fired_a.T @ fired_b  # tokens where a and b both fire
    return both / fired_b.sum(0).clamp_min(1.0)
    # END SOLUTION


coactivation = ex.check(checks.coactivation, coactivation)

# %% [markdown]
# **Do it, for one family.** The best `topic_l0={branch}` latent of the smallest dictionary (the *root*) and its
# children in the next one: the latents whose nearest parent it is, with decoder cosine at least 0.3 (as in the
# table below), how often the root fires where each child does, and each child's best label. Then the table for
# every coarse label and every pair of consecutive sizes.

# %%
root = int(tables[sizes[0]].best_unit[names.index(f"topic_l0={branch}")])
cosine, parent = nearest_parent(saes[sizes[0]].W_dec, saes[sizes[1]].W_dec)
root_fires = coactivation(codes[sizes[0]][:, [root]], codes[sizes[1]])[0]  # P(root fires | each larger latent fires)
children = ((parent == root) & (cosine >= 0.3)).nonzero()[:, 0]  # the 0.3 floor of splitting.children_of
children = children[cosine[children].argsort(descending=True)]
child_labels = recovery.unit_labels(codes[sizes[1]][:, children], truth, names, top=1)
display(
    html_table(
        [
            {
                "child latent": int(c),
                "decoder cosine": float(cosine[c]),
                "P(root fires | child fires)": float(root_fires[c]),
                "best label": (label or [("(none)", 0.0)])[0][0],
                "F1": (label or [("(none)", 0.0)])[0][1],
            }
            for c, label in zip(children.tolist(), child_labels)
        ]
    )
)
print(
    f"root latent {root} of {sizes[0]}; of the {sizes[1]} latents, {int((cosine >= 0.3).sum())} have a parent "
    f"(cosine >= 0.3) and {int((cosine >= 0.9).sum())} are near-copies of it (cosine >= 0.9)"
)

# %%
split_rows = splitting.split_table(
    sizes, {n: saes[n].W_dec for n in sizes}, codes, {n: tables[n].best_unit for n in sizes}, truth, names
)
n_split = sum(r["splits"] for r in split_rows)
print(
    f"{n_split} of {len(split_rows)} (coarse label, size) pairs split into children that beat the parent on every leaf"
)
display(
    html_table(
        [r for r in split_rows if r["coarse label"].startswith(("topic_l1=" + branch, "topic_l0=" + branch, "genre"))]
    )
)
record("splits", [n_split, len(split_rows)])

# %% [markdown]
# **Look.** The family of the best `topic_l0={branch}` latent of the smallest dictionary, through the larger ones:
# each ring is a dictionary size, each wedge a latent labelled with its best label in the hierarchy and F1 (hover for
# details). Then the base64 labels at each size.

# %%
hierarchy = [i for i, n in enumerate(names) if n.startswith(("topic_l0=", "topic_l1=", "topic="))]
best_labels = [
    recovery.unit_labels(codes[size], truth[:, hierarchy], [names[i] for i in hierarchy], top=1) for size in sizes
]
tree = splitting.family_tree(root, [saes[size].W_dec for size in sizes], best_labels)
figures.family_sunburst(tree, f"The '{branch}' latent of the {sizes[0]}-latent dictionary and its descendants").show()
b64 = [
    {"size": size, **{n: float(tables[size].f1[names.index(n)]) for n in names if n.startswith("b64")}}
    for size in sizes
]
display(html_table(b64))
record(
    "b64_letter_digit_other_f1",
    [[round(r.get(f"b64_class={c}", 0.0), 3) for c in ("letter", "digit", "other")] for r in b64],
)

# %% [markdown]
# **The alien feature, scored where it can be told apart.** Bricken et al.'s third base64 feature fires on base64 that
# *decodes to ASCII text*. Over all tokens, a latent that fires on every base64 token already matches "ASCII blob"
# fairly well, so we score it on base64 tokens only: there a latent must tell text from random bytes. The baseline is
# the F1 of a latent that fires on every base64 token (2p / (1 + p), p the ASCII share of base64 tokens).

# %%
is_b64 = eval_labels["b64_ascii"] >= 0
ascii_truth = (eval_labels["b64_ascii"][is_b64] == 1)[:, None]
ascii_share = ascii_truth.float().mean().item()
ascii_rows = [
    {"size": size, **recovery.best_f1(codes[size][is_b64], ascii_truth, ["ASCII blob"]).to_rows()[0]} for size in sizes
]
display(html_table(ascii_rows))
ascii_baseline = 2 * ascii_share / (1 + ascii_share)
print(
    f"{int(is_b64.sum())} base64 tokens, {ascii_share:.0%} of them in ASCII blobs; fire-on-all-base64 F1 {ascii_baseline:.3f}"
)
record("b64_ascii_f1_within_base64", [round(r["f1"], 3) for r in ascii_rows])
record("b64_ascii_baseline_f1", round(ascii_baseline, 3))


# %% [markdown]
# **Takeaway.** Where a parent splits, its children are more specific: a coarse latent gives way to latents that
# each match one of its leaves better than the parent did. Most coarse latents do *not* split by this strict test
# (every leaf beaten): often the only child is a near-copy of the parent, and the new leaf latents grew from
# elsewhere in the dictionary rather than from the parent's direction. The family tree shows the same thing: few
# children per latent. Base64 splits by *recovery* rather than by lineage: the smallest dictionary matches letters
# well and digits poorly, and larger ones add latents for digits and for the remaining characters.
#
# The paper's third base64 feature is here too. Scored on base64 tokens only, the best "ASCII blob" latent of the
# smaller dictionaries beats a latent that fires on all base64 (seed 0, F1 by size: fast 0.91, 0.77, 0.50 against 0.43; default 0.76,
# 0.57, 0.41 against 0.51; before issue #18's encoder init, 0.89, 0.80, 0.65 and 0.88, 0.63, 0.53): the model tells
# base64 of text from base64 of random bytes (its loss on ASCII-blob characters is about 1.8 nats, on random-blob
# characters 5.6: `tests/test_zoo.py`), and the dictionaries give that distinction a latent of its own. It is sharpest
# in the smallest dictionary: larger ones split it by character class, and each part covers fewer of the blob's tokens,
# until the largest default dictionary's best falls below the baseline.
#
# ## 3 · Absorption, and the Matryoshka remedy
#
# **Why this matters.** A parent feature should fire on every child token: a raven paragraph is a birds paragraph.
# Sparsity pushes the other way: when a "raven" latent fires anyway, the SAE saves L0 by letting it absorb the
# "birds" direction, and the parent goes silent exactly where it should fire. Chanin et al. measured this with probes;
# our labels measure it directly. For each `topic_l1` label: on tokens of its paragraphs, how often its best latent
# fires (`parent_fires`), and how often it is silent while a leaf latent fires instead (`absorbed`).
#
# A Matryoshka SAE (nested dictionaries) adds the reconstruction losses of its first 256, 1024, ... latents, so the
# first latents must reconstruct on their own and learn the general features; later latents can only add detail.

# %% [markdown]
# ### Exercise 5.3 · Absorption on labelled tokens
#
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵🔵⚪ · about 10 minutes
#
# Write `absorption` for one parent latent: its codes (`parent_codes`, `[batch]`), the codes of its child latents
# (`child_codes`, `[batch, child]`; `child` may be 0), and which tokens carry the parent label and a child label
# (`parent_truth`, `child_truth`, booleans `[batch]`). On the n tokens labelled both, return a dict with `n` and
# three fractions of those n tokens: `parent_fires` (the parent's code is > 0), `absorbed` (the parent is silent
# while at least one child fires) and `missed` (neither fires). The three add to 1; with n = 0 they are NaN.
#
# <details><summary>Hint</summary>
#
# `both = parent_truth & child_truth` selects the tokens; `(child_codes[both] > 0).any(dim=-1)` says whether some
# child fires (False when there are no children). Check n before dividing by it.
#
# </details>


# %%
def absorption(
    parent_codes: Float[Tensor, " batch"],
    child_codes: Float[Tensor, "batch child"],
    parent_truth: Bool[Tensor, " batch"],
    child_truth: Bool[Tensor, " batch"],
) -> dict[str, float]:
    """On the tokens labelled parent and child: n, and the fractions where the parent fires, is absorbed or missed."""
    # BEGIN SOLUTION
    both = parent_truth & child_truth
    n = int(both.sum())
    if n == 0:  # nothing to measure: undefined, not 0
        return {"n": 0, "parent_fires": math.nan, "absorbed": math.nan, "missed": math.nan}
    parent_on = parent_codes[both] > 0
    child_on = (child_codes[both] > 0).any(dim=-1)
    return {
        "n": n,
        "parent_fires": parent_on.float().mean().item(),
        "absorbed": (~parent_on & child_on).float().mean().item(),
        "missed": (~parent_on & ~child_on).float().mean().item(),
    }
    # END SOLUTION


absorption = ex.check(checks.absorption, absorption)

# %% [markdown]
# **Do it, for one label.** The first `topic_l1` label of the `branch` in the largest dictionary: its best latent is
# the parent, the best latents of its leaves (other than the parent) are the children. The table after the next
# exercise averages the same numbers over every `topic_l1` label, for every dictionary.

# %%
best_unit = tables[sizes[-1]].best_unit
parent_label = next(name for name in names if name.startswith(f"topic_l1={branch}/"))
leaf_columns = [j for j, name in enumerate(names) if name.startswith(parent_label.replace("topic_l1=", "topic=") + "/")]
parent_latent = int(best_unit[names.index(parent_label)])
child_latents = sorted({int(best_unit[j]) for j in leaf_columns} - {parent_latent})
one_label = absorption(
    codes[sizes[-1]][:, parent_latent],
    codes[sizes[-1]][:, child_latents],
    truth[:, names.index(parent_label)],
    truth[:, leaf_columns].any(dim=1),
)
print(
    f"{parent_label} in the {sizes[-1]}-latent dictionary: parent latent {parent_latent}, child latents "
    f"{child_latents}; " + ", ".join(f"{key} {value:.3g}" for key, value in one_label.items())
)

# %% [markdown]
# ### Exercise 5.4 · Matryoshka prefix errors
#
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 10 minutes
#
# Write `prefix_errors`, the terms of the Matryoshka loss. For each prefix size m in `prefixes` (increasing, the last
# equal to d_sae), reconstruct `x` (`[batch, d_in]`) from the first m latents alone,
# `codes[:, :m] @ W_dec[:m] + b_dec` (`codes` `[batch, d_sae]`, `W_dec` `[d_sae, d_in]`, `b_dec` `[d_in]`), and
# return its squared error summed over d_in and averaged over the batch: one number per prefix, shape `[prefix]`.
# The Matryoshka loss is their sum (plus the AuxK term); the last entry is an ordinary SAE's reconstruction loss.
#
# <details><summary>Hint</summary>
#
# Loop over `prefixes` and `torch.stack` the results. `b_dec` is not a latent: every prefix keeps it.
#
# </details>


# %%
def prefix_errors(
    x: Float[Tensor, "batch d_in"],
    codes: Float[Tensor, "batch d_sae"],
    W_dec: Float[Tensor, "d_sae d_in"],
    b_dec: Float[Tensor, " d_in"],
    prefixes: list[int],
) -> Float[Tensor, " prefix"]:
    """||x - (codes[:, :m] @ W_dec[:m] + b_dec)||^2, summed over d_in and averaged over the batch, for each m."""
    # BEGIN SOLUTION
    errors = []
    for m in prefixes:
        recon = codes[:, :m] @ W_dec[:m] + b_dec  # the first m latents, and the bias, on their own
        errors.append((x - recon).pow(2).sum(-1).mean())
    return torch.stack(errors)
    # END SOLUTION


prefix_errors = ex.check(checks.prefix_errors, prefix_errors)


# %%
def mean_absorption(sae_codes: torch.Tensor) -> dict[str, float]:
    table = recovery.best_f1(sae_codes, truth, names)
    rows = splitting.absorption_by_label(sae_codes, table.best_unit, truth, names)
    return {key: sum(r[key] for r in rows) / len(rows) for key in ("parent_fires", "absorbed", "missed")}


nested_cfg = matryoshka.MatryoshkaConfig(sae=sae_config(sizes[-1]), prefixes=tuple(sizes))
with torch.enable_grad():
    nested, _ = matryoshka.train_matryoshka(
        nested_cfg, cache.iter_batches(batch_size, torch.Generator().manual_seed(seed))
    )
nested_codes = nested.encode(eval_acts)
absorption_rows = [
    {"dictionary": f"TopK {size}", **mean_absorption(codes[size])} for size in sizes
]  # means over topic_l1
absorption_rows.append(
    {"dictionary": f"Matryoshka {sizes[-1]} (prefixes {list(sizes)})", **mean_absorption(nested_codes)}
)
nested_ev = sae_lib.evaluate(nested, eval_acts)["explained_variance"]
display(html_table(absorption_rows))
print(f"explained variance: TopK {by_size[-1]['explained variance']:.3f}, Matryoshka {nested_ev:.3f}")
record("absorbed_by_size", [round(r["absorbed"], 3) for r in absorption_rows])

# %% [markdown]
# **Look.** What the nested loss buys: the explained variance of each prefix on its own (the first m latents and
# `b_dec`, from `prefix_errors`), for the largest TopK dictionary and the Matryoshka one, on a sample of held-out
# tokens.

# %%
sample = slice(None, None, max(1, eval_acts.shape[0] // 2048))  # every n-th token, about 2048 of them
sample_acts = eval_acts[sample]
variance = (sample_acts - sample_acts.mean(0)).pow(2).sum(-1).mean()
prefix_rows = []
for label, dictionary, dictionary_codes in [
    (f"TopK {sizes[-1]}", saes[sizes[-1]], codes[sizes[-1]]),
    (f"Matryoshka {sizes[-1]}", nested, nested_codes),
]:
    errors = prefix_errors(sample_acts, dictionary_codes[sample], dictionary.W_dec, dictionary.b_dec, list(sizes))
    prefix_rows.append({"dictionary": label, **{f"first {m}": float(1 - e / variance) for m, e in zip(sizes, errors)}})
display(html_table(prefix_rows))

# %% [markdown]
# **Takeaway.** Measured this way, absorption is rare here and does not grow with the dictionary, and the nested
# loss does not lower it (seed 0, against plain TopK of the same size: 0.048 and 0.040 in fast mode, 0.087 and 0.054
# in default mode): the parent latents mostly fail in a plainer way, by not firing on most tokens of their paragraphs
# at all (`parent_fires` well below 1, the rest `missed`). On this model the bottleneck is recall, not absorption.
# The mechanism itself is real and the Matryoshka fix helps on average where the hierarchy is clean, though not on
# every seed: on synthetic data
# (`tests/test_matryoshka.py`, seeds 0-29) plain TopK absorbs 0.18-0.57 of the child tokens and the nested SAE
# 0.08-0.38 (means over blocks of 8 seeds: 0.38-0.42 against 0.18-0.25), and on a few seeds the nested SAE absorbs
# more. Matryoshka pays with a little reconstruction (compare the explained variances). What the nested loss does
# change is the prefix table: the Matryoshka SAE's first prefix reconstructs on its own (fast mode, seed 0: 0.82 of
# the variance from its first 128 latents; default 0.88 from 256), while a plain TopK SAE's first latents are an
# arbitrary slice (0.06).

# %% [markdown]
# **Known directions.** On the model we know labels, never the directions it uses for them. On synthetic data built
# like the corpus's hierarchy we know both, and can score where the decoder rows point: the mean correlation
# coefficient (MCC, `recovery.mean_correlation_coefficient`, as in SAELens' synthetic benchmark) matches decoder
# rows one-to-one to the true directions (Hungarian matching) and averages |cosine|. The data is that of
# `tests/test_matryoshka.py`: 4 parents with 3 children each, 16 unit directions in 16 dimensions; a parent is on
# with probability 0.25, and then one of its children with probability 0.75, magnitudes 0.75-1.25. A plain TopK
# and a Matryoshka SAE (prefixes 4, 16), 16 latents and k = 3 each, train 400 steps, on 8 seeds (fast mode: 4).


# %%
def planted_hierarchy(data_seed: int, rows: int = 50_000, parents: int = 4, children: int = 3, width: int = 16):
    """(x [rows, width], directions [parents x (1 + children), width]): parents first; a child only with its parent."""
    g = torch.Generator().manual_seed(data_seed)
    dirs = torch.nn.functional.normalize(torch.randn(parents * (1 + children), width, generator=g), dim=-1)
    parent_on = torch.rand(rows, parents, generator=g) < 0.25
    with_child = parent_on & (torch.rand(rows, parents, generator=g) < 0.75)
    which = torch.nn.functional.one_hot(torch.randint(0, children, (rows, parents), generator=g), children).bool()
    on = torch.cat([parent_on, (which & with_child[..., None]).flatten(1)], dim=1)
    return (on * (0.75 + 0.5 * torch.rand(rows, on.shape[1], generator=g))) @ dirs, dirs


# %%
subsets = {"all 16": slice(None), "parents": slice(None, 4), "children": slice(4, None)}
mcc_by_run = {"random start": [], "TopK": [], "Matryoshka": []}
for run in range(seed, seed + (4 if fast else 8)):
    hier_x, hier_dirs = planted_hierarchy(1000 + run)
    hier_cfg = sae_lib.SAEConfig(16, 16, "topk", k=3, lr=3e-3, steps=400, batch_size=128, seed=run, dead_tokens=20_000)
    hier_batches = [sae_lib.iterate_batches(hier_x, 128, torch.Generator().manual_seed(run)) for _ in range(2)]
    trained = {
        "random start": sae_lib.SAE(hier_cfg),
        "TopK": sae_lib.train_sae(hier_cfg, hier_batches[0], progress=False)[0],
        "Matryoshka": matryoshka.train_matryoshka(
            matryoshka.MatryoshkaConfig(hier_cfg, (4, 16)), hier_batches[1], progress=False
        )[0],
    }
    for name, dictionary in trained.items():
        mcc_by_run[name].append(
            [recovery.mean_correlation_coefficient(dictionary.W_dec, hier_dirs[rows]) for rows in subsets.values()]
        )
hier_mcc = {name: dict(zip(subsets, torch.tensor(runs).mean(0).tolist())) for name, runs in mcc_by_run.items()}
display(html_table([{"dictionary (mean MCC over runs)": name, **values} for name, values in hier_mcc.items()]))
record("hierarchy_mcc", [[name, round(values["all 16"], 3)] for name, values in hier_mcc.items()])

# %% [markdown]
# **Takeaway.** Both dictionaries turn their rows toward the true directions (seed 0, mean MCC over the runs: plain
# 0.696 and Matryoshka 0.711 in fast mode, 0.695 and 0.714 by default, from 0.47-0.48 at the random start), the
# parents (about 0.8) better than the children (0.70-0.74). MCC barely separates the two dictionaries: it scores
# where the rows point, and absorption changes which latent fires on a child token more than where the rows point
# (on this data plain TopK absorbs 0.38-0.42 of the child tokens, Matryoshka 0.18-0.25, by `tests/test_matryoshka.py`),
# which takes `absorption` to see. On the model itself MCC cannot be computed at all: it needs the true directions.
#
# ## 4 · Depth-first: expand one region instead of the whole dictionary
#
# **Why this matters.** Growing the whole dictionary to resolve one branch spends most of the compute on branches
# you do not care about. Depth-first expansion trains a small *child* dictionary only on the activations where one
# coarse latent fires, and reads its latents as "the parent, and then this". We compare, for every hierarchy root,
# the child's recovery of that branch's leaves with the largest dictionary's, and the training FLOPs (12 x d_in x
# d_sae per token, for the coarse dictionary plus the child, against the large one) and wall time.

# %% [markdown]
# ### Exercise 5.5 · Training FLOPs
#
# > **Difficulty** 🔴⚪⚪⚪⚪ · **Importance** 🔵🔵⚪⚪⚪ · about 5 minutes
#
# Write `training_flops`: the FLOPs of training an SAE densely on `n_tokens` activations of width `d_in` with
# `d_sae` latents, as a float. Per token, the forward pass runs two matrix products with `d_in x d_sae` weights (the
# encoder and the decoder), each costing 2 FLOPs per weight (a multiply and an add); the backward pass costs twice
# the forward (gradients for the weights and for the inputs). A TopK decoder is sparse and cheaper, but counting
# every dictionary the same way keeps the budgets comparable.
#
# <details><summary>Hint</summary>
#
# Forward: 2 matmuls x 2 FLOPs x d_in x d_sae per token; forward plus backward is 3 times that.
#
# </details>


# %%
def training_flops(n_tokens: int, d_in: int, d_sae: int) -> float:
    """Dense FLOPs of training an SAE on n_tokens activations: forward and backward of encoder and decoder."""
    # BEGIN SOLUTION
    forward = 2 * (2 * d_in * d_sae)  # encoder and decoder matmuls, a multiply and an add per weight
    return float(3 * forward * n_tokens)  # the backward pass costs twice the forward
    # END SOLUTION


training_flops = ex.check(checks.training_flops, training_flops)

# %%
roots = sorted({path.split("/")[0] for path in corpus.LEAVES})
flops_large = training_flops(steps * batch_size, d_in, sizes[-1])
flops_small = training_flops(steps * batch_size, d_in, sizes[0])
depth_rows = []
for root_name in roots:
    parent = int(tables[sizes[0]].best_unit[names.index(f"topic_l0={root_name}")])
    _, composite, region, child_seconds = splitting.depth_first_train(
        parent,
        saes[sizes[0]],
        (cache.load_shard(i) for i in range(len(cache.shards))),
        eval_acts,
        sae_config(child_size),
    )
    leaves = [i for i, n in enumerate(names) if n.startswith(f"topic={root_name}/")]
    child_f1 = recovery.best_f1(composite, truth[:, leaves]).f1.mean().item()
    flops = flops_small + training_flops(steps * batch_size, d_in, child_size)
    depth_rows.append(
        {
            "branch": root_name,
            "region tokens": region,
            "leaves": len(leaves),
            "depth-first leaf F1": child_f1,
            f"{sizes[-1]}-latent leaf F1": tables[sizes[-1]].f1[leaves].mean().item(),
            "FLOPs / large": flops / flops_large,
            "seconds / large": (seconds[sizes[0]] + child_seconds) / seconds[sizes[-1]],
        }
    )
display(html_table(depth_rows))
reached = [r for r in depth_rows if r["depth-first leaf F1"] >= r[f"{sizes[-1]}-latent leaf F1"] - 0.05]
record("depth_first_reached", [r["branch"] for r in reached])
record("depth_first_flops_ratio", round(depth_rows[0]["FLOPs / large"], 4))

# %% [markdown]
# **Takeaway.** The child dictionary gets the whole budget the comparison allows (`child_size`: the largest that
# keeps coarse + child under a third of the large dictionary's FLOPs). For most branches it then recovers the leaves
# about as well as the large dictionary (default mode, seed 0: 4 of 5 branches within 0.05, science not; with the
# encoder init before issue #18, 5 of 5; before issue #18 changed the SAEs' init streams, 4 of 5 with seed 0 and 5
# of 5 with seed 1).
# It cannot beat the region it was given: a coarse latent that fires on only part of its branch's paragraphs caps the
# child's recall, and one that covers two branches (as happens with fast mode's 128-latent coarse dictionary) mixes
# them. With half the budget (`child_size=512`, 19% of the FLOPs) only 2 of 5 branches came within 0.05 (seed 0,
# measured before the new init streams):
# the child's size matters, and so does choosing the region.

# %% [markdown]
# ## 5 · Universality: the same features in another model?
#
# **Why this matters.** If features are real properties of the data, models trained from different seeds should
# learn the same ones, while their neurons (an arbitrary basis) need not agree. Test: train the same SAE on
# `other_model` (same data and architecture, another initialisation), run both models on the same held-out tokens,
# and for every latent of one find the most correlated latent of the other. Then the same for neurons.

# %% [markdown]
# ### Exercise 5.6 · Max-correlation universality
#
# > **Difficulty** 🔴🔴🔴⚪⚪ · **Importance** 🔵🔵🔵🔵🔵 · about 15 minutes
#
# Write `max_correlation`: for every unit (latent or neuron) of A (`acts_a`, `[batch, unit_a]`), its highest Pearson
# correlation over the same tokens with any unit of B (`acts_b`, `[batch, unit_b]`), and that unit's index: two
# tensors of shape `[unit_a]`. Pearson correlation: centre each unit over the tokens (subtract its mean), divide by
# the norm of the centred column, and take dot products. Take the signed maximum (an anticorrelated unit is not a
# partner). A unit that never varies (a dead latent) has no correlation: a dead unit of A gets NaN and index -1, and
# a dead unit of B is nobody's partner. The median over A's units is the paper's universality number.
#
# <details><summary>Hint</summary>
#
# After standardising both, `a.T @ b` is the `[unit_a, unit_b]` correlation matrix. Call a unit dead when its centred
# norm is below 1e-8; set B's dead columns to `-inf` before `.max(dim=1)`, and A's dead rows to NaN and -1 after.
#
# </details>


# %%
def max_correlation(
    acts_a: Float[Tensor, "batch unit_a"],
    acts_b: Float[Tensor, "batch unit_b"],
) -> tuple[Float[Tensor, " unit_a"], Int[Tensor, " unit_a"]]:
    """For every unit of A: its highest Pearson correlation with a unit of B over the same tokens, and which."""
    # BEGIN SOLUTION
    a = acts_a.float() - acts_a.float().mean(0)
    b = acts_b.float() - acts_b.float().mean(0)
    a_norm, b_norm = a.norm(dim=0), b.norm(dim=0)
    corr = (a / a_norm.clamp_min(1e-12)).T @ (b / b_norm.clamp_min(1e-12))  # unit_a unit_b
    corr[:, b_norm <= 1e-8] = float("-inf")  # a unit of B that never varies is nobody's partner
    best, index = corr.max(dim=1)
    dead = (a_norm <= 1e-8) | ~torch.isfinite(best)
    return best.masked_fill(dead, float("nan")), index.masked_fill(dead, -1)
    # END SOLUTION


max_correlation = ex.check(checks.max_correlation, max_correlation)

# %%
middle = sizes[len(sizes) // 2]
token_batches_b = zoo.packed_batches(spec.corpus(), model_b.tokenizer, 16, spec.n_ctx)
cache_b = activations.cache_activations(
    activations.iter_activations(model_b, token_batches_b, hook_name),
    workdir.name + "/b",
    n_tokens=n_train_tokens,
    shard_tokens=32_768,
)
with torch.enable_grad():
    sae_b, _ = sae_lib.train_sae(
        sae_config(middle), cache_b.iter_batches(batch_size, torch.Generator().manual_seed(seed))
    )
eval_acts_b = activations.collect_activations(model_b, held_out.tokens, hook_name, keep=held_out.keep)
codes_b = sae_b.encode(eval_acts_b)
latent_corr, latent_match = max_correlation(codes[middle], codes_b)
neuron_corr, _ = max_correlation(eval_acts, eval_acts_b)
medians = {"latents": latent_corr.nanmedian().item(), "neurons": neuron_corr.nanmedian().item()}
figures.correlation_histogram(
    {f"SAE latents ({middle})": latent_corr, "MLP neurons (512)": neuron_corr},
    f"{model_name} vs {other_model}: latents find partners, neurons less so",
).show()
record("median_max_corr_latents", round(medians["latents"], 4))
record("median_max_corr_neurons", round(medians["neurons"], 4))

# %% [markdown]
# **Look.** Two matched pairs: among latents of model A that fire on fewer than 5% of tokens, the two with the
# highest correlation, each followed by its partner in model B. Same tokens, different models. Then a check that does not use activations at all: map each latent's
# decoder direction through its own model's `W_out` and unembedding to a vector over the vocabulary; matched latents
# should push the same tokens.

# %%
where = features.token_positions(held_out.keep)
labels_a = recovery.unit_labels(codes[middle], truth, names, top=2)
sparse_latents = (codes[middle] > 0).float().mean(0) < 0.05  # dense genre detectors correlate trivially
for latent in latent_corr.nan_to_num(-1).where(sparse_latents, -1.0).topk(2).indices.tolist():
    partner = int(latent_match[latent])
    card_a = features.feature_card(
        latent, codes[middle], held_out.tokens, where, model, hook_name, saes[middle].W_dec, best_labels=labels_a, k=4
    )
    card_b = features.feature_card(partner, codes_b, held_out.tokens, where, model_b, hook_name, sae_b.W_dec, k=4)
    display(features.dashboard_html(card_a, f"{model_name} latent"))
    display(features.dashboard_html(card_b, f"{other_model} latent (correlation {latent_corr[latent]:.2f}) -"))
logit_a = features.logit_vectors(model, hook_name, saes[middle].W_dec)
logit_b = features.logit_vectors(model_b, hook_name, sae_b.W_dec)
matched = latent_match >= 0
cos_matched = torch.nn.functional.cosine_similarity(logit_a[matched], logit_b[latent_match[matched]], dim=-1)
shuffled = torch.randperm(logit_b.shape[0], generator=torch.Generator().manual_seed(seed))[: int(matched.sum())]
cos_random = torch.nn.functional.cosine_similarity(logit_a[matched], logit_b[shuffled], dim=-1)
print(f"logit-effect cosine: matched pairs median {cos_matched.median():.2f}, random pairs {cos_random.median():.2f}")
record("logit_cosine_matched_random", [round(cos_matched.median().item(), 3), round(cos_random.median().item(), 3)])

# %% [markdown]
# **Takeaway.** Latents of one model find better-correlated partners in the other than neurons do: the whole
# distribution shifts right, as in the paper (medians 0.72 against 0.46 there; ours are lower on both sides, with a
# smaller dictionary and far less training). Matched latents
# also push similar output tokens, although nothing forced their decoder directions to agree: the two models'
# residual streams are not aligned, only their vocabularies are.

# %%
record("exercises_solved", ex.summary())

# %% [markdown]
# # Checks
#
# The claims, asserted. They held for seeds 0 and 1 in default and fast mode (depth-first recovery: default
# mode only, see below); after issue #18's encoder init they were rerun for seed 0 in both modes.

# %%
# Splitting: at least one labelled coarse latent whose children at the next size beat it on each of its leaves.
assert n_split >= 1, split_rows
# Recovery of the leaves grows with dictionary size (largest vs smallest).
assert by_size[-1]["topic"] > by_size[0]["topic"], by_size
# Depth-first reaches the largest dictionary's branch recovery (within 0.05 mean F1) at under a third of its
# compute (coarse + child training FLOPs), for at least half of the branches. Fast mode's coarse dictionary has 128
# latents, which separate the branches poorly (two branches can share one coarse latent), so there only the compute
# budget is asserted; the recovery claim is checked in default mode (seed 0: 4 of the 5 branches; 5 with the
# encoder init before issue #18; before issue #18's
# init streams, seeds 0 and 1: 4 and 5).
assert all(r["FLOPs / large"] < 1 / 3 for r in depth_rows), depth_rows
if not fast:
    assert len(reached) >= len(depth_rows) / 2, depth_rows
# The alien feature: on base64 tokens, some latent separates ASCII blobs from random bytes far better than firing on
# all base64 does (seed 0: best F1 0.91 against 0.43 fast, 0.76 against 0.51 default; Bricken et al. find one
# such feature at 4,096 latents, ours is clearest at 256).
assert max(r["f1"] for r in ascii_rows) >= ascii_baseline + 0.2, (ascii_rows, ascii_baseline)
# Known directions: on the synthetic hierarchy both dictionaries' rows move toward the true directions, mean MCC
# at least 0.15 above the random start (seed 0: +0.22 and +0.24 in both modes; SAELens' synthetic
# benchmark scores SAEs this way).
for name in ("TopK", "Matryoshka"):
    assert hier_mcc[name]["all 16"] >= hier_mcc["random start"]["all 16"] + 0.15, hier_mcc
# Universality: the median max correlation of latents across seeds exceeds that of neurons (paper: 0.72 vs 0.46).
assert medians["latents"] > medians["neurons"], medians
# Matched latents push the same tokens more than random pairs do.
assert cos_matched.median() > cos_random.median(), (cos_matched.median(), cos_random.median())
workdir.cleanup()
print("all checks passed")

# %% [markdown]
# ## Going further
#
# - **More sizes**: `-p sizes "128,512,2048,8192"` (slow on a CPU above 4096) and watch which branches split when.
# - **Another branch**: `-p branch food` draws that family; every branch's split is in the table of section 2.
# - **Absorption sweep**: `workbook sweep 05 -p k 16,32,64 --fast` and compare `absorbed_by_size`: sparser codes
#   should absorb more.
# - **Depth-first, deeper**: train a grandchild on a child latent's region; at what depth does the region become
#   too small to train on?
# - **Open question**: our topic latents fire on part of a paragraph only (recall about 0.3). Is that the model
#   representing topics intermittently, or the SAE failing to track them? A linear probe on the same activations is
#   one way to tell.
