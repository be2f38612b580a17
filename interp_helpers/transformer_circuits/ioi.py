"""Indirect-object identification: token-aligned prompt datasets and the logit-difference metric.

"When Mary and John went to the store, John gave a drink to" -> " Mary". The names
play roles: IO (the indirect object, the answer), S1 and S2 (the subject, mentioned
twice) and END (the last token, where the answer is predicted). Every name is one token
with a leading space (tests/test_tokenizer.py), so datasets built from the same prompts
with other names keep every position: clean and corrupted rows line up token by token,
which activation patching needs.

    clean    = ioi_dataset(tok, n=200, seed=0)          held-out name/template pairs
    abc      = abc_dataset(clean, tok, seed=0)          IO, S1, S2 -> three other names
    flipped  = flipped_dataset(clean, tok)              the other name repeated: answer flips
    logit_diff(model(clean.tokens), clean)              IO logit - S logit at END, per prompt
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformers import PreTrainedTokenizerFast

from interp_helpers.core.validation import check_choice, check_range
from interp_helpers.modelzoo import corpus
from interp_helpers.transformer_circuits import circuits

ROLES = ("IO", "S1", "S2", "END")


@dataclass(frozen=True)
class IOIDataset:
    """Prompts as BOS + tokens, right-padded with BOS, and where each role sits in each row.

    `io_token` is the answer and `s_token` the distractor. For a corrupted dataset they are
    still the *clean* prompt's names (what the metric compares), while `names` records
    the names that actually fill the slots.
    """

    tokens: Int[Tensor, "batch pos"]
    positions: dict[str, Int[Tensor, " batch"]]  # ROLES -> position of that role in each row
    io_token: Int[Tensor, " batch"]
    s_token: Int[Tensor, " batch"]
    templates: Int[Tensor, " batch"]
    orders: tuple[str, ...]  # "ABBA" (IO first) or "BABA" per row
    names: tuple[tuple[str, str, str], ...]  # the names in slots N1, N2, S2 of each row
    texts: tuple[str, ...]

    def __len__(self) -> int:
        return self.tokens.shape[0]

    @property
    def end(self) -> Int[Tensor, " batch"]:
        return self.positions["END"]


def _single_token(tok: PreTrainedTokenizerFast, name: str) -> int:
    ids = tok.encode(" " + name, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(
            f"name {name!r} is {len(ids)} tokens with this tokenizer; IOI datasets need single-token names"
        )
    return ids[0]


def _name_ids(tok: PreTrainedTokenizerFast, name: str) -> tuple[int, int]:
    """The name's token mid-sentence (" Mary") and at the start of a text ("Mary"): both single tokens."""
    bare = tok.encode(name, add_special_tokens=False)
    if len(bare) != 1:
        raise ValueError(
            f"name {name!r} is {len(bare)} tokens at the start of a text; IOI datasets need single-token names"
        )
    return _single_token(tok, name), bare[0]


def _build(tok: PreTrainedTokenizerFast, rows: list[dict], answers: list[tuple[str, str]]) -> IOIDataset:
    """Tokenize filled templates and locate the roles from the slot names.

    rows: template, order, n1, n2, s2, place, obj. answers: (io, s) names the metric uses.
    """
    ids, positions = [], {role: [] for role in ROLES}
    for row in rows:
        text = corpus.fill_ioi_template(row["template"], row["n1"], row["n2"], row["s2"], row["place"], row["obj"])
        row_ids = [tok.bos_token_id] + tok.encode(text, add_special_tokens=False)
        name_ids = {i for n in (row["n1"], row["n2"], row["s2"]) for i in _name_ids(tok, n)}
        slots = [i for i, t in enumerate(row_ids) if t in name_ids]
        if len(slots) != 3:
            raise ValueError(f"expected the three name slots as three tokens in {text!r}, found positions {slots}")
        n1_pos, n2_pos, s2_pos = slots
        io_pos, s1_pos = (n1_pos, n2_pos) if row["order"] == "ABBA" else (n2_pos, n1_pos)
        for role, pos in zip(ROLES, (io_pos, s1_pos, s2_pos, len(row_ids) - 1)):
            positions[role].append(pos)
        ids.append(row_ids)
        row["text"] = text
    tokens, _ = pad_right(ids, tok.bos_token_id)
    return IOIDataset(
        tokens=tokens,
        positions={role: torch.tensor(p) for role, p in positions.items()},
        io_token=torch.tensor([_single_token(tok, io) for io, _ in answers]),
        s_token=torch.tensor([_single_token(tok, s) for _, s in answers]),
        templates=torch.tensor([r["template"] for r in rows]),
        orders=tuple(r["order"] for r in rows),
        names=tuple((r["n1"], r["n2"], r["s2"]) for r in rows),
        texts=tuple(r["text"] for r in rows),
    )


