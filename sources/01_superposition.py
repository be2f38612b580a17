# %% [markdown]
# # 01 · Toy Models of Superposition
#
# **Promise.** By the end you can train hundreds of tiny models in one batched run and read off
# from their weights when, and how, a network stores more features than it has dimensions:
# the pentagon, the phase diagram, the sticky 1/2, polysemantic neurons and computation in superposition.
#
# **Paper.** Elhage et al. (2022), *Toy Models of Superposition*, transformer-circuits.pub/2022/toy_model.
# **Prerequisites.** PyTorch basics; no earlier notebook. **Runtime on a 2-core CPU:** default about 1.5 minutes,
# fast mode (`fast=True`) about 25 s.
#
# The setup in one line: features $x_i$ are 0 with probability $S$ (the *sparsity*) and uniform on $[0, 1]$ otherwise;
# a model squeezes $n$ features into $m < n$ dimensions and must reconstruct them, with loss
# $\sum_i I_i (x_i - x'_i)^2$ for feature importances $I_i$. Throughout we write *density* $= 1 - S$.
#
# | model | formula |
# |---|---|
# | linear | $x' = W^\top W x + b$ |
# | ReLU output | $x' = \mathrm{ReLU}(W^\top W x + b)$ |
# | hidden ReLU (privileged basis) | $h = \mathrm{ReLU}(W x)$, $x' = \mathrm{ReLU}(W^\top h + b)$ |
# | abs (computation) | $h = \mathrm{ReLU}(W_1 x)$, $y' = \mathrm{ReLU}(W_2 h + b)$, target $y = \lvert x \rvert$ |
#
# Column $W_i$ of $W$ is where feature $i$ lives in the hidden space; $\lVert W_i \rVert \approx 1$ means it is represented.

# %% tags=["parameters"]
seed: int = 0  # 0 <= seed < 2**32; seeds model initialisation and data; the same seed gives the same numbers
fast: bool = False  # smaller models and fewer steps (about 1 minute); every section and check still runs
steps: int = 2000  # 100 <= steps <= 100_000; AdamW steps per batched run (fast: at most 1000)
n_seeds: int = 5  # 1 <= n_seeds <= 20; models per setting; the best is kept, as in the paper (fast: <= 3)
density_min: float = 0.05  # 0.001 <= density_min <= 0.05; sparsest density of the 5 -> 2 sweep
importance_decay_5to2: float = 0.9  # 0.5 <= importance_decay_5to2 <= 1.0; importance of feature i is decay**i in the 5 -> 2 model and explorer (checks assume 0.8 to 0.9)
phase_points: int = 20  # 3 <= phase_points <= 40; grid points per axis of the 2 -> 1 phase diagram (fast: at most 8)
phase_density_min: float = 0.01  # 0.001 <= phase_density_min <= 0.05; lowest density of the phase diagram
dims_n_features: int = 400  # 20 <= dims_n_features <= 2000; n of that model, paper: 400 (fast: <= 100)
dims_d_hidden: int = 30  # 2 <= dims_d_hidden <= dims_n_features // 2; m of that model, paper: 30 (fast: at most 10)
dims_inverse_density_max: float = 20.0  # 5.0 <= dims_inverse_density_max <= 1000.0; largest 1/(1-S) of that sweep

# %%
import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp_helpers import check_parameters, record, seed_everything
from interp_helpers.checkers import Exercises
from interp_helpers.checkers import superposition as checks
from interp_helpers.superposition import explorer, figures
from interp_helpers.superposition import toy_models as tm

check_parameters("01", globals())  # the conditions declared in the parameters cell
ex = Exercises("01")
if fast:  # shrink the expensive parts; every section and check still runs
    steps, n_seeds, phase_points = min(steps, 1000), min(n_seeds, 3), min(phase_points, 8)
    dims_n_features, dims_d_hidden = min(dims_n_features, 100), min(dims_d_hidden, 10)
    dims_inverse_density_max = min(dims_inverse_density_max, 10.0)
seed_everything(seed)  # nothing below uses global randomness; each run gets torch.Generator().manual_seed(seed)

# %% [markdown]
# ## 1 · Five features in two dimensions
#
# **Why this matters.** A linear model with 2 dimensions keeps the 2 most important features and drops the rest.
# The paper's opening figure shows that a ReLU-output model does the same only while features are dense; as they
# get sparser it packs in more and more features, ending with all five as a regular pentagon.
# This is superposition in its smallest form.
#
# **Build it.** Three pieces make a toy model experiment: the sparse data, the model and the loss. The package trains
# hundreds of models at once by giving every tensor a leading `instance` axis (one model per density, importance and
# seed), and puts the batch axis last: `x` has shape `(instance, feature, batch)`. Write the three pieces with those
# shapes; below, we run them on the trained models.

