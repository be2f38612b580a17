# %% [markdown]
# # 07 · Linear probes and their limits, scored against the truth
#
# **Promise.** By the end you can train logistic-regression and mass-mean probes layer by layer, and say what their
# accuracy does and does not mean: you will compare every probe with the embeddings, with a randomly initialised copy
# of the model and with a control task; watch a probe fit random labels perfectly; find where a real model represents
# the truth of simple statements, test whether it *uses* that direction; and watch an unsupervised truth probe (CCS)
# find truth, then a distractor word instead.
#
# **Papers.** Alain & Bengio (2016), *Understanding intermediate layers using linear classifier probes*; Hewitt &
# Liang (2019), *Designing and Interpreting Probes with Control Tasks*; Cover (1965) on how many points a hyperplane
# can shatter; Marks & Tegmark (2023), *The Geometry of Truth* (mass-mean probes); Burns et al. (2022), *Discovering
# Latent Knowledge in Language Models Without Supervision* (CCS); Farquhar et al. (2023), *Challenges with
# unsupervised LLM knowledge discovery*.
# **Prerequisites.** 00 (the corpus and its labels), 04 (SAEs, for the last section), 06 (the real model).
# **Runtime on a 2-core CPU:** see the README's table (fast mode is what the tests run). The first load of the real
# model ever converts it (about a minute, once).
#
# **Models.** The zoo model `zoo-gelu-4l` (4 layers, d_model 128), whose corpus labels every token with the latent
# variables that produced it; SmolLM2-135M-Instruct with **4-bit weights** (`load_model("smollm2-135m-instruct-q4")`,
# 30 layers, d_model 576) for statements a real model can know; `zoo-gelu-1l-a` and a TopK SAE for the last section.

# %% tags=["parameters"]
seed: int = (
    0  # 0 <= seed < 2**32; statements' false categories, splits, control labels, CCS starts, the random twin, the SAE
)
fast: bool = (
    False  # fewer corpus rows, random-label points, steering runs and CCS layers; every section and check still runs
)
model_name: str = "zoo-gelu-4l"  # model_name in ("zoo-gelu-4l", "zoo-gelu-1l-a", "zoo-gelu-1l-b", "zoo-attn-only-2l"); the zoo model probed in sections 1-3
n_rows: int = 64  # 8 <= n_rows <= 1024; held-out rows of 128 tokens per genre for the zoo probes (fast: at most 24)
weight_decay: float = 0.01  # 0 < weight_decay <= 100; L2 penalty of every logistic probe, on standardised activations
ccs_dims: int = 16  # 1 <= ccs_dims <= 96; principal components CCS searches in
sae_steps: int = 600  # 50 <= sae_steps <= 20_000; training steps of the TopK SAE of section 6 (fast: at most 200)

# %%
from functools import partial

import torch
from IPython.display import display
from jaxtyping import Float, Int
from torch import Tensor

from interp_helpers import check_parameters, record, seed_everything
from interp_helpers.checkers import Exercises
from interp_helpers.checkers import probes as checks
from interp_helpers.core.validation import stream_seed
from interp_helpers.figures import plots
from interp_helpers.modelzoo import corpus
from interp_helpers.modelzoo.corpus_view import html_table
from interp_helpers.modelzoo.models import load_model
from interp_helpers.probes import ccs, collect, figures, linear, statements, steering, versus_sae

check_parameters("07", globals())  # the conditions declared in the parameters cell
ex = Exercises("07")
if fast:
    n_rows, sae_steps = min(n_rows, 24), min(sae_steps, 200)
generator = seed_everything(seed)
torch.set_grad_enabled(False)
model = load_model(model_name)
hook_names = collect.resid_hook_names(model.cfg.n_layers)  # the embedding, then every block's output
sites = ["embed"] + [f"L{layer}" for layer in range(model.cfg.n_layers)]

# %% [markdown]
# ## 1 · Two probes
#
# **Why this matters.** A probe asks "can this label be read off these activations with a linear map?". It is the
# first tool most people reach for, because it is cheap and its answer is a number. Its two common forms differ in
# what they trust: logistic regression finds the best separating direction the data allow (and, as section 3 shows,
# it can find one that means nothing); the mass-mean probe takes the line between the two class means, with no
# training at all.
#
# We start with a label whose truth we know exactly: whether a base64 token belongs to a blob that decodes to
# printable ASCII (`b64_ascii`), on the zoo model's held-out base64 text. Tokens of one packed row stay on one side
# of the train / test split, so the test rows are unseen documents.