def pad_right(ids: Sequence[Sequence[int]], pad: int) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, " batch"]]:
    """Rows of token ids right-padded with `pad` into one tensor, and each row's last real position (END).

    Right padding keeps every real token at its own position, so a causal model reads each row as if
    it were alone: the logits at END are those of the unpadded prompt.
    """
    width = max(map(len, ids))
    return torch.tensor([list(r) + [pad] * (width - len(r)) for r in ids]), torch.tensor([len(r) - 1 for r in ids])


def usable_names(tok: PreTrainedTokenizerFast) -> frozenset[str]:
    """Corpus names that are one token for `tok` both mid-sentence (" Mary") and at the start of a text.

    Every name is, for the workbook's tokenizer; a hub model's tokenizer (GPT-2's) splits
    some, and prompts using those cannot line up token by token.
    """

    def fits(name: str) -> bool:
        return all(len(tok.encode(text, add_special_tokens=False)) == 1 for text in (" " + name, name))

    return frozenset(name for name in corpus.NAMES if fits(name))


def ioi_dataset(tok: PreTrainedTokenizerFast, n: int, seed: int = 0, split: str = "eval") -> IOIDataset:
    """`n` IOI prompts (ABBA and BABA, every template) from the corpus generator.

    split="eval" uses only the held-out (template, name) pairs, never seen in training.
    Prompts whose names are not single tokens for `tok` (`usable_names`) are skipped, so
    the same call works with a hub model's tokenizer; with ours none are.
    """
    check_range("n", n, 1, 100_000)
    check_choice("split", split, ("train", "eval"))
    names = usable_names(tok)
    if len(names) < 3:
        raise ValueError(f"only {len(names)} corpus names are single tokens for this tokenizer; IOI needs at least 3")
    drawn = corpus.ioi_prompts(corpus.CorpusConfig(split=split), 20 * n, seed)  # the first n are ioi_prompts(..., n)
    prompts = [p for p in drawn if p.io in names and p.s in names][:n]
    if len(prompts) < n:
        raise ValueError(f"parameter n={n}: only {len(prompts)} of {len(drawn)} prompts use single-token names")
    rows = [
        {
            "template": p.template,
            "order": p.order,
            "n1": p.io if p.order == "ABBA" else p.s,
            "n2": p.s if p.order == "ABBA" else p.io,
            "s2": p.s,
            "place": p.place,
            "obj": p.obj,
        }
        for p in prompts
    ]
    return _build(tok, rows, [(p.io, p.s) for p in prompts])


def abc_dataset(clean: IOIDataset, tok: PreTrainedTokenizerFast, seed: int = 0) -> IOIDataset:
    """The clean prompts with IO, S1 and S2 replaced by three names not in the prompt ("ABC").

    Nothing is repeated any more, so no name is "the one mentioned twice": the IOI
    mechanism has nothing to act on, while grammar, template and place stay. Mean
    activations over this set are the usual ablation baseline (Wang et al. 2022).
    """
    rng = random.Random(f"abc:{seed}")
    usable = usable_names(tok)
    pool = [name for name in corpus.NAMES if name in usable]  # corpus order: the same draw on every run
    rows = []
    for text, (n1, n2, s2), template, order in zip(clean.texts, clean.names, clean.templates.tolist(), clean.orders):
        a, b, c = rng.sample([name for name in pool if name not in (n1, n2, s2)], 3)
        rows.append(_replace_names(text, template, order, (n1, n2, s2), (a, b, c)))
    return _build(tok, rows, _answers(clean, tok))