# %% [markdown]
# ### Exercise 1.1 · Sparse features
#
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 10 minutes
#
# Write `generate_sparse_features`. `feature_probability` has shape `(instance, feature)` and holds each feature's
# density $p = 1 - S$. Return `x` of shape `(instance, feature, batch_size)` where every entry is, independently,
# 0 with probability $1 - p$ and otherwise drawn uniformly from $[0, 1]$. Take every random number from `generator`
# (`torch.rand(..., generator=generator)`), so that the same seed gives the same batch.
#
# <details><summary>Hint</summary>
#
# Draw two uniform tensors of the output's shape: one decides whether each entry is on (`u < p`, true with
# probability p), the other gives its value. `feature_probability.unsqueeze(-1)` broadcasts p over the batch axis.
# Do not reuse the first draw as the value: given `u < p` it is uniform on $[0, p]$, not $[0, 1]$.
#
# </details>


# %%
def generate_sparse_features(
    feature_probability: Float[Tensor, "instance feature"], batch_size: int, generator: torch.Generator
) -> Float[Tensor, "instance feature batch"]:
    """Each entry 0 with probability 1 - p, else U[0, 1]; all randomness from `generator`."""
    # BEGIN SOLUTION
    shape = (*feature_probability.shape, batch_size)
    on = torch.rand(shape, generator=generator) < feature_probability.unsqueeze(-1)
    return torch.rand(shape, generator=generator) * on
    # END SOLUTION


generate_sparse_features = ex.check(checks.generate_sparse_features, generate_sparse_features)

# %% [markdown]
# ### Exercise 1.2 · The ReLU-output model
#
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵🔵⚪ · about 10 minutes
#
# Write `relu_output_model`: $x' = \mathrm{ReLU}(W^\top W x + b)$ for a stack of independent models.
# `W` has shape `(instance, d_hidden, feature)` (column $W_i$ is feature $i$'s direction in the hidden space),
# `b` has shape `(instance, feature)` and `x` has shape `(instance, feature, batch)`; return $x'$ with the shape of `x`.
# Instance $k$ uses only `W[k]` and `b[k]`. The hidden layer $h = W x$ is linear: the only ReLU is on the output.
#
# <details><summary>Hint</summary>
#
# `@` on 3-D tensors is a matmul per instance: `W @ x` is `(instance, d_hidden, batch)`, and
# `W.transpose(-1, -2) @ h` maps back to `(instance, feature, batch)`. Add `b.unsqueeze(-1)`, which has one entry
# per feature and broadcasts over the batch, then `torch.relu`.
#
# </details>


# %%
def relu_output_model(
    W: Float[Tensor, "instance d_hidden feature"],
    b: Float[Tensor, "instance feature"],
    x: Float[Tensor, "instance feature batch"],
) -> Float[Tensor, "instance feature batch"]:
    """x' = ReLU(W^T W x + b), each instance with its own W and b."""
    # BEGIN SOLUTION
    h = W @ x  # (instance, d_hidden, batch): the compressed representation
    return torch.relu(W.transpose(-1, -2) @ h + b.unsqueeze(-1))
    # END SOLUTION


relu_output_model = ex.check(checks.relu_output_model, relu_output_model)

# %% [markdown]
# ### Exercise 1.3 · The importance-weighted loss
#
# > **Difficulty** 🔴⚪⚪⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 5 minutes
#
# Write `importance_weighted_loss`: the paper's loss $\sum_i I_i (x_i - x'_i)^2$, averaged over the batch, one
# number per instance. `x_hat` and `x` have shape `(instance, feature, batch)`, `importance` has shape
# `(instance, feature)`; return shape `(instance,)`.
#
# <details><summary>Hint</summary>
#
# Square the error, multiply by `importance.unsqueeze(-1)`, then `.sum(-2)` over features and `.mean(-1)` over the batch.
#
# </details>


# %%
def importance_weighted_loss(
    x_hat: Float[Tensor, "instance feature batch"],
    x: Float[Tensor, "instance feature batch"],
    importance: Float[Tensor, "instance feature"],
) -> Float[Tensor, " instance"]:
    """sum_i I_i (x_i - x'_i)^2, summed over features and averaged over the batch."""
    # BEGIN SOLUTION
    weighted = (x_hat - x).pow(2) * importance.unsqueeze(-1)
    return weighted.sum(dim=-2).mean(dim=-1)
    # END SOLUTION


