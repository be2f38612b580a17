"""A synthetic "toy internet" whose every character knows the latent variable behind it.

Real corpora never tell you why a token is there, so an interpretability method can
only be judged by eye. Here each document is drawn from one of five genres, and the
generator records, as character spans, the hidden choices that produced the text:
which concept a word came from, which name is the indirect object, which sense of
"park" is meant, whether a base64 blob hides ASCII, which words are a repeat. A probe,
an SAE feature or a circuit can then be scored against ground truth.

Labels are character spans over the text rather than per-word tags, so they survive
any tokenizer: `token_labels(doc, offsets)` projects them onto tokens afterwards.

Documents are generated one at a time from a per-document RNG keyed by
(seed, split, index), so the corpus streams in constant memory, any document can be
regenerated on its own, and the same seed always gives the same text.
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
import random
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
from jaxtyping import Int

from interp_helpers.core.validation import check_range

GENRES = ("story", "topic", "senses", "base64", "repeat")
DEFAULT_GENRE_WEIGHTS = MappingProxyType({"story": 0.3, "topic": 0.3, "senses": 0.1, "base64": 0.1, "repeat": 0.2})

# --------------------------------------------------------------------------------------
# Stories and indirect-object identification (IOI)
# --------------------------------------------------------------------------------------

NAMES = (
    "Mary",
    "John",
    "Anna",
    "James",
    "Emma",
    "David",
    "Sarah",
    "Michael",
    "Laura",
    "Robert",
    "Alice",
    "Thomas",
    "Susan",
    "Daniel",
    "Rachel",
    "Peter",
    "Helen",
    "Carl",
    "Julia",
    "Paul",
    "Kate",
    "George",
    "Lisa",
    "Henry",
    "Emily",
    "Jack",
    "Ruth",
    "Oliver",
    "Sophie",
    "William",
    "Clara",
    "Edward",
    "Lucy",
    "Samuel",
    "Tina",
    "Victor",
    "Nina",
    "Simon",
    "Diana",
    "Oscar",
    "Maria",
    "Adam",
    "Ellen",
    "Brian",
    "Karen",
    "Frank",
    "Irene",
    "Philip",
)

PLACES = (
    "store",
    "school",
    "hospital",
    "station",
    "library",
    "market",
    "beach",
    "office",
    "garden",
    "restaurant",
    "museum",
    "airport",
    "church",
    "bakery",
    "cafe",
    "lake",
    "forest",
    "farm",
    "castle",
    "theater",
    "hotel",
    "gym",
    "pool",
    "zoo",
    "harbor",
    "village",
    "city",
    "mountain",
    "island",
    "kitchen",
    "barn",
    "shop",
    "cinema",
    "gallery",
    "factory",
    "camp",
    "square",
    "temple",
    "clinic",
    "pharmacy",
    "bookshop",
    "playground",
    "university",
    "market hall",
)

OBJECTS = (
    "drink",
    "book",
    "ball",
    "letter",
    "key",
    "bag",
    "ring",
    "pen",
    "cup",
    "hat",
    "gift",
    "ticket",
    "map",
    "phone",
    "card",
    "box",
    "bottle",
    "coin",
    "flower",
    "kite",
    "toy",
    "basket",
    "blanket",
    "camera",
    "candle",
    "clock",
    "coat",
    "doll",
    "lamp",
    "necklace",
    "notebook",
    "pencil",
    "picture",
    "plate",
    "scarf",
    "shirt",
    "umbrella",
    "watch",
    "wallet",
    "jacket",
    "radio",
    "orange juice",
    "envelope",
    "invitation",
)

# Each template is the prompt up to (not including) the answer. {N1} and {N2} are the two
# names in order of mention, {S} is the subject's second mention; the answer is " {IO}".
# ABBA: N1 = IO, N2 = S.  BABA: N1 = S, N2 = IO.
IOI_TEMPLATES = (
    "When {N1} and {N2} went to the {PLACE}, {S} gave {A_OBJECT} to",
    "When {N1} and {N2} got {A_OBJECT} at the {PLACE}, {S} decided to give it to",
    "After {N1} and {N2} went to the {PLACE}, {S} gave {A_OBJECT} to",
    "Then, {N1} and {N2} went to the {PLACE}. {S} gave {A_OBJECT} to",
    "Then, {N1} and {N2} had a long argument, and afterwards {S} said to",
    "Then, {N1} and {N2} were working at the {PLACE}. {S} decided to give {A_OBJECT} to",
    "While {N1} and {N2} were working at the {PLACE}, {S} gave {A_OBJECT} to",
    "The {PLACE} {N1} and {N2} went to had {A_OBJECT}. {S} gave it to",
    "Friends {N1} and {N2} found {A_OBJECT} at the {PLACE}. {S} gave it to",
    "When {N1} and {N2} arrived at the {PLACE}, {S} handed {A_OBJECT} to",
    "{N1} and {N2} were at the {PLACE}. Later, {S} passed {A_OBJECT} to",
    "After lunch, {N1} and {N2} walked to the {PLACE}, and {S} showed {A_OBJECT} to",
    "Once {N1} and {N2} reached the {PLACE}, {S} sold {A_OBJECT} to",
    "{N1} and {N2} spent the day at the {PLACE}. In the evening, {S} threw {A_OBJECT} to",
    "As {N1} and {N2} left the {PLACE}, {S} gave {A_OBJECT} to",
    "When {N1} and {N2} sat down in the {PLACE}, {S} sent {A_OBJECT} to",
    "Yesterday {N1} and {N2} visited the {PLACE}, where {S} lent {A_OBJECT} to",
    "Before {N1} and {N2} came back from the {PLACE}, {S} brought {A_OBJECT} to",
)
IOI_ORDERS = ("ABBA", "BABA")
IOI_ROLES = ("IO", "S", "S2", "END", "ANS")  # ANS: the IO name as the completion

# Three names introduced, two of them repeated: the answer is the one said once, in any of the
# three introduced slots. Recency cannot solve these (the repeated names are the most recent,
# and the answer may have been introduced first, second or last); only noticing which names
# repeat does. {N1} {N2} {N3} are introduced in order, {R1} {R2} are the two repeated names (in
# either order). `transformer_circuits.ioi.THREE_NAME_TEMPLATE` ("A, B and C went to the
# park. B and C gave a ball to") is deliberately not among them: it stays unseen wording for
# evaluation.
THREE_NAME_TEMPLATES = (
    "{N1}, {N2} and {N3} were at the {PLACE}. Later, {R1} and {R2} passed {A_OBJECT} to",
    "When {N1}, {N2} and {N3} arrived at the {PLACE}, {R1} and {R2} handed {A_OBJECT} to",
    "After {N1}, {N2} and {N3} walked to the {PLACE}, {R1} and {R2} showed {A_OBJECT} to",
    "Yesterday {N1}, {N2} and {N3} visited the {PLACE}, where {R1} and {R2} lent {A_OBJECT} to",
    "{N1}, {N2} and {N3} spent the day at the {PLACE}. In the evening, {R1} and {R2} threw {A_OBJECT} to",
    "Then, {N1}, {N2} and {N3} had a long argument, and afterwards {R1} and {R2} said to",
    "While {N1}, {N2} and {N3} were working at the {PLACE}, {R1} and {R2} gave {A_OBJECT} to",
    "Friends {N1}, {N2} and {N3} found {A_OBJECT} at the {PLACE}. {R1} and {R2} gave it to",
    "Once {N1}, {N2} and {N3} reached the {PLACE}, {R1} and {R2} sold {A_OBJECT} to",
    "{N1}, {N2} and {N3} left the {PLACE} together, and {R1} and {R2} sent {A_OBJECT} to",
)
COMPOSED_TEMPLATE_ID = len(IOI_TEMPLATES) + len(THREE_NAME_TEMPLATES)  # `ioi_template` of composed sentences

# Transfer sentences composed from interchangeable parts (`CorpusConfig.composed_fraction`): an
# opening that introduces two or three names, sometimes a sentence in which a repeated name does
# something, then "{S} <verb> <object> to". Fixed templates teach fixed wordings (a model trained
# on them alone failed when the object took "the"); parts that vary independently leave the rule,
# "give to the name said once", as the one thing every sentence shares. The middle sentence puts
# repeated names in different clauses, so "avoid the last clause's names" stops working.
# {NAMES} is "{N1} and {N2}" or "{N1}, {N2} and {N3}"; an opening ends in "," (a subordinate
# clause, the main clause follows) or "." (a connector may follow).
COMPOSED_OPENINGS = (
    "When {NAMES} went to the {PLACE},",
    "After {NAMES} arrived at the {PLACE},",
    "While {NAMES} were working at the {PLACE},",
    "As {NAMES} left the {PLACE},",
    "Once {NAMES} reached the {PLACE},",
    "Before {NAMES} came back from the {PLACE},",
    "When {NAMES} sat down in the {PLACE},",
    "After {NAMES} walked to the {PLACE},",
    "{NAMES} were at the {PLACE}.",
    "Then, {NAMES} went to the {PLACE}.",
    "Yesterday {NAMES} visited the {PLACE}.",
    "{NAMES} had a long argument.",
    "Friends {NAMES} met at the {PLACE}.",
    "{NAMES} spent the day at the {PLACE}.",
    "The next day, {NAMES} walked to the {PLACE} together.",
    "{NAMES} found {A_OBJECT2} at the {PLACE}.",
    "It was a quiet morning, and {NAMES} were at the {PLACE}.",
    "{NAMES} looked for {A_OBJECT2} at the {PLACE}.",
)
# Three names never "went to the {PLACE}": `ioi.THREE_NAME_TEMPLATE`'s wording stays unseen, as in
# THREE_NAME_TEMPLATES.
_THREE_NAME_OPENINGS = tuple(o for o in COMPOSED_OPENINGS if "went to the" not in o)
COMPOSED_CONNECTORS = ("", "Later, ", "Then ", "Afterwards, ", "In the evening, ", "After a while, ", "The next day, ")
# What a repeated name does in the middle sentence (never "sat down": `ioi.SPLIT_THREE_NAME_TEMPLATE`
# stays unseen wording).
COMPOSED_ASIDES = (
    "{R} was tired.",
    "{R} looked around.",
    "{R} bought {A_OBJECT2}.",
    "{R} went home early.",
    "{R} waved at everyone.",
    "{R} kept quiet.",
    "{R} found {A_OBJECT2}.",
    "{R} read a book.",
    "{R} called home.",
)
COMPOSED_OBJECTS = ("{A_OBJECT}", "the {OBJECT}", "it", "the new {OBJECT}", "her {OBJECT}", "the old {OBJECT}")
COMPOSED_ENDINGS = (
    "gave {OBJ} to",
    "handed {OBJ} to",
    "passed {OBJ} to",
    "showed {OBJ} to",
    "sold {OBJ} to",
    "threw {OBJ} to",
    "sent {OBJ} to",
    "lent {OBJ} to",
    "brought {OBJ} to",
    "gave {OBJ} back to",
    "decided to give {OBJ} to",
    "wanted to give {OBJ} to",
    "read {OBJ} to",
    "said to",
    "told a story to",
    "offered {OBJ} to",
)

# Story sentences that are not IOI. Several end on the repeated name or on a third
# name, so "copy the name that appeared once" is a heuristic that often fails.
STORY_TEMPLATES = (
    "{A} and {B} went to the {PLACE}. {B} was tired, so {B} sat down.",
    "{A} and {B} met at the {PLACE}, and {A} said that {A} was hungry.",
    "{A} waved at {B} from across the {PLACE}.",
    "{A} found {A_OBJECT} at the {PLACE} and kept it.",
    "{A} and {B} went to the {PLACE}, where {B} gave {A_OBJECT} to {C}.",
    "{A} and {B} looked for {A_OBJECT} at the {PLACE}, but only {B} found one.",
    "After a while, {A} left the {PLACE} and {B} followed {A} home.",
    "{A} liked the {PLACE} very much.",
    "The next day, {A} and {B} walked to the {PLACE} together.",
    "{A} and {B} went to the {PLACE}, and then {A} called {C}.",
    "When {A} and {B} reached the {PLACE}, {B} remembered that {B} had left {A_OBJECT} at home.",
    "{A} told {B} that {A} had seen {C} at the {PLACE}.",
    "{A} gave {A_OBJECT} to {B}.",
    "{A} bought {A_OBJECT} for {B}, and {B} thanked {A}.",
    "It was a quiet morning at the {PLACE}.",
    "Nobody knew where the {OBJECT} had gone.",
    "The {PLACE} was busy that afternoon.",
)

# --------------------------------------------------------------------------------------
# Topic paragraphs from a concept hierarchy (root / category / leaf)
# --------------------------------------------------------------------------------------

_HIERARCHY: dict[str, Any] = {
    "science": (
        ("research", "theory", "experiment", "evidence", "laboratory", "hypothesis", "measurement", "scientist"),
        {
            "biology": (
                ("organism", "tissue", "species", "evolution", "metabolism", "biologist", "enzyme", "membrane"),
                {
                    "cells": (
                        "nucleus",
                        "mitochondria",
                        "cytoplasm",
                        "ribosome",
                        "organelle",
                        "chromosome",
                        "vesicle",
                        "cytoskeleton",
                    ),
                    "anatomy": ("skeleton", "muscle", "artery", "kidney", "lung", "spine", "tendon", "ligament"),
                    "pathogens": ("anthrax", "bacterium", "virus", "infection", "toxin", "spore", "plague", "vaccine"),
                    "genetics": ("gene", "allele", "genome", "mutation", "heredity", "dna", "genotype", "inheritance"),
                },
            ),
            "physics": (
                ("energy", "force", "particle", "motion", "physicist", "velocity", "mass", "momentum"),
                {
                    "mechanics": (
                        "friction",
                        "lever",
                        "pulley",
                        "torque",
                        "inertia",
                        "acceleration",
                        "pendulum",
                        "gravity",
                    ),
                    "optics": (
                        "lens",
                        "prism",
                        "refraction",
                        "reflection",
                        "photon",
                        "wavelength",
                        "laser",
                        "spectrum",
                    ),
                    "electricity": (
                        "voltage",
                        "current",
                        "circuit",
                        "resistor",
                        "battery",
                        "electron",
                        "magnet",
                        "wire",
                    ),
                    "astronomy": ("planet", "galaxy", "comet", "telescope", "orbit", "nebula", "asteroid", "star"),
                },
            ),
            "chemistry": (
                ("molecule", "atom", "reaction", "compound", "element", "chemist", "solution", "bond"),
                {
                    "acids": (
                        "vinegar",
                        "acidity",
                        "corrosion",
                        "litmus",
                        "sulfuric",
                        "hydrochloric",
                        "alkali",
                        "neutralization",
                    ),
                    "metals": ("iron", "copper", "alloy", "steel", "rust", "zinc", "aluminium", "ore"),
                    "polymers": ("plastic", "rubber", "nylon", "monomer", "resin", "polyester", "chain", "elastic"),
                },
            ),
        },
    ),
    "animals": (
        ("creature", "habitat", "predator", "prey", "wildlife", "instinct", "animal", "burrow"),
        {
            "birds": (
                ("feather", "wing", "beak", "flight", "egg", "nest", "migration", "plumage"),
                {
                    "raven": ("raven", "ravens", "croak", "corvid", "carrion", "glossy", "crow", "rook"),
                    "eagle": ("eagle", "eagles", "talon", "eyrie", "soaring", "raptor", "cliff", "bald"),
                    "sparrow": ("sparrow", "sparrows", "chirp", "hedge", "seed", "finch", "twig", "flock"),
                    "owl": ("owl", "owls", "hoot", "nocturnal", "pellet", "dusk", "tawny", "silent"),
                },
            ),
            "fish": (
                ("fin", "gill", "scale", "swim", "spawn", "shoal", "aquatic", "fishery"),
                {
                    "salmon": ("salmon", "upstream", "smolt", "hatchery", "roe", "leap", "estuary", "sockeye"),
                    "shark": ("shark", "sharks", "jaw", "hammerhead", "dorsal", "reef", "bite", "cartilage"),
                    "trout": ("trout", "brook", "fly", "rainbow", "angler", "stream", "freshwater", "speckled"),
                },
            ),
            "mammals": (
                ("fur", "mammal", "milk", "warm", "litter", "whisker", "herd", "paw"),
                {
                    "whale": ("whale", "whales", "blubber", "krill", "baleen", "pod", "breach", "humpback"),
                    "wolf": ("wolf", "wolves", "pack", "howl", "den", "alpha", "fang", "tundra"),
                    "horse": ("horse", "horses", "mane", "hoof", "saddle", "stable", "gallop", "foal"),
                },
            ),
            "insects": (
                ("insect", "antenna", "larva", "thorax", "abdomen", "swarm", "colony", "exoskeleton"),
                {
                    "bee": ("bee", "bees", "hive", "honey", "pollen", "nectar", "queen", "wax"),
                    "ant": ("ant", "ants", "anthill", "worker", "soldier", "tunnel", "pheromone", "forage"),
                    "butterfly": (
                        "butterfly",
                        "caterpillar",
                        "cocoon",
                        "chrysalis",
                        "monarch",
                        "flutter",
                        "meadow",
                        "moth",
                    ),
                },
            ),
        },
    ),
    "sport": (
        ("team", "coach", "match", "player", "score", "league", "season", "training"),
        {
            "ball": (
                ("referee", "tournament", "trophy", "umpire", "foul", "opponent", "rally", "defence"),
                {
                    "football": (
                        "football",
                        "striker",
                        "goalkeeper",
                        "penalty",
                        "offside",
                        "corner",
                        "header",
                        "midfield",
                    ),
                    "tennis": ("tennis", "racket", "serve", "volley", "deuce", "baseline", "backhand", "ace"),
                    "basketball": ("basketball", "hoop", "dunk", "dribble", "rebound", "court", "guard", "layup"),
                },
            ),
            "water": (
                ("splash", "lane", "wetsuit", "tide", "buoy", "lifeguard", "dock", "spray"),
                {
                    "swimming": (
                        "swimming",
                        "freestyle",
                        "backstroke",
                        "breaststroke",
                        "goggles",
                        "lap",
                        "dive",
                        "medley",
                    ),
                    "sailing": ("sailing", "sail", "mast", "keel", "yacht", "regatta", "rudder", "wind"),
                    "rowing": ("rowing", "oar", "rower", "scull", "crew", "stroke", "coxswain", "boathouse"),
                },
            ),
            "winter": (
                ("snow", "ice", "frost", "slope", "chill", "alpine", "blizzard", "winter"),
                {
                    "skiing": ("skiing", "ski", "skis", "piste", "chairlift", "slalom", "downhill", "powder"),
                    "skating": ("skating", "skate", "rink", "blade", "spin", "figure", "pirouette", "hockey"),
                },
            ),
        },
    ),
    "food": (
        ("meal", "recipe", "flavor", "taste", "dish", "ingredient", "chef", "appetite"),
        {
            "baking": (
                ("oven", "flour", "dough", "yeast", "knead", "butter", "sugar", "crust"),
                {
                    "bread": ("bread", "loaf", "sourdough", "rye", "baguette", "crumb", "toast", "slice"),
                    "cake": ("cake", "frosting", "sponge", "icing", "layer", "birthday", "vanilla", "cream"),
                    "pastry": ("pastry", "croissant", "tart", "pie", "flaky", "puff", "filling", "strudel"),
                },
            ),
            "fruit": (
                ("fruit", "ripe", "juice", "orchard", "harvest", "peel", "sweet", "vitamin"),
                {
                    "apple": ("apple", "apples", "cider", "core", "bramley", "crisp", "pippin", "graft"),
                    "citrus": ("orange", "lemon", "lime", "grapefruit", "zest", "citrus", "tangerine", "sour"),
                    "berries": (
                        "strawberry",
                        "blueberry",
                        "raspberry",
                        "berry",
                        "bramble",
                        "jam",
                        "cranberry",
                        "blackberry",
                    ),
                },
            ),
            "cooking": (
                ("pan", "stove", "boil", "roast", "simmer", "fry", "spice", "heat"),
                {
                    "soup": ("soup", "broth", "ladle", "bowl", "noodle", "stew", "chowder", "bisque"),
                    "grilling": ("grill", "barbecue", "charcoal", "skewer", "sausage", "smoke", "burger", "steak"),
                    "salad": ("salad", "lettuce", "cucumber", "tomato", "dressing", "olive", "spinach", "radish"),
                },
            ),
        },
    ),
    "music": (
        ("song", "melody", "rhythm", "concert", "musician", "tune", "harmony", "chord"),
        {
            "instruments": (
                ("instrument", "tuning", "pitch", "sound", "practice", "lesson", "ensemble", "octave"),
                {
                    "piano": ("piano", "pianist", "keyboard", "pedal", "sonata", "ivory", "hammer", "grand"),
                    "guitar": ("guitar", "guitarist", "fret", "pluck", "amplifier", "strum", "capo", "riff"),
                    "drums": ("drum", "drums", "drummer", "cymbal", "snare", "beat", "stick", "tempo"),
                    "violin": ("violin", "violinist", "fiddle", "bowing", "cello", "viola", "rosin", "vibrato"),
                },
            ),
            "styles": (
                ("style", "band", "album", "singer", "stage", "audience", "record", "performance"),
                {
                    "jazz": ("jazz", "saxophone", "swing", "improvisation", "trumpet", "blues", "bebop", "club"),
                    "opera": ("opera", "aria", "soprano", "tenor", "libretto", "overture", "diva", "chorus"),
                    "folk": ("folk", "ballad", "banjo", "accordion", "dance", "tradition", "harp", "storyteller"),
                },
            ),
        },
    ),
}


def _flatten_hierarchy(spec: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """Path -> own vocabulary, parents before children (so a path's index is stable)."""
    out: dict[str, tuple[str, ...]] = {}
    for root, (root_words, cats) in spec.items():
        out[root] = tuple(root_words)
        for cat, (cat_words, leaves) in cats.items():
            out[f"{root}/{cat}"] = tuple(cat_words)
            for leaf, leaf_words in leaves.items():
                out[f"{root}/{cat}/{leaf}"] = tuple(leaf_words)
    return out


NODE_VOCAB = MappingProxyType(_flatten_hierarchy(_HIERARCHY))
del _HIERARCHY
FUNCTION_LABEL = "function"
# The `node` label vocabulary: "function" for frame words, then every hierarchy path.
NODE_PATHS = (FUNCTION_LABEL, *NODE_VOCAB)
LEAVES = tuple(p for p in NODE_VOCAB if p.count("/") == 2)
HIERARCHY_DEPTH = 3

# Sentence frames for topic paragraphs; every non-slot word is a function word.
TOPIC_FRAMES = (
    "The {a} is closely linked to the {b}.",
    "Many people study {a} and {b}.",
    "There is a lot of {a} in the {b}.",
    "We read about {a}, {b} and {c} today.",
    "The {a} of the {b} changes with the {c}.",
    "Some {a} have no {b} at all.",
    "Every {a} needs some {b}.",
    "A {a} can tell you a great deal about {b}.",
    "Without {a}, the {b} would not last long.",
    "They looked at the {a} and saw the {b}.",
    "It is often said that {a} comes before {b}.",
    "This {a} shows how {b} and {c} work together.",
    "Experts say that the {a} is much like a {b}.",
    "The best {a} has both {b} and {c}.",
    "Here the {a} meets the {b}.",
    "Few things are as old as {a}.",
    "Our notes on {a} mention the {b} twice.",
    "You will find {a} wherever there is {b}.",
    "Nobody is sure why the {a} needs {b}.",
    "In the end, the {a} depends on the {b} and the {c}.",
)

# --------------------------------------------------------------------------------------
# Context-dependent senses
# --------------------------------------------------------------------------------------

SENSES = ("park:place", "park:name", "park:verb", "bank:river", "bank:money", "bat:animal", "bat:sport")
PARK_NAMES = ("Lincoln", "Central", "Hyde", "Riverside", "Victoria", "Highland", "Forest", "Regent")
# {word:sense} writes the word as spelled in the slot and labels its sense. The place
# sense also appears capitalised at sentence start and the name sense mid-sentence, so
# capitalisation alone does not give the sense away.
SENSE_TEMPLATES = (
    "We walked in the {park:place} after lunch.",
    "The children played in the {park:place} until dark.",
    "There is a small pond in the middle of the {park:place}.",
    "{Park:place} benches were still wet after the rain.",
    "She sat under a tree in the {park:place} and read a book.",
    "The city opened a new {park:place} near the river.",
    "Dogs are allowed in the {park:place} before noon.",
    "Mr {Park:name} teaches history at the school.",
    "{NAME} {Park:name} was born in a small town.",
    "We had a picnic in {PARKNAME} {Park:name} on Sunday.",
    "Dr {Park:name} said that the results looked good.",
    "The team from {PARKNAME} {Park:name} won the match.",
    "{Park:name} said that the meeting would start late.",
    "Everyone at the office likes {Park:name} a lot.",
    "You can {park:verb} the car behind the shop.",
    "It took ten minutes to {park:verb} the van.",
    "Please do not {park:verb} in front of the gate.",
    "They had to {park:verb} far from the stadium.",
    "We sat on the {bank:river} of the river and watched the boats.",
    "The water rose over the {bank:river} after the storm.",
    "Reeds grew thick along the muddy {bank:river}.",
    "She opened an account at the {bank:money} on Monday.",
    "The {bank:money} raised its interest rates again.",
    "He went to the {bank:money} to borrow some money.",
    "A {bat:animal} flew out of the cave at dusk.",
    "The {bat:animal} hung upside down from the roof.",
    "Each {bat:animal} uses echoes to find insects.",
    "He swung the {bat:sport} and hit the ball.",
    "She bought a new cricket {bat:sport} for the summer.",
    "The {bat:sport} cracked when it struck the ball.",
)

# --------------------------------------------------------------------------------------
# Base64 and repeated spans
# --------------------------------------------------------------------------------------

B64_CLASSES = ("letter", "digit", "other")  # other: "+", "/" and the "=" padding
B64_KEYS = ("data", "payload", "attachment", "key", "token", "blob", "content", "signature")
# Random words for the repeat genre: every content word the corpus knows, lowercased.
REPEAT_WORDS = tuple(sorted({w for ws in NODE_VOCAB.values() for w in ws} | set(PLACES) | set(OBJECTS)))

# --------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------

# field -> its value vocabulary (labels stored as the index), or None for integer fields.
# Every field uses -1 for "not applicable".
LABEL_FIELDS: Mapping[str, tuple[str, ...] | None] = MappingProxyType(
    {
        "genre": GENRES,
        "node": NODE_PATHS,  # concept that produced the word (or "function")
        "topic": NODE_PATHS,  # leaf the paragraph is about, on every character of it
        "ioi_role": IOI_ROLES,
        "ioi_order": IOI_ORDERS,
        # index into IOI_TEMPLATES (+ len(IOI_TEMPLATES) for THREE_NAME_TEMPLATES); COMPOSED_TEMPLATE_ID for
        # composed sentences
        "ioi_template": None,
        "name": NAMES,  # which character a name token refers to (any story sentence)
        "sense": SENSES,
        "b64_class": B64_CLASSES,
        "b64_ascii": None,  # 1: the blob decodes to printable ASCII, 0: random bytes
        "repeat_id": None,  # which repeated span in the document
        "repeat_occ": None,  # 0: first occurrence, k: k-th repeat
        "repeat_pos": None,  # word index within the original span
    }
)
# Derived per-token fields: the `node` path cut to depth k+1 (index into NODE_PATHS).
LEVEL_FIELDS = tuple(f"node_l{k}" for k in range(HIERARCHY_DEPTH))
# The paragraph topic's ancestors (topic_l1 = "animals/birds" for a raven paragraph): the
# coarse features that finer topic features split from (notebook 05).
TOPIC_LEVEL_FIELDS = tuple(f"topic_l{k}" for k in range(HIERARCHY_DEPTH - 1))
_NODE_INDEX = MappingProxyType({p: i for i, p in enumerate(NODE_PATHS)})
# _ANCESTOR[k][i]: NODE_PATHS index of node i's ancestor at depth k, or -1.
_ANCESTOR = tuple(
    np.array(
        [
            _NODE_INDEX["/".join(p.split("/")[: k + 1])] if p != FUNCTION_LABEL and p.count("/") >= k else -1
            for p in NODE_PATHS
        ]
        + [-1],  # trailing -1 so index -1 maps to -1
        dtype=np.int32,
    )
    for k in range(HIERARCHY_DEPTH)
)


def label_id(field_name: str, value: str | int) -> int:
    """The integer stored for `value` in `field_name` (strings are looked up)."""
    vocab = LABEL_FIELDS[field_name]
    if vocab is None:
        return int(value)
    return _NODE_INDEX[value] if vocab is NODE_PATHS else vocab.index(value)


def label_name(field_name: str, value: int | np.integer) -> str | int | None:
    """Inverse of `label_id`: the readable label, or None for -1."""
    if value < 0:
        return None
    vocab = LABEL_FIELDS.get(field_name, NODE_PATHS)  # level fields index NODE_PATHS
    return int(value) if vocab is None else vocab[value]


class Span(NamedTuple):
    """Labels that hold for text[start:end]. Spans may nest (a sentence and its words).

    A NamedTuple rather than a dataclass: documents hold dozens of spans, and tuples are
    cheap to build under the test suite's runtime type checking.
    """

    start: int
    end: int
    labels: Mapping[str, str | int]


@dataclass(frozen=True)
class Document:
    index: int
    genre: str
    text: str
    spans: tuple[Span, ...]

    def labelled(self, field_name: str) -> list[tuple[str, str | int]]:
        """(text, value) for every span that sets `field_name`, in order."""
        return [(self.text[s.start : s.end], s.labels[field_name]) for s in self.spans if field_name in s.labels]


# --------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------


def _check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> None:
    if value not in choices:
        raise ValueError(f"parameter {name}={value!r} is not allowed; choose one of {list(choices)}")


def _check_interval(name: str, value: tuple[int, int], low: int, high: int) -> None:
    """A (min, max) pair must satisfy low <= min <= max <= high."""
    check_range(f"{name}[0]", value[0], low, high)
    check_range(f"{name}[1]", value[1], value[0], high)


@dataclass(frozen=True)
class CorpusConfig:
    """Everything that shapes the corpus. Same config, same documents."""

    seed: int = 0
    split: str = "train"  # "eval": IOI sentences use only held-out name/template pairs
    genre_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_GENRE_WEIGHTS))
    # stories
    story_sentences: tuple[int, int] = (4, 10)
    cast_size: tuple[int, int] = (3, 5)
    ioi_fraction: float = 0.4  # share of story sentences that are IOI
    # share of the other story sentences that are three-name sentences (THREE_NAME_TEMPLATES); 0 keeps
    # the corpus of every model trained before they existed unchanged, draw for draw
    three_name_fraction: float = 0.0
    # share of IOI and three-name sentences composed from parts (COMPOSED_*) instead of fixed
    # templates; 0 keeps earlier corpora unchanged, draw for draw
    composed_fraction: float = 0.0
    heldout_fraction: float = 0.25  # share of names held out per IOI template
    heldout_seed: int = 0  # kept apart from `seed` so every training seed shares one split
    # topics
    topic_paragraphs: tuple[int, int] = (1, 3)
    topic_sentences: tuple[int, int] = (3, 6)
    topic_level_weights: tuple[float, float, float] = (0.15, 0.3, 0.55)  # root, category, leaf
    # senses
    sense_sentences: tuple[int, int] = (3, 8)
    # base64
    b64_lines: tuple[int, int] = (2, 6)
    b64_bytes: tuple[int, int] = (9, 72)
    b64_ascii_fraction: float = 0.5
    # repeats
    repeat_spans: tuple[int, int] = (1, 3)
    repeat_words: tuple[int, int] = (6, 24)
    repeat_copies: tuple[int, int] = (1, 2)
    repeat_filler: tuple[int, int] = (0, 30)  # random words before each occurrence
    repeat_full_prob: float = 0.5  # else a repeat copies a random window of the span

    def __post_init__(self) -> None:
        check_range("seed", self.seed, 0, 2**32 - 1)
        _check_choice("split", self.split, ("train", "eval"))
        for genre, weight in self.genre_weights.items():
            _check_choice("genre_weights key", genre, GENRES)
            check_range(f"genre_weights[{genre!r}]", weight, 0.0)
        check_range("sum(genre_weights)", sum(self.genre_weights.values()), 0.0, low_inclusive=False)
        _check_interval("story_sentences", self.story_sentences, 1, 100)
        _check_interval("cast_size", self.cast_size, 3, len(NAMES))
        check_range("ioi_fraction", self.ioi_fraction, 0.0, 1.0)
        check_range("three_name_fraction", self.three_name_fraction, 0.0, 1.0)
        check_range("composed_fraction", self.composed_fraction, 0.0, 1.0)
        check_range("heldout_fraction", self.heldout_fraction, 0.0, 0.5)
        if self.split == "eval":
            check_range("heldout_fraction (split='eval')", self.heldout_fraction, 2 / len(NAMES), 0.5)
        check_range("heldout_seed", self.heldout_seed, 0, 2**32 - 1)
        _check_interval("topic_paragraphs", self.topic_paragraphs, 1, 20)
        _check_interval("topic_sentences", self.topic_sentences, 1, len(TOPIC_FRAMES))
        for level, weight in enumerate(self.topic_level_weights):
            check_range(f"topic_level_weights[{level}]", weight, 0.0)
        check_range("sum(topic_level_weights)", sum(self.topic_level_weights), 0.0, low_inclusive=False)
        _check_interval("sense_sentences", self.sense_sentences, 1, len(SENSE_TEMPLATES))
        _check_interval("b64_lines", self.b64_lines, 1, 50)
        _check_interval("b64_bytes", self.b64_bytes, 3, 1024)
        check_range("b64_ascii_fraction", self.b64_ascii_fraction, 0.0, 1.0)
        _check_interval("repeat_spans", self.repeat_spans, 1, 10)
        _check_interval("repeat_words", self.repeat_words, 2, 200)
        _check_interval("repeat_copies", self.repeat_copies, 1, 10)
        _check_interval("repeat_filler", self.repeat_filler, 0, 500)
        check_range("repeat_full_prob", self.repeat_full_prob, 0.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        """Plain fields for json.dumps (which writes the tuples as lists)."""
        return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CorpusConfig:
        """Inverse of `to_dict`: lists from JSON become the tuples the fields expect."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


# --------------------------------------------------------------------------------------
# Text assembly
# --------------------------------------------------------------------------------------

_SLOT = re.compile(r"\{([\w:]+)\}")
_WORD = re.compile(r"[A-Za-z]+")


class _Builder:
    """Appends text and records the spans that label it, so offsets are never computed by hand."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.spans: list[Span] = []
        self.n = 0

    def add(self, text: str, *, sep: str = "", **labels: str | int) -> tuple[int, int]:
        """Append sep + text; the span (if any labels) covers text only."""
        if sep:
            self.parts.append(sep)
            self.n += len(sep)
        start = self.n
        self.parts.append(text)
        self.n += len(text)
        if labels:
            self.spans.append(Span(start, self.n, labels))
        return start, self.n

    def label(self, start: int, end: int, **labels: str | int) -> None:
        self.spans.append(Span(start, end, labels))

    def add_words(self, text: str, **labels: str | int) -> None:
        """Append literal text, labelling each alphabetic word (not spaces or punctuation)."""
        start = self.n
        self.add(text)
        self.spans.extend(Span(start + m.start(), start + m.end(), labels) for m in _WORD.finditer(text))


def _pieces(template: str) -> list[tuple[str, bool]]:
    """Split a template into (text, is_slot) pieces; slot pieces hold the slot name."""
    parts = _SLOT.split(template)
    return [(p, i % 2 == 1) for i, p in enumerate(parts) if p or i % 2 == 1]


def _with_article(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def _doc_rng(seed: int, split: str, index: int) -> random.Random:
    """A per-document RNG, so document i never depends on documents before it."""
    return random.Random(f"corpus:{seed}:{split}:{index}")


# --------------------------------------------------------------------------------------
# IOI helpers (also used to build evaluation prompts)
# --------------------------------------------------------------------------------------


def heldout_names(template: int, heldout_fraction: float = 0.25, heldout_seed: int = 0) -> frozenset[str]:
    """Names that never fill IO or S in `template` in training documents.

    Holding out (template, name) pairs rather than whole names means every name token is
    still trained, so evaluation measures generalisation to unseen combinations.
    """
    check_range("template", template, 0, len(IOI_TEMPLATES) - 1)
    check_range("heldout_fraction", heldout_fraction, 0.0, 0.5)
    k = round(heldout_fraction * len(NAMES))
    return frozenset(random.Random(f"heldout:{heldout_seed}:{template}").sample(NAMES, k))


@dataclass(frozen=True)
class IOIPrompt:
    text: str  # ends just before the answer, e.g. "... gave a drink to"
    io: str
    s: str
    template: int
    order: str
    place: str
    obj: str

    @property
    def answer(self) -> str:
        """The correct next token's text (GPT-2 style leading space)."""
        return " " + self.io

    @property
    def distractor(self) -> str:
        return " " + self.s


def fill_ioi_template(template: int, n1: str, n2: str, s2: str, place: str, obj: str) -> str:
    """The text of IOI template `template` with its three name slots filled as given.

    In a real IOI prompt s2 repeats n1 or n2; corrupted datasets (e.g. "ABC", three
    different names) fill the slots freely.
    """
    check_range("template", template, 0, len(IOI_TEMPLATES) - 1)
    values = {"N1": n1, "N2": n2, "S": s2, "PLACE": place, "OBJECT": obj, "A_OBJECT": _with_article(obj)}
    return "".join(values[p] if is_slot else p for p, is_slot in _pieces(IOI_TEMPLATES[template]))


def make_ioi_prompt(template: int, io: str, s: str, order: str, place: str, obj: str) -> IOIPrompt:
    """Fill one IOI template; order "ABBA" mentions IO first, "BABA" mentions S first."""
    _check_choice("order", order, IOI_ORDERS)
    n1, n2 = (io, s) if order == "ABBA" else (s, io)
    return IOIPrompt(fill_ioi_template(template, n1, n2, s, place, obj), io, s, template, order, place, obj)


def _pick_ioi(rng: random.Random, cfg: CorpusConfig, cast: list[str]) -> IOIPrompt:
    """A random IOI prompt that respects the config's split."""
    template = rng.randrange(len(IOI_TEMPLATES))
    held = heldout_names(template, cfg.heldout_fraction, cfg.heldout_seed)
    allowed = sorted(held) if cfg.split == "eval" else [n for n in NAMES if n not in held]
    in_cast = [n for n in cast if n in allowed]
    io, s = rng.sample(in_cast if len(in_cast) >= 2 else allowed, 2)
    return make_ioi_prompt(template, io, s, rng.choice(IOI_ORDERS), rng.choice(PLACES), rng.choice(OBJECTS))


def ioi_prompts(cfg: CorpusConfig, n: int, seed: int = 0) -> list[IOIPrompt]:
    """`n` IOI prompts from `cfg.split` (use split="eval" for held-out combinations)."""
    check_range("n", n, 0)
    rng = random.Random(f"ioi_prompts:{seed}:{cfg.split}")
    return [_pick_ioi(rng, cfg, []) for _ in range(n)]


# --------------------------------------------------------------------------------------
# Genres
# --------------------------------------------------------------------------------------


def _write_ioi(b: _Builder, p: IOIPrompt) -> None:
    """Append an IOI sentence (prompt + answer) with roles on every name and on END."""
    n1_role, n2_role = ("IO", "S") if p.order == "ABBA" else ("S", "IO")
    roles = {"N1": n1_role, "N2": n2_role, "S": "S2"}
    values = {"N1": p.io if p.order == "ABBA" else p.s, "N2": p.s if p.order == "ABBA" else p.io, "S": p.s}
    sent_start = b.n
    for text, is_slot in _pieces(IOI_TEMPLATES[p.template]):
        if is_slot and text in roles:
            b.add(values[text], name=values[text], ioi_role=roles[text])
        elif is_slot:
            b.add(_with_article(p.obj) if text == "A_OBJECT" else p.obj if text == "OBJECT" else p.place)
        else:
            b.add(text)
    end_word = _WORD.findall(b.parts[-1])[-1]  # the prompt's last word, e.g. "to"
    b.label(b.n - len(end_word), b.n, ioi_role="END")
    b.add(" ")
    b.add(p.io, name=p.io, ioi_role="ANS")
    b.add(".")
    b.label(sent_start, b.n, ioi_template=p.template, ioi_order=p.order)


def three_name_heldout(template: int, heldout_fraction: float = 0.25, heldout_seed: int = 0) -> frozenset[str]:
    """Names that never are the answer of three-name template `template` in training documents."""
    check_range("template", template, 0, len(THREE_NAME_TEMPLATES) - 1)
    check_range("heldout_fraction", heldout_fraction, 0.0, 0.5)
    k = round(heldout_fraction * len(NAMES))
    return frozenset(random.Random(f"heldout3:{heldout_seed}:{template}").sample(NAMES, k))


def _write_three_names(b: _Builder, rng: random.Random, cfg: CorpusConfig, cast: list[str]) -> None:
    """A three-name sentence and its answer: roles IO (the name said once), S, S2, END, ANS."""
    template = rng.randrange(len(THREE_NAME_TEMPLATES))
    held = three_name_heldout(template, cfg.heldout_fraction, cfg.heldout_seed)
    allowed = sorted(held) if cfg.split == "eval" else [n for n in NAMES if n not in held]
    in_cast = [n for n in cast if n in allowed]
    answer = rng.choice(in_cast or allowed)
    others = rng.sample([n for n in (cast if len(cast) >= 3 else NAMES) if n != answer], 2)
    introduced = others[:]
    introduced.insert(rng.randrange(3), answer)  # the answer's slot: first, second or third
    repeated = rng.sample(others, 2)  # the repeated pair in either order
    obj = rng.choice(OBJECTS)
    values = {"PLACE": rng.choice(PLACES), "OBJECT": obj, "A_OBJECT": _with_article(obj)}
    names = {"N1": introduced[0], "N2": introduced[1], "N3": introduced[2], "R1": repeated[0], "R2": repeated[1]}
    _write_said_once(b, THREE_NAME_TEMPLATES[template], names, answer, values, len(IOI_TEMPLATES) + template)


def _write_said_once(
    b: _Builder, template: str, names: dict[str, str], answer: str, values: dict[str, str], template_id: int
) -> None:
    """Fill a template whose answer is the name said once; roles IO (the answer), S (other introduced names), S2
    (later mentions: slots not starting with N), END (the last word), ANS (the answer as the completion)."""
    sent_start = b.n
    for text, is_slot in _pieces(template):
        if is_slot and text in names:
            name = names[text]
            role = "IO" if name == answer else "S" if text.startswith("N") else "S2"
            b.add(name, name=name, ioi_role=role)
        else:
            b.add(values[text] if is_slot else text)
    end_word = _WORD.findall(b.parts[-1])[-1]
    b.label(b.n - len(end_word), b.n, ioi_role="END")
    b.add(" ")
    b.add(answer, name=answer, ioi_role="ANS")
    b.add(".")
    b.label(sent_start, b.n, ioi_template=template_id)


def compose_template(n_names: int, opening: str, aside: str | None, connector: str, ending: str, obj: str) -> str:
    """One transfer template from COMPOSED_* parts, slots as in IOI_TEMPLATES / THREE_NAME_TEMPLATES.

    Two names: {N1} {N2} introduced, {S} the repeated one. Three: {N1} {N2} {N3} introduced, {R1}
    {R2} repeated. With an `aside`, the middle sentence names the first repeated name ({S} or {R1})
    and the final clause only the last one, so the repeated names sit in different clauses. The
    connector is used only after an opening or aside that ends a sentence.
    """
    text = opening.replace("{NAMES}", "{N1} and {N2}" if n_names == 2 else "{N1}, {N2} and {N3}")
    if n_names == 2:
        repeated, subject = "{S}", "{S}"
    else:
        repeated, subject = "{R1}", "{R2}" if aside else "{R1} and {R2}"
    if aside:
        text += " " + aside.replace("{R}", repeated)
    if text.endswith("."):
        subject = connector + subject
    return f"{text} {subject} {ending.replace('{OBJ}', obj)}"


def composed_templates(n_names: int) -> Iterator[str]:
    """Every template `compose_template` can make for `n_names` (with repeats): what the corpus can say."""
    openings = COMPOSED_OPENINGS if n_names == 2 else _THREE_NAME_OPENINGS
    for parts in itertools.product(openings, (None, *COMPOSED_ASIDES), COMPOSED_CONNECTORS, COMPOSED_ENDINGS):
        for obj in COMPOSED_OBJECTS if "{OBJ}" in parts[-1] else COMPOSED_OBJECTS[:1]:
            yield compose_template(n_names, *parts, obj)


def _composed_template(rng: random.Random, n_names: int, aside: bool) -> str:
    """A random `compose_template` (the draws, in this order, make the shipped models' corpus)."""
    opening = rng.choice(COMPOSED_OPENINGS if n_names == 2 else _THREE_NAME_OPENINGS)
    aside_part = rng.choice(COMPOSED_ASIDES) if aside else None
    connector = rng.choice(COMPOSED_CONNECTORS) if aside or opening.endswith(".") else ""
    ending = rng.choice(COMPOSED_ENDINGS)
    return compose_template(n_names, opening, aside_part, connector, ending, rng.choice(COMPOSED_OBJECTS))


# Wordings a composed sentence must never take: the fixed templates (whose held-out names would
# leak) and the evaluation-only wordings of `transformer_circuits.ioi` (tests check they match).
EVAL_ONLY_WORDINGS = (
    "{N1}, {N2} and {N3} went to the {PLACE}. {R1} and {R2} gave {A_OBJECT} to",
    "{N1}, {N2} and {N3} went to the {PLACE}, and {R1} sat down. Later, {R2} gave {A_OBJECT} to",
)
_NEVER_COMPOSED = frozenset(IOI_TEMPLATES + THREE_NAME_TEMPLATES + EVAL_ONLY_WORDINGS)


def composed_heldout(heldout_fraction: float = 0.25, heldout_seed: int = 0) -> frozenset[str]:
    """Names that are never the answer of a composed sentence in training documents."""
    check_range("heldout_fraction", heldout_fraction, 0.0, 0.5)
    k = round(heldout_fraction * len(NAMES))
    return frozenset(random.Random(f"heldout_composed:{heldout_seed}").sample(NAMES, k))


def _write_composed(b: _Builder, rng: random.Random, cfg: CorpusConfig, cast: list[str], n_names: int) -> None:
    """A composed transfer sentence and its answer, the one name said once: roles as `_write_three_names`."""
    aside = rng.random() < 0.4
    template = _composed_template(rng, n_names, aside)
    while template in _NEVER_COMPOSED:
        template = _composed_template(rng, n_names, aside)
    held = composed_heldout(cfg.heldout_fraction, cfg.heldout_seed)
    allowed = sorted(held) if cfg.split == "eval" else [n for n in NAMES if n not in held]
    in_cast = [n for n in cast if n in allowed]
    answer = rng.choice(in_cast or allowed)
    others = rng.sample([n for n in (cast if len(cast) >= n_names else NAMES) if n != answer], n_names - 1)
    introduced = others[:]
    introduced.insert(rng.randrange(n_names), answer)
    repeated = rng.sample(others, len(others))
    obj, obj2 = rng.sample(OBJECTS, 2)
    values = {
        "PLACE": rng.choice(PLACES),
        "OBJECT": obj,
        "A_OBJECT": _with_article(obj),
        "A_OBJECT2": _with_article(obj2),
    }
    names = {f"N{i + 1}": name for i, name in enumerate(introduced)}
    names |= {"S": repeated[0]} if n_names == 2 else {"R1": repeated[0], "R2": repeated[1]}
    _write_said_once(b, template, names, answer, values, COMPOSED_TEMPLATE_ID)


def _write_story_sentence(b: _Builder, rng: random.Random, cast: list[str]) -> None:
    a, bb, c = rng.sample(cast, 3)
    values = {"A": a, "B": bb, "C": c, "PLACE": rng.choice(PLACES)}
    obj = rng.choice(OBJECTS)
    values |= {"OBJECT": obj, "A_OBJECT": _with_article(obj)}
    for text, is_slot in _pieces(rng.choice(STORY_TEMPLATES)):
        if is_slot and text in ("A", "B", "C"):
            b.add(values[text], name=values[text])
        else:
            b.add(values[text] if is_slot else text)


def _story(b: _Builder, rng: random.Random, cfg: CorpusConfig) -> None:
    cast = rng.sample(NAMES, rng.randint(*cfg.cast_size))
    for i in range(rng.randint(*cfg.story_sentences)):
        if i:
            b.add(" ")
        if rng.random() < cfg.ioi_fraction:
            if cfg.composed_fraction and rng.random() < cfg.composed_fraction:  # no draw when 0
                _write_composed(b, rng, cfg, cast, 2)
            else:
                _write_ioi(b, _pick_ioi(rng, cfg, cast))
        elif cfg.three_name_fraction and rng.random() < cfg.three_name_fraction:  # no draw when 0
            if cfg.composed_fraction and rng.random() < cfg.composed_fraction:
                _write_composed(b, rng, cfg, cast, 3)
            else:
                _write_three_names(b, rng, cfg, cast)
        else:
            _write_story_sentence(b, rng, cast)


def _topic(b: _Builder, rng: random.Random, cfg: CorpusConfig) -> None:
    """Paragraphs about leaves under one root; each slot word comes from the leaf or an ancestor."""
    root = rng.choice(LEAVES).split("/")[0]
    leaves = [leaf for leaf in LEAVES if leaf.startswith(root + "/")]
    for para in range(rng.randint(*cfg.topic_paragraphs)):
        if para:
            b.add("\n\n")
        leaf = rng.choice(leaves)
        parts = leaf.split("/")
        lineage = ["/".join(parts[: k + 1]) for k in range(HIERARCHY_DEPTH)]  # root, category, leaf
        para_start = b.n
        # Frames without replacement, so a paragraph never repeats a frame: repeats are
        # the repeat genre's job, where they are labelled.
        for i, frame in enumerate(rng.sample(TOPIC_FRAMES, rng.randint(*cfg.topic_sentences))):
            if i:
                b.add(" ")
            for text, is_slot in _pieces(frame):
                if is_slot:
                    node = rng.choices(lineage, weights=cfg.topic_level_weights)[0]
                    b.add(rng.choice(NODE_VOCAB[node]), node=node)
                else:
                    b.add_words(text, node=FUNCTION_LABEL)
        b.label(para_start, b.n, topic=leaf)


def _senses(b: _Builder, rng: random.Random, cfg: CorpusConfig) -> None:
    # Sampled without replacement: a repeated sentence would let induction give the sense away.
    templates = rng.sample(SENSE_TEMPLATES, rng.randint(*cfg.sense_sentences))
    for i, template in enumerate(templates):
        if i:
            b.add(" ")
        for text, is_slot in _pieces(template):
            if not is_slot:
                b.add(text)
            elif text == "NAME":
                name = rng.choice(NAMES)
                b.add(name, name=name)
            elif text == "PARKNAME":
                b.add(rng.choice(PARK_NAMES))
            else:
                word, sense = text.split(":")
                b.add(word, sense=f"{word.lower()}:{sense}")


def _ascii_payload(rng: random.Random, n_bytes: int) -> bytes:
    """Printable English-like text of exactly n_bytes, made from topic frames."""
    text = ""
    while len(text) < n_bytes:
        leaf = rng.choice(LEAVES)
        words = {k: rng.choice(NODE_VOCAB[leaf]) for k in "abc"}
        text += (" " if text else "") + rng.choice(TOPIC_FRAMES).format(**words)
    return text[:n_bytes].encode("ascii")


def _random_payload(rng: random.Random, n_bytes: int) -> bytes:
    """Random bytes, redrawn in the (tiny-chance) case they are all printable ASCII."""
    while True:
        data = rng.randbytes(n_bytes)
        if not is_printable_ascii(data):
            return data


def is_printable_ascii(data: bytes) -> bool:
    return all(0x20 <= c < 0x7F for c in data)


def _b64_class(ch: str) -> str:
    return "letter" if ch.isalpha() else "digit" if ch.isdigit() else "other"


def _base64(b: _Builder, rng: random.Random, cfg: CorpusConfig) -> None:
    """Lines of `key: blob`; some blobs hide ASCII text, some random bytes."""
    for i in range(rng.randint(*cfg.b64_lines)):
        if i:
            b.add("\n")
        n_bytes = rng.randint(*cfg.b64_bytes)
        is_ascii = rng.random() < cfg.b64_ascii_fraction
        payload = _ascii_payload(rng, n_bytes) if is_ascii else _random_payload(rng, n_bytes)
        blob = base64.b64encode(payload).decode("ascii")
        b.add(f"{rng.choice(B64_KEYS)}: ")
        start = b.n
        # One span per run of same-class characters keeps the span count small.
        for run in re.finditer(r"[A-Za-z]+|[0-9]+|[+/=]+", blob):
            b.add(run.group(), b64_class=_b64_class(run.group()[0]))
        b.label(start, b.n, b64_ascii=int(is_ascii))


def _repeat(b: _Builder, rng: random.Random, cfg: CorpusConfig) -> None:
    """Random words in which random spans recur later, whole or as a random window."""
    spans = [rng.choices(REPEAT_WORDS, k=rng.randint(*cfg.repeat_words)) for _ in range(rng.randint(*cfg.repeat_spans))]
    events = [k for k in range(len(spans)) for _ in range(1 + rng.randint(*cfg.repeat_copies))]
    rng.shuffle(events)  # the first event of span k in this order is its first occurrence
    seen = [0] * len(spans)
    words: list[tuple[str, dict[str, int]]] = []
    for k in events:
        words += [(w, {}) for w in rng.choices(REPEAT_WORDS, k=rng.randint(*cfg.repeat_filler))]
        span = spans[k]
        lo, hi = 0, len(span)
        if seen[k] and rng.random() >= cfg.repeat_full_prob:
            length = rng.randint(2, len(span))
            lo = rng.randint(0, len(span) - length)
            hi = lo + length
        words += [(span[j], {"repeat_id": k, "repeat_occ": seen[k], "repeat_pos": j}) for j in range(lo, hi)]
        seen[k] += 1
    for i, (word, labels) in enumerate(words):
        b.add(word, sep=" " if i else "", **labels)
    b.add(".")


_GENRE_WRITERS: Mapping[str, Callable[[_Builder, random.Random, CorpusConfig], None]] = MappingProxyType(
    {"story": _story, "topic": _topic, "senses": _senses, "base64": _base64, "repeat": _repeat}
)

# --------------------------------------------------------------------------------------
# Public generation API
# --------------------------------------------------------------------------------------


def make_document(cfg: CorpusConfig, index: int) -> Document:
    """Document number `index` of the corpus `cfg` describes (random access, deterministic)."""
    check_range("index", index, 0)
    rng = _doc_rng(cfg.seed, cfg.split, index)
    weights = [cfg.genre_weights.get(g, 0.0) for g in GENRES]  # fixed order: dict order must not matter
    genre = rng.choices(GENRES, weights=weights)[0]
    b = _Builder()
    _GENRE_WRITERS[genre](b, rng, cfg)
    return Document(index=index, genre=genre, text="".join(b.parts), spans=tuple(b.spans))


def iter_documents(cfg: CorpusConfig, start: int = 0, stop: int | None = None) -> Iterator[Document]:
    """Stream documents start, start+1, ... (forever when stop is None)."""
    check_range("start", start, 0)
    index = start
    while stop is None or index < stop:
        yield make_document(cfg, index)
        index += 1


def char_labels(doc: Document) -> dict[str, Int[np.ndarray, " chars"]]:
    """One int32 array per label field, aligned with doc.text (-1 where a field does not apply)."""
    n = len(doc.text)
    out = {name: np.full(n, -1, dtype=np.int32) for name in LABEL_FIELDS}
    out["genre"][:] = GENRES.index(doc.genre)
    for span in doc.spans:
        for name, value in span.labels.items():
            out[name][span.start : span.end] = label_id(name, value)
    return out


def token_labels(
    doc: Document, offsets: Int[np.ndarray, "tokens 2"] | list[tuple[int, int]]
) -> dict[str, Int[np.ndarray, " tokens"]]:
    """Project character labels onto tokens given each token's (start, end) character offsets.

    A token takes the labels of its first non-space character, because byte-level BPE
    tokens carry their leading space (" raven") while spans cover only the word. Tokens
    with empty offsets (BOS and other special tokens) get -1 in every field. Adds the
    derived fields node_l0..node_l2 (the producing node's ancestor at each depth) and
    topic_l0, topic_l1 (the paragraph topic's ancestors).
    """
    offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)  # also accepts HF's list of tuples
    chars = char_labels(doc)
    n = len(doc.text)
    starts, ends = offsets[:, 0], offsets[:, 1]
    # next_solid[i]: first index >= i whose character is not whitespace (n if none).
    solid = np.array([not c.isspace() for c in doc.text] + [True], dtype=bool)
    idx_solid = np.flatnonzero(solid)
    next_solid = idx_solid[np.searchsorted(idx_solid, np.arange(n + 1))]
    valid = (ends > starts) & (starts >= 0) & (ends <= n)
    first = next_solid[np.clip(starts, 0, n)]
    pick = np.where(first < ends, first, starts)  # all-space tokens keep their own start
    pick = np.where(valid, pick, 0)
    out = {}
    for name, arr in chars.items():
        values = arr[pick] if n else np.full(len(pick), -1, dtype=np.int32)
        out[name] = np.where(valid, values, -1).astype(np.int32)
    for k, level in enumerate(LEVEL_FIELDS):
        out[level] = _ANCESTOR[k][out["node"]]
    for k, level in enumerate(TOPIC_LEVEL_FIELDS):
        out[level] = _ANCESTOR[k][out["topic"]]
    return out


def format_spans(doc: Document, fields: tuple[str, ...] | None = None) -> str:
    """Readable listing of a document's labelled spans, for notebooks and debugging."""
    lines = [f"[{doc.genre} #{doc.index}] {doc.text!r}"]
    for s in doc.spans:
        shown = {k: v for k, v in s.labels.items() if fields is None or k in fields}
        if shown:
            lines.append(f"  {s.start:5d}-{s.end:<5d} {doc.text[s.start : s.end]!r:30} {shown}")
    return "\n".join(lines)
