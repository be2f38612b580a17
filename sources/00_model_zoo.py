# %% [markdown]
# # 00 · The model zoo and its labelled corpus
#
# **Promise.** By the end you know what every later notebook runs on: the synthetic corpus whose every token
# carries its ground-truth label, the small transformers trained on it (what they cost, how well they do on each
# genre), how to look at one token by token, and how to swap in a hub model such as GPT-2 when you are online.
#
# **Paper.** None; the setup follows the small models of Elhage et al. (2021), *A Mathematical Framework for
# Transformer Circuits*, and Olsson et al. (2022), *In-context Learning and Induction Heads*.
# **Prerequisites.** None; start here. **Runtime on a 2-core CPU:** default and fast mode (`fast=True`) both about 20 s.
#
# **Why our own models?** Two reasons. (1) *Offline*: every notebook runs on a laptop with no network, so the models
# ship in `data/models/` (a few MB each) and retrain from a seed with `workbook train-zoo NAME`. (2) *Ground truth*:
# real text never says why a token is there, so an interpretability result can only be judged by eye. Our corpus is
# generated, and the generator records the hidden choice behind every token (which concept a word came from, which
# name is the indirect object, which sense of "bank" is meant, whether a base64 blob hides ASCII, which words are a
# repeat). A probe, a neuron, an SAE feature or a circuit can then be *scored* against the truth.

# %% tags=["parameters"]
seed: int = 0  # 0 <= seed < 2**32; picks the sample documents and demo prompts (corpus seed; models are fixed)
fast: bool = False  # fewer documents in the label check and fewer demo prompts; every section and check still runs
model_name: str = "zoo-gelu-1l-a"  # model for the demo; a hub name such as gpt2-small needs a network
label_field: str = "auto"  # colours the samples; auto is each genre's own label, or node, node_l1, topic, name, ...
max_tokens: int = 120  # 10 <= max_tokens <= 2000; tokens shown per sample document
eval_rows: int = 8  # 1 <= eval_rows <= 64; rows of n_ctx tokens per genre when recomputing held-out loss (cards use 8)
n_label_docs: int = 400  # 10 <= n_label_docs <= 10_000; documents whose labels are checked (fast: at most 100)
n_ioi: int = 200  # 10 <= n_ioi <= 2000; held-out IOI prompts for the demo model's accuracy (fast: at most 50)
smooth: int = 25  # 1 <= smooth <= 500; moving-average window (steps) of the training-loss curves

# %%
import math

import numpy as np
import torch
from IPython.display import display

from interp_helpers import check_choice, check_parameters, record, seed_everything
from interp_helpers.modelzoo import corpus, corpus_view, figures, zoo
from interp_helpers.modelzoo.models import ZOO_DIR, list_zoo, load_model, read_card
from interp_helpers.modelzoo.tokenizer import load_tokenizer
from interp_helpers.transformer_circuits import ioi as ioi_data

check_parameters("00", globals())  # the conditions declared in the parameters cell
check_choice("label_field", label_field, ["auto", *corpus_view.label_fields()])
if fast:  # fewer documents and prompts; every section and check still runs
    n_label_docs, n_ioi = min(n_label_docs, 100), min(n_ioi, 50)
torch.set_grad_enabled(False)  # nothing in this notebook trains
_ = seed_everything(seed)

# %% [markdown]
# ## 1 · The corpus: five genres, every token labelled
#
# **Why this matters.** Each later notebook asks "does this component track X?". Here X is never a guess: it is a
# label the generator wrote down while producing the text. Five genres each exercise one kind of structure:
#
# | genre | what it tests | labels |
# |---|---|---|
# | story | names, indirect-object identification (IOI) | `name`, `ioi_role` (IO, S, S2, END, ANS), `ioi_template` |
# | topic | a concept hierarchy (root / category / leaf, e.g. animals/birds/raven) | `node`, `topic`, `node_l0..2` |
# | senses | one word, several meanings ("park", "bank", "bat") | `sense` |
# | base64 | blobs that hide ASCII text or random bytes | `b64_class`, `b64_ascii` |
# | repeat | random words whose spans recur later (induction) | `repeat_id`, `repeat_occ`, `repeat_pos` |
#
# Labels are character spans, projected onto tokens afterwards, so they survive any tokenizer (ours is a 4096-token
# byte-level BPE trained on the corpus, with every name a single token).
#
# **Do it.** The first document of each genre in the corpus with seed `seed`.