importance_weighted_loss = ex.check(checks.importance_weighted_loss, importance_weighted_loss)

# %% [markdown]
# **Do it.** One batched run trains `n_seeds` models at each of six densities (log-spaced from 1 to `density_min`)
# and keeps the lowest-loss seed of each.

# %%
densities = tm.log_grid(1.0, density_min, 6)
importance_5 = tm.importance_decay(5, importance_decay_5to2)[0]
cfg = tm.ToyModelConfig(n_features=5, d_hidden=2, kind="relu_output", steps=steps)
g = torch.Generator().manual_seed(seed)
five = tm.train_density_sweep(cfg, densities, importance_5, g, n_seeds=n_seeds)

n_represented = tm.features_represented(five.W)  # features with ||W_i|| > 0.5
gaps = tm.represented_angles(five.W[-1])  # angles between neighbouring features, sparsest model
print("density:             ", [round(d, 3) for d in densities.tolist()])
print("features represented:", n_represented.tolist())
print("neighbour angles at the sparsest density (degrees):", [round(a, 1) for a in gaps.tolist()])

# %% [markdown]
# Your three functions on the six trained models: a fresh batch at each model's density, its reconstruction and its
# loss. They agree with the package's final loss up to sampling noise, once that is multiplied by 5: the package's
# training loss also averages over the features, which scales the loss but does not move its optimum.

# %%
g = torch.Generator().manual_seed(seed)
x = generate_sparse_features(densities.unsqueeze(-1).expand(-1, 5), 8192, g)  # one row per trained model
loss_5 = importance_weighted_loss(
    relu_output_model(five.W, five.b_final, x), x, importance_5.expand(len(densities), -1)
)
print("loss, your functions:        ", [round(v, 4) for v in loss_5.tolist()])
print("loss, package (x 5 features):", [round(v, 4) for v in (5 * five.loss).tolist()])

# %% [markdown]
# **Exercise (optional).** Set `importance_decay_5to2 = 1.0` (all features equally important) and rerun this section.
# At density 1, which features win now, and why is the answer different for every seed? (The first check at the end
# then fails, on purpose: with equal importances the dense optimum is not unique, so "2 features" is no longer the claim.)
#
# **Look.** Each arrow is a feature's column $W_i$; brighter colours are more important features.

# %%
titles = [f"density {d:.3f}<br>{k} of 5 represented" for d, k in zip(densities.tolist(), n_represented.tolist())]
figures.feature_geometry_panels(
    five.W, importance_5, titles, "5 features in 2 dimensions: sparser features share the plane, ending as a pentagon"
).show()

# %% [markdown]
# **Takeaway.** Dense features get an orthogonal pair (exactly what a linear model would do); sparser ones add an
# antipodal partner, then a square, then a pentagon with neighbours about 72° apart, as in the paper's intro figure.
# Our intermediate steps (3 and 4 features) come at slightly different densities than the paper's, and which
# less-important feature is dropped can vary by seed: several arrangements are nearly equally good.

# %%
record("five_to_two_densities", densities.tolist())
record("five_to_two_represented", n_represented.tolist())
record("pentagon_max_angle_error", (gaps - 72.0).abs().max().item() if len(gaps) == 5 else 180.0, unit="degrees")

# %% [markdown]
# ## 2 · Twenty features in five dimensions
#
# **Why this matters.** With more features we can watch superposition grow feature by feature. The paper compares a
# linear model with ReLU-output models at increasing sparsity, importance $I_i = 0.7^i$, and plots $W^\top W$
# (which features overlap) next to each feature's norm coloured by how much it interferes with the others.
#
# **Do it.**

# %%
densities_20 = torch.tensor([1.0, 0.3, 0.1, 0.03, 0.01, 0.003])  # paper: S = 0, 0.7, 0.9, 0.97, 0.99, 0.997
importance_20 = tm.importance_decay(20, 0.7)[0]
g = torch.Generator().manual_seed(seed)
linear_cfg = tm.ToyModelConfig(20, 5, kind="linear", steps=steps)
relu_cfg = tm.ToyModelConfig(20, 5, kind="relu_output", steps=steps)
linear = tm.train_density_sweep(linear_cfg, densities_20[:1], importance_20, g, n_seeds=n_seeds)
relu = tm.train_density_sweep(relu_cfg, densities_20, importance_20, g, n_seeds=n_seeds)

