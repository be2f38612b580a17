"""The corpus BPE tokenizer: single-token names, determinism, labels, TransformerLens."""

import json
import re

import numpy as np
import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp_helpers.modelzoo.corpus import NAMES, NODE_PATHS, NODE_VOCAB, CorpusConfig, iter_documents, label_id
from interp_helpers.modelzoo.tokenizer import (
    BOS,
    DEFAULT_TOKENIZER_DIR,
    TokenizerConfig,
    encode_document,
    forced_single_tokens,
    load_tokenizer,
    save_tokenizer,
    train_tokenizer,
)

SMALL = TokenizerConfig(vocab_size=2048, n_docs=300)


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


@pytest.fixture(scope="module")
def small():
    return train_tokenizer(SMALL)


@pytest.fixture(scope="module")
def docs():
    return list(iter_documents(CorpusConfig(seed=3), 0, 400))


def test_committed_tokenizer_matches_its_recipe(tok):
    recipe = json.loads((DEFAULT_TOKENIZER_DIR / "training.json").read_text())
    assert len(tok) == recipe["vocab_size"] == recipe["tokenizer_config"]["vocab_size"] == 4096
    assert tok.convert_ids_to_tokens(0) == BOS
    assert tok.bos_token == tok.eos_token == tok.pad_token == BOS
    assert load_tokenizer(DEFAULT_TOKENIZER_DIR / "tokenizer.json").get_vocab() == tok.get_vocab()


@pytest.mark.parametrize("which", ["tok", "small"])
def test_every_name_is_one_token(which, request):
    t = request.getfixturevalue(which)
    for word in forced_single_tokens():
        ids = t.encode(word, add_special_tokens=False)
        assert len(ids) == 1 and t.decode(ids) == word, word
    assert len(t.encode(" Mary", add_special_tokens=False)) == 1


def test_training_is_deterministic_and_seeded(small):
    again = train_tokenizer(SMALL)
    assert again.backend_tokenizer.to_str() == small.backend_tokenizer.to_str()
    other = train_tokenizer(TokenizerConfig(vocab_size=2048, n_docs=300, corpus=CorpusConfig(seed=1)))
    assert other.backend_tokenizer.to_str() != small.backend_tokenizer.to_str()
    assert len(small) == len(other) == 2048


def test_save_and_load_round_trip(small, tmp_path):
    save_tokenizer(small, tmp_path / "tok", SMALL)
    loaded = load_tokenizer(tmp_path / "tok")
    assert loaded.get_vocab() == small.get_vocab()
    recipe = json.loads((tmp_path / "tok" / "training.json").read_text())
    assert CorpusConfig.from_dict(recipe["tokenizer_config"]["corpus"]) == SMALL.corpus


def test_config_validation():
    with pytest.raises(ValueError, match="vocab_size"):
        TokenizerConfig(vocab_size=100)
    with pytest.raises(ValueError, match="n_docs"):
        TokenizerConfig(n_docs=0)
    assert TokenizerConfig(vocab_size=8192).sample_docs == 20480


def test_too_small_a_sample_is_an_error_not_a_smaller_vocabulary():
    with pytest.raises(ValueError, match="n_docs"):
        train_tokenizer(TokenizerConfig(vocab_size=8192, n_docs=100))


def test_decode_round_trips_documents(tok, docs):
    for doc in docs[:100]:
        ids, _ = encode_document(doc, tok, prepend_bos=False)
        assert tok.decode(ids.tolist()) == doc.text


def test_tokens_labelled_raven_decode_to_raven_words(tok, docs):
    """Group consecutive raven-labelled tokens into words (a new word starts with a space)."""
    raven = "animals/birds/raven"
    found = 0
    for doc in docs:
        if doc.genre != "topic":
            continue
        ids, labels = encode_document(doc, tok)
        assert ids[0] == tok.bos_token_id and (np.array([v[0] for v in labels.values()]) == -1).all()
        words: list[str] = []
        prev = False
        for i, node in zip(ids, labels["node"]):
            piece = tok.decode([int(i)])
            if NODE_PATHS[node] == raven and node >= 0:
                if prev and not piece.startswith(" "):
                    words[-1] += piece
                else:
                    words.append(piece.strip())
            prev = node >= 0 and NODE_PATHS[node] == raven
        assert all(w in NODE_VOCAB[raven] for w in words), words
        found += len(words)
    assert found > 0


def test_ioi_answer_is_one_labelled_token(tok, docs):
    n = 0
    for doc in docs:
        if doc.genre != "story":
            continue
        ids, labels = encode_document(doc, tok)
        ans = np.flatnonzero(labels["ioi_role"] == label_id("ioi_role", "ANS"))
        end = np.flatnonzero(labels["ioi_role"] == label_id("ioi_role", "END"))
        assert (ans == end + 1).all()  # the answer is the very next token after END
        for pos in ans:
            name = NAMES[labels["name"][pos]]
            assert tok.decode([int(ids[pos])]) == " " + name
            io = np.flatnonzero(
                (labels["ioi_role"] == label_id("ioi_role", "IO")) & (labels["name"] == labels["name"][pos])
            )
            assert len(io) >= 1
            n += 1
    assert n > 20


def test_base64_token_classes(tok, docs):
    for doc in docs:
        if doc.genre != "base64":
            continue
        ids, labels = encode_document(doc, tok, prepend_bos=False)
        for i, cls in zip(ids, labels["b64_class"]):
            if cls >= 0:
                piece = tok.decode([int(i)]).strip()
                pattern = {0: r"[A-Za-z]+", 1: r"[0-9]+", 2: r"[+/=]+"}[int(cls)]
                assert re.fullmatch(pattern, piece), (piece, cls)


def test_tokens_per_char_is_reasonable(tok, docs):
    n_tokens = sum(len(encode_document(d, tok, prepend_bos=False)[0]) for d in docs[:200])
    n_chars = sum(len(d.text) for d in docs[:200])
    assert 0.1 < n_tokens / n_chars < 0.4


@pytest.mark.parametrize("how", ["set_tokenizer", "constructor"])
def test_transformer_lens_to_tokens(tok, how):
    cfg = HookedTransformerConfig(
        n_layers=1, d_model=16, d_head=4, n_heads=4, n_ctx=64, d_vocab=len(tok), attn_only=True, act_fn=None
    )
    if how == "set_tokenizer":
        model = HookedTransformer(cfg)
        model.set_tokenizer(tok)
    else:
        model = HookedTransformer(cfg, tokenizer=tok)
    text = "When Mary and John went to the store, John gave a drink to"
    tokens = model.to_tokens(text)
    assert tokens.shape[0] == 1 and tokens[0, 0].item() == tok.bos_token_id
    str_tokens = model.to_str_tokens(text)
    assert str_tokens[0] == BOS and "".join(str_tokens[1:]) == text
    assert " Mary" in str_tokens and " John" in str_tokens
    assert model.to_tokens(text, prepend_bos=False)[0, 0].item() != tok.bos_token_id
    assert model.to_single_token(" Mary") == tok.convert_tokens_to_ids("\u0120Mary")
    batch = model.to_tokens([text, "The raven"])  # padded with the BOS/EOS/PAD token
    assert batch.shape[0] == 2
    with torch.no_grad():
        assert model(tokens).shape == (1, tokens.shape[1], len(tok))
