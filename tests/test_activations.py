"""SAE training data: labelled packed rows, activations up to a hook, the mixing buffer, the disk cache."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch
from safetensors.torch import save_file

from interp_helpers.dictionaries import activations as A
from interp_helpers.modelzoo import corpus, zoo
from interp_helpers.modelzoo.models import CheckpointError, load_model
from interp_helpers.modelzoo.tokenizer import load_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py

CFG = corpus.CorpusConfig(seed=0)


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


@pytest.fixture(scope="module")
def model():
    return load_model("zoo-gelu-1l-a")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------ labelled rows


@pytest.mark.parametrize("batch, n_ctx, start_doc", [(8, 128, 0), (5, 37, 11)])
def test_labelled_rows_are_the_training_packing(tok, batch, n_ctx, start_doc):
    rows = A.labelled_rows(CFG, tok, batch, n_ctx, start_doc=start_doc)
    assert torch.equal(rows.tokens, next(zoo.packed_batches(CFG, tok, batch, n_ctx, start_doc=start_doc)))


def test_labelled_batches_continue_the_stream_like_packed_batches(tok):
    ours, theirs = A.labelled_batches(CFG, tok, 3, 64), zoo.packed_batches(CFG, tok, 3, 64)
    for _ in range(3):
        assert torch.equal(next(ours).tokens, next(theirs))


def test_labels_line_up_with_tokens(tok):
    rows = A.labelled_rows(CFG, tok, 24, 128)
    bos = rows.tokens == tok.bos_token_id
    assert torch.equal(rows.keep, ~bos)
    assert rows.tokens[:, 0].eq(tok.bos_token_id).all()
    assert bos[:, 1:].any(), "rows should contain document separators"
    for name, values in rows.labels.items():
        assert values.shape == rows.tokens.shape
        assert (values[bos] == -1).all(), name
    assert set(rows.labels) == set(corpus.LABEL_FIELDS) | set(corpus.LEVEL_FIELDS) | set(corpus.TOPIC_LEVEL_FIELDS)
    # The genre is set on every document token and constant within each document.
    genre, doc = rows.labels["genre"], rows.doc_index
    assert (genre[rows.keep] >= 0).all()
    for index in doc[rows.keep].unique():
        assert genre[doc == index].unique().numel() == 1
        assert corpus.GENRES[int(genre[doc == index][0])] == corpus.make_document(CFG, int(index)).genre
    # A token labelled with a hierarchy node is a piece of a word from that node's vocabulary.
    node = rows.labels["node"]
    checked = 0
    for row, pos in (node > 0).nonzero().tolist():  # 0 is "function"
        piece = tok.decode([int(rows.tokens[row, pos])]).strip().lower()
        path = corpus.NODE_PATHS[int(node[row, pos])]
        assert piece and any(piece in word for word in corpus.NODE_VOCAB[path]), (piece, path)
        leaf = rows.labels["node_l2"][row, pos]
        if leaf >= 0:
            assert corpus.NODE_PATHS[int(leaf)] == path  # leaf words have themselves as level-2 ancestor
        checked += 1
    assert checked > 50


def test_labelled_rows_are_deterministic_and_validate(tok):
    a, b = A.labelled_rows(CFG, tok, 4, 64), A.labelled_rows(CFG, tok, 4, 64)
    assert torch.equal(a.tokens, b.tokens) and all(torch.equal(a.labels[k], b.labels[k]) for k in a.labels)
    with pytest.raises(ValueError, match="n_rows=0"):
        A.labelled_rows(CFG, tok, 0, 64)
    with pytest.raises(ValueError, match="n_ctx=1"):
        A.labelled_rows(CFG, tok, 2, 1)


# -------------------------------------------------------------------------- activations


def test_stop_layer_parses_hook_names():
    assert A.stop_layer("blocks.0.mlp.hook_post") == 1
    assert A.stop_layer("blocks.11.hook_resid_pre") == 12
    assert A.stop_layer("hook_embed") == 0 and A.stop_layer("hook_pos_embed") == 0
    assert A.stop_layer("ln_final.hook_normalized") is None


@pytest.mark.parametrize(
    "hook_name",
    [
        "hook_embed",
        "blocks.0.attn.hook_z",
        "blocks.0.mlp.hook_post",
        "blocks.0.hook_resid_post",
        "ln_final.hook_normalized",
    ],
)
def test_collect_activations_matches_a_full_cache_without_bos(model, tok, hook_name):
    rows = A.labelled_rows(CFG, tok, 5, 48)
    _, cache = model.run_with_cache(rows.tokens, names_filter=hook_name)
    full = cache[hook_name].flatten(2) if cache[hook_name].ndim == 4 else cache[hook_name]
    acts = A.collect_activations(model, rows.tokens, hook_name, batch_size=2, progress=False)
    assert torch.allclose(acts, full[rows.keep], atol=1e-5)
    # Row-major over kept tokens: the labels flatten the same way.
    flat = A.flatten_labels(rows.labels, rows.keep)
    assert all(len(v) == len(acts) == int(rows.keep.sum()) for v in flat.values())
    assert torch.equal(flat["genre"], rows.labels["genre"][rows.keep])


def test_collect_activations_stops_at_the_hooked_layer(model, tok):
    tokens = next(zoo.packed_batches(CFG, tok, 2, 16))
    calls = []
    model.add_hook("ln_final.hook_scale", lambda act, hook: calls.append(hook.name))
    try:
        A.collect_activations(model, tokens, "blocks.0.hook_resid_post", progress=False)
        assert calls == []
        A.collect_activations(model, tokens, "ln_final.hook_normalized", progress=False)
        assert calls
    finally:
        model.reset_hooks()


def test_collect_activations_takes_an_explicit_keep_and_checks_the_hook(model, tok):
    tokens = next(zoo.packed_batches(CFG, tok, 3, 16))
    keep = torch.zeros_like(tokens, dtype=torch.bool)
    keep[:, 5] = True
    acts = A.collect_activations(model, tokens, "blocks.0.mlp.hook_post", keep=keep, progress=False)
    _, cache = model.run_with_cache(tokens, names_filter="blocks.0.mlp.hook_post")
    assert torch.allclose(acts, cache["blocks.0.mlp.hook_post"][:, 5], atol=1e-5)
    with pytest.raises(ValueError, match="hook_name='blocks.0.mlp.hook_nope'"):
        A.collect_activations(model, tokens, "blocks.0.mlp.hook_nope")
    with pytest.raises(ValueError, match="hook_name='blocks.0.attn.hook_pattern'"):
        A.collect_activations(model, tokens, "blocks.0.attn.hook_pattern")


# ------------------------------------------------------------------------------- buffer


def _buffer(model, tok, seed, n_batches=None, **kwargs):
    source = zoo.packed_batches(CFG, tok, 4, 32)
    if n_batches is not None:
        source = (next(source) for _ in range(n_batches))
    return A.ActivationBuffer(
        model,
        "blocks.0.hook_resid_post",
        source,
        generator=gen(seed),
        **{"buffer_tokens": 500, "batch_size": 64} | kwargs,
    )


def test_buffer_memory_is_bounded(model, tok):
    buf = _buffer(model, tok, 0)
    for _ in range(40):  # 2560 rows through a 500-row buffer
        batch = next(buf)
        assert batch.shape == (64, 128)
        assert buf.buffer.shape[0] == 500 and buf.n_buffered <= 500
        assert buf._pending is None or len(buf._pending) <= 4 * 31  # at most one source batch waits


def _row_counts(rows: torch.Tensor) -> Counter:
    """Rows as a multiset of their exact bytes (the buffer copies rows, it never computes them)."""
    return Counter(row.numpy().tobytes() for row in rows)


def test_buffer_is_seeded_and_mixes(model, tok):
    a, b, c = _buffer(model, tok, 0), _buffer(model, tok, 0), _buffer(model, tok, 1)
    batches_a = [next(a) for _ in range(12)]
    assert all(torch.equal(x, next(b)) for x in batches_a)
    assert not torch.equal(batches_a[0], next(c))
    # The first batch is drawn from the whole first fill (~4 source batches), not the first rows in stream order.
    first = next(A.iter_activations(model, zoo.packed_batches(CFG, tok, 4, 32), "blocks.0.hook_resid_post"))
    from_first = sum(n for row, n in _row_counts(batches_a[0]).items() if row in _row_counts(first))
    assert 0 < from_first < 40


def test_buffer_yields_every_row_of_a_finite_source_once(model, tok):
    stream = zoo.packed_batches(CFG, tok, 4, 32)
    source = [next(stream) for _ in range(5)]
    rows = torch.cat(list(A.iter_activations(model, source, "blocks.0.hook_resid_post")))
    buf = A.ActivationBuffer(
        model, "blocks.0.hook_resid_post", iter(source), generator=gen(0), buffer_tokens=300, batch_size=64
    )
    out = torch.cat(list(buf))
    assert len(out) == len(rows) - len(rows) % 64
    assert not _row_counts(out) - _row_counts(rows)  # every row yielded is a source row, none more often


def test_buffer_validates_sizes(model, tok):
    with pytest.raises(ValueError, match="batch_size=400"):
        _buffer(model, tok, 0, batch_size=400)
    with pytest.raises(ValueError, match="hook_name='blocks.3.mlp.hook_post'"):  # now, not at the first batch
        A.ActivationBuffer(model, "blocks.3.mlp.hook_post", iter([]), generator=gen(0))


# -------------------------------------------------------------------------------- cache


def _source(n_batches=7, d_in=6, seed=0):
    """Row i has i in column 0, so order and coverage can be read off the values."""
    g, start, out = gen(seed), 0, []
    for _ in range(n_batches):
        n = int(torch.randint(50, 250, (1,), generator=g))
        rows = torch.randn(n, d_in, generator=g)
        rows[:, 0] = torch.arange(start, start + n)
        out.append(rows)
        start += n
    return out


def test_cache_round_trip_in_order(tmp_path):
    source = _source()
    cache = A.cache_activations(
        iter(source),
        tmp_path / "c",
        n_tokens=1000,
        shard_tokens=300,
        hook_name="blocks.0.mlp.hook_post",
        progress=False,
    )
    assert torch.equal(cache.load_all(), torch.cat(source)[:1000])
    assert len(cache) == 1000 and cache.d_in == 6
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert manifest["hook_name"] == "blocks.0.mlp.hook_post" and manifest["dtype"] == "float32"
    assert [s["n_tokens"] for s in manifest["shards"]] == [300, 300, 300, 100]
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [
        "manifest.json",
        "shard_00000.safetensors",
        "shard_00001.safetensors",
        "shard_00002.safetensors",
        "shard_00003.safetensors",
    ]
    # Rewriting a smaller cache in the same folder removes the old extra shards.
    A.cache_activations(iter(source), tmp_path / "c", n_tokens=250, shard_tokens=200, progress=False)
    assert len(list((tmp_path / "c").glob("shard_*"))) == 2
    assert torch.equal(A.CachedActivations(tmp_path / "c").load_all(), torch.cat(source)[:250])


def test_cache_keeps_what_a_short_source_gave_and_can_store_half_precision(tmp_path):
    source = _source(n_batches=2)
    n = sum(len(s) for s in source)
    cache = A.cache_activations(
        iter(source), tmp_path, n_tokens=10**6, shard_tokens=128, dtype=torch.float16, progress=False
    )
    assert len(cache) == n and cache.dtype_name == "float16"
    loaded = cache.load_all()
    assert loaded.dtype == torch.float32
    assert torch.allclose(loaded, torch.cat(source).half().float())


def test_cache_of_model_activations(model, tok, tmp_path):
    source = (next(zoo.packed_batches(CFG, tok, 2, 32, start_doc=i)) for i in range(3))
    cache = A.cache_activations(
        A.iter_activations(model, source, "blocks.0.mlp.hook_post"),
        tmp_path,
        n_tokens=150,
        shard_tokens=64,
        hook_name="blocks.0.mlp.hook_post",
        progress=False,
    )
    expected = torch.cat(
        [
            A.collect_activations(
                model, next(zoo.packed_batches(CFG, tok, 2, 32, start_doc=i)), "blocks.0.mlp.hook_post", progress=False
            )
            for i in range(3)
        ]
    )
    assert torch.allclose(cache.load_all(), expected[:150])


def test_iter_batches_covers_every_row_once_per_epoch(tmp_path):
    cache = A.cache_activations(iter(_source()), tmp_path, n_tokens=1000, shard_tokens=300, progress=False)
    batches = cache.iter_batches(64, gen(0))
    rows = torch.cat([next(batches) for _ in range(32)])  # 2048 rows: two epochs and a bit
    assert all(len(b) == 64 for b in rows.split(64))
    ids = rows[:, 0].long()
    for epoch in range(2):
        assert torch.equal(ids[epoch * 1000 : (epoch + 1) * 1000].sort().values, torch.arange(1000))
    assert not torch.equal(ids[:1000], torch.arange(1000))  # shuffled
    assert not torch.equal(ids[:1000], ids[1000:2000])  # reshuffled each epoch
    again = cache.iter_batches(64, gen(0))
    assert torch.equal(torch.cat([next(again) for _ in range(32)]), rows)
    # Rows are untouched: each id's row equals the stored row.
    assert torch.equal(rows[:1000], cache.load_all()[ids[:1000]])


def test_iter_batches_with_shards_smaller_than_a_batch(tmp_path):
    cache = A.cache_activations(iter(_source()), tmp_path, n_tokens=200, shard_tokens=7, progress=False)
    batches = cache.iter_batches(64, gen(0))
    ids = torch.cat([next(batches) for _ in range(25)])[:, 0].long()  # 1600 rows: eight epochs
    for epoch in range(8):
        assert torch.equal(ids[epoch * 200 : (epoch + 1) * 200].sort().values, torch.arange(200))


def test_cache_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="manifest.json: missing"):
        A.CachedActivations(tmp_path)
    A.cache_activations(iter(_source()), tmp_path, n_tokens=500, shard_tokens=200, progress=False)
    save_file({"activations": torch.zeros(150, 6)}, str(tmp_path / "shard_00001.safetensors"))
    with pytest.raises(CheckpointError, match="shard_00001.safetensors: shard size mismatch"):
        A.CachedActivations(tmp_path)
    (tmp_path / "shard_00001.safetensors").unlink()
    with pytest.raises(CheckpointError, match="shard_00001.safetensors: missing"):
        A.CachedActivations(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="manifest.json: invalid manifest"):
        A.CachedActivations(tmp_path)
    with pytest.raises(ValueError, match="shard_tokens=0"):
        A.cache_activations(iter(_source()), tmp_path, n_tokens=10, shard_tokens=0)