# %%
rows = {genre: collect.genre_rows(model_name, model.tokenizer, genre, n_rows) for genre in corpus.GENRES}
ascii_acts = collect.labelled_resid(model, rows["base64"], "b64_ascii", hook_names, ("random bytes", "ASCII"))
train = ascii_acts.row_split()
print(f"{len(ascii_acts.labels)} base64 tokens, {int(train.sum())} for training; classes {ascii_acts.class_names}")

# %% [markdown]
# ### Exercise 7.1 · Training a logistic-regression probe
#
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵🔵⚪ · about 15 minutes
#
# Write `train_probe(x, y, n_classes, weight_decay)`: from `weight` [d_model, n_classes] and `bias` [n_classes] both
# starting at zero, minimise the mean cross-entropy of `x @ weight + bias` against `y` plus
# `weight_decay / 2 * (weight ** 2).sum()` (the bias is not penalised). `x` is already standardised (each dimension
# centred and scaled on the training rows; `linear.fit_logistic_probe` does that and folds it back into the
# weights). The objective is convex, so any optimiser that converges finds the same probe: full-batch L-BFGS
# converges in tens of steps; Adam at lr 0.1 needs a few hundred.
#
# <details><summary>Hint</summary>
#
# `torch.optim.LBFGS([weight, bias], max_iter=200, line_search_fn="strong_wolfe")` with a `closure` that zeroes the
# gradients, computes the loss, calls `backward()` and returns it; one `opt.step(closure)` runs the whole fit. The
# notebook runs with gradients off: wrap the fit in `with torch.enable_grad():`.
#
# </details>


# %%
def train_probe(
    x: Float[Tensor, "sample d_model"], y: Int[Tensor, " sample"], n_classes: int, weight_decay: float
) -> tuple[Float[Tensor, "d_model n_classes"], Float[Tensor, " n_classes"]]:
    """The minimiser of mean cross-entropy + weight_decay / 2 * ||weight||^2, from zeros."""
    # BEGIN SOLUTION
    weight = torch.zeros(x.shape[1], n_classes, requires_grad=True)
    bias = torch.zeros(n_classes, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=200, tolerance_grad=1e-6, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weight + bias, y) + 0.5 * weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return weight.detach(), bias.detach()
    # END SOLUTION


train_probe = ex.check(checks.train_probe, train_probe)

# %% [markdown]
# ### Exercise 7.2 · The mass-mean probe
#
# > **Difficulty** 🔴⚪⚪⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 5 minutes
#
# Write `mass_mean_direction(x, y)`: the direction `theta = mean(x[y == 1]) - mean(x[y == 0])` (not normalised) and
# the threshold `theta . (mu_0 + mu_1) / 2` as a float, so that `x . theta > threshold` predicts class 1: the point
# halfway between the class means decides.


# %%
def mass_mean_direction(
    x: Float[Tensor, "sample d_model"], y: Int[Tensor, " sample"]
) -> tuple[Float[Tensor, " d_model"], float]:
    """Difference of the class means, and the projection of their midpoint on it."""
    # BEGIN SOLUTION
    mu_1, mu_0 = x[y == 1].mean(0), x[y == 0].mean(0)
    theta = mu_1 - mu_0
    return theta, float(theta @ (mu_0 + mu_1) / 2)
    # END SOLUTION


mass_mean_direction = ex.check(checks.mass_mean_direction, mass_mean_direction)

# %% [markdown]
# **Do it.** Both probes at every probe site of the zoo model, on the same split. The logistic probe is trained in
# torch, by your `train_probe` (full-batch L-BFGS in the reference): the objective is convex and a few thousand rows
# fit in one batch, so it converges in tens of steps with no learning rate to tune, and the weights stay torch tensors
# that section 4's steering hook uses directly. scikit-learn's `LogisticRegression` would give the same probe; it is
# not a workbook dependency.

# %%
fit = partial(linear.fit_logistic_probe, weight_decay=weight_decay, trainer=train_probe)
x_tr, y_tr, x_te, y_te = (
    ascii_acts.acts[train],
    ascii_acts.labels[train],
    ascii_acts.acts[~train],
    ascii_acts.labels[~train],
)
two_probes = {
    "logistic regression": [fit(x_tr[:, i], y_tr, 2).accuracy(x_te[:, i], y_te) for i in range(len(sites))],
    "mass-mean": [
        linear.mass_mean_probe(x_tr[:, i], y_tr, mass_mean_direction).accuracy(x_te[:, i], y_te)
        for i in range(len(sites))
    ],
}
figures.by_layer(
    two_probes, sites, title="Is this base64 blob ASCII? Readable after the first layer, not from the token alone",
    chance=linear.majority_accuracy(ascii_acts.labels, train),
).show()  # fmt: skip
record("b64_ascii_logistic_by_site", [round(v, 3) for v in two_probes["logistic regression"]])
record("b64_ascii_mass_mean_by_site", [round(v, 3) for v in two_probes["mass-mean"]])

