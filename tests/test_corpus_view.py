"""Token/label rendering for the corpus, and the zoo notebook's figures."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from interp_helpers.figures import plots
from interp_helpers.modelzoo import corpus, corpus_view
from interp_helpers.modelzoo import figures as zoo_figures
from interp_helpers.modelzoo.tokenizer import encode_document, load_tokenizer
from interp_helpers.transformer_circuits.attention_view import EXTERNAL_SCRIPT


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


@pytest.fixture(scope="module")
def docs():
    """The first document of every genre (seed 0)."""
    found = {}
    for doc in corpus.iter_documents(corpus.CorpusConfig(seed=0)):
        found.setdefault(doc.genre, doc)
        if len(found) == len(corpus.GENRES):
            return found


def test_token_table_rebuilds_the_text_and_matches_encode_document(tok, docs):
    for doc in docs.values():
        rows = corpus_view.token_table(doc, tok, "node")
        assert "".join(r.text for r in rows) == doc.text
        _, labels = encode_document(doc, tok, prepend_bos=False)
        assert [r.label for r in rows] == [corpus.label_name("node", v) for v in labels["node"]]


def test_leaf_labels_sit_in_their_leaf_vocabulary(tok):
    docs = list(corpus.iter_documents(corpus.CorpusConfig(seed=1), 0, 40))
    leaf_rows = [r for d in docs for r in corpus_view.token_table(d, tok) if r.label in corpus.LEAVES]
    assert leaf_rows and all(r.word in corpus.NODE_VOCAB[r.label] for r in leaf_rows)
    assert not any(corpus_view.leaf_misalignments(d, tok) for d in docs)


def test_leaf_misalignment_is_detected(tok, docs):
    doc = docs["topic"]
    leaf_span = next(s for s in doc.spans if s.labels.get("node") in corpus.LEAVES)
    wrong = next(leaf for leaf in corpus.LEAVES if leaf != leaf_span.labels["node"])
    spans = tuple(s._replace(labels={"node": wrong}) if s == leaf_span else s for s in doc.spans)
    broken = corpus.Document(doc.index, doc.genre, doc.text, spans)
    assert corpus_view.leaf_misalignments(broken, tok)


def test_ioi_roles_label_the_names(tok, docs):
    rows = corpus_view.token_table(docs["story"], tok, "ioi_role")
    roles = [r for r in rows if r.label in ("IO", "S", "S2", "ANS")]
    assert roles and all(r.word in corpus.NAMES for r in roles)


def test_unknown_field_is_rejected(tok, docs):
    with pytest.raises(ValueError, match="field"):
        corpus_view.token_table(docs["story"], tok, "colour")


def test_render_tokens_is_self_contained_and_escaped():
    html = str(corpus_view.render_tokens(["<b>", " a", "\n", "b"], ["x", None, None, "y"], title="t & u"))
    assert not EXTERNAL_SCRIPT.search(html) and "<script" not in html
    assert "&lt;b&gt;" in html and "<b>" not in html and "t &amp; u" in html
    colors = corpus_view.label_colors(["x", None, "y"])
    assert colors["x"] in html and colors["y"] in html and corpus_view.UNLABELLED in html
    assert "&#8629;<br>" in html  # newlines stay visible
    with pytest.raises(ValueError):
        corpus_view.render_tokens(["a"], [])


def test_label_colors_are_stable_and_distinct():
    colors = corpus_view.label_colors(["b", "a", None, "b", "c"])
    assert list(colors) == ["b", "a", "c"] and len(set(colors.values())) == 3


def test_document_html_cuts_long_documents(tok, docs):
    html = corpus_view.document_html(docs["repeat"], tok, "repeat_occ", max_tokens=10)._repr_html_()
    assert "first 10 of" in html and html.count("<span title=") <= 10 + 3  # tokens + legend entries


def test_zoo_table_rows():
    card = {
        "name": "zoo-x",
        "full_run": True,
        "tokens_seen": 1000,
        "wall_time_s": 90.0,
        "spec": {
            "n_layers": 1,
            "d_model": 8,
            "n_heads": 2,
            "d_mlp": None,
            "n_ctx": 16,
            "positional_embedding_type": "standard",
        },
        "eval_loss_per_genre": {"story": 1.5},
        "acceptance": {
            "checks": [{"metric": "m", "value": 0.5, "op": "<=", "threshold": 1.0, "passed": True}],
            "passed": True,
        },
    }
    row = corpus_view.card_summary(card)
    assert row["d_mlp"] == "attn-only" and row["loss story"] == 1.5 and "pass" in row["acceptance"]
    missing = corpus_view.missing_summary("zoo-y")
    assert missing["train it with"] == "workbook train-zoo zoo-y"
    html = str(corpus_view.html_table([row, missing]))
    assert "<table" in html and "1.500" in html and "zoo-y" in html
    assert "no rows" in str(corpus_view.html_table([]))


def test_moving_average():
    np.testing.assert_allclose(plots.moving_average(np.array([1.0, 3.0, 5.0, 7.0]), 2), [1.0, 2.0, 4.0, 6.0])
    np.testing.assert_allclose(plots.moving_average(np.array([2.0, 4.0]), 100), [2.0, 3.0])


def test_zoo_figures():
    tokens = np.arange(10) * 100.0
    fig = zoo_figures.loss_curves_figure(
        {"a": (tokens, np.linspace(8, 2, 10)), "b": (tokens, np.linspace(8, 3, 10))}, "curves", smooth=3, ln_vocab=8.3
    )
    assert isinstance(fig, go.Figure) and len(fig.data) == 2 and fig.layout.xaxis.title.text == "tokens seen"
    bars = zoo_figures.genre_loss_figure(
        {"a": {"story": 1.0, "repeat": 6.0}, "b": {"story": 1.1, "repeat": 6.1}}, "bars"
    )
    assert len(bars.data) == 2 and list(bars.data[0].x) == ["story", "repeat"] and bars.layout.barmode == "group"


def test_html_table_transpose():
    html = str(corpus_view.html_table([{"model": "a", "loss": 1.0}, {"model": "b", "loss": 2.0}], transpose=True))
    assert html.index(">a<") < html.index(">b<") < html.index(">loss<") < html.index("1.000") < html.index("2.000")


def test_auto_field_picks_each_genres_own_label(tok, docs):
    for genre, field in corpus_view.GENRE_FIELDS.items():
        html = corpus_view.document_html(docs[genre], tok, "auto")._repr_html_()
        assert f"({field}," in html and "(none in this document)" not in html