def flipped_dataset(clean: IOIDataset, tok: PreTrainedTokenizerFast) -> IOIDataset:
    """The clean prompts with S2 replaced by the IO name: the other name is now repeated, so the answer flips.

    The metric still compares the clean IO and S, so a model doing IOI scores the negative
    of its clean logit difference here. Like every corrupted set, `positions` and `orders`
    keep the clean prompt's roles (which slot held IO, S1, S2), so sites line up.
    """
    rows = []
    for text, (n1, n2, s2), template, order in zip(clean.texts, clean.names, clean.templates.tolist(), clean.orders):
        io = n1 if order == "ABBA" else n2
        rows.append(_replace_names(text, template, order, (n1, n2, s2), (n1, n2, io)))
    return _build(tok, rows, _answers(clean, tok))


CORRUPTIONS = ("abc", "flipped")


def corrupted_dataset(clean: IOIDataset, tok: PreTrainedTokenizerFast, kind: str, seed: int = 0) -> IOIDataset:
    """`abc_dataset` (seeded) or `flipped_dataset` of `clean`, by name."""
    check_choice("corruption", kind, CORRUPTIONS)
    return abc_dataset(clean, tok, seed) if kind == "abc" else flipped_dataset(clean, tok)


def _answers(clean: IOIDataset, tok: PreTrainedTokenizerFast) -> list[tuple[str, str]]:
    decode = lambda t: tok.decode([int(t)]).strip()  # noqa: E731
    return [(decode(io), decode(s)) for io, s in zip(clean.io_token, clean.s_token)]


def _replace_names(text: str, template: int, order: str, old: tuple[str, str, str], new: tuple[str, str, str]) -> dict:
    """A row for `_build` from a clean prompt's text: same template, place and object, new names.

    Place and object are recovered by re-filling the template with every candidate; only
    the right pair gives back `text`.
    """
    for place in corpus.PLACES:
        for obj in corpus.OBJECTS:
            if corpus.fill_ioi_template(template, *old, place, obj) == text:
                return {
                    "template": template,
                    "order": order,
                    "n1": new[0],
                    "n2": new[1],
                    "s2": new[2],
                    "place": place,
                    "obj": obj,
                }
    raise ValueError(f"could not recover place and object of {text!r}")


def select(ds: IOIDataset, rows: Int[Tensor, " row"] | Sequence[int]) -> IOIDataset:
    """The given rows of a dataset (e.g. one layout), padded only as wide as they need, like a fresh dataset."""
    rows = torch.as_tensor(rows, dtype=torch.long)
    if rows.numel() == 0:
        raise ValueError("parameter rows is empty")
    check_range("rows", int(rows.max()), 0, len(ds) - 1)
    picked = rows.tolist()
    width = int(ds.end[rows].max()) + 1  # drop padding no selected row needs, as `_build` would
    return IOIDataset(
        tokens=ds.tokens[rows, :width],
        positions={role: p[rows] for role, p in ds.positions.items()},
        io_token=ds.io_token[rows],
        s_token=ds.s_token[rows],
        templates=ds.templates[rows],
        orders=tuple(ds.orders[i] for i in picked),
        names=tuple(ds.names[i] for i in picked),
        texts=tuple(ds.texts[i] for i in picked),
    )


def same_layout(ds: IOIDataset, row: int = 0) -> Int[Tensor, " row"]:
    """Rows with the same template and name order as `row`: every role at the same position."""
    check_range("row", row, 0, len(ds) - 1)
    return torch.tensor(
        [
            i
            for i in range(len(ds))
            if int(ds.templates[i]) == int(ds.templates[row])
            and ds.orders[i] == ds.orders[row]
            and int(ds.end[i]) == int(ds.end[row])
        ]
    )


def logit_diff(
    logits: Float[Tensor, "batch pos d_vocab"], ds: IOIDataset, per_prompt: bool = False
) -> Float[Tensor, ...]:
    """logit(IO) - logit(S) at each row's END position; the mean unless `per_prompt`."""
    rows = torch.arange(len(ds))
    end_logits = logits[rows, ds.end]  # batch d_vocab
    diff = end_logits[rows, ds.io_token] - end_logits[rows, ds.s_token]
    return diff if per_prompt else diff.mean()


def accuracy(logits: Float[Tensor, "batch pos d_vocab"], ds: IOIDataset) -> float:
    """Fraction of prompts where IO's logit beats S's at END."""
    return (logit_diff(logits, ds, per_prompt=True) > 0).float().mean().item()


