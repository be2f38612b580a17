"""Feature dashboards: top contexts, logit effects, automatic labels, static HTML, polysemantic neurons."""

from __future__ import annotations

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp_helpers.dictionaries import features as F
from interp_helpers.dictionaries import recovery
from interp_helpers.dictionaries import sae as S
from interp_helpers.dictionaries.activations import hook_width

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def model() -> HookedTransformer:
    cfg = HookedTransformerConfig(
        n_layers=1,
        d_model=16,
        n_ctx=8,
        d_head=4,
        n_heads=4,
        d_mlp=32,
        d_vocab=20,
        act_fn="gelu",
        normalization_type="LN",
        seed=0,
    )
    return HookedTransformer(cfg)


def test_top_contexts_are_the_strongest_firings_with_their_neighbours():
    tokens = torch.arange(12).view(2, 6)
    keep = torch.ones(2, 6, dtype=torch.bool)
    keep[:, 0] = False  # BOS-like first column is not a kept token
    where = F.token_positions(keep)
    acts = torch.zeros(10)
    acts[7] = 3.0  # row 1, pos 3
    acts[1] = 1.0  # row 0, pos 2
    contexts = F.top_contexts(acts, tokens, where, lambda ids: [str(int(i)) for i in ids], k=5, window=1)
    assert [c.value for c in contexts] == [3.0, 1.0]  # zeros are not firings
    first = contexts[0]
    assert first.tokens == ["8", "9", "10"] and first.center == 1 and first.values == [0.0, 3.0, 0.0]
    assert contexts[1].tokens == ["1", "2", "3"]


def test_logit_effects_follow_w_out_ln_weight_and_w_u(model):
    direction = torch.randn(32, generator=torch.Generator().manual_seed(0))
    up, down = F.logit_effects(model, "blocks.0.mlp.hook_post", direction, k=3)
    logits = (direction @ model.blocks[0].mlp.W_out * model.ln_final.w) @ model.W_U
    logits = logits - logits.mean()
    expected = logits.topk(3)
    assert [t for t, _ in up] == [f"<{i}>" for i in expected.indices.tolist()]  # no tokenizer: ids as text
    assert [v for _, v in up] == pytest.approx(expected.values.tolist(), abs=1e-5)
    assert [v for _, v in down] == pytest.approx(logits.topk(3, largest=False).values.tolist(), abs=1e-5)
    with pytest.raises(ValueError, match="hook_name="):
        F.logit_effects(model, "blocks.0.attn.hook_z", torch.randn(16))


def test_auto_label_counts_the_firing_tokens():
    ctx = lambda t: F.Context(tokens=["a", t, "b"], values=[0.0, 1.0, 0.0], center=1, value=1.0)  # noqa: E731
    assert F.auto_label([ctx(" raven"), ctx(" eagle"), ctx(" raven")], top=2) == "' raven' x2, ' eagle' x1"
    assert F.auto_label([]) == "(never fires)"


def test_dashboard_html_is_static_and_shows_every_part(model):
    acts = torch.relu(torch.randn(40, 32, generator=torch.Generator().manual_seed(1)))
    tokens = torch.randint(0, 20, (5, 8), generator=torch.Generator().manual_seed(2))
    where = F.token_positions(torch.ones(5, 8, dtype=torch.bool))
    card = F.feature_card(
        3,
        acts,
        tokens,
        where,
        model,
        "blocks.0.mlp.hook_post",
        torch.eye(32),
        best_labels=[[("topic=a/b/c", 0.5)]] * 32,
        k=4,
    )
    assert card.unit == 3 and len(card.contexts) == 4 and card.best_labels == [("topic=a/b/c", 0.5)]
    html = F.dashboard_html(card).html
    assert "<script" not in html and "<svg" in html and "topic=a/b/c" in html and "boosts" in html
    box = F.feature_dashboard(lambda u: card, n_units=32, start=3)
    assert "<svg" in box.children[1].value


def test_polysemantic_units_count_unrelated_labels_once_per_group():
    labels = [
        [("topic=sport/water/rowing", 0.3), ("topic=sport/winter/skating", 0.3), ("sense=bank:river", 0.2)],
        [("topic=sport/a/b", 0.2), ("topic=food/a/b", 0.2), ("topic=music/a/b", 0.15), ("name=Mary", 0.9)],
        [("topic=science/a/b", 0.05)],
    ]
    ranked = F.polysemantic_units(labels, min_f1=0.1, fields=["topic", "sense"])
    assert [u for u, _ in ranked] == [1, 0, 2]  # 3 groups, 2 groups (sport twice), none above 0.1
    assert ranked[0][1] == labels[1][:3]  # the name label is outside `fields`


def test_split_of_neuron_finds_the_best_latent_and_its_weight_rank():
    truth = torch.zeros(6, 2, dtype=torch.bool)
    truth[:3, 0] = truth[3:, 1] = True
    codes = torch.zeros(6, 4)
    codes[:3, 2] = 1.0
    codes[3:, 0] = 1.0
    table = recovery.best_f1(codes, truth, ["x=1", "y=2"])
    W_dec = torch.tensor([[0.1, 0.0], [0.9, 0.0], [0.5, 0.0], [-0.2, 0.0]])  # d_sae d_in; neuron 0
    rows = F.split_of_neuron(0, [("x=1", 0.2), ("y=2", 0.1)], table, W_dec)
    assert [(r["latent"], r["weight_rank"]) for r in rows] == [(2, 1), (0, 2)]
    assert rows[0]["latent_f1"] == pytest.approx(1.0) and rows[0]["weight_on_neuron"] == pytest.approx(0.5)


def test_evaluate_matches_the_metric_functions(model):
    sae = S.SAE(S.SAEConfig(d_in=8, d_sae=32, architecture="topk", k=4))
    x = torch.randn(100, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        codes = sae.encode(x)
        recon = sae.decode(codes)
    m = S.evaluate(sae, x, chunk=7)  # chunking does not change the result
    assert m["explained_variance"] == pytest.approx(S.explained_variance(x, recon).item(), abs=1e-5)
    assert m["l0"] == pytest.approx(4.0)
    assert torch.allclose(m["density"], S.feature_density(codes))
    assert m["dead_fraction"] == pytest.approx((S.feature_density(codes) == 0).float().mean().item())


def test_hook_width(model):
    assert hook_width(model, "blocks.0.mlp.hook_post") == 32
    assert hook_width(model, "blocks.0.attn.hook_z") == 16
    assert hook_width(model, "blocks.0.hook_resid_post") == 16


def test_logit_vectors_are_centred_logit_effects(model):
    directions = torch.randn(3, 32, generator=torch.Generator().manual_seed(4))
    vectors = F.logit_vectors(model, "blocks.0.mlp.hook_post", directions)
    assert vectors.shape == (3, 20) and torch.allclose(vectors.mean(-1), torch.zeros(3), atol=1e-5)
    up, _ = F.logit_effects(model, "blocks.0.mlp.hook_post", directions[1], k=2)
    assert [v for _, v in up] == pytest.approx(vectors[1].topk(2).values.tolist(), abs=1e-5)
