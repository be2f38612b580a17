"""Circuit kernels on hand-made weights, against dense references, and on tiny random models."""

from __future__ import annotations

import pytest
import torch
from conftest import LLAMA_STYLE
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens.head_detector import detect_head

from interp_helpers.modelzoo.corpus import NAMES
from interp_helpers.modelzoo.tokenizer import load_tokenizer
from interp_helpers.transformer_circuits import circuits, induction

SMALL = dict(
    n_layers=2,
    d_model=32,
    n_heads=4,
    d_head=8,
    n_ctx=24,
    d_vocab=50,
    attn_only=True,
    normalization_type="LN",
    act_fn=None,
    seed=0,
)


# SmolLM2's architecture (modelzoo/real_model.py), small: 4 query heads sharing 2 key-value heads
# (grouped-query attention), rotary, RMSNorm, gated SiLU MLP.
LLAMA = LLAMA_STYLE | dict(attn_only=False, d_mlp=64, n_key_value_heads=2)
ARCHS = {"ln-attn-only": {}, "llama": LLAMA}


def _model(**overrides) -> HookedTransformer:
    model = HookedTransformer(HookedTransformerConfig(**(SMALL | overrides)))
    model.eval()
    return model


# --------------------------------------------------------------------------------------
# Copying
# --------------------------------------------------------------------------------------


def _identity_ov(sign: float) -> HookedTransformer:
    """One head, W_E = W_V = W_U = I and W_O = sign * I: the full OV circuit is sign * I."""
    model = _model(n_layers=1, d_model=16, n_heads=1, d_head=16, d_vocab=16)
    eye = torch.eye(16)
    with torch.no_grad():
        model.embed.W_E.copy_(eye)
        model.unembed.W_U.copy_(eye)
        model.blocks[0].attn.W_V.copy_(eye[None])
        model.blocks[0].attn.W_O.copy_(sign * eye[None])
    return model


def test_copying_identity_scores_one():
    scores = circuits.copying_scores(_identity_ov(1.0), k=1)
    assert scores.eigen.item() == pytest.approx(1.0, abs=1e-5)
    assert scores.top_k.item() == pytest.approx(1.0)


def test_copying_negated_identity_scores_minus_one():
    scores = circuits.copying_scores(_identity_ov(-1.0), k=5)
    assert scores.eigen.item() == pytest.approx(-1.0, abs=1e-5)
    assert scores.top_k.item() == 0.0  # own logit -1, the 15 others 0


@pytest.mark.parametrize("arch", ARCHS)
def test_copying_matches_dense_computation(arch):
    """Factored eigenvalues and chunked top-k equal the same numbers from the dense d_vocab^2 matrix
    (with grouped-query attention, W_V is each query head's key-value head's)."""
    model = _model(d_vocab=200, **ARCHS[arch])
    scores = circuits.copying_scores(model, k=3, chunk=37)  # a chunk that does not divide d_vocab
    for layer in range(2):
        for head in range(4):
            dense = model.W_E @ model.W_V[layer, head] @ model.W_O[layer, head] @ model.W_U
            eig = torch.linalg.eigvals(dense.double())
            assert scores.eigen[layer, head].item() == pytest.approx(
                (eig.sum() / eig.abs().sum()).real.item(), abs=1e-4
            )
            top = dense.topk(3, dim=-1).indices
            hit = (top == torch.arange(200)[:, None]).any(-1).float().mean()
            assert scores.top_k[layer, head].item() == pytest.approx(hit.item())