def logit_diff_directions(model: HookedTransformer, ds: IOIDataset) -> Float[Tensor, "batch d_model"]:
    """Per prompt, the residual direction (after ln_final's centring and scale) read as logit(IO) - logit(S)."""
    return circuits.unembed_directions(model, ds.io_token) - circuits.unembed_directions(model, ds.s_token)


def head_logit_diff_attribution(
    model: HookedTransformer, ds: IOIDataset, fwd_hooks: list[tuple[str, object]] | None = None
) -> Float[Tensor, "layer head_index"]:
    """Each head's direct contribution to logit(IO) - logit(S) at END, averaged over prompts."""
    return circuits.head_direct_attribution(model, ds.tokens, ds.end, logit_diff_directions(model, ds), fwd_hooks)


@torch.no_grad()
def component_attribution(model: HookedTransformer, ds: IOIDataset) -> dict[str, Float[Tensor, " batch"]]:
    """Every additive piece of the END residual stream, as its direct share of each prompt's logit difference.

    Keys: "embed", "pos_embed" (when the model adds positions to the stream), "L{l} attn"
    and "L{l} mlp" for every layer (attention outputs include their bias), and "bias"
    (ln_final's and the unembedding's biases). Because LayerNorm's centring and scale are
    linear once the scale is fixed, the values add up exactly to `logit_diff(..., per_prompt=True)`.
    """
    rows = torch.arange(len(ds))
    names = ["hook_embed", "hook_pos_embed", "ln_final.hook_scale"] + [
        f"blocks.{l}.hook_{part}_out" for l in range(model.cfg.n_layers) for part in ("attn", "mlp")
    ]
    logits, cache = model.run_with_cache(ds.tokens, names_filter=lambda n: n in names)
    directions = logit_diff_directions(model, ds)
    scale = cache["ln_final.hook_scale"][rows, ds.end]  # batch 1
    center = model.cfg.normalization_type in ("LN", "LNPre")

    def share(name: str) -> Tensor:
        piece = cache[name][rows, ds.end]
        piece = piece - piece.mean(-1, keepdim=True) if center else piece
        return ((piece / scale) * directions).sum(-1)

    out = {"embed": share("hook_embed")}
    if "hook_pos_embed" in cache.cache_dict and model.cfg.positional_embedding_type == "standard":
        out["pos_embed"] = share("hook_pos_embed")
    for layer in range(model.cfg.n_layers):
        out[f"L{layer} attn"] = share(f"blocks.{layer}.hook_attn_out")
        if f"blocks.{layer}.hook_mlp_out" in cache.cache_dict:
            out[f"L{layer} mlp"] = share(f"blocks.{layer}.hook_mlp_out")
    ln_bias = getattr(model.ln_final, "b", None)
    unembed_bias = model.b_U[ds.io_token] - model.b_U[ds.s_token]
    out["bias"] = unembed_bias + (
        ln_bias @ (model.W_U[:, ds.io_token] - model.W_U[:, ds.s_token]) if ln_bias is not None else 0.0
    )
    return out


# --------------------------------------------------------------------------------------
# Three-name prompts: does the model track repetition, or a position?
# --------------------------------------------------------------------------------------

THREE_NAME_TEMPLATE = "{0}, {1} and {2} went to the {place}. {x} and {y} gave a {obj} to"
# The same names and answer, with the two repeated names in different clauses: the one said in the
# middle clause is not among the last words before END. Repetition still identifies the answer; a
# rule "avoid the names of the last clause" picks the middle-clause name instead. Unseen wording.
SPLIT_THREE_NAME_TEMPLATE = "{0}, {1} and {2} went to the {place}, and {x} sat down. Later, {y} gave a {obj} to"