# %% [markdown]
# **Takeaway.** The embedding of a base64 character says little about the blob it is in (a character is a character);
# after one block of attention the model has read its neighbours, and both probes separate ASCII blobs from random
# bytes almost perfectly. The base64 of 7-bit ASCII text has a regular pattern (every fourth character is drawn from
# a narrow set), which is the "alien feature" the seed idea of this workbook describes.

# %% [markdown]
# ## 2 · What the model represents, or what a probe can find?
#
# **Why this matters.** A probe that reads a label off layer 2 shows that the information is *there*, not that the
# model computed it: it may be in the token itself (then the embeddings have it too), or any random network may
# preserve it (then a randomly initialised copy of the model has it too), or the probe may be powerful enough to
# memorise it (Hewitt & Liang's *control task*: give each word type a random class and see whether the same probe
# learns that as well). Five labels of the corpus, each on the tokens it applies to:
#
# | label | tokens | classes | where the answer lives |
# |---|---|---|---|
# | `topic_l0` | every token of a topic paragraph | 5 root topics | the paragraph: function words need context |
# | `sense` | "park", "bank", "bat" | 7 senses | the sentence around the word |
# | `ioi_role` | names in IOI sentences | IO, S, S2 | order and repetition |
# | `b64_class` | base64 characters | letter, digit, other | the token itself |
# | `b64_ascii` | base64 characters | random bytes, ASCII | the blob |

# %% [markdown]
# ### Exercise 7.3 · A control task
#
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵🔵⚪ · about 10 minutes
#
# Write `control_labels(word_types, labels, generator)`: give every word type (here: token id) one class drawn at
# random from the distribution of `labels` (class c with probability `(labels == c).mean()`), and return, for every
# token, its type's class. Every occurrence of a type must share its class; draw every random number from
# `generator`.
#
# <details><summary>Hint</summary>
#
# `types, inverse = torch.unique(word_types, return_inverse=True)` numbers the types; `torch.bincount(labels)` gives
# the class counts; `torch.multinomial(probs, len(types), replacement=True, generator=generator)` draws one class per
# type; index it with `inverse`.
#
# </details>


# %%
def control_labels(
    word_types: Int[Tensor, " sample"], labels: Int[Tensor, " sample"], generator: torch.Generator
) -> Int[Tensor, " sample"]:
    """One random class per word type, from the labels' class distribution, shared by its occurrences."""
    # BEGIN SOLUTION
    types, inverse = torch.unique(word_types, return_inverse=True)
    counts = torch.bincount(labels).float()
    classes = torch.multinomial(counts / counts.sum(), len(types), replacement=True, generator=generator)
    return classes[inverse]
    # END SOLUTION


control_labels = ex.check(checks.control_labels, control_labels)

# %% [markdown]
# **Do it.** For each label: a logistic probe at every site of the trained model, of its random twin (same
# architecture, weights as at initialisation) and, on the trained model, the same probe on the control task.
# *Selectivity* = accuracy on the label - accuracy on the control task.

# %%
LABELS = {  # field: (genre, names of its values, values kept)
    "topic_l0": ("topic", corpus.NODE_PATHS, None),
    "sense": ("senses", corpus.SENSES, None),
    "ioi_role": ("story", corpus.IOI_ROLES, (0, 1, 2)),  # IO, S, S2
    "b64_class": ("base64", corpus.B64_CLASSES, None),
    "b64_ascii": ("base64", ("random bytes", "ASCII"), None),
}
twin = collect.random_twin(model, stream_seed(seed, "probes.random_twin"))
sweep, labelled = {}, {}
for field, (genre, names, keep) in LABELS.items():
    trained = labelled[field] = collect.labelled_resid(model, rows[genre], field, hook_names, names, keep)
    random_net = collect.labelled_resid(twin, rows[genre], field, hook_names, names, keep)
    split, n = trained.row_split(), len(trained.class_names)
    control = control_labels(trained.word_types, trained.labels, generator)
    sweep[field] = {
        "trained": linear.accuracy_by_layer(trained.acts, trained.labels, split, n, weight_decay, train_probe),
        "random twin": linear.accuracy_by_layer(random_net.acts, trained.labels, split, n, weight_decay, train_probe),
        "control task": linear.accuracy_by_layer(trained.acts, control, split, n, weight_decay, train_probe),
        "majority": linear.majority_accuracy(trained.labels, split),
    }

