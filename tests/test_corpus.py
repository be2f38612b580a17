"""The synthetic corpus: determinism, genre mixture, and that every label tells the truth."""

import base64
import binascii
import random
import re
from collections import Counter

import numpy as np
import pytest

from interp_helpers.modelzoo.corpus import (
    B64_CLASSES,
    FUNCTION_LABEL,
    GENRES,
    HIERARCHY_DEPTH,
    IOI_TEMPLATES,
    LABEL_FIELDS,
    LEAVES,
    NAMES,
    NODE_PATHS,
    NODE_VOCAB,
    OBJECTS,
    PLACES,
    STORY_TEMPLATES,
    CorpusConfig,
    char_labels,
    heldout_names,
    ioi_prompts,
    is_printable_ascii,
    iter_documents,
    label_id,
    label_name,
    make_document,
    make_ioi_prompt,
    token_labels,
)

CFG = CorpusConfig(seed=0)


@pytest.fixture(scope="module")
def docs():
    return list(iter_documents(CFG, 0, 1000))


def by_genre(docs, genre):
    return [d for d in docs if d.genre == genre]


def spans_with(doc, field):
    return [s for s in doc.spans if field in s.labels]


# ---------------------------------------------------------------- determinism & mixture


def test_same_seed_same_documents(docs):
    again = list(iter_documents(CorpusConfig(seed=0), 0, 200))
    assert again == docs[:200]
    assert make_document(CFG, 123) == docs[123]  # random access agrees with streaming


def test_different_seeds_differ(docs):
    other = [d.text for d in iter_documents(CorpusConfig(seed=1), 0, 200)]
    assert sum(a == b.text for a, b in zip(other, docs)) < 5


def test_stream_is_lazy_and_unbounded():
    stream = iter_documents(CFG)
    first = [next(stream) for _ in range(3)]
    assert [d.index for d in first] == [0, 1, 2]


def test_genres_appear_in_proportion(docs):
    counts = Counter(d.genre for d in docs)
    total = sum(CFG.genre_weights.values())
    for genre in GENRES:
        share = counts[genre] / len(docs)
        assert abs(share - CFG.genre_weights[genre] / total) < 0.04, (genre, share)


def test_genre_weights_select_genres():
    only = CorpusConfig(genre_weights={"base64": 1.0, "story": 0.0})
    assert {d.genre for d in iter_documents(only, 0, 50)} == {"base64"}


def test_text_is_ascii(docs):
    assert all(d.text.isascii() for d in docs)


# ---------------------------------------------------------------- inventories


def test_inventories_are_large_enough():
    assert len(IOI_TEMPLATES) >= 15
    assert min(len(NAMES), len(PLACES), len(OBJECTS)) >= 40
    assert len(set(NAMES)) == len(NAMES)
    assert len(LEAVES) >= 30
    assert all(leaf.count("/") == HIERARCHY_DEPTH - 1 for leaf in LEAVES)


def test_each_word_belongs_to_one_node():
    """Unique words make the node label recoverable from the word, so alignment is testable."""
    words = [w for ws in NODE_VOCAB.values() for w in ws]
    assert len(words) == len(set(words))


def test_label_ids_round_trip():
    for field, vocab in LABEL_FIELDS.items():
        if vocab is not None:
            assert all(label_name(field, label_id(field, v)) == v for v in vocab)
    assert label_name("node", -1) is None


# ---------------------------------------------------------------- topics


def test_topic_words_come_from_their_node(docs):
    for doc in by_genre(docs, "topic"):
        for text, node in doc.labelled("node"):
            if node == FUNCTION_LABEL:
                assert text.isalpha()
            else:
                assert text in NODE_VOCAB[node], (text, node)


def test_topic_words_come_from_the_paragraph_leaf_or_its_ancestors(docs):
    for doc in by_genre(docs, "topic"):
        chars = char_labels(doc)
        for para in spans_with(doc, "topic"):
            leaf = para.labels["topic"]
            nodes = {label_name("node", i) for i in np.unique(chars["node"][para.start : para.end])}
            for node in nodes - {None, FUNCTION_LABEL}:
                assert leaf == node or leaf.startswith(node + "/"), (leaf, node)