# %%
tok = load_tokenizer()
cfg = corpus.CorpusConfig(seed=seed)
samples = {}
for doc in corpus.iter_documents(cfg):
    samples.setdefault(doc.genre, doc)
    if len(samples) == len(corpus.GENRES):
        break
print(corpus.format_spans(samples["story"], fields=("ioi_role",))[:700])

# %% [markdown]
# **Look.** Each box is one token (hover for its label), coloured by `label_field`; with `"auto"` each genre shows
# its own field (story: `ioi_role`, topic: `node`, senses: `sense`, base64: `b64_class`, repeat: `repeat_occ`).
# Grey tokens have no value for that field. Set `label_field = "node_l1"` (the category level of the hierarchy),
# `"name"` or `"topic"` and rerun to see other labels.

# %%
for genre in corpus.GENRES:
    display(corpus_view.document_html(samples[genre], tok, label_field, max_tokens=max_tokens))

# %% [markdown]
# **Takeaway.** A word split into several BPE pieces gives every piece the word's label, and a token's leading space
# never changes its label (" raven" is labelled like "raven"). The check at the end confirms that every token labelled
# with a leaf of the hierarchy sits in a word from that leaf's vocabulary.

# %%
label_docs = list(corpus.iter_documents(corpus.CorpusConfig(seed=seed), 0, n_label_docs))
leaf_tokens = sum(r.label in corpus.LEAVES for d in label_docs for r in corpus_view.token_table(d, tok, "node"))
misaligned = [m for d in label_docs for m in corpus_view.leaf_misalignments(d, tok)]
genre_share = {g: sum(d.genre == g for d in label_docs) / len(label_docs) for g in corpus.GENRES}
print(f"{leaf_tokens} leaf-labelled tokens in {len(label_docs)} documents, {len(misaligned)} misaligned")
record("leaf_tokens_checked", leaf_tokens)
record("leaf_tokens_misaligned", len(misaligned))
record("genre_share", [round(genre_share[g], 3) for g in corpus.GENRES])  # story, topic, senses, base64, repeat


# %% [markdown]
# ## 2 · The zoo: what is shipped, what it cost, how good it is
#
# **Why this matters.** Every number a later notebook reports is about one of these models, so you should know their
# size, training budget and how well they model each genre. Each model folder holds its weights, config, tokenizer,
# a `card.json` (how it was trained and what it measured) and a `metrics.csv` (the loss at every step).
#
# **Do it.** Specified models (`zoo.ZOO`) that are not in `data/models/` yet are listed with the command that trains them.


# %%
def is_shipped(name):  # a model still being written by the trainer has no card or metrics yet
    return all((ZOO_DIR / name / f).exists() for f in ("card.json", "metrics.csv", "model.safetensors"))


shipped = [n for n in list_zoo() if is_shipped(n)]
not_shipped = [n for n in zoo.ZOO if n not in shipped]
cards = {n: read_card(n) for n in shipped}
display(corpus_view.html_table([corpus_view.card_summary(c) for c in cards.values()], transpose=True))
corpus_view.html_table([corpus_view.missing_summary(n) for n in not_shipped])

# %% [markdown]
# **Look.** Training loss against tokens seen (each curve smoothed over `smooth` steps), then the held-out loss per
# genre from each card (documents from the eval split with a seed no model trained on).

# %%
curves = {}
for name in shipped:
    rows_ = [r for r in zoo.read_metrics(ZOO_DIR / name / "metrics.csv") if "loss" in r]
    curves[name] = (np.array([r["tokens"] for r in rows_]), np.array([r["loss"] for r in rows_]))