# Wordings in no training sentence, built from the corpus' own words (so every word is a token the
# model knows) in arrangements its fixed templates and composed parts never make: a model that
# learned the rule, not the wordings, should still give to the name said once. Two-name rows
# introduce {0} and {1} and repeat {x}; three-name rows as THREE_NAME_TEMPLATE. The last three-name
# wording splits the repeated names across clauses. tests/test_corpus.py checks that the corpus
# never produces any of them.
NOVEL_TWO_NAME_TEMPLATES = (
    "{0} and {1} liked the {place} very much, and then {x} gave the {obj} to",
    "Everyone knew that {0} and {1} were at the {place}. {x} handed the {obj} to",
    "{0} met {1} at the {place}, and {x} brought a {obj} to",
    "{0} and {1} were tired after the long day at the {place}, so {x} passed the {obj} to",
    "It was busy at the {place} when {0} and {1} arrived, and {x} showed a {obj} to",
    "Nobody knew that {0} and {1} had been at the {place}. That afternoon {x} sent a {obj} to",
)
NOVEL_THREE_NAME_TEMPLATES = (
    "{0}, {1} and {2} liked the {place} very much, and then {x} and {y} gave the {obj} to",
    "Everyone knew that {0}, {1} and {2} were at the {place}. {x} and {y} handed the {obj} to",
    "{0} met {1} and {2} at the {place}, and {x} and {y} brought a {obj} to",
    "{0}, {1} and {2} were tired after the long day at the {place}, so {x} and {y} passed the {obj} to",
    "It was busy at the {place} when {0}, {1} and {2} arrived. {x} went home, and {y} showed a {obj} to",
)


def three_name_text(
    introduced: tuple[str, str, str], answer_slot: int, place: str, obj: str, template: str = THREE_NAME_TEMPLATE
) -> str:
    """ "A, B and C went to the park. B and C gave a ball to" with the answer introduced at `answer_slot`.

    The second sentence names the two other names in the order they were introduced, so the
    answer is the one name said once: repetition identifies it, whichever slot it holds
    (the IOI templates always put the subject last, which a recency shortcut can exploit).
    `template` has slots {0} {1} {2} (introduced), {x} {y} (repeated, in that order), {place}, {obj}.
    """
    check_range("answer_slot", answer_slot, 0, 2)
    x, y = (name for i, name in enumerate(introduced) if i != answer_slot)
    return template.format(*introduced, place=place, x=x, y=y, obj=obj)


@dataclass(frozen=True)
class ThreeNameDataset:
    """Three-name prompts, right-padded with BOS; every row's three introduced names are single tokens."""

    tokens: Int[Tensor, "batch pos"]
    end: Int[Tensor, " batch"]
    name_tokens: Int[Tensor, "batch 3"]  # the introduced names, in order (" Mary" ids)
    name_pos: Int[Tensor, "batch 3"]  # where each introduced name sits in the row
    answer_slot: Int[Tensor, " batch"]  # which introduced name is the answer (said once)
    texts: tuple[str, ...]
    repeat_pos: Int[Tensor, "batch 2"]  # where the two repeated names are said again ({x}, then {y})

    def __len__(self) -> int:
        return self.tokens.shape[0]

    @property
    def answer_token(self) -> Int[Tensor, " batch"]:
        return self.name_tokens[torch.arange(len(self)), self.answer_slot]

    @property
    def repeated_slots(self) -> Int[Tensor, "batch 2"]:
        """The introduced slots of the two repeated names, in the order the template repeats them ({x}, {y})."""
        slots = torch.arange(3).expand(len(self), 3)
        return slots[slots != self.answer_slot[:, None]].view(len(self), 2)


def three_name_dataset(
    tok: PreTrainedTokenizerFast, n_per_slot: int, seed: int = 0, template: str = THREE_NAME_TEMPLATE
) -> ThreeNameDataset:
    """`n_per_slot` prompts for each answer slot (0, 1, 2), names drawn from `usable_names(tok)`.

    Every template draws the same names, places and objects for a seed, so two templates give
    paired prompts (e.g. THREE_NAME_TEMPLATE and SPLIT_THREE_NAME_TEMPLATE).
    """
    check_range("n_per_slot", n_per_slot, 1, 10_000)
    pool = [name for name in corpus.NAMES if name in usable_names(tok)]  # corpus order: the same draw on every run
    if len(pool) < 3:
        raise ValueError(f"only {len(pool)} corpus names are single tokens for this tokenizer; three are needed")
    rng = random.Random(f"three-names:{seed}")
    ids, names, name_pos, repeat_pos, slots, texts = [], [], [], [], [], []
    for slot in (0, 1, 2):
        for _ in range(n_per_slot):
            introduced = tuple(rng.sample(pool, 3))
            text = three_name_text(introduced, slot, rng.choice(corpus.PLACES), rng.choice(corpus.OBJECTS), template)
            ids.append([tok.bos_token_id] + tok.encode(text, add_special_tokens=False))
            names.append([_single_token(tok, name) for name in introduced])
            # First mention; a name opening the text is the bare token ("Mary", not " Mary").
            name_pos.append([_first(ids[-1], _name_ids(tok, name)) for name in introduced])
            repeat_pos.append([_last(ids[-1], names[-1][i]) for i in range(3) if i != slot])
            slots.append(slot)
            texts.append(text)
    tokens, end = pad_right(ids, tok.bos_token_id)
    return ThreeNameDataset(
        tokens=tokens,
        end=end,
        name_tokens=torch.tensor(names),
        name_pos=torch.tensor(name_pos),
        answer_slot=torch.tensor(slots),
        texts=tuple(texts),
        repeat_pos=torch.tensor(repeat_pos),
    )