# %%
selectivity = torch.tensor([[a - c for a, c in zip(s["trained"], s["control task"])] for s in sweep.values()])
summary = [
    {
        "label": field,
        "majority class": s["majority"],
        "embedding": s["trained"][0],
        "best layer (trained)": max(s["trained"][1:]),
        "best layer (random twin)": max(s["random twin"][1:]),
        "selectivity, best layer": float(selectivity[i, 1:].max()),
    }
    for i, (field, s) in enumerate(sweep.items())
]
display(html_table(summary))
plots.labelled_heatmap(
    selectivity, title="Selectivity: label minus control-task accuracy (> 0: more than word identity)",
    x_title="probe site", y_title="label", x_labels=sites, y_labels=list(sweep), width=620, height=360,
).show()  # fmt: skip
for field in ("ioi_role", "b64_class"):
    curves = {k: v for k, v in sweep[field].items() if k != "majority"}
    figures.by_layer(
        curves, sites, title=f"{field}: trained model, random twin, control task", chance=sweep[field]["majority"],
        dashed=("random twin", "control task"),
    ).show()  # fmt: skip
record(
    "probe_summary",
    [", ".join(f"{k} {v:.3f}" if isinstance(v, float) else str(v) for k, v in r.items()) for r in summary],
)
record("selectivity_by_site", selectivity.round(decimals=3).tolist())  # rows: labels in the order of LABELS

# %% [markdown]
# **Takeaway.** Read the table row by row, against its baselines, not its accuracy alone:
#
# - `b64_class` is read almost perfectly from the **embedding**, and nearly as well from the random twin: the class
#   of a character is a property of the token. A probe at layer 3 "finding" it says nothing about what the model
#   computes.
# - `ioi_role` is at chance in the embedding (a name is a name) and in the random twin at every layer; the trained
#   model's later layers separate IO, S and S2. This is information the model *computed* from order and
#   repetition.
# - `b64_ascii` and `topic_l0` also need context and rise above the embedding after the first block.
# - The **control task** shows memorisation: at the embedding a probe learns a random class per token type almost as
#   well as a real label, so selectivity there is low or negative. For `sense`, only a handful of word types carry
#   the label (park, Park, bank, bat), so the control task is trivially learnable at every layer and selectivity
#   stays negative even though the trained model clearly separates the senses: selectivity is a caution sign, not a
#   verdict, when a label lives on few types.

# %% [markdown]
# ## 3 · Spurious directions in high dimensions
#
# **Why this matters.** In d dimensions, n points in general position can be split by a hyperplane in *every* one of
# their 2^n labellings as long as n < 2d (Cover 1965). A probe trained on fewer than about 2 d_model examples can
# therefore reach 100% training accuracy on labels that mean nothing; only held-out data can tell. Real probing
# datasets (a few hundred statements in 576 or 4,096 dimensions) live in this regime.
#
# **Do it.** Coin-flip labels on the zoo model's middle-layer activations of topic text, n training rows from
# d_model / 4 to 8 d_model, 1,000 held-out rows, almost no regularisation.