W_20 = torch.cat([linear.W, relu.W])  # panel 0: linear; then ReLU output, dense -> sparse
n_represented_20 = tm.features_represented(W_20)
dims_per_feature_20 = tm.dimensions_per_feature(W_20)
print("features represented (linear, then ReLU by density):", n_represented_20.tolist())

# %% [markdown]
# **Look.** Top: $W^\top W$ (blue = same direction, red = opposite, i.e. antipodal pairs). Bottom: $\lVert W_i \rVert$ per feature,
# coloured by interference $\sum_{j \ne i} (\hat W_i \cdot W_j)^2$ (dark = a dimension to itself, yellow = shared).

# %%
titles = ["linear, density 1"] + [f"ReLU, density {d:g}" for d in densities_20.tolist()]
figures.superposition_panels(
    W_20, titles, "20 features in 5 dimensions: sparser data, more features represented, more of them interfering"
).show()

# %% [markdown]
# **Takeaway.** The linear model and the dense ReLU model both keep exactly the 5 most important features on
# orthogonal directions. As density drops the ReLU model represents more features, and the newly added ones
# interfere (yellow bars, off-diagonal blocks). The paper gets close to all 20 at $S = 0.999$; we stop at
# density 0.003 and a shorter schedule, so fewer of the least important features make it in.

# %%
record("twenty_to_five_represented", n_represented_20.tolist())
record("twenty_to_five_dims_per_feature", [round(v, 4) for v in dims_per_feature_20.tolist()])

# %% [markdown]
# ## 3 · The 2 → 1 phase diagram
#
# **Why this matters.** Whether a feature is stored in superposition is a discrete choice that flips at sharp
# boundaries, like a phase change. The smallest case: two features, one dimension. Feature 1 has importance 1; the
# "extra" feature 2 has relative importance from 0.1 to 10; both share the density. The extra feature is either
# **not learned** ($W \approx [1, 0]$), gets a **dedicated** dimension ($W \approx [0, 1]$), or both share it
# **antipodally** ($W \approx [1, -1]$).
#
# **Do it.** Every (density, importance, seed) is one instance of a single batched run; the paper trains several
# models per point and keeps the best, and so do we.

# %%
phase_density = tm.log_grid(1.0, phase_density_min, phase_points)
phase_importance = tm.log_grid(0.1, 10.0, phase_points)
g = torch.Generator().manual_seed(seed)
diagram = tm.train_phase_diagram(phase_density, phase_importance, g, n_seeds=n_seeds, steps=steps, batch_size=256)
print("best model per point:", tuple(diagram.W.shape), "(density, importance, d_hidden, feature)")
print(f"single runs stuck in another phase than their point's best: {diagram.stuck_fraction:.1%}")

# %% [markdown]
# ### Exercise 1.4 · Phases of the 2 → 1 model
#
# > **Difficulty** 🔴🔴🔴⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 15 minutes
#
# Write `classify_phase`: read the phase off the weights of 2 → 1 models. `W` has shape `(*instance, 1, 2)`, any
# number of leading axes (here the (density, importance) grid). Feature $i$ is *represented* when its column norm
# $\lVert W_i \rVert > 0.5$, whatever its sign. Return, per model, an integer index into `tm.PHASES`:
#
# - **0 not learned**: only feature 1 (the important one, index 0) is represented;
# - **1 dedicated**: only the extra feature (index 1) is represented;
# - **2 antipodal**: both are represented and point opposite ways (cosine below -0.5; in one dimension, opposite signs);
# - **3 other**: anything else (neither represented, or both with the same sign).
#
# <details><summary>Hint</summary>
#
# `W.norm(dim=-2) > 0.5` gives a boolean of shape `(*instance, 2)`. Start from
# `torch.full(shape, 3, dtype=torch.long)` and overwrite it with boolean masks; `W[..., 0]` is column 0 of every
# model, so `torch.cosine_similarity(W[..., 0], W[..., 1], dim=-1)` gives the cosine.
#
# </details>


# %%
def classify_phase(W: Float[Tensor, "*instance d_hidden feature"]) -> Int[Tensor, "*instance"]:
    """Phase of each 2 -> 1 model (d_hidden = 1, feature = 2) as an index into tm.PHASES."""
    # BEGIN SOLUTION
    on = W.norm(dim=-2) > 0.5  # (*instance, 2): which features are represented
    cos = torch.cosine_similarity(W[..., 0], W[..., 1], dim=-1)
    phase = torch.full(on.shape[:-1], 3, dtype=torch.long)
    phase[on[..., 0] & ~on[..., 1]] = 0
    phase[~on[..., 0] & on[..., 1]] = 1
    phase[on[..., 0] & on[..., 1] & (cos < -0.5)] = 2
    return phase
    # END SOLUTION