ln_vocab = math.log(len(tok))
figures.loss_curves_figure(
    curves,
    "Training loss: fast drop in the first few hundred thousand tokens, then a slow tail",
    smooth=smooth,
    ln_vocab=ln_vocab,
).show()
card_losses = {n: c["eval_loss_per_genre"] for n, c in cards.items()}
figures.genre_loss_figure(
    card_losses, "Held-out loss per genre: base64 and random repeats are the hard ones", ln_vocab=ln_vocab
).show()

# %% [markdown]
# **Takeaway.** Senses, stories and topic paragraphs are easy: they are templates with a few slots, and the slot
# words are predictable from context (a leaf's vocabulary, the cast of names). Base64 and the repeat genre are the
# hardest for the 1-layer models: a random-bytes blob cannot be predicted at all, and repeat documents are random
# words whose only structure is that spans recur, which takes an induction circuit (two layers of attention) to
# exploit. The two `zoo-gelu-1l` models share data and config and differ only in their initialisation seed; their
# losses agree to a few hundredths, a useful baseline for "is this difference between models real?".
# `zoo-attn-only-2l` trains on a repeat-heavy mix precisely so that it learns induction heads, plus (a quarter of
# each batch) rows of random tokens from the whole vocabulary with one segment repeated, so that its heads copy any
# token, not only the corpus' words; its repeat documents are its own, denser kind (one span copied back to back) and
# its card scores those, so its repeat bar is not comparable with the 1-layer models'.
#
# **Exercise (optional).** Recompute the loss per genre yourself with `zoo.loss_per_genre(model, spec, rows=eval_rows)`
# for a larger `eval_rows`; how much do the card's numbers move? (The check below does this at `eval_rows`.)

# %%
final_losses = {n: float(np.mean(curves[n][1][-smooth:])) for n in shipped}
for name, losses in card_losses.items():
    record(f"eval_loss_per_genre_{name.replace('-', '_')}", [round(losses[g], 4) for g in corpus.GENRES])
record("final_train_loss", [round(final_losses[n], 4) for n in shipped])
record("acceptance_passed", [cards[n]["acceptance"]["passed"] for n in shipped])
record("models_shipped", shipped)
record("models_not_shipped", not_shipped)

# %% [markdown]
# ## 3 · One model, token by token
#
# **Why this matters.** Every zoo model is a TransformerLens `HookedTransformer` with our tokenizer attached, so the
# whole TransformerLens toolbox (`run_with_cache`, hooks, `to_str_tokens`) works on it unchanged.
#
# **Do it.** Load `model_name`, look at how it tokenizes a held-out IOI prompt, and what it predicts next; then the
# same for a word sequence shown twice.

# %%
model = load_model(model_name)
prompt = corpus.ioi_prompts(corpus.CorpusConfig(split="eval"), 1, seed=seed)[0]
print(model.to_str_tokens(prompt.text))
logits = model(prompt.text)[0, -1]
top = logits.topk(5)
print(f"correct answer {prompt.answer!r}, distractor {prompt.distractor!r}")
print(
    "top-5 next tokens:",
    [
        (model.to_single_str_token(int(i)), round(p, 3))
        for i, p in zip(top.indices, logits.softmax(-1)[top.indices].tolist())
    ],
)

# %%
words = " ".join(np.random.default_rng(seed).choice(corpus.REPEAT_WORDS, 8, replace=False))
repeated = f" {words} {words}"  # the leading space makes both copies tokenize the same
tokens = model.to_tokens(repeated)  # BOS, then n tokens, then the same n tokens
loss = model(tokens, return_type="loss", loss_per_token=True)[0]  # loss[j] scores the prediction of token j + 1
n = (tokens.shape[1] - 1) // 2
first_copy, second_copy = loss[:n].mean().item(), loss[n + 1 :].mean().item()  # skip the second copy's first token
print(repeated)
print(f"mean loss on the first copy {first_copy:.2f}, on the second copy {second_copy:.2f} nats/token")

