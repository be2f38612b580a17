"""Induction kernels on hand-made tokens and attention patterns, and on a tiny random model."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens.hook_points import HookPoint

from interp_helpers.transformer_circuits import induction

# BOS, then a b c twice: earlier occurrences are known by construction.
TOKENS = torch.tensor([[0, 11, 12, 13, 11, 12, 13]])
EARLIER = torch.tensor([[-1, -1, -1, -1, 1, 2, 3]])


def _pattern(targets: list[int]) -> torch.Tensor:
    """One head attending fully from query q to key targets[q]: [1, 1, pos, pos]."""
    pos = len(targets)
    p = torch.zeros(1, 1, pos, pos)
    p[0, 0, torch.arange(pos), torch.tensor(targets)] = 1.0
    return p


def _uniform(pos: int) -> torch.Tensor:
    causal = torch.ones(pos, pos).tril()
    return (causal / causal.sum(-1, keepdim=True))[None, None]


def test_previous_occurrence():
    assert induction.previous_occurrence(TOKENS).tolist() == EARLIER.tolist()
    assert induction.previous_occurrence(torch.tensor([[5, 5, 6, 5]])).tolist() == [[-1, 0, -1, 1]]


def test_previous_token_head_scores_one():
    p = _pattern([0, 0, 1, 2, 3, 4, 5])
    assert induction.previous_token_score(p).item() == pytest.approx(1.0)
    assert induction.induction_score(p, EARLIER).item() == pytest.approx(0.0)
    assert induction.duplicate_token_score(p, EARLIER).item() == pytest.approx(0.0)


def test_induction_head_scores_one():
    # Queries 4, 5, 6 (second a, b, c) attend to the token after the first occurrence.
    p = _pattern([0, 0, 0, 0, 2, 3, 4])
    assert induction.induction_score(p, EARLIER).item() == pytest.approx(1.0)
    assert induction.duplicate_token_score(p, EARLIER).item() == pytest.approx(0.0)
    # only query 1 (-> key 0) attends to its previous token
    assert induction.previous_token_score(p).item() == pytest.approx(1 / 6)  # query 1 -> key 0


def test_duplicate_token_head_scores_one():
    p = _pattern([0, 0, 0, 0, 1, 2, 3])
    assert induction.duplicate_token_score(p, EARLIER).item() == pytest.approx(1.0)
    assert induction.induction_score(p, EARLIER).item() == pytest.approx(0.0)


def test_uniform_attention_scores():
    p = _uniform(7)
    expected_prev = sum(1 / (q + 1) for q in range(1, 7)) / 6
    assert induction.previous_token_score(p).item() == pytest.approx(expected_prev)
    assert induction.induction_score(p, EARLIER).item() == pytest.approx((1 / 5 + 1 / 6 + 1 / 7) / 3)


def test_scores_are_per_head():
    p = torch.cat([_pattern([0, 0, 1, 2, 3, 4, 5]), _pattern([0, 0, 0, 0, 2, 3, 4])], dim=1)
    torch.testing.assert_close(induction.induction_score(p, EARLIER), torch.tensor([0.0, 1.0]))


def test_repeated_random_tokens_layout():
    pool = torch.arange(100, 400)
    rep = induction.repeated_random_tokens(pool, 32, 64, (4, 20), bos=0, generator=torch.Generator().manual_seed(0))
    again = induction.repeated_random_tokens(pool, 32, 64, (4, 20), bos=0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(rep.tokens, again.tokens)
    assert (rep.tokens[:, 0] == 0).all() and torch.isin(rep.tokens[:, 1:], pool).all()
    lengths = rep.second.sum(1) + 1
    assert torch.equal(rep.first.sum(1), rep.second.sum(1)) and len(set(lengths.tolist())) > 3  # varied
    earlier = induction.previous_occurrence(rep.tokens)
    for b in range(32):
        first, second = rep.first[b].nonzero()[:, 0], rep.second[b].nonzero()[:, 0]
        assert torch.equal(rep.tokens[b, first], rep.tokens[b, second])
        assert torch.equal(earlier[b, second], first)  # the only repeats are the planted ones
        assert (earlier[b, first] == -1).all()
        assert len(set(rep.first[b].nonzero()[:, 0].tolist()) | {int(first[0]) - 1}) == int(lengths[b])


def test_repeated_random_tokens_validates():
    with pytest.raises(ValueError, match="seg_len"):
        induction.repeated_random_tokens(torch.arange(100), 2, 20, (2, 12), 0, torch.Generator())


def test_per_token_loss_matches_cross_entropy():
    logits = torch.randn(2, 5, 7, generator=torch.Generator().manual_seed(0))
    tokens = torch.randint(0, 7, (2, 5), generator=torch.Generator().manual_seed(1))
    loss = induction.per_token_loss(logits, tokens)
    expected = F.cross_entropy(logits[:, :-1].reshape(-1, 7), tokens[:, 1:].reshape(-1), reduction="none")
    torch.testing.assert_close(loss, expected.reshape(2, 4))


def test_masked_mean_and_icl_score():
    loss = torch.arange(40.0).reshape(2, 20)
    mask = torch.zeros(2, 21, dtype=torch.bool)
    mask[:, [3, 4]] = True  # targets 2 and 3
    assert induction.masked_mean(loss, mask) == pytest.approx((2 + 3 + 22 + 23) / 4)
    assert induction.icl_score(loss, early=5, late=12, width=2) == pytest.approx(7.0)
    with pytest.raises(ValueError, match="late"):
        induction.icl_score(loss, early=5, late=19, width=2)


TINY = dict(
    n_layers=2, d_model=16, n_heads=2, d_head=8, n_ctx=32, d_vocab=50, attn_only=True, normalization_type="LN", seed=0
)
# SmolLM2's architecture (modelzoo/real_model.py), small: 2 query heads sharing 1 key-value head,
# rotary, RMSNorm, gated SiLU MLP.
LLAMA = dict(
    attn_only=False,
    d_mlp=32,
    act_fn="silu",
    gated_mlp=True,
    n_key_value_heads=1,
    normalization_type="RMS",
    final_rms=True,
    positional_embedding_type="rotary",
    rotary_dim=8,
    rotary_adjacent_pairs=False,
    original_architecture="LlamaForCausalLM",
)
ARCHS = {"ln-attn-only": {}, "llama": LLAMA}


@pytest.fixture(scope="module", params=list(ARCHS))
def tiny(request) -> HookedTransformer:
    return HookedTransformer(HookedTransformerConfig(**(TINY | ARCHS[request.param])))


def test_zero_head_hook_is_pure():
    z = torch.randn(2, 3, 4, 5)
    before = z.clone()
    out = induction.zero_head_hook(z, hook=HookPoint(), head=2)
    assert torch.equal(z, before)
    assert (out[:, :, 2] == 0).all() and torch.equal(out[:, :, [0, 1, 3]], z[:, :, [0, 1, 3]])


def test_ablation_equals_zeroing_w_o(tiny):
    tokens = torch.randint(1, 50, (3, 12), generator=torch.Generator().manual_seed(0))
    ablated = induction.ablated_loss(tiny, tokens, layer=0, head=1)
    edited = HookedTransformer(tiny.cfg)
    edited.load_state_dict(tiny.state_dict())
    with torch.no_grad():
        edited.blocks[0].attn.W_O[1] = 0.0
        edited.blocks[0].attn.b_O.copy_(tiny.blocks[0].attn.b_O)
    torch.testing.assert_close(ablated, induction.clean_loss(edited, tokens))
    assert not torch.allclose(ablated, induction.clean_loss(tiny, tokens))
    assert tiny.hook_dict["blocks.0.attn.hook_z"].fwd_hooks == []  # hooks removed afterwards


def test_head_scores_shapes_and_ranges(tiny):
    rep = induction.repeated_random_tokens(torch.arange(1, 50), 4, 20, (3, 9), 0, torch.Generator().manual_seed(0))
    scores = induction.head_scores(tiny, rep.tokens)
    assert set(scores) == {"previous_token", "duplicate_token", "induction"}
    for s in scores.values():
        assert s.shape == (2, 2) and ((s >= 0) & (s <= 1)).all()
    assert not math.isnan(induction.masked_mean(induction.clean_loss(tiny, rep.tokens), rep.second))


@pytest.mark.parametrize("arch", ARCHS)
def test_scores_agree_with_transformer_lens_head_detector(arch):
    """Ours with queries="all" equal head_detector's "mul" scores on the same rows; "matched" is larger."""
    from interp_helpers.modelzoo.tokenizer import load_tokenizer
    from interp_helpers.modelzoo.zoo import token_pool

    tok = load_tokenizer()
    cfg = HookedTransformerConfig(
        **(TINY | dict(n_ctx=48, d_vocab=len(tok), seed=1, default_prepend_bos=True) | ARCHS[arch])
    )
    model = HookedTransformer(cfg, tokenizer=tok)
    rep = induction.repeated_random_tokens(
        token_pool(tok), 3, 30, (4, 12), tok.bos_token_id, torch.Generator().manual_seed(0)
    )
    theirs = induction.head_detector_scores(model, rep.tokens)
    ours_all = induction.head_scores(model, rep.tokens, queries="all")
    ours = induction.head_scores(model, rep.tokens)
    for kind in induction.HEAD_KINDS:
        torch.testing.assert_close(ours_all[kind], theirs[kind].to(ours_all[kind].dtype), atol=1e-5, rtol=0)
        assert (ours[kind] > ours_all[kind]).all()
    with pytest.raises(ValueError, match="queries"):
        induction.head_scores(model, rep.tokens, queries="some")


def test_phase_change_step_finds_the_steepest_drop():
    steps = torch.arange(0, 3000, 100)
    loss = 6.0 - 5.0 * torch.sigmoid((steps - 1500.0) / 60)  # falls from 6 to 1 around step 1500
    start, end = induction.phase_change_step(steps, loss, window=2)
    assert start <= 1500 <= end and end - start == 200
    with pytest.raises(ValueError, match="window"):
        induction.phase_change_step(steps[:3], loss[:3], window=3)