classify_phase = ex.check(checks.classify_phase, classify_phase)

# %%
phase = classify_phase(diagram.W)  # (density, importance): the phase of the best model at each point
phase_share = {name: (phase == k).float().mean().item() for k, name in enumerate(tm.PHASES)}
print({name: round(share, 3) for name, share in phase_share.items()})

# %% [markdown]
# **Look.**

# %%
figures.phase_diagram_figure(
    phase,
    phase_density,
    phase_importance,
    "2 features, 1 dimension: superposition (red) takes over as features get sparse",
).show()

# %% [markdown]
# **Takeaway.** Dense data: the more important feature owns the dimension (grey left of ratio 1, blue right of it)
# and there is no superposition at all. Sparse data: antipodal superposition, over a range of importance ratios that
# widens as density falls, as in the paper's empirical diagram. About a fifth of single runs end in a worse local
# minimum (a feature whose weight starts with the wrong sign tends to die on the way to $-1$), which is why keeping
# the best of several seeds matters; a remaining speckle means every seed at that point got stuck.

# %%
record("phase_share", [round(phase_share[name], 4) for name in tm.PHASES])  # not learned, dedicated, antipodal, other
record("phase_antipodal_share", phase_share["antipodal"])
record("phase_stuck_fraction", diagram.stuck_fraction)

# %% [markdown]
# ## 4 · Dimensions per feature: the sticky 1/2
#
# **Why this matters.** Superposition is not a smooth squeeze. Counting how many dimensions each feature gets,
# $D^* = m / \lVert W \rVert_F^2$, the paper finds plateaus: at 1 (every feature its own dimension) and at 1/2
# (features paired antipodally) over a whole range of sparsities. Per feature,
# $D_i = \lVert W_i \rVert^2 / \sum_j (\hat W_i \cdot W_j)^2$ clusters at the fractions of regular geometries:
# 3/4 tetrahedron, 2/3 triangle, 1/2 antipodal pair, 2/5 pentagon, 3/8 square antiprism.
#
# **Do it.** All features equally important, one model per density.

# %%
inverse_density = tm.log_grid(1.0, dims_inverse_density_max, 10 if fast else 14)
cfg = tm.ToyModelConfig(dims_n_features, dims_d_hidden, kind="relu_output", steps=steps, batch_size=256)
g = torch.Generator().manual_seed(seed)
dims = tm.train_density_sweep(cfg, 1.0 / inverse_density, torch.ones(dims_n_features), g)
print("trained", tuple(dims.W.shape), "(density, d_hidden, feature)")

# %% [markdown]
# ### Exercise 1.5 · Dimensions per feature
#
# > **Difficulty** 🔴⚪⚪⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 5 minutes
#
# Write `dimensions_per_feature`: $D^* = m / \lVert W \rVert_F^2$ for every model in a stack. `W` has shape
# `(*instance, d_hidden, feature)` with any number of leading axes (none for a single model); $m$ is `d_hidden` and
# $\lVert W \rVert_F^2$ is the sum of the squares of all entries of one model's `W`. Return shape `(*instance)`.
#
# <details><summary>Hint</summary>
#
# `W.pow(2).sum(dim=(-2, -1))` sums each model's squares whatever the leading axes; $m$ is `W.shape[-2]`.
#
# </details>


# %%
def dimensions_per_feature(W: Float[Tensor, "*instance d_hidden feature"]) -> Float[Tensor, "*instance"]:
    """D* = m / ||W||_F^2 per model: 1 when every represented feature has its own dimension, 1/2 for antipodal pairs."""
    # BEGIN SOLUTION
    d_hidden = W.shape[-2]
    return d_hidden / W.pow(2).sum(dim=(-2, -1))
    # END SOLUTION


dimensions_per_feature = ex.check(checks.dimensions_per_feature, dimensions_per_feature)

