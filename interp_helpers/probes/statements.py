"""True and false statements a small real model can know, built from data the workbook ships.

Category statements take their words from the corpus' concept hierarchy (`corpus.NODE_VOCAB`),
whose words are real English: "A raven is a bird." is true, "A raven is a fish." false. Each
subject appears once true and once false per template; the false category is the true
category of another subject, drawn at random, so a category word is as often true as false
overall and cannot give the answer away by itself. Arithmetic statements ("2 + 3 = 5.")
offer a second kind of truth, which a 135M-parameter model may not represent.

Statements come in (true, false) pairs sharing subject and template: the contrast pairs of
CCS (`ccs.py`), whose side order is drawn at random.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Int
from torch import Tensor

from interp_helpers.core.validation import check_range
from interp_helpers.modelzoo.corpus import NODE_VOCAB

# Category -> members: only words that really belong to the category, all from the corpus' hierarchy
# (most of a leaf's words are associations, "croak" or "glossy" under raven, and are left out).
CATEGORY_MEMBERS = {
    "bird": ("raven", "crow", "rook", "eagle", "sparrow", "finch", "owl"),
    "fish": ("salmon", "shark", "trout"),
    "mammal": ("whale", "wolf", "horse"),
    "insect": ("bee", "ant", "butterfly", "moth"),
    "fruit": (
        "apple",
        "orange",
        "lemon",
        "lime",
        "grapefruit",
        "tangerine",
        "strawberry",
        "blueberry",
        "raspberry",
        "cranberry",
        "blackberry",
    ),  # fmt: skip
    "instrument": (
        "piano",
        "guitar",
        "drum",
        "violin",
        "cello",
        "viola",
        "fiddle",
        "banjo",
        "accordion",
        "harp",
        "saxophone",
        "trumpet",
    ),  # fmt: skip
    "metal": ("iron", "copper", "zinc", "aluminium"),
    "vegetable": ("lettuce", "cucumber", "spinach", "radish"),
}
CORPUS_WORDS = frozenset(w for words in NODE_VOCAB.values() for w in words)
TEMPLATES = (
    "{A} {subject} is {a} {category}.",
    "{A} {subject} is a kind of {category}.",
    "Every {subject} is {a} {category}.",
)
JUDGEMENT = "True or false: {statement}"  # the model's own answer follows "\nAnswer:"
DISTRACTORS = (" Banana", " Shed")  # Farquhar et al.'s two random words


@dataclass(frozen=True)
class Statement:
    text: str
    label: int  # 1 true, 0 false
    subject: str
    kind: str  # "category" or "arithmetic"


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def category_statements(seed: int, templates: Sequence[str] = TEMPLATES) -> list[Statement]:
    """For every member and template: the true statement, then a false one (same subject and template)."""
    check_range("len(templates)", len(templates), 1)
    rng = random.Random(seed)
    members = [(word, category) for category, words in CATEGORY_MEMBERS.items() for word in words]
    out = []
    for word, category in members:
        for template in templates:
            wrong = category
            while wrong == category:
                wrong = rng.choice(members)[1]
            for cat, label in ((category, 1), (wrong, 0)):
                text = template.format(A=_article(word).capitalize(), subject=word, a=_article(cat), category=cat)
                out.append(Statement(text, label, word, "category"))
    return out


def arithmetic_statements(seed: int, max_operand: int = 9) -> list[Statement]:
    """ "a + b = a+b." and "a + b = a+b+d." (d in +-1, +-2, the sum staying >= 0) for every a, b <= max_operand."""
    check_range("max_operand", max_operand, 1, 99)
    rng = random.Random(seed)
    out = []
    for a in range(max_operand + 1):
        for b in range(max_operand + 1):
            shift = rng.choice((-2, -1, 1, 2))
            wrong = a + b + (shift if a + b + shift >= 0 else -shift)
            out.append(Statement(f"{a} + {b} = {a + b}.", 1, f"{a}+{b}", "arithmetic"))
            out.append(Statement(f"{a} + {b} = {wrong}.", 0, f"{a}+{b}", "arithmetic"))
    return out


def subject_split(statements: Sequence[Statement], test_fraction: float, seed: int) -> Tensor:
    """True for statements whose subject is in the training part: no subject on both sides."""
    check_range("test_fraction", test_fraction, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    subjects = sorted({s.subject for s in statements})
    random.Random(seed).shuffle(subjects)
    test = set(subjects[: max(1, round(len(subjects) * test_fraction))])
    return torch.tensor([s.subject not in test for s in statements])


def contrast_pairs(
    statements: Sequence[Statement], generator: torch.Generator
) -> tuple[list[str], list[str], Int[Tensor, " pair"]]:
    """(x+ texts, x- texts, y): each (true, false) pair in random order; y = 1 where x+ is the true one."""
    if len(statements) % 2 or any(s.label != 1 - i % 2 for i, s in enumerate(statements)):
        raise ValueError("contrast_pairs: statements must alternate true, false (as category_statements makes them)")
    true, false = [s.text for s in statements[0::2]], [s.text for s in statements[1::2]]
    y = torch.randint(0, 2, (len(true),), generator=generator)
    pos = [t if yi else f for t, f, yi in zip(true, false, y.tolist())]
    neg = [f if yi else t for t, f, yi in zip(true, false, y.tolist())]
    return pos, neg, y


def with_distractor(
    pos: Sequence[str], neg: Sequence[str], generator: torch.Generator, words: tuple[str, str] = DISTRACTORS
) -> tuple[list[str], list[str], Int[Tensor, " pair"]]:
    """Append one distractor word to x+ and the other to x-, at random (Farquhar et al.): (x+, x-, which)."""
    which = torch.randint(0, 2, (len(pos),), generator=generator)
    pos_out = [p + words[w] for p, w in zip(pos, which.tolist())]
    neg_out = [n + words[1 - w] for n, w in zip(neg, which.tolist())]
    return pos_out, neg_out, which