def test_topic_paragraph_mixes_levels(docs):
    depths = Counter(n.count("/") for d in by_genre(docs, "topic") for _, n in d.labelled("node") if n != "function")
    assert set(depths) == {0, 1, 2}
    assert depths[2] > depths[1] > depths[0]  # default weights favour the leaf


# ---------------------------------------------------------------- IOI and stories


def ioi_sentences(doc):
    """(sentence span, role -> list of role spans) for every IOI sentence in a story."""
    out = []
    for sent in spans_with(doc, "ioi_template"):
        roles = {}
        for s in spans_with(doc, "ioi_role"):
            if sent.start <= s.start and s.end <= sent.end:
                roles.setdefault(s.labels["ioi_role"], []).append(s)
        out.append((sent, roles))
    return out


def ioi_pattern(template, io, s, order):
    """Regex for the full IOI sentence, any place and object allowed."""
    prompt = make_ioi_prompt(template, io, s, order, place="PLACEX", obj="OBJX").text
    pattern = re.escape(prompt)
    pattern = pattern.replace("PLACEX", "(?:" + "|".join(map(re.escape, PLACES)) + ")")
    pattern = pattern.replace(re.escape("a OBJX"), "an? (?:" + "|".join(map(re.escape, OBJECTS)) + ")")
    pattern = pattern.replace("OBJX", "(?:" + "|".join(map(re.escape, OBJECTS)) + ")")
    return pattern + re.escape(f" {io}.")


def test_ioi_sentences_complete_with_the_indirect_object(docs):
    orders = Counter()
    n = 0
    for doc in by_genre(docs, "story"):
        for sent, roles in ioi_sentences(doc):
            n += 1
            (io,), (s,), (s2,), (end,), (ans,) = (roles[r] for r in ("IO", "S", "S2", "END", "ANS"))
            text = lambda span: doc.text[span.start : span.end]  # noqa: E731
            assert text(ans) == text(io) == io.labels["name"] == ans.labels["name"]
            assert text(s) == text(s2) == s.labels["name"] != text(io)
            assert text(end) == "to" and end.end + 1 == ans.start and ans.end + 1 == sent.end
            order = sent.labels["ioi_order"]
            orders[order] += 1
            assert (io.start < s.start) == (order == "ABBA")
            pattern = ioi_pattern(sent.labels["ioi_template"], text(io), text(s), order)
            assert re.fullmatch(pattern, text(sent)), text(sent)
    assert n > 100
    assert orders["ABBA"] > 0.3 * n and orders["BABA"] > 0.3 * n


def test_make_ioi_prompt():
    p = make_ioi_prompt(0, io="Mary", s="John", order="ABBA", place="store", obj="umbrella")
    assert p.text == "When Mary and John went to the store, John gave an umbrella to"
    assert p.answer == " Mary" and p.distractor == " John"
    q = make_ioi_prompt(0, io="Mary", s="John", order="BABA", place="store", obj="drink")
    assert q.text == "When John and Mary went to the store, John gave a drink to"


def test_non_ioi_story_sentences_defeat_the_unrepeated_name_shortcut():
    """Some story sentences end on a repeated name, some on a brand-new one."""
    ends_repeated, ends_new = 0, 0
    for template in STORY_TEMPLATES:
        slots = re.findall(r"\{([ABC])\}", template)
        if len(slots) >= 3:
            last, before = slots[-1], slots[:-1]
            ends_repeated += before.count(last) >= 2 or (before.count(last) == 1 and len(set(before)) == 1)
            ends_new += last not in before
    assert ends_repeated >= 1 and ends_new >= 1