# %% [markdown]
# ### Exercise 1.6 · Per-feature dimensionality
#
# > **Difficulty** 🔴🔴🔴⚪⚪ · **Importance** 🔵🔵🔵🔵⚪ · about 15 minutes
#
# Write `feature_dimensionality`: $D_i = \lVert W_i \rVert^2 / \sum_j (\hat W_i \cdot W_j)^2$ for every feature
# of every model, where $\hat W_i = W_i / \lVert W_i \rVert$ and the sum runs over all features $j$, $j = i$
# included. `W` has shape `(*instance, d_hidden, feature)`; return shape `(*instance, feature)`. A dead feature (an
# all-zero column) gets $D_i = 0$, not nan. Sanity checks: an antipodal pair gives 1/2 each, a pentagon 2/5, and
# scaling `W` changes nothing.
#
# <details><summary>Hint</summary>
#
# Three lines: normalise the columns with `W / W.norm(dim=-2, keepdim=True).clamp(min=1e-8)` (the clamp keeps a dead
# column at 0); `W_hat.transpose(-1, -2) @ W` has entry `[..., i, j]` $= \hat W_i \cdot W_j$; square, sum over the
# last axis, and divide $\lVert W_i \rVert^2$ by it (clamp the denominator too, for dead features).
#
# </details>


# %%
def feature_dimensionality(W: Float[Tensor, "*instance d_hidden feature"]) -> Float[Tensor, "*instance feature"]:
    """D_i = ||W_i||^2 / sum_j (W_hat_i . W_j)^2: the share of a dimension feature i owns (0 for a dead feature)."""
    # BEGIN SOLUTION
    norms = W.norm(dim=-2)  # (*instance, feature)
    W_hat = W / norms.unsqueeze(-2).clamp(min=1e-8)  # a dead column stays 0
    overlaps = (W_hat.transpose(-1, -2) @ W).pow(2)  # [..., i, j] = (W_hat_i . W_j)^2
    return norms.pow(2) / overlaps.sum(dim=-1).clamp(min=1e-12)
    # END SOLUTION


feature_dimensionality = ex.check(checks.feature_dimensionality, feature_dimensionality)

# %%
D_star = dimensions_per_feature(dims.W)  # one number per density
D_i = feature_dimensionality(dims.W)  # one number per feature per density
represented = tm.feature_norms(dims.W) > 0.5
half = tm.plateau(inverse_density, D_star, level=0.5, tol=0.03)  # widest run of points with |D* - 1/2| <= 0.03
print("1/(1-S):", [round(v, 2) for v in inverse_density.tolist()])
print("D*:     ", [round(v, 3) for v in D_star.tolist()])
print("plateau at 1/2 from 1/(1-S) =", half)

# %% [markdown]
# **Look.** The black line is $D^*$; each faint dot is one represented feature's $D_i$.

# %%
figures.dimensions_per_feature_figure(
    inverse_density,
    D_star,
    D_i,
    represented,
    f"{dims_n_features} features in {dims_d_hidden} dimensions: D* sticks at 1, then at 1/2 (antipodal pairs)",
).show()

# %% [markdown]
# **Takeaway.** $D^*$ stays at 1 while features are dense, drops, and then sticks at 1/2 over a range of sparsities
# where every represented feature sits in an antipodal pair ($D_i = 1/2$), as in the paper. Beyond the plateau we see
# some pentagon (2/5) and square-antiprism (3/8) features but most $D_i$ fall between the named fractions; the paper's
# longer training shows sharper clusters. Fast mode uses a 100 → 10 model, where the plateau is narrower.

# %%
lo, hi = half if half else (0.0, -1.0)
on_half = (inverse_density >= lo) & (inverse_density <= hi)  # the densities on the 1/2 plateau
near_half = ((D_i[on_half] - 0.5).abs() <= 0.03) & represented[on_half]
record("dims_per_feature", [round(v, 4) for v in D_star.tolist()])
record("half_plateau_inverse_density", list(half) if half else [])
record("half_plateau_share_of_features_at_half", (near_half.sum() / represented[on_half].sum().clamp(min=1)).item())

# %% [markdown]
# ## 5 · Polysemantic neurons
#
# **Why this matters.** In the models above any rotation of the hidden space is as good as another, so "neurons"
# mean nothing. Put a ReLU on the hidden layer and the neuron basis becomes privileged: now we can ask whether a
# neuron stands for one feature (monosemantic) or several (polysemantic). The paper finds that sparsity, not the
# architecture, decides.
#
# **Do it.** 10 features, 5 ReLU neurons, importance $0.75^i$.

# %%
neuron_densities = torch.tensor([1.0, 0.3, 0.1, 0.03, 0.01])
importance_10 = tm.importance_decay(10, 0.75)[0]
cfg = tm.ToyModelConfig(10, 5, kind="hidden_relu", steps=steps)
g = torch.Generator().manual_seed(seed)
neurons = tm.train_density_sweep(cfg, neuron_densities, importance_10, g, n_seeds=n_seeds)