def test_copying_on_a_sub_vocabulary_is_the_dense_submatrix():
    model = _model(d_vocab=200)
    vocab = torch.tensor([3, 17, 42, 99, 150, 151, 199])
    scores = circuits.copying_scores(model, k=2, vocab=vocab)
    dense = model.W_E[vocab] @ model.W_V[1, 2] @ model.W_O[1, 2] @ model.W_U[:, vocab]
    eig = torch.linalg.eigvals(dense.double())
    assert scores.eigen[1, 2].item() == pytest.approx((eig.sum() / eig.abs().sum()).real.item(), abs=1e-4)
    hit = (dense.topk(2, dim=-1).indices == torch.arange(len(vocab))[:, None]).any(-1).float().mean()
    assert scores.top_k[1, 2].item() == pytest.approx(hit.item())
    whole = circuits.copying_scores(model, k=2, vocab=torch.arange(200))
    torch.testing.assert_close(whole.top_k, circuits.copying_scores(model, k=2).top_k)


# --------------------------------------------------------------------------------------
# Composition
# --------------------------------------------------------------------------------------


def test_composition_score_extremes():
    u, v, w = torch.eye(8)[:3]
    aligned = circuits.composition_score(torch.outer(u, v)[None], torch.outer(v, w)[None])
    orthogonal = circuits.composition_score(torch.outer(u, v)[None], torch.outer(w, u)[None])
    assert aligned.item() == pytest.approx(1.0)
    assert orthogonal.item() == pytest.approx(0.0)


def test_k_composing_pair_stands_out():
    """Head 0.2 writes into dims 0-7 and head 1.1's key reads only them: K-composition."""
    model = _model(d_model=64, d_head=8)
    eye = torch.eye(64)
    with torch.no_grad():
        model.blocks[0].attn.W_O[2] = eye[:8]  # [d_head, d_model]: writes dims 0-7
        model.blocks[1].attn.W_K[1] = eye[:, :8]  # [d_model, d_head]: reads dims 0-7
    scores = circuits.composition_scores(model)
    assert set(scores) == {"q", "k", "v"} and scores["k"].shape == (4, 4)
    baseline = circuits.composition_baseline(64, 8, 200, torch.Generator().manual_seed(0))
    assert scores["k"][2, 1] > baseline.mean() + 5 * baseline.std()
    others = scores["k"].flatten()[torch.arange(16) != 2 * 4 + 1]
    assert scores["k"][2, 1] > 2 * others.max()
    assert scores["k"][2, 1] > 2 * scores["q"][2, 1]  # the query side still reads everything
    assert baseline.mean().item() == pytest.approx(64**-0.5, rel=0.3)


def test_k_composition_into_a_shared_key_value_head_shows_in_its_whole_group():
    """Grouped-query attention: key-value head 0 of layer 1 serves query heads 0 and 1, so a key that
    reads head 0.2's output K-composes with both, and with neither of heads 2 and 3."""
    model = _model(d_model=64, d_head=8, **LLAMA)
    eye = torch.eye(64)
    with torch.no_grad():
        model.blocks[0].attn.W_O[2] = eye[:8]
        model.blocks[1].attn._W_K[0] = eye[:, :8]  # the stored key-value head; W_K repeats it per query head
    k = circuits.composition_scores(model)["k"]
    assert k.shape == (4, 4)
    assert min(k[2, 0], k[2, 1]) > 2 * k[2, 2:].max()  # (not equal: each query head has its own W_Q)


# --------------------------------------------------------------------------------------
# Head ablation
# --------------------------------------------------------------------------------------