# %% [markdown]
# **Look.** How often the model prefers the right name over the distractor, across held-out IOI prompts
# (`zoo.ioi_metrics`, the IOI acceptance check's measurement), then where its attention looks from the last token and
# which component writes the answer (`ioi.component_attribution`: each piece of the residual stream's direct share of
# the logit difference).

# %%
ioi = zoo.ioi_metrics(model, n=n_ioi, seed=seed)
print(
    f"IO beats S in {ioi['ioi_accuracy']:.0%} of {n_ioi} held-out prompts, "
    f"mean logit difference {ioi['ioi_logit_diff']:.2f}"
)
ioi_rows = ioi_data.ioi_dataset(tok, n_ioi, seed=seed)
_, ioi_cache = model.run_with_cache(ioi_rows.tokens, names_filter=lambda name: name.endswith("hook_pattern"))
rows = torch.arange(len(ioi_rows))
last_pattern = ioi_cache[f"blocks.{model.cfg.n_layers - 1}.attn.hook_pattern"]  # batch head_index query_pos key_pos
attention_to = {
    role: last_pattern[rows, :, ioi_rows.end, ioi_rows.positions[role]].mean().item() for role in ("IO", "S1", "S2")
}
shares = {name: value.mean().item() for name, value in ioi_data.component_attribution(model, ioi_rows).items()}
print("last layer's attention from END, mean over heads:", {k: round(v, 2) for k, v in attention_to.items()})
print("direct share of the logit difference:", {k: round(v, 2) for k, v in shares.items()})
record("demo_ioi_accuracy", ioi["ioi_accuracy"])
record("demo_ioi_logit_diff", ioi["ioi_logit_diff"])
record("demo_repeat_loss_first_second", [round(first_copy, 3), round(second_copy, 3)])

# %% [markdown]
# **Takeaway.** The one-layer model gets these IOI prompts right, and it is worth seeing how, because it is not the
# paper's circuit. Its heads at the last token look mostly at S2, the most recent name, and a little at IO and S1; the
# MLP, not attention, writes the answer (its direct share is larger than the whole logit difference, attention's is
# negative). In every template the subject is the last name before the answer, so "a name from this sentence, but not
# the one I just saw" is enough, and one attention layer plus an MLP can compute it. A shortcut like this is why
# notebook 03 asks how `zoo-gelu-4l` solves the task instead of assuming GPT-2's duplicate-token and S-inhibition heads.
# (The pair was trained 6000 steps so that its MLP tracks paragraph topics for the SAE notebooks; at 1500 steps it
# could not do IOI yet.)
# On a repeated word list it is barely better on the second copy than on the first (a few tenths of a nat): with a
# single attention layer it cannot build the previous-token + induction head pair that copies a sequence in order, so
# the second copy stays far above the 1 nat/token that the induction heads of `zoo-attn-only-2l` must reach.

# %% [markdown]
# # Checks
#
# The claims above, asserted. They hold for seeds 0 and 1 in default and fast mode; the thresholds are stated next to
# each and were not tuned to make a particular seed pass.

# %%
# Labels align with the text: every token labelled with a hierarchy leaf sits in a word of that leaf's vocabulary.
assert leaf_tokens > 0, "the label check saw no leaf-labelled tokens"
assert not misaligned, f"{len(misaligned)} leaf labels do not match their word, e.g. {misaligned[:3]}"
# Every genre appears among the checked documents (the default mix gives each at least 10%).
assert all(share > 0 for share in genre_share.values()), f"a genre is missing: {genre_share}"
# The zoo table never crashes on a missing model: every spec is either shipped or listed with its training command.
assert set(shipped) | set(not_shipped) >= set(zoo.ZOO) and shipped, f"shipped {shipped}, not shipped {not_shipped}"
# Every shipped model passed its acceptance checks when it was trained (tests/test_zoo.py recomputes them).
assert all(cards[n]["acceptance"]["passed"] for n in shipped), {n: cards[n]["acceptance"]["passed"] for n in shipped}