features_per_neuron = tm.polysemanticity(neurons.W)  # features with weight >= half the neuron's strongest
polysemantic_share = (features_per_neuron >= 2).float().mean(-1)
print("features per neuron, by density:", features_per_neuron.tolist())
print("share of polysemantic neurons:  ", [round(v, 2) for v in polysemantic_share.tolist()])

# %% [markdown]
# **Look.** One bar per neuron, stacked by feature (positive weights up, negative down): a neuron with a single
# colour above zero is monosemantic. Negative weights only keep a neuron quiet, since inputs are non-negative.

# %%
titles = [
    f"density {d:g}<br>{s:.0%} polysemantic" for d, s in zip(neuron_densities.tolist(), polysemantic_share.tolist())
]
figures.polysemantic_neurons_figure(
    neurons.W, importance_10, titles, "Hidden ReLU neurons: one feature each when dense, several each when sparse"
).show()

# %% [markdown]
# **Takeaway.** With dense features each neuron is dominated by one of the five most important features; as features
# get sparser, neurons take on two to four features each: polysemanticity appears because sparsity makes
# superposition pay, as the paper argues. Our dense neurons are less clean than the paper's: some carry a second
# feature at just over half the main weight (dense positive inputs make the hidden ReLU nearly linear, so a slightly
# rotated basis costs little), so the dense share is not always 0.

# %%
record("polysemantic_share", [round(v, 4) for v in polysemantic_share.tolist()])
record("features_per_neuron_mean", [round(v, 3) for v in features_per_neuron.float().mean(-1).tolist()])

# %% [markdown]
# ## 6 · Computation in superposition
#
# **Why this matters.** Superposition is not only storage. The paper trains $h = \mathrm{ReLU}(W_1 x)$,
# $y' = \mathrm{ReLU}(W_2 h + b)$ to compute $y = |x|$ for inputs in $[-1, 1]$. The textbook circuit spends two neurons
# per feature, $|x| = \mathrm{ReLU}(x) + \mathrm{ReLU}(-x)$, so $m$ neurons compute at most $m/2$ features that way.
# Sparse features let the model compute more.
#
# **Do it.** The basic model (3 features, 6 neurons, dense), then 20 features on 10 neurons with importance $0.8^i$
# across densities (the paper's larger example is 100 features on 40 neurons).

# %%
g = torch.Generator().manual_seed(seed)
basic_cfg = tm.ToyModelConfig(3, 6, kind="abs", steps=steps)
basic = tm.train_density_sweep(basic_cfg, torch.tensor([1.0]), torch.ones(3), g, n_seeds=n_seeds)
abs_densities = torch.tensor([1.0, 0.3, 0.1, 0.03, 0.01])
cfg = tm.ToyModelConfig(20, 10, kind="abs", steps=steps)
computed = tm.train_density_sweep(cfg, abs_densities, tm.importance_decay(20, 0.8)[0], g, n_seeds=n_seeds)

n_computed = tm.features_represented(computed.W)  # features whose input weights have norm > 0.5
n_pairs = tm.abs_pairs(computed.W)  # features with a private +/- pair of monosemantic neurons
print("basic model: features with a +/- neuron pair:", tm.abs_pairs(basic.W[0]).item(), "of 3")
print("20 -> 10, by density: features computed", n_computed.tolist(), "| with a private pair", n_pairs.tolist())

# %% [markdown]
# **Look.**

# %%
figures.abs_computation_figure(
    basic.W[0],
    abs_densities,
    n_computed,
    n_pairs,
    d_hidden=10,
    title="Computing |x|: +/- neuron pairs when dense; more features than pairs, sharing neurons, when sparse",
).show()

# %% [markdown]
# **Takeaway.** The basic model builds exactly the textbook circuit: each feature gets one neuron for $x > 0$ and one
# for $x < 0$. With 20 features on 10 neurons, dense data gives at most 5 features (the $m/2$ limit), each with its
# own pair; sometimes only 4, when a run spends a spare neuron on an important feature instead of a fifth pair.
# Sparse data gives more than twice as many features computed, with polysemantic neurons and few private pairs:
# computation in superposition. We count a feature as computed from its input weights only; the paper also
# inspects the output side.

# %%
record("abs_basic_pairs", tm.abs_pairs(basic.W[0]).item())
record("abs_features_computed", n_computed.tolist())
record("abs_private_pairs", n_pairs.tolist())

# %% [markdown]
# ## 7 · Explore: density and importance
#
# Drag a slider and release it: the 5 → 2 model retrains (best of 4 seeds, about 2 s) and redraws.
# Try to find the density where the fifth feature joins, and how it moves as importances become unequal.
# (Interactive only in a running kernel; the exported HTML may show nothing here.)

