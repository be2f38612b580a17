"""The zoo's specs: what each model is (architecture, data mix, optimisation, seeds).

Kept apart from `zoo` (the training loop and acceptance checks) so that reading a spec, or
checking `workbook train-zoo`'s arguments, needs no torch or TransformerLens import:
`train-zoo nosuch` fails in a fraction of a second.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp_helpers.core.validation import check_choice, check_range
from interp_helpers.modelzoo.corpus import CorpusConfig

DATA_DIR = Path(__file__).resolve().parents[2] / "data"
ZOO_DIR = DATA_DIR / "models"
ZOO_PREFIX = "zoo-"
EVAL_SEED = 10_000  # eval data never shares a seed with any spec's training data
CHECKS = ("induction", "ioi", "three_name")


@dataclass(frozen=True)
class ZooSpec:
    """Architecture, data mix and optimisation of one zoo model."""

    name: str
    n_layers: int
    d_model: int
    n_heads: int
    d_mlp: int | None  # None: attention-only
    n_ctx: int
    genre_weights: Mapping[str, float]
    steps: int
    batch: int
    lr: float
    seed: int  # weight initialisation
    data_seed: int = 0  # corpus seed: models that share it see the same token stream
    corpus_overrides: Mapping[str, Any] = field(default_factory=dict)  # other CorpusConfig fields
    # "standard": learned, added to the residual stream; "shortformer": learned, added to Q
    # and K inputs only; "rotary": relative positions rotate Q and K (no position in values).
    positional_embedding_type: str = "standard"
    warmup: int = 100
    weight_decay: float = 0.01
    eval_every: int = 50
    checks: tuple[str, ...] = ()  # acceptance checks from CHECKS
    # Share of each batch's rows that are tokens drawn from the whole vocabulary with one
    # segment repeated: induction that must copy *any* token, not only the corpus' words.
    random_repeat_frac: float = 0.0
    # Dropout during training only (the zoo's HookedTransformer has none): on every attention pattern and on what
    # each attention layer and MLP writes to the residual stream, as GPT-2 was trained. Wang et al. suspect GPT-2's
    # backup name movers come from it.
    dropout: float = 0.0
    notes: str = ""

    def __post_init__(self) -> None:
        if not self.name.startswith(ZOO_PREFIX):
            raise ValueError(f"parameter name={self.name!r} must start with {ZOO_PREFIX!r}")
        check_range("n_layers", self.n_layers, 1, 12)
        check_range("d_model", self.d_model, 8, 1024)
        check_range("n_heads", self.n_heads, 1, 64)
        if self.d_model % self.n_heads:
            raise ValueError(f"parameter d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.d_mlp is not None:
            check_range("d_mlp", self.d_mlp, 1, 16384)
        check_range("n_ctx", self.n_ctx, 16, 2048)
        self.corpus()  # validates the mix and the overrides
        check_choice("positional_embedding_type", self.positional_embedding_type, ("standard", "shortformer", "rotary"))
        check_range("steps", self.steps, 1, 1_000_000)
        check_range("batch", self.batch, 1, 4096)
        check_range("lr", self.lr, 0.0, 1.0, low_inclusive=False)
        check_range("seed", self.seed, 0, 2**32 - 1)
        check_range("data_seed", self.data_seed, 0, 2**32 - 1)
        check_range("warmup", self.warmup, 0, self.steps)
        check_range("weight_decay", self.weight_decay, 0.0, 1.0)
        check_range("eval_every", self.eval_every, 1)
        for check in self.checks:
            check_choice("checks", check, CHECKS)
        check_range("random_repeat_frac", self.random_repeat_frac, 0.0, 1.0, high_inclusive=False)
        check_range("dropout", self.dropout, 0.0, 1.0, high_inclusive=False)

    @property
    def attn_only(self) -> bool:
        return self.d_mlp is None

    def model_config(self, d_vocab: int) -> dict[str, Any]:
        """HookedTransformerConfig keyword arguments (what config.json stores)."""
        return {
            "n_layers": self.n_layers,
            "d_model": self.d_model,
            "n_heads": self.n_heads,
            "d_head": self.d_model // self.n_heads,
            "d_mlp": self.d_mlp,
            "n_ctx": self.n_ctx,
            "d_vocab": d_vocab,
            "attn_only": self.attn_only,
            "act_fn": None if self.attn_only else "gelu",
            "normalization_type": "LN",
            "positional_embedding_type": self.positional_embedding_type,
            "default_prepend_bos": True,
            "tokenizer_prepends_bos": False,
            "seed": self.seed,
            "model_name": self.name,
        } | ({"rotary_dim": self.d_model // self.n_heads} if self.positional_embedding_type == "rotary" else {})

    def corpus(self, split: str = "train", seed: int | None = None) -> CorpusConfig:
        return CorpusConfig.from_dict(
            {
                **self.corpus_overrides,
                "seed": self.data_seed if seed is None else seed,
                "split": split,
                "genre_weights": dict(self.genre_weights),
            }
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ZooSpec:
        """Inverse of `to_dict` (a card's "spec"): JSON lists become tuples, also inside corpus_overrides."""
        tuples = lambda m: {k: tuple(v) if isinstance(v, list) else v for k, v in m.items()}  # noqa: E731
        return cls(**{**tuples(d), "corpus_overrides": tuples(d.get("corpus_overrides", {}))})


# Induction heads form after a long loss plateau; on a 2-core CPU budget the model needs
# data where copying pays off often, and short contexts (an untrained head spreads its
# attention over every key, so the gradient toward the one right key shrinks with n_ctx).
# Repeat documents here are one span of 3-24 words copied 2-6 times back to back ("a b c
# a b c."): with fillers and partial copies (filler 0-5, 3-5 copies, 80% full) a
# 6000-step d_model=128 run learned only bag-of-words copying, no previous-token head.
# Spans of 3-12 words copied 4-7 times gave induction heads that never had to be sharp
# (several earlier copies all point the right way): on held-out rows with ONE earlier copy
# of up to 31 words, second-repeat loss stalled at 1.1-1.2 nats, worst late in the row.
# Letting some documents have a single repeat of a longer span fixed that (0.2 nats).
# All of that taught copying of the repeat genre's 630 words only: on rows of tokens from the
# whole vocabulary the model's best induction score was 0.01 and its second repeat cost as
# much as its first. A quarter of each batch is now such rows (`random_repeat_frac`), so the
# induction heads must copy any token; the phase change moved from ~1,750 to ~3,000 steps.
INDUCTION_MIX = {"story": 0.05, "topic": 0.05, "senses": 0.025, "base64": 0.025, "repeat": 0.85}
DENSE_REPEATS = {
    "repeat_filler": (0, 0),
    "repeat_copies": (1, 5),
    "repeat_full_prob": 1.0,
    "repeat_spans": (1, 1),
    "repeat_words": (3, 24),
}
DEFAULT_MIX = {"story": 0.3, "topic": 0.3, "senses": 0.1, "base64": 0.1, "repeat": 0.2}
IOI_RICH = {"story": 0.6, "topic": 0.15, "senses": 0.05, "base64": 0.05, "repeat": 0.15}
# The one-layer pair trains 6000 steps (12M tokens). At 1500 steps the MLP carried no trace
# of the paragraph's topic (ridge probe over 48 topics: 5%, chance 2%), so no SAE latent
# could match a topic label; at 6000 steps the probe reaches 39%. Side effect, kept and
# explained in notebook 00: one layer then solves the IOI templates (the subject is always
# the last name before the answer, a shortcut its MLP learns).

GELU_1L_A = ZooSpec(
    "zoo-gelu-1l-a",
    n_layers=1,
    d_model=128,
    n_heads=4,
    d_mlp=512,
    n_ctx=128,
    genre_weights=DEFAULT_MIX,
    steps=6000,
    batch=16,
    lr=2e-3,
    seed=1,
    notes="One-layer MLP model (512 neurons) for neuron and dictionary-learning notebooks.",
)

# zoo-gelu-4l solves the IOI templates by recency: every template puts the subject's second
# mention last, so "not the most recent name" always answers, and no duplicate-token ->
# S-inhibition -> name-mover circuit forms (notebook 03). Here a share of the story sentences
# introduce three names and repeat two of them, the answer (the name said once) in any of the
# three slots, so only noticing which names repeat works; the standard two-name IOI sentences
# stay. Same architecture and seed as zoo-gelu-4l. A first run (half of the other story sentences three-name,
# 4500 steps) reached 100% on IOI but 0.87 / 1.0 / 1.0 by answer slot on the unseen three-name wording, short
# of the acceptance (>= 0.9 in every slot): more three-name sentences and 6000 steps. The shipped model then
# passed (1.00 / 0.99 / 1.00) but learned wording: on three-name prompts whose object takes "the" (no template
# here does) it was near chance, and its accuracy on `ioi.NOVEL_*` wordings was 0.86 (IOI) / 0.52 (three names).
# So half of the IOI and three-name sentences are now composed from interchangeable parts (corpus.COMPOSED_*:
# openings, asides that put a repeated name in a sentence of its own, connectors, verbs, object phrases); the
# retrained model scores 1.00 / 0.97 on those novel wordings.
IOI_DUPLICATES = {"three_name_fraction": 0.7, "composed_fraction": 0.5}
DUP_STEPS = 6000
GELU_4L = ZooSpec(
    "zoo-gelu-4l",
    n_layers=4,
    d_model=128,
    n_heads=4,
    d_mlp=512,
    n_ctx=128,
    genre_weights=IOI_RICH,
    steps=4500,
    batch=16,
    lr=2e-3,
    eval_every=100,
    seed=3,
    checks=("ioi",),
    notes="Four-layer MLP model for the IOI notebook.",
)

ZOO: Mapping[str, ZooSpec] = {
    s.name: s
    for s in (
        ZooSpec(
            "zoo-attn-only-2l",
            n_layers=2,
            d_model=64,
            n_heads=4,
            d_mlp=None,
            n_ctx=64,
            genre_weights=INDUCTION_MIX,
            corpus_overrides=DENSE_REPEATS,
            positional_embedding_type="shortformer",
            steps=9000,
            batch=32,
            lr=3e-3,
            warmup=200,
            eval_every=250,
            seed=0,
            random_repeat_frac=0.25,
            checks=("induction",),
            notes="Two-layer attention-only model for the induction-heads notebook.",
        ),
        GELU_1L_A,
        dataclasses.replace(
            GELU_1L_A,
            name="zoo-gelu-1l-b",
            seed=2,
            notes="Same data and config as zoo-gelu-1l-a, different initialisation seed.",
        ),
        GELU_4L,
        dataclasses.replace(
            GELU_4L,
            name="zoo-gelu-4l-dup",
            corpus_overrides=IOI_DUPLICATES,
            steps=DUP_STEPS,
            checks=("ioi", "three_name"),
            notes="zoo-gelu-4l's recipe with three-name sentences, where only repetition identifies the answer.",
        ),
        dataclasses.replace(
            GELU_4L,
            name="zoo-gelu-4l-dup-dropout",
            corpus_overrides=IOI_DUPLICATES,
            steps=DUP_STEPS,
            checks=("ioi", "three_name"),
            dropout=0.1,
            notes="zoo-gelu-4l-dup trained with dropout 0.1 (attention patterns, residual writes): does backup appear?",
        ),
    )
}


def get_spec(name: str) -> ZooSpec:
    check_choice("name", name, list(ZOO))
    return ZOO[name]