def test_stories_have_names_outside_ioi(docs):
    outside = 0
    for doc in by_genre(docs, "story"):
        ioi = [(s.start, s.end) for s in spans_with(doc, "ioi_template")]
        outside += sum(1 for s in spans_with(doc, "name") if not any(a <= s.start < b for a, b in ioi))
        for s in spans_with(doc, "name"):
            assert doc.text[s.start : s.end] == s.labels["name"]
    assert outside > 100


def test_heldout_pairs_never_appear_in_training(docs):
    held = {t: heldout_names(t, CFG.heldout_fraction, CFG.heldout_seed) for t in range(len(IOI_TEMPLATES))}
    assert all(len(h) == 12 for h in held.values())
    assert len({frozenset(h) for h in held.values()}) > 1  # different names per template
    for doc in by_genre(docs, "story"):
        for sent, roles in ioi_sentences(doc):
            t = sent.labels["ioi_template"]
            assert roles["IO"][0].labels["name"] not in held[t] and roles["S"][0].labels["name"] not in held[t]


def test_eval_split_uses_only_heldout_pairs():
    cfg = CorpusConfig(seed=0, split="eval", genre_weights={"story": 1.0})
    n = 0
    for doc in iter_documents(cfg, 0, 100):
        for sent, roles in ioi_sentences(doc):
            held = heldout_names(sent.labels["ioi_template"], cfg.heldout_fraction, cfg.heldout_seed)
            assert roles["IO"][0].labels["name"] in held and roles["S"][0].labels["name"] in held
            n += 1
    assert n > 50
    for p in ioi_prompts(cfg, 200):
        held = heldout_names(p.template, cfg.heldout_fraction, cfg.heldout_seed)
        assert p.io in held and p.s in held and p.io != p.s
    for p in ioi_prompts(CFG, 200):
        held = heldout_names(p.template, CFG.heldout_fraction, CFG.heldout_seed)
        assert p.io not in held and p.s not in held


# ---------------------------------------------------------------- senses, base64, repeats


def test_sense_labels(docs):
    seen = Counter()
    for doc in by_genre(docs, "senses"):
        for text, sense in doc.labelled("sense"):
            assert text.lower() == sense.split(":")[0]
            seen[(text, sense)] += 1
    assert {"park:place", "park:name", "park:verb"} <= {s for _, s in seen}
    assert seen[("Park", "park:place")] > 0 and seen[("Park", "park:name")] > 0  # case is no giveaway


def test_base64_labels_decode(docs):
    kinds = Counter()
    for doc in by_genre(docs, "base64"):
        chars = char_labels(doc)
        for blob in spans_with(doc, "b64_ascii"):
            text = doc.text[blob.start : blob.end]
            data = base64.b64decode(text, validate=True)
            assert is_printable_ascii(data) == bool(blob.labels["b64_ascii"])
            kinds[blob.labels["b64_ascii"]] += 1
            for i, ch in enumerate(text):
                want = "letter" if ch.isalpha() else "digit" if ch.isdigit() else "other"
                assert B64_CLASSES[chars["b64_class"][blob.start + i]] == want
    assert kinds[0] > 50 and kinds[1] > 50
    with pytest.raises(binascii.Error):  # the check above would catch a mislabelled span
        base64.b64decode("abc", validate=True)


def test_repeated_spans_really_repeat(docs):
    partial = 0
    for doc in by_genre(docs, "repeat"):
        words = {}  # (id, occ) -> list of (pos, text)
        for s in spans_with(doc, "repeat_id"):
            key = (s.labels["repeat_id"], s.labels["repeat_occ"])
            words.setdefault(key, []).append((s.labels["repeat_pos"], doc.text[s.start : s.end]))
        assert any(occ > 0 for _, occ in words)
        for (k, occ), seq in words.items():
            first = dict(words[(k, 0)])
            positions = [p for p, _ in seq]
            assert positions == list(range(positions[0], positions[0] + len(seq)))  # contiguous window
            assert all(first[p] == w for p, w in seq)
            partial += occ > 0 and len(seq) < len(first)
        firsts = {k: doc.text.index(" ".join(w for _, w in words[(k, 0)])) for k, occ in words if occ == 0}
        for (k, occ), seq in words.items():
            if occ > 0:  # a later occurrence lies after the first one
                assert doc.text.rindex(" ".join(w for _, w in seq)) > firsts[k]
    assert partial > 0