# %%
middle = labelled["topic_l0"].acts[:, (len(sites) + 1) // 2]
d_model, n_test = model.cfg.d_model, 1000
multiples = [0.25, 0.5, 1, 2, 4] if fast else [0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 8]
n_train = [int(m * d_model) for m in multiples if m * d_model + n_test <= middle.shape[0]]
random_curve = linear.random_label_curve(middle, n_train, n_test, generator, weight_decay=1e-4)
figures.random_label_curve(
    random_curve, d_model, title="Random labels: a perfect fit below n = 2 d, chance on held-out rows always"
).show()
record("random_label_n_train", [p["n_train"] for p in random_curve])
record("random_label_train_accuracy", [round(p["train"], 3) for p in random_curve])
record("random_label_test_accuracy", [round(p["test"], 3) for p in random_curve])

# %% [markdown]
# **Takeaway.** Below about 2 d_model training rows the probe fits coin flips perfectly; beyond it, training accuracy
# falls towards chance, while held-out accuracy is at chance everywhere. A direction that separates your training
# data is guaranteed in this regime; only held-out accuracy (and a baseline) means anything. The next section uses a
# real model with d_model = 576 and a few hundred statements: exactly this regime, so every number there is held out,
# with subjects never shared between training and test statements.

# %% [markdown]
# ## 4 · Truth in a real model
#
# **Why this matters.** Does a model represent whether a statement is true? Statements built from the corpus' concept
# hierarchy, whose words are real English ("A raven is a bird." / "A raven is a fish.", three templates per subject,
# the false category drawn from another subject so no category word gives the answer away), and simple arithmetic
# ("2 + 3 = 5."), each read by SmolLM2-135M (4-bit weights) after "True or false: ". We probe the last token of the
# statement at every layer, on subjects held out from training.

# %%
real = load_model("smollm2-135m-instruct-q4")  # 4-bit weights; ~2 s once converted and cached
real_sites = ["embed"] + [f"L{layer}" for layer in range(real.cfg.n_layers)]
real_hooks = collect.resid_hook_names(real.cfg.n_layers)
kinds = {"category": statements.category_statements(seed), "arithmetic": statements.arithmetic_statements(seed)}
truth = {}
for kind, items in kinds.items():
    texts = [statements.JUDGEMENT.format(statement=s.text) for s in items]
    acts = collect.final_token_resid(real, texts, real_hooks)
    y, split = torch.tensor([s.label for s in items]), statements.subject_split(items, 1 / 3, seed)
    truth[kind] = {"acts": acts, "y": y, "split": split}
    truth[kind]["logistic"] = linear.accuracy_by_layer(acts, y, split, 2, weight_decay, train_probe)
    truth[kind]["mass-mean"] = [
        linear.mass_mean_probe(acts[split, i], y[split], mass_mean_direction).accuracy(acts[~split, i], y[~split])
        for i in range(len(real_sites))
    ]
best_layer = int(torch.tensor(truth["category"]["logistic"]).argmax())
curves = {f"{kind}, {probe}": truth[kind][probe] for kind in truth for probe in ("logistic", "mass-mean")}
figures.by_layer(
    curves, real_sites, title="Truth of category statements is linearly readable mid-network; arithmetic is not",
    chance=0.5, width=900,
).show()  # fmt: skip
print(f"best layer for category truth: {real_sites[best_layer]} ({truth['category']['logistic'][best_layer]:.2f})")
record("truth_best_site", real_sites[best_layer])
record("truth_best_accuracy", round(truth["category"]["logistic"][best_layer], 3))
for kind in truth:
    record(f"truth_{kind}_logistic_by_site", [round(v, 3) for v in truth[kind]["logistic"]])
    record(f"truth_{kind}_mass_mean_by_site", [round(v, 3) for v in truth[kind]["mass-mean"]])

# %% [markdown]
# **The model's own answer.** Append "\nAnswer:" and compare the logits of " True" and " False".

# %%
category = kinds["category"]
category_texts = [s.text for s in category]
own = steering.judgement_logit_diff(real, category_texts)
y_cat = truth["category"]["y"]
own_accuracy = ((own > 0).long() == y_cat).float().mean().item()
own_gap = (own[y_cat == 1].mean() - own[y_cat == 0].mean()).item()
print(f"the model answers ' True' more than ' False' on {(own > 0).float().mean():.0%} of statements;")
print(f"its answers are right on {own_accuracy:.0%}; true minus false statements: {own_gap:+.3f} nats")
record("own_judgement_accuracy", round(own_accuracy, 3))

# %% [markdown]
# ### Exercise 7.4 · A steering hook
#
# > **Difficulty** 🔴⚪⚪⚪⚪ · **Importance** 🔵🔵🔵🔵⚪ · about 5 minutes
#
# Write `add_direction(act, hook, direction, alpha, start)`, a TransformerLens hook: return the residual stream `act`
# [batch, pos, d_model] with `alpha * direction` added at every position from `start` on (the statement's last token
# and everything after it), earlier positions unchanged.


# %%
def add_direction(
    act: Float[Tensor, "batch pos d_model"], hook, direction: Float[Tensor, " d_model"], alpha: float, start: int
) -> Float[Tensor, "batch pos d_model"]:
    """act + alpha * direction at positions >= start."""
    # BEGIN SOLUTION
    act = act.clone()
    act[:, start:] += alpha * direction
    return act
    # END SOLUTION


add_direction = ex.check(checks.add_direction, add_direction)

# %% [markdown]
# **Do it: the causal test.** Add the mass-mean truth direction theta of the best layer (fitted on the training
# subjects) at that layer, from the statement's last token on, with alpha from -4 to 4 (alpha = 1 moves a statement by
# the distance between the class means), and watch logit(" True") - logit(" False") on the held-out statements. If the
# model used this direction to answer, +alpha would push every answer towards " True". The same for random
# directions of the same norm, as a baseline.

# %%
held_out = ~truth["category"]["split"]
theta, _ = mass_mean_direction(truth["category"]["acts"][~held_out, best_layer], y_cat[~held_out])
texts_held_out = [t for t, h in zip(category_texts, held_out.tolist()) if h]
base = own[held_out]
hook = real_hooks[best_layer]
alphas = [-4.0, 4.0] if fast else [-4.0, -2.0, 2.0, 4.0]
random_dirs = torch.randn(2 if fast else 4, theta.shape[0], generator=generator)
directions = {"truth (mass-mean)": theta} | {
    f"random {i}": r / r.norm() * theta.norm() for i, r in enumerate(random_dirs)
}  # fmt: skip
effects = {}
for name, direction in directions.items():
    hooks_for = lambda start, a, d=direction: [(hook, partial(add_direction, direction=d, alpha=a, start=start))]  # noqa: E731
    effects[name] = [
        (steering.judgement_logit_diff(real, texts_held_out, partial(hooks_for, a=a)) - base).mean().item()
        for a in alphas
    ]
slope = {name: (e[-1] - e[0]) / (alphas[-1] - alphas[0]) for name, e in effects.items()}
figures.steering_effect(
    alphas,
    effects,
    title=f"Steering at {real_sites[best_layer]}: does adding the truth direction make ' True' likelier?",
).show()
random_slopes = torch.tensor([v for k, v in slope.items() if k.startswith("random")])
print(
    f"slope (nats per alpha): truth {slope['truth (mass-mean)']:+.3f}; random {random_slopes.abs().max():.3f} at most"
)
record("steering_slope_truth", round(slope["truth (mass-mean)"], 4))
record("steering_slope_random_max_abs", round(random_slopes.abs().max().item(), 4))

# %% [markdown]
# **Takeaway.** Truth of category statements is *decodable* from the middle layers with held-out subjects, better with
# logistic regression than with the mass-mean probe; arithmetic truth is not, in this 135M model: a probe can only
# find what the model computes (held-out accuracy stays at or below chance; below it at early layers, where what a
# probe learns from the answer digits of the training sums points the wrong way on new sums). But the model's own
# answer after "True or false:" is close to chance (55%), and pushing its residual stream along the truth direction
# does not make it answer " True": seed 0 measured -0.016 nats per alpha for the truth direction, against up to 0.017
# (fast) and 0.34 (default) for random directions of the same norm. Decodable is not used: this model represents
# which statements are true without connecting that to the words " True" / " False". Larger models do (Marks &
# Tegmark steer Llama-2-13B's answers with exactly this kind of direction).

# %% [markdown]
# ## 5 · Contrast-consistent search, and how it fails
#
# **Why this matters.** CCS (Burns et al.) looks for truth without labels: given pairs of statements of which exactly
# one is true ("A raven is a bird." / "A raven is a fish.", in random order), it trains a probe whose outputs on the
# two sides are *consistent* (sum to 1) and *confident* (one near 0). Each side is normalised on its own first, so what
# is constant within a side (which template, which slot) drops out. But nothing in the loss says "truth": any feature
# that flips across every pair satisfies it. Farquhar et al. append one of two random words (" Banana" / " Shed",
# swapped at random) to the two sides; the word flips across the pair just as truth does, and is far more salient.

# %% [markdown]
# ### Exercise 7.5 · The CCS loss
#
# > **Difficulty** 🔴⚪⚪⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 5 minutes
#
# Write `ccs_loss(p_pos, p_neg)`: the mean over pairs of `(p_pos - (1 - p_neg)) ** 2` (consistency) plus the mean of
# `min(p_pos, p_neg) ** 2` (confidence), as a tensor (it is minimised by gradient descent).


# %%
def ccs_loss(p_pos: Float[Tensor, " pair"], p_neg: Float[Tensor, " pair"]) -> Tensor:
    """Burns et al.'s consistency + confidence loss."""
    # BEGIN SOLUTION
    consistency = (p_pos - (1 - p_neg)).pow(2).mean()
    confidence = torch.minimum(p_pos, p_neg).pow(2).mean()
    return consistency + confidence
    # END SOLUTION


ccs_loss = ex.check(checks.ccs_loss, ccs_loss)

# %% [markdown]
# **Do it.** Contrast pairs from the category statements, clean and with the distractor; CCS (in the top `ccs_dims`
# principal components, 5 random starts) on the training subjects' pairs, accuracy on the held-out pairs against truth
# and against the distractor word.

# %%
pos, neg, y_pair = statements.contrast_pairs(category, generator)
pos_d, neg_d, distractor = statements.with_distractor(pos, neg, generator)
pair_train = truth["category"]["split"][0::2]  # a pair's two statements share a subject
ccs_sites = [best_layer] if fast else list(range(2, len(real_sites), 3))
texts = {
    k: [statements.JUDGEMENT.format(statement=t) for t in v]
    for k, v in {"pos": pos, "neg": neg, "pos_d": pos_d, "neg_d": neg_d}.items()
}  # fmt: skip
pair_acts = {k: collect.final_token_resid(real, v, [real_hooks[i] for i in ccs_sites]) for k, v in texts.items()}
ccs_results = {"clean: truth": [], "distractor: truth": [], "distractor: the word": []}
for j, _ in enumerate(ccs_sites):
    for kind, (p, n) in {"clean": ("pos", "neg"), "distractor": ("pos_d", "neg_d")}.items():
        a_pos, a_neg = pair_acts[p][:, j], pair_acts[n][:, j]
        probe = ccs.fit_ccs(a_pos[pair_train], a_neg[pair_train], generator, n_dims=ccs_dims, loss_fn=ccs_loss)
        te = ~pair_train
        ccs_results[f"{kind}: truth"].append(probe.accuracy(a_pos[te], a_neg[te], y_pair[te]))
        if kind == "distractor":
            ccs_results["distractor: the word"].append(probe.accuracy(a_pos[te], a_neg[te], distractor[te]))
display(
    html_table([{"site": real_sites[i], **{k: v[j] for k, v in ccs_results.items()}} for j, i in enumerate(ccs_sites)])
)
at_best = {k: v[ccs_sites.index(best_layer)] if best_layer in ccs_sites else max(v) for k, v in ccs_results.items()}
if len(ccs_sites) > 1:
    figures.by_layer(
        ccs_results, [real_sites[i] for i in ccs_sites], title="CCS finds truth on clean pairs, the distractor word otherwise",
        y_title="held-out accuracy (up to sign)", chance=0.5,
    ).show()  # fmt: skip
record("ccs_clean_truth", round(at_best["clean: truth"], 3))
record("ccs_distractor_truth", round(at_best["distractor: truth"], 3))
record("ccs_distractor_word", round(at_best["distractor: the word"], 3))

# %% [markdown]
# **Takeaway.** On clean pairs CCS recovers truth on held-out subjects from the middle layers, with no labels: the
# feature that flips across every pair there *is* truth. Append a random word and CCS finds the word instead, perfectly,
# and truth falls to chance: the method finds the most salient feature that flips across the pairs, and nothing tells
# it which one you meant. (Without the projection on a few principal components, CCS fits the 96 training pairs in 576
# dimensions with a meaningless direction, section 3's problem: try `ccs_dims=96`.)

# %% [markdown]
# ## 6 · A probe and an SAE latent for the same label
#
# **Why this matters.** A probe is supervised: you must know the label in advance, and it will find the best direction
# for *your* label, whether or not the model has a feature for it. A sparse autoencoder (notebook 04) is trained
# without labels and labelled afterwards. On the one-layer model's MLP neurons, for the five root topics of a
# paragraph: the best probe direction against the latent whose firing best matches the label (by F1 on the training
# rows), both scored on held-out rows.

# %%
sae_model = load_model("zoo-gelu-1l-a")
sae, sae_acts, sae_labels, sae_split = versus_sae.train_topk_sae(sae_model, sae_steps, seed, fast)
comparison = versus_sae.probe_vs_latent(sae, sae_acts, sae_labels, sae_split, "topic_l0", weight_decay)
display(html_table(comparison))
record(
    "probe_vs_latent",
    [", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()) for r in comparison],
)

# %% [markdown]
# **Takeaway.** The supervised probe beats the best latent on F1 for every topic (default mode, seed 0: probes
# 0.44-0.60, latents 0.16-0.44 on held-out rows): it is *fitted* to the label, while the latent is whatever the SAE
# found useful for reconstruction, with the label attached afterwards on the training rows. The directions barely
# agree (cosines of 0.10-0.21, seed 0): the probe's direction is the
# best separator of the label among 512 correlated neurons, not a feature of the model. What the SAE offers in exchange is everything you did not think to ask about: every latent comes
# without a label, and notebook 04 shows how many of them match the corpus' hidden variables.

# %%
record("exercises_solved", ex.summary())

# %% [markdown]
# # Checks
#
# The claims above, asserted. Thresholds in the comments, with what was measured (seed 0, fast mode) and the papers'
# figures where there is one.

# %%
acc = {field: s["trained"] for field, s in sweep.items()}
# b64_class is in the token: the embedding alone reads it (0.99), as does the random twin (>= 0.78).
assert acc["b64_class"][0] >= 0.9 and max(sweep["b64_class"]["random twin"]) >= 0.75, sweep["b64_class"]
# ioi_role is computed: chance at the embedding (0.35), near chance in the random twin (<= 0.39), and the trained
# model's best layer well above both (0.78).
assert max(acc["ioi_role"][1:]) >= acc["ioi_role"][0] + 0.2, acc["ioi_role"]
assert max(acc["ioi_role"][1:]) >= max(sweep["ioi_role"]["random twin"]) + 0.2, sweep["ioi_role"]
# b64_ascii needs context: the best layer beats the embedding (1.0 vs 0.77).
assert max(acc["b64_ascii"][1:]) >= acc["b64_ascii"][0] + 0.1, acc["b64_ascii"]
# Selectivity is reported per site; at the embedding the control task is learnt at least as well as topic_l0.
assert selectivity.shape == (len(LABELS), len(sites)) and selectivity[0, 0] <= 0, selectivity
# Random labels (Cover): a perfect fit for n <= d_model; held-out accuracy within chance +- 5 points for n < d_model.
small = [p for p in random_curve if p["n_train"] < d_model]
assert small and all(p["train"] == 1.0 for p in random_curve if p["n_train"] <= d_model), random_curve
assert all(abs(p["test"] - 0.5) <= 0.05 for p in small), small
# Truth: decodable from the real model's middle layers on held-out subjects (0.98 at L13), not from the embedding
# (0.5: the statement's last token is always "."); arithmetic truth far less (best 0.6).
best_category = truth["category"]["logistic"][best_layer]
assert best_category >= 0.85 and 5 <= best_layer <= 25, (best_category, best_layer)
assert max(truth["arithmetic"]["logistic"]) <= best_category - 0.2, truth["arithmetic"]["logistic"]
# The model's own True/False answer is near chance (0.55) ...
assert own_accuracy <= 0.65, own_accuracy
# ... and the truth direction does not push it towards " True" beyond what random directions do.
assert slope["truth (mass-mean)"] <= random_slopes.abs().max(), (slope, random_slopes)
# CCS: finds truth on clean pairs (1.0 at the best layer; Burns et al. report 70-90% on larger models) and loses it
# to the distractor: at least 20 points lower, while the distractor word is read almost perfectly.
assert at_best["clean: truth"] >= 0.8, at_best
assert at_best["distractor: truth"] <= at_best["clean: truth"] - 0.2, at_best
assert at_best["distractor: the word"] >= 0.9, at_best
# Probe vs SAE latent: the supervised probe's F1 is at least the best latent's for every root topic.
assert all(r["probe F1"] >= r["latent F1"] for r in comparison), comparison
print("all checks passed")

# %% [markdown]
# ## Going further
#
# - **Seeds and sizes**: `workbook sweep 07 -p seed 0,1,2 --fast` and compare `truth_best_site` and
#   `ccs_at_best_site`; `-p n_rows 16,64,256` shows how selectivity and the control task depend on data size.
# - **CCS without the projection**: `-p ccs_dims 96` (as many dimensions as training pairs): CCS then fits the
#   training pairs with directions that mean nothing.
# - **Another zoo model**: `-p model_name zoo-attn-only-2l` has no MLPs; which labels does it still compute?
# - **A better judge**: prompt the instruct model with its chat template (`<|im_start|>user ... <|im_end|>`) and
#   repeat section 4's causal test: does a model that answers better also use the truth direction?
# - **Open questions**: probes on a label the model does *not* use can still score well (section 2's random twin);
#   how to tell a feature the model uses from one a probe can find is open (causal probing, amnesic probing by
#   Elazar et al. 2021, and the SAE route of notebooks 04-05).