def _tokens(batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rep = induction.repeated_random_tokens(
        torch.arange(1, 50), batch, 24, (4, 8), 0, torch.Generator().manual_seed(seed)
    )
    return rep.tokens, rep.second


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("kind", circuits.ABLATIONS)
def test_batched_ablation_matches_one_forward_per_head(kind, arch):
    model = _model(**ARCHS[arch])
    tokens, second = _tokens(3, seed=1)
    mean_tokens, _ = _tokens(5, seed=2)
    # max_batch 5 with batch 3: chunks cut the per-head blocks of rows in the middle
    fast = circuits.ablate_each_head(model, tokens, second, kind, mean_tokens, max_batch=5, progress=False)
    slow = circuits.ablate_each_head_naive(model, tokens, second, kind, mean_tokens, progress=False)
    assert fast.ablated.shape == (2, 4)
    assert fast.clean == pytest.approx(slow.clean, abs=1e-5)
    torch.testing.assert_close(fast.ablated, slow.ablated, atol=1e-5, rtol=0)
    assert fast.increase.abs().max() > 1e-4  # ablation did something: the comparison is not vacuous
    assert circuits.hooks_attached(model) == 0


@pytest.mark.parametrize("arch", [*ARCHS, "shortformer"])
@pytest.mark.parametrize("kind", circuits.ABLATIONS)
def test_ablating_chosen_heads_matches_every_head(kind, arch):
    """`heads=` starts each head's rows at its layer; the chosen heads get the same losses, the others NaN."""
    model = _model(**ARCHS.get(arch, dict(positional_embedding_type="shortformer")))
    tokens, second = _tokens(3, seed=1)
    mean_tokens, _ = _tokens(5, seed=2)
    every = circuits.ablate_each_head(model, tokens, second, kind, mean_tokens, progress=False)
    chosen = [(1, 3), (0, 1), (1, 0)]
    some = circuits.ablate_each_head(
        model, tokens, second, kind, mean_tokens, max_batch=4, progress=False, heads=chosen
    )
    assert some.clean == pytest.approx(every.clean, abs=1e-5)
    picked = torch.zeros(2, 4, dtype=torch.bool)
    picked[tuple(zip(*chosen))] = True
    torch.testing.assert_close(some.ablated[picked], every.ablated[picked], atol=1e-5, rtol=0)
    assert some.ablated[~picked].isnan().all()
    assert every.increase[picked].abs().max() > 1e-4
    with pytest.raises(ValueError, match="head"):
        circuits.ablate_each_head(model, tokens, heads=[(0, 4)], progress=False)
    assert circuits.hooks_attached(model) == 0


def test_ablation_all_targets_and_hooks_removed_after_error():
    model = _model()
    tokens, _ = _tokens(2, seed=3)
    result = circuits.ablate_each_head(model, tokens, progress=False)
    assert result.clean == pytest.approx(induction.clean_loss(model, tokens).mean().item(), abs=1e-5)
    with pytest.raises(Exception):  # noqa: B017 - a shape error; its type depends on jaxtyping being on
        circuits.ablate_each_head(model, tokens, torch.ones(2, 5, dtype=torch.bool), progress=False)
    with pytest.raises(ValueError):
        circuits.ablate_each_head(model, tokens, kind="resample", progress=False)
    assert circuits.hooks_attached(model) == 0


# --------------------------------------------------------------------------------------
# Agreement with transformer_lens.head_detector
# --------------------------------------------------------------------------------------


def test_induction_scores_agree_with_head_detector():
    """induction.py's head scores x n_valid / pos == detect_head's "mul" scores (see circuits' docstring)."""
    tok = load_tokenizer()
    cfg = HookedTransformerConfig(
        **(SMALL | dict(d_vocab=len(tok), default_prepend_bos=True, tokenizer_prepends_bos=False))
    )
    model = HookedTransformer(cfg, tokenizer=tok)
    text = " ".join(NAMES[:6] + NAMES[1:5])  # every name one token: BOS A B C D E F B C D E
    tokens = model.to_tokens(text)
    assert tokens.shape == (1, 11)
    pos = tokens.shape[1]
    ours = induction.head_scores(model, tokens)
    earlier = induction.previous_occurrence(tokens)[0]
    n_valid = {
        "previous_token": pos - 1,
        "duplicate_token": int((earlier >= 0).sum()),
        "induction": int(((earlier >= 0) & (earlier + 1 <= torch.arange(pos))).sum()),
    }
    assert n_valid["duplicate_token"] == 4 and n_valid["induction"] == 4
    for ours_name, theirs_name in [
        ("previous_token", "previous_token_head"),
        ("duplicate_token", "duplicate_token_head"),
        ("induction", "induction_head"),
    ]:
        theirs = detect_head(model, text, theirs_name)
        torch.testing.assert_close(ours[ours_name] * n_valid[ours_name] / pos, theirs, atol=1e-5, rtol=0)


# --------------------------------------------------------------------------------------
# Joint ablation and direct logit attribution
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_ablate_heads_matches_one_at_a_time_and_zeroed_weights(arch):
    model = _model(**ARCHS[arch])
    tokens = torch.randint(1, 50, (3, 12), generator=torch.Generator().manual_seed(0))
    naive = circuits.ablate_each_head_naive(model, tokens, kind="mean", progress=False)
    assert circuits.ablate_heads(model, tokens, [(1, 2)], kind="mean") == pytest.approx(
        naive.ablated[1, 2].item(), abs=1e-5
    )
    edited = _model(**ARCHS[arch])
    with torch.no_grad():
        edited.blocks[0].attn.W_O[1] = 0.0
        edited.blocks[1].attn.W_O[3] = 0.0
    expected = induction.per_token_loss(edited(tokens), tokens).mean().item()
    assert circuits.ablate_heads(model, tokens, [(0, 1), (1, 3)]) == pytest.approx(expected, abs=1e-5)
    assert circuits.ablate_heads(model, tokens, []) == pytest.approx(naive.clean, abs=1e-5)
    with pytest.raises(ValueError, match="head"):
        circuits.ablate_heads(model, tokens, [(0, 4)])
    assert circuits.hooks_attached(model) == 0


@pytest.mark.parametrize("arch", ARCHS)
def test_head_logit_attribution_matches_transformer_lens_stack(arch):
    """Ours on raw weights == TransformerLens' stack_head_results(apply_ln=True) on LayerNorm-folded weights
    (RMSNorm: no centring, folded into RMSPre)."""
    model = _model(**ARCHS[arch])
    with torch.no_grad():  # a final norm that is not the identity, so its weight (and bias) matters
        model.ln_final.w.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(5))
        if hasattr(model.ln_final, "b"):
            model.ln_final.b.normal_(generator=torch.Generator().manual_seed(6))
    tokens = torch.randint(1, 50, (2, 10), generator=torch.Generator().manual_seed(1))
    mask = torch.rand(2, 10, generator=torch.Generator().manual_seed(2)) > 0.3
    ours = circuits.head_logit_attribution(model, tokens, mask)
    folded = _model(**ARCHS[arch])
    folded.load_state_dict(model.state_dict())
    folded.process_weights_(fold_ln=True, center_writing_weights=False, center_unembed=False)
    _, cache = folded.run_with_cache(tokens)
    stack = cache.stack_head_results(layer=-1, apply_ln=True)[:, :, :-1]  # [layer*head, batch, target_pos, d_model]
    dirs = folded.W_U.T[tokens[:, 1:]]
    theirs = (stack * dirs).sum(-1)[:, mask[:, 1:]].mean(-1).view(2, 4)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)
    # the same kernel at explicit positions and directions
    rows = torch.tensor([0, 1])
    pos = torch.tensor([3, 7])
    direct = circuits.head_direct_attribution(
        model, tokens, pos, circuits.unembed_directions(model, tokens[rows, pos + 1])
    )
    one_hot = torch.zeros(2, 10, dtype=torch.bool)
    one_hot[rows, pos + 1] = True  # a loss mask marks the predicted tokens
    torch.testing.assert_close(direct, circuits.head_logit_attribution(model, tokens, one_hot))
    # an ablation hook is attached for that run only, and zeroes the head's attribution
    import functools

    from interp_helpers.transformer_circuits.induction import zero_head_hook

    ablated = circuits.head_logit_attribution(
        model, tokens, mask, [("blocks.1.attn.hook_z", functools.partial(zero_head_hook, head=2))]
    )
    assert ablated[1, 2].abs().item() < 1e-6 and not torch.allclose(ablated, ours)
    assert circuits.hooks_attached(model) == 0