# ---------------------------------------------------------------- token projection


def test_token_labels_follow_first_non_space_character():
    doc = next(d for d in iter_documents(CFG, 0, 100) if d.genre == "story")
    name = next(s for s in doc.spans if "name" in s.labels and s.start > 0)
    # a BOS-like empty token, a token " Name" that includes the leading space, a whitespace token
    offsets = np.array([[0, 0], [name.start - 1, name.end], [name.start - 1, name.start]])
    labels = token_labels(doc, offsets)
    assert labels["name"].tolist() == [-1, label_id("name", name.labels["name"]), -1]
    assert labels["genre"].tolist() == [-1, GENRES.index("story"), GENRES.index("story")]


def test_node_levels():
    doc = next(d for d in iter_documents(CFG, 0, 200) if d.genre == "topic")
    span = next(s for s in doc.spans if s.labels.get("node", "function").count("/") == 2)
    labels = token_labels(doc, np.array([[span.start, span.end]]))
    path = span.labels["node"].split("/")
    for k in range(HIERARCHY_DEPTH):
        assert NODE_PATHS[labels[f"node_l{k}"][0]] == "/".join(path[: k + 1])
    topic = NODE_PATHS[labels["topic"][0]].split("/")  # the paragraph's leaf, and its ancestors
    assert len(topic) == HIERARCHY_DEPTH
    for k in range(HIERARCHY_DEPTH - 1):
        assert NODE_PATHS[labels[f"topic_l{k}"][0]] == "/".join(topic[: k + 1])


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"seed": -1}, "seed"),
        ({"split": "test"}, "split"),
        ({"genre_weights": {"poetry": 1.0}}, "genre_weights"),
        ({"genre_weights": {"story": -1.0}}, "genre_weights"),
        ({"genre_weights": {"story": 0.0}}, "genre_weights"),
        ({"ioi_fraction": 1.5}, "ioi_fraction"),
        ({"heldout_fraction": 0.9}, "heldout_fraction"),
        ({"split": "eval", "heldout_fraction": 0.0}, "heldout_fraction"),
        ({"story_sentences": (5, 2)}, "story_sentences"),
        ({"cast_size": (1, 3)}, "cast_size"),
        ({"topic_level_weights": (0.0, 0.0, 0.0)}, "topic_level_weights"),
        ({"b64_bytes": (0, 10)}, "b64_bytes"),
        ({"repeat_full_prob": -0.1}, "repeat_full_prob"),
    ],
)
def test_config_validation_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=re.escape(field)):
        CorpusConfig(**kwargs)


def test_config_round_trips_through_dict():
    cfg = CorpusConfig(seed=5, split="eval", genre_weights={"story": 2.0, "topic": 1.0})
    assert CorpusConfig.from_dict(cfg.to_dict()) == cfg


# --------------------------------------------------------------------------------------
# Three-name sentences (zoo-gelu-4l-dup)
# --------------------------------------------------------------------------------------


def _corpus_digest(**overrides) -> str:
    import hashlib

    h = hashlib.sha256()
    for split in ("train", "eval"):
        for doc in iter_documents(CorpusConfig(split=split, **overrides), 0, 300):
            h.update(doc.text.encode())
            h.update(repr(sorted((s.start, s.end, sorted(s.labels.items())) for s in doc.spans)).encode())
    return h.hexdigest()[:16]


def test_three_name_sentences_leave_older_corpora_unchanged():
    """three_name_fraction=0 (every model trained before it existed) draws the same documents as before
    (digests of the first 300 documents of each split, computed with the corpus code before the field existed)."""
    assert _corpus_digest() == "8b6cc98876212b49"
    assert _corpus_digest(genre_weights={"story": 1.0}) == "59521080f825d5f0"


