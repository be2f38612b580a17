"""Attention views render from circuitsvis' bundled JavaScript, never from a CDN."""

from __future__ import annotations

import pytest
import torch
from circuitsvis.utils.render import RenderedHTML
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp_helpers.transformer_circuits import attention_view


@pytest.fixture(scope="module")
def model() -> HookedTransformer:
    cfg = HookedTransformerConfig(
        n_layers=2, d_model=16, n_heads=2, d_head=8, n_ctx=16, d_vocab=30, attn_only=True, act_fn=None, seed=0
    )
    return HookedTransformer(cfg).eval()


def _assert_self_contained(html: str) -> None:
    assert not attention_view.EXTERNAL_SCRIPT.search(html)
    assert "unpkg.com" not in html and "cdn.jsdelivr" not in html
    assert "CircuitsVis.render" in html  # the inlined bundle's entry point


def test_attention_heads_html_is_inline(model):
    view = attention_view.attention_heads(model, torch.tensor([0, 5, 6, 7, 5, 6]), layer=1)
    html = view._repr_html_()
    _assert_self_contained(html)
    assert str(view) == html and view.__html__() == html
    assert '"L1H0"' in html and '"L1H1"' in html and '"<7>"' in html
    assert len(html) > 500_000  # the JavaScript bundle itself is in the page


def test_attention_heads_subset_and_batch_of_one(model):
    html = attention_view.attention_heads(model, torch.tensor([[0, 1, 2, 3]]), layer=0, heads=[1])._repr_html_()
    assert '"L0H1"' in html and '"L0H0"' not in html
    with pytest.raises((ValueError, TypeError)):  # TypeError: jaxtyping's check under pytest
        attention_view.attention_heads(model, torch.zeros(2, 4, dtype=torch.long), layer=0)
    with pytest.raises(ValueError):
        attention_view.attention_heads(model, "text needs a tokenizer", layer=0)


def test_inline_rejects_external_scripts():
    with pytest.raises(ValueError):
        attention_view.inline(RenderedHTML('<script src="https://unpkg.com/x.js"></script>', ""))
    assert (
        attention_view.inline(RenderedHTML("<div>local</div>", "<script src='https://x'></script>")).html
        == "<div>local</div>"
    )


def test_text_is_tokenized_with_bos():
    from interp_helpers.modelzoo.tokenizer import load_tokenizer

    tok = load_tokenizer()
    cfg = HookedTransformerConfig(
        n_layers=1,
        d_model=16,
        n_heads=2,
        d_head=8,
        n_ctx=16,
        d_vocab=len(tok),
        attn_only=True,
        act_fn=None,
        default_prepend_bos=True,
        seed=0,
    )
    model = HookedTransformer(cfg, tokenizer=tok)
    html = attention_view.attention_heads(model, "Mary and John", layer=0)._repr_html_()
    _assert_self_contained(html)
    assert '"<|endoftext|>"' in html and '" John"' in html