def _first(row: list[int], candidates: tuple[int, ...]) -> int:
    return min(row.index(t) for t in candidates if t in row)


def _last(row: list[int], token: int) -> int:
    return len(row) - 1 - row[::-1].index(token)


def three_name_choice(logits: Float[Tensor, "batch pos d_vocab"], ds: ThreeNameDataset) -> Int[Tensor, " batch"]:
    """Which introduced name (0, 1, 2) has the highest logit at END: the model's pick among the three."""
    rows = torch.arange(len(ds))
    end_logits = logits[rows, ds.end]  # batch d_vocab
    return end_logits.gather(-1, ds.name_tokens).argmax(-1)


def three_name_accuracy(logits: Float[Tensor, "batch pos d_vocab"], ds: ThreeNameDataset) -> list[float]:
    """Accuracy by the answer's introduced slot: [first, second, third], NaN for a slot with no rows.

    A recency rule fails the slots it does not point at; a model that finds the name said
    once scores alike in all three.
    """
    correct = (three_name_choice(logits, ds) == ds.answer_slot).float()
    return [float(correct[ds.answer_slot == slot].mean()) for slot in range(3)]


def three_name_directions(model: HookedTransformer, ds: ThreeNameDataset) -> Float[Tensor, "batch d_model"]:
    """Per prompt, the direction read as logit(answer) - mean logit(the two repeated names)."""
    names = circuits.unembed_directions(model, ds.name_tokens)  # batch 3 d_model
    answer = names[torch.arange(len(ds)), ds.answer_slot]
    return answer - (names.sum(1) - answer) / 2


@dataclass(frozen=True)
class TwoNameDataset:
    """Two-name prompts from any wording ({0} {1} introduced, {x} repeated), right-padded with BOS."""

    tokens: Int[Tensor, "batch pos"]
    end: Int[Tensor, " batch"]
    io_token: Int[Tensor, " batch"]
    s_token: Int[Tensor, " batch"]
    texts: tuple[str, ...]

    def __len__(self) -> int:
        return self.tokens.shape[0]


def two_name_dataset(tok: PreTrainedTokenizerFast, n: int, template: str, seed: int = 0) -> TwoNameDataset:
    """`n` prompts of `template`, half with the answer introduced first (ABBA), half second (BABA)."""
    check_range("n", n, 2, 10_000)
    pool = [name for name in corpus.NAMES if name in usable_names(tok)]
    rng = random.Random(f"two-names:{seed}")
    ids, io, s, texts = [], [], [], []
    for i in range(n):
        a, b = rng.sample(pool, 2)  # a: the answer
        first, second = (a, b) if i % 2 == 0 else (b, a)
        text = template.format(first, second, x=b, place=rng.choice(corpus.PLACES), obj=rng.choice(corpus.OBJECTS))
        ids.append([tok.bos_token_id] + tok.encode(text, add_special_tokens=False))
        io.append(_single_token(tok, a))
        s.append(_single_token(tok, b))
        texts.append(text)
    tokens, end = pad_right(ids, tok.bos_token_id)
    return TwoNameDataset(
        tokens=tokens,
        end=end,
        io_token=torch.tensor(io),
        s_token=torch.tensor(s),
        texts=tuple(texts),
    )


def two_name_logit_diff(logits: Float[Tensor, "batch pos d_vocab"], ds: TwoNameDataset) -> Float[Tensor, " batch"]:
    """IO logit minus S logit at END."""
    end_logits = logits[torch.arange(len(ds)), ds.end]
    return end_logits.gather(-1, ds.io_token[:, None])[:, 0] - end_logits.gather(-1, ds.s_token[:, None])[:, 0]