def _three_name_sentences(split: str, n_docs: int = 60) -> list[dict]:
    from interp_helpers.modelzoo.corpus import IOI_TEMPLATES as IOI

    cfg = CorpusConfig(split=split, genre_weights={"story": 1.0}, three_name_fraction=1.0, ioi_fraction=0.0)
    out = []
    for doc in iter_documents(cfg, 0, n_docs):
        sentences = [s for s in doc.spans if s.labels.get("ioi_template", -1) >= len(IOI)]
        for sent in sentences:
            inside = sorted(
                (s for s in doc.spans if sent.start <= s.start and s.end <= sent.end), key=lambda s: s.start
            )
            roles = [(doc.text[s.start : s.end], s.labels["ioi_role"]) for s in inside if "ioi_role" in s.labels]
            out.append({"template": sent.labels["ioi_template"] - len(IOI), "roles": roles})
    return out


def test_three_name_sentences_repeat_two_names_and_answer_the_third():
    from interp_helpers.modelzoo.corpus import THREE_NAME_TEMPLATES, three_name_heldout

    sentences = _three_name_sentences("train")
    assert len(sentences) > 100
    slots, orders = Counter(), Counter()
    for sent in sentences:
        names = [(n, r) for n, r in sent["roles"] if r in ("IO", "S", "S2", "ANS")]
        introduced = [n for n, r in names[:3]]
        assert [r for _, r in names[:3]].count("IO") == 1 and [r for _, r in names][3:] == ["S2", "S2", "ANS"]
        answer = names[-1][0]
        repeated = [n for n, r in names if r == "S2"]
        assert (
            len(set(introduced)) == 3
            and answer in introduced
            and sorted(repeated) == sorted(set(introduced) - {answer})
        )
        assert dict(names[:3])[answer] == "IO"
        assert answer not in three_name_heldout(sent["template"]), "a held-out answer in training text"
        slots[introduced.index(answer)] += 1
        orders[repeated == [n for n in introduced if n != answer]] += 1
        assert sent["roles"][-2][1] == "END"
    assert set(slots) == {0, 1, 2} and min(slots.values()) > len(sentences) / 6  # every slot, roughly evenly
    assert set(orders) == {True, False}  # the repeated pair in both orders
    assert {s["template"] for s in sentences} == set(range(len(THREE_NAME_TEMPLATES)))


def test_three_name_eval_split_answers_with_held_out_names_only():
    from interp_helpers.modelzoo.corpus import three_name_heldout

    for sent in _three_name_sentences("eval", 30):
        assert sent["roles"][-1][0] in three_name_heldout(sent["template"])


def test_three_name_templates_leave_the_evaluation_wording_out():
    from interp_helpers.modelzoo.corpus import THREE_NAME_TEMPLATES
    from interp_helpers.transformer_circuits.ioi import THREE_NAME_TEMPLATE

    held_out = THREE_NAME_TEMPLATE.split(".")[0].replace("{0}, {1} and {2}", "").strip()  # "went to the {place}"
    assert not any(held_out.replace("{place}", "{PLACE}") in t for t in THREE_NAME_TEMPLATES)


def test_composed_sentences_leave_older_corpora_unchanged():
    """composed_fraction=0 (zoo-gelu-4l-dup's first corpus) draws what the code drew before the field existed."""
    assert _corpus_digest(three_name_fraction=0.7) == "983a8c2fc50f571e"
    assert _corpus_digest(genre_weights={"story": 1.0}, three_name_fraction=0.7) == "12d84abc26957e26"
    # and zoo-gelu-4l-dup's corpus stays what it was trained on (digest taken when it was)
    assert _corpus_digest(three_name_fraction=0.7, composed_fraction=0.5) == "3b92b9b803bae0aa"