# %%
explorer.superposition_explorer(density=0.1, importance_decay=importance_decay_5to2, seed=seed)

# %%
record("exercises_solved", ex.summary())

# %% [markdown]
# # Checks
#
# The claims above, asserted. They hold for seeds 0 and 1 in default and fast mode; the thresholds are stated next to
# each and were not tuned to make a particular seed pass.

# %%
NOT_LEARNED, DEDICATED, ANTIPODAL = (tm.PHASES.index(p) for p in ("not learned", "dedicated", "antipodal"))

# Paper intro figure, 5 -> 2 ReLU output: dense -> 2 features; density <= 0.05 -> all 5 as a pentagon (72 +- 10 deg).
assert n_represented[0] == 2, f"density 1 represents {int(n_represented[0])} features, expected 2"
assert densities[-1] <= 0.05 + 1e-6 and n_represented[-1] == 5, (
    f"sparsest model represents {int(n_represented[-1])} of 5"
)
assert (gaps - 72.0).abs().max() <= 10.0, f"pentagon angles {gaps.tolist()} are not within 72 +- 10 degrees"

# Phase diagram (paper's 2 -> 1 figure): dense + unimportant -> not learned; dense + important -> dedicated;
# no superposition at density 1; sparse (density <= 0.05) -> antipodal. At least 90% / 90% / 80% of those cells.
dense, sparse = phase_density >= 0.5, phase_density <= 0.05
low, high = phase_importance <= 0.3, phase_importance >= 3.0
assert (phase[dense][:, low] == NOT_LEARNED).float().mean() >= 0.9, "dense, unimportant: expected not learned"
assert (phase[dense][:, high] == DEDICATED).float().mean() >= 0.9, "dense, important: expected dedicated"
assert (phase[0] != ANTIPODAL).all(), "density 1 should show no superposition"
assert (phase[sparse] == ANTIPODAL).float().mean() >= 0.8, "sparse: expected antipodal superposition"

# %%
# Dimensions per feature: D* = 1 when dense, and sticky at 1/2: within 0.03 of 1/2 over a run of consecutive
# densities spanning at least a factor 1.25 in 1/(1-S) (a curve merely passing 1/2 leaves the band in one step).
assert abs(D_star[0].item() - 1.0) <= 0.03, f"D* at density 1 is {D_star[0].item():.3f}, expected 1"
assert half is not None and half[1] / half[0] >= 1.25, f"no 1/2 plateau: D* = {D_star.tolist()}"

# Polysemantic neurons: more features per neuron at the sparsest density than at density 1.
assert features_per_neuron[-1].float().mean() > features_per_neuron[0].float().mean()

# Computation in superposition (paper's abs models): the basic model builds 3 +/- pairs; dense 20 -> 10 computes at
# most m/2 = 5 features, each with its own pair (no superposition); the sparsest computes more than m/2.
assert tm.abs_pairs(basic.W[0]) == 3, "the basic abs model should give each of 3 features a +/- neuron pair"
assert n_computed[0] <= 5 and n_pairs[0] == n_computed[0], (
    f"dense: {int(n_computed[0])} computed, {int(n_pairs[0])} pairs"
)
assert n_computed[-1] > 5, f"sparse abs model computes only {int(n_computed[-1])} features"
print("all checks passed")

# %% [markdown]
# ## Going further
#
# - **Sweep a parameter across reruns:** `workbook sweep 01 -p seed 0,1,2` shows which numbers are stable;
#   `workbook sweep 01 -p importance_decay_5to2 0.8,0.85,0.9` moves the densities where features join (closer to 1
#   the dense 5 -> 2 optimum stops being unique and its check fails);
#   `workbook sweep 01 -p dims_d_hidden 10,20,30` changes where the 1/2 plateau sits. Results land in `results.csv`.
# - **Bigger and longer:** the paper's 80 → 20 model with $I_i = 0.9^i$ and 10,000 steps; in the package,
#   `tm.train_density_sweep(tm.ToyModelConfig(80, 20, steps=10_000), ...)` with `progress=True` shows a bar.
# - **Speed:** `python benchmarks/bench_superposition.py` times the batched phase diagram against one model at a time.
# - **Open questions:** why do features form exactly these geometries (uniform polytopes) and not others; how
#   superposition interacts with correlated features (the paper's later sections); and whether the features of real
#   language models sit in superposition the same way, which sparse autoencoders (a later notebook) try to answer.