# %%
# Each shipped model loads, and its card's held-out loss per genre agrees with a recomputation here.
# Same documents and model: within 0.05 nats (threads and batch layout change float rounding only); with
# eval_rows != 8 other documents are scored, so within 0.5 nats. Story/topic loss at least 2 nats below ln(d_vocab).
tolerance = 0.05 if eval_rows == 8 else 0.5
for name, card in cards.items():
    m = load_model(name)
    ln_v = math.log(m.cfg.d_vocab)
    recomputed = zoo.loss_per_genre(m, zoo.ZooSpec.from_dict(card["spec"]), rows=eval_rows if card["full_run"] else 1)
    for genre, value in recomputed.items():
        assert abs(value - card["eval_loss_per_genre"][genre]) <= tolerance, f"{name} {genre}: {value:.3f} vs card"
    assert max(recomputed["story"], recomputed["topic"]) < ln_v - 2.0, f"{name}: story/topic loss {recomputed}"
    # Acceptance metrics recorded in the card: the verdicts agree with the values and thresholds.
    for c in card["acceptance"]["checks"]:
        assert c["passed"] == (c["value"] <= c["threshold"] if c["op"] == "<=" else c["value"] >= c["threshold"])
    assert card["acceptance"]["passed"] == all(c["passed"] for c in card["acceptance"]["checks"])

# %%
# The 1-layer models: base64 and repeat are the two hardest genres (the text's claim), and the two seeds of
# zoo-gelu-1l agree on every genre within 0.3 nats.
one_layer = [n for n, c in cards.items() if c["spec"]["n_layers"] == 1]
for name in one_layer:
    losses = cards[name]["eval_loss_per_genre"]
    assert set(sorted(losses, key=losses.get)[-2:]) == {"base64", "repeat"}, f"{name}: {losses}"
if {"zoo-gelu-1l-a", "zoo-gelu-1l-b"} <= set(cards):
    a, b = cards["zoo-gelu-1l-a"]["eval_loss_per_genre"], cards["zoo-gelu-1l-b"]["eval_loss_per_genre"]
    assert all(abs(a[g] - b[g]) <= 0.3 for g in corpus.GENRES), f"seeds disagree: {a} vs {b}"
# Training worked: the final training loss is at least 2 nats below ln(d_vocab) (a uniform guess) for every model.
assert all(final_losses[n] < ln_vocab - 2.0 for n in shipped), final_losses
# Demo, one-layer models only: the second copy of a random word list is less than 1 nat easier than the first and
# stays above the 1 nat/token an induction model must reach (zoo-attn-only-2l's threshold). IOI by the shortcut: the
# heads at END look at S2 more than at IO, and the MLP's direct share exceeds the logit difference, attention's is < 0.
if model.cfg.n_layers == 1:
    assert second_copy > max(1.0, first_copy - 1.0), f"first copy {first_copy:.2f}, second {second_copy:.2f}"
    assert ioi["ioi_accuracy"] >= 0.9, f"one-layer IOI: {ioi}"
    assert attention_to["S2"] > 2 * attention_to["IO"], attention_to
    assert shares["L0 mlp"] > ioi["ioi_logit_diff"] and shares["L0 attn"] < 0, shares
print("all checks passed")

# %% [markdown]
# ## Going further
#
# - **Other labels:** `workbook run 00 -p label_field ioi_role` (or `sense`, `b64_class`, `repeat_occ`, `topic`,
#   `node_l1`) colours the sample documents by another field; `-p seed 1` shows other documents.
# - **Retrain a model:** `workbook train-zoo zoo-gelu-1l-a` reproduces it from its seed (about 22 minutes on one core;
#   bit-identical with `--threads 1`); `--steps 50 --out /tmp/zoo` is a smoke run. A retrained model's card should
#   match the shipped one.
# - **Your own corpus:** `corpus.CorpusConfig` has a knob for every genre (story length, IOI share, held-out names,
#   base64 sizes, repeat structure); `interp_helpers/zoo.py` shows how a spec ties a mix of genres to a model.
# - **Open question:** synthetic data makes ground truth free, at the price of realism. Which findings on these models
#   transfer to models trained on natural text is exactly what the hub models let you test.