def _composed_sentences(split: str, n_docs: int = 80) -> list[dict]:
    from interp_helpers.modelzoo.corpus import COMPOSED_TEMPLATE_ID

    cfg = CorpusConfig(split=split, genre_weights={"story": 1.0}, three_name_fraction=0.7, composed_fraction=1.0)
    out = []
    for doc in iter_documents(cfg, 0, n_docs):
        for sent in (s for s in doc.spans if s.labels.get("ioi_template") == COMPOSED_TEMPLATE_ID):
            inside = sorted(
                (s for s in doc.spans if sent.start <= s.start and s.end <= sent.end), key=lambda s: s.start
            )
            names = [(doc.text[s.start : s.end], s.labels.get("ioi_role")) for s in inside if "name" in s.labels]
            starts = [s.start - sent.start for s in inside if "name" in s.labels]
            roles = [s.labels["ioi_role"] for s in inside if "ioi_role" in s.labels]
            out.append({"text": doc.text[sent.start : sent.end], "names": names, "starts": starts, "roles": roles})
    return out


def test_composed_sentences_answer_the_name_said_once():
    from interp_helpers.modelzoo.corpus import composed_heldout

    sentences = _composed_sentences("train")
    assert len(sentences) > 100
    sizes, split_clauses = Counter(), 0
    for sent in sentences:
        *prompt, (answer, ans_role) = sent["names"]
        counts = Counter(name for name, _ in prompt)
        assert ans_role == "ANS" and sent["roles"][-2:] == ["END", "ANS"], sent["text"]
        assert counts[answer] == 1 and all(c >= 2 for n, c in counts.items() if n != answer), sent["text"]
        assert dict(prompt)[answer] == "IO" and answer not in composed_heldout(), sent["text"]
        sizes[len(counts)] += 1
        # three names, the two repeats in different sentences (an aside), not "R1 and R2 gave"
        split_clauses += len(counts) == 3 and "." in sent["text"][sent["starts"][-3] : sent["starts"][-2]]
    assert set(sizes) == {2, 3} and 0.2 < split_clauses / sizes[3] < 0.6


def test_composed_eval_split_answers_with_held_out_names_only():
    from interp_helpers.modelzoo.corpus import composed_heldout

    for sent in _composed_sentences("eval", 30):
        assert sent["names"][-1][0] in composed_heldout()


def _canonical(template: str, n_names: int) -> str:
    """An ioi.py wording in the corpus' slot names."""
    for old, new in (("{0}", "{N1}"), ("{1}", "{N2}"), ("{2}", "{N3}"), ("{y}", "{R2}"), ("{place}", "{PLACE}")):
        template = template.replace(old, new)
    template = template.replace("{x}", "{S}" if n_names == 2 else "{R1}")
    return template.replace("a {obj}", "{A_OBJECT}").replace("{obj}", "{OBJECT}")


def test_composed_sentences_never_say_an_evaluation_wording():
    from interp_helpers.modelzoo import corpus
    from interp_helpers.transformer_circuits import ioi

    assert corpus.EVAL_ONLY_WORDINGS == (
        _canonical(ioi.THREE_NAME_TEMPLATE, 3),
        _canonical(ioi.SPLIT_THREE_NAME_TEMPLATE, 3),
    )
    for n_names, novel in ((2, ioi.NOVEL_TWO_NAME_TEMPLATES), (3, ioi.NOVEL_THREE_NAME_TEMPLATES)):
        sayable = set(corpus.composed_templates(n_names)) | set(corpus.IOI_TEMPLATES + corpus.THREE_NAME_TEMPLATES)
        assert len(sayable) > 50_000
        assert not sayable & {_canonical(t, n_names) for t in novel}
    rng = random.Random(0)
    drawn = [corpus._composed_template(rng, 3, False) for _ in range(20_000)]
    assert "went to the" not in " ".join(drawn)  # THREE_NAME_TEMPLATE's wording stays unseen
    assert not any("sat down" in aside for aside in corpus.COMPOSED_ASIDES)  # SPLIT_THREE_NAME_TEMPLATE's aside
