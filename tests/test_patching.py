"""Stacked activation patching against transformer_lens.patching, on tiny random models."""

from __future__ import annotations

import functools
import random

import pytest
import torch
import transformer_lens.patching as tl_patching
from conftest import LLAMA_STYLE
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp_helpers.transformer_circuits import circuits, patching

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py

GELU = dict(
    n_layers=2,
    d_model=32,
    n_heads=4,
    d_head=8,
    d_mlp=64,
    n_ctx=16,
    d_vocab=60,
    act_fn="gelu",
    normalization_type="LN",
    seed=0,
)
LLAMA = GELU | LLAMA_STYLE | dict(n_key_value_heads=2)
VARIANTS = {
    "gelu": GELU,
    "attn-only": GELU | dict(attn_only=True, d_mlp=None, act_fn=None),
    "shortformer": GELU | dict(positional_embedding_type="shortformer"),
    "rotary": GELU | dict(positional_embedding_type="rotary", rotary_dim=8),
    # SmolLM2's architecture (interp_helpers/modelzoo/real_model.py), small: grouped-query attention
    # (hook_k and hook_v have 2 heads, q, z and patterns 4), rotary, RMSNorm, gated SiLU MLP.
    "llama": LLAMA,
}
BATCH, POS = 3, 8


# (ours, TransformerLens) for every kind; mlp_out only where the model has MLPs.
KINDS = {
    "resid_pre_by_pos": (patching.resid_pre_by_pos, tl_patching.get_act_patch_resid_pre),
    "attn_head_out_all_pos": (patching.attn_head_out_all_pos, tl_patching.get_act_patch_attn_head_out_all_pos),
    "attn_head_out_by_pos": (patching.attn_head_out_by_pos, tl_patching.get_act_patch_attn_head_out_by_pos),
    "attn_head_q_all_pos": (patching.attn_head_q_all_pos, tl_patching.get_act_patch_attn_head_q_all_pos),
    "attn_head_k_all_pos": (patching.attn_head_k_all_pos, tl_patching.get_act_patch_attn_head_k_all_pos),
    "attn_head_v_all_pos": (patching.attn_head_v_all_pos, tl_patching.get_act_patch_attn_head_v_all_pos),
    "attn_head_pattern_all_pos": (
        patching.attn_head_pattern_all_pos,
        tl_patching.get_act_patch_attn_head_pattern_all_pos,
    ),
    "attn_out_by_pos": (patching.attn_out_by_pos, tl_patching.get_act_patch_attn_out),
    "mlp_out_by_pos": (patching.mlp_out_by_pos, tl_patching.get_act_patch_mlp_out),
}


def randomise_norm_weights(model: HookedTransformer, generator: torch.Generator) -> None:
    """LayerNorm / RMSNorm scales (and LayerNorm biases) away from their 1 and 0 at initialisation,
    so a kernel that skipped them would disagree with TransformerLens."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.rsplit(".", 1)[-1] in ("w", "b") and name.split(".")[-2].startswith("ln"):
                offset = 1.0 if name.endswith(".w") else 0.0
                param.copy_(offset + 0.5 * (torch.rand(param.shape, generator=generator) - 0.5))


class Setup:
    """A model, clean and corrupted prompts, the clean cache and a logit-difference metric."""

    def __init__(self, variant: str):
        self.model = HookedTransformer(HookedTransformerConfig(**VARIANTS[variant])).eval()
        generator = torch.Generator().manual_seed(1)
        randomise_norm_weights(self.model, generator)
        self.clean, self.corrupted = (torch.randint(0, 60, (BATCH, POS), generator=generator) for _ in range(2))
        self.metric = patching.logit_diff_metric(torch.randint(0, 60, (BATCH, 2), generator=generator))
        with torch.no_grad():
            self.clean_logits, self.cache = self.model.run_with_cache(self.clean)
            self.corrupted_logits = self.model(self.corrupted)

    def plain_metric(self, logits: torch.Tensor) -> torch.Tensor:
        """The same metric as a plain function: full logits, no PositionMetric short cut."""
        return self.metric(logits)

    @functools.cache  # noqa: B019 - one instance per test module; caching its reference runs is the point
    def reference(self, kind: str) -> torch.Tensor:
        return KINDS[kind][1](self.model, self.corrupted, self.cache, self.plain_metric)


@functools.cache
def setup(variant: str = "gelu") -> Setup:
    return Setup(variant)


def _kinds(variant: str) -> list[str]:
    return [kind for kind in KINDS if not (kind == "mlp_out_by_pos" and VARIANTS[variant].get("attn_only"))]


# --------------------------------------------------------------------------------------
# Same results as transformer_lens.patching
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("variant", "kind"), [(v, k) for v in ("gelu", "attn-only", "llama") for k in _kinds(v)])
@pytest.mark.parametrize("metric_kind", ["position", "plain"])
def test_matches_transformer_lens(variant, kind, metric_kind):
    s = setup(variant)
    metric = s.metric if metric_kind == "position" else s.plain_metric
    ours = KINDS[kind][0](s.model, s.corrupted, s.cache, metric, progress=False)
    reference = s.reference(kind)
    assert ours.shape == reference.shape
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)
    assert reference.std() > 1e-3  # the patches do change the metric: not a trivial agreement
    assert circuits.hooks_attached(s.model) == 0


@pytest.mark.parametrize("variant", ["shortformer", "rotary"])
@pytest.mark.parametrize("kind", ["resid_pre_by_pos", "attn_head_out_by_pos", "attn_head_k_all_pos"])
def test_other_positional_embeddings_match(variant, kind):
    """The start-at-layer and key-value-cache short cuts stay exact with shortformer and rotary positions."""
    s = setup(variant)
    ours = KINDS[kind][0](s.model, s.corrupted, s.cache, s.metric, max_batch=5, progress=False)
    torch.testing.assert_close(ours, s.reference(kind), atol=1e-5, rtol=0)


@pytest.mark.parametrize("variant", ["gelu", "shortformer", "rotary", "llama"])
@pytest.mark.parametrize("read", [4, (3, 5, 5)], ids=["one-position", "per-prompt"])
def test_metric_reading_earlier_positions_matches(variant, read):
    """The run stops after the last read position, sites after it keep the corrupted value, and with one
    read position for every prompt the last block runs it alone (per-prompt positions take the full last block)."""
    s = setup(variant)
    metric = patching.logit_diff_metric(
        s.metric.answer_tokens, pos=read if isinstance(read, int) else torch.tensor(read)
    )
    for kind in (
        "resid_pre_by_pos",
        "attn_head_out_by_pos",
        "attn_head_out_all_pos",
        "attn_head_k_all_pos",
        "attn_head_pattern_all_pos",
        "mlp_out_by_pos",
    ):
        ours_fn, tl_fn = KINDS[kind]
        reference = tl_fn(s.model, s.corrupted, s.cache, lambda logits: metric(logits))
        torch.testing.assert_close(
            ours_fn(s.model, s.corrupted, s.cache, metric, max_batch=5, progress=False), reference, atol=1e-5, rtol=0
        )
    assert circuits.hooks_attached(s.model) == 0


def test_left_padded_prompts_match():
    """With a left-padding tokenizer the forward pass builds an attention mask; rows started at a layer get it too."""
    from interp_helpers.modelzoo.tokenizer import load_tokenizer

    tokenizer = load_tokenizer()
    cfg = HookedTransformerConfig(
        **(GELU | dict(d_vocab=len(tokenizer), default_prepend_bos=True, tokenizer_prepends_bos=False))
    )
    model = HookedTransformer(cfg, tokenizer=tokenizer, default_padding_side="left").eval()
    generator = torch.Generator().manual_seed(2)
    clean, corrupted = (torch.randint(10, len(tokenizer), (BATCH, POS), generator=generator) for _ in range(2))
    for tokens in (clean, corrupted):
        tokens[0, :3] = tokens[1, :1] = tokenizer.pad_token_id
    assert model.input_to_embed(corrupted)[3] is not None  # the mask is in use
    metric = patching.logit_diff_metric(torch.randint(10, len(tokenizer), (BATCH, 2), generator=generator))
    with torch.no_grad():
        _, cache = model.run_with_cache(clean)
    for kind in ("resid_pre_by_pos", "attn_head_out_by_pos", "attn_head_v_all_pos"):
        ours_fn, tl_fn = KINDS[kind]
        reference = tl_fn(model, corrupted, cache, lambda logits: metric(logits))
        torch.testing.assert_close(
            ours_fn(model, corrupted, cache, metric, max_batch=5, progress=False), reference, atol=1e-5, rtol=0
        )


@pytest.mark.parametrize("variant", ["gelu", "llama"])
@pytest.mark.parametrize("name", ["k", "v", "pattern", "q"])
def test_generic_sites_by_position_match(name, variant):
    """Per-position head sites of q, k, v and the pattern (by destination) through patch_sites.

    With grouped-query attention a k or v site is one key-value head, shared by n_heads /
    n_key_value_heads query heads (TransformerLens' convention too)."""
    s = setup(variant)
    heads = 2 if variant == "llama" and name in "kv" else 4
    tl_fn = getattr(tl_patching, f"get_act_patch_attn_head_{name}_by_pos")
    reference = tl_fn(
        s.model, s.corrupted, s.cache, s.plain_metric
    )  # [layer, pos, head] ([layer, head, pos] for pattern)
    if name == "pattern":
        reference = reference.transpose(1, 2)
    sites = [
        patching.Site.of(name, layer, pos=pos, head=head)
        for layer in range(2)
        for pos in range(POS)
        for head in range(heads)
    ]
    ours = patching.patch_sites(s.model, s.corrupted, s.cache, s.metric, sites, max_batch=7, progress=False)
    assert reference.shape == (2, POS, heads)
    torch.testing.assert_close(ours.view(2, POS, heads), reference, atol=1e-5, rtol=0)


class SharedSetup(Setup):
    """Corrupted prompts that differ from the clean ones at positions 3 and 5 only, as IOI's ABC prompts differ
    at the names: before position 3 every activation is the same in both runs, and so are layer 0's inputs at
    the unchanged positions. Those sites are skipped, and all-positions sites start at position 3."""

    def __init__(self, variant: str):
        super().__init__(variant)
        self.corrupted = self.clean.clone()
        self.corrupted[:, [3, 5]] = (self.clean[:, [3, 5]] + 7) % 60
        with torch.no_grad():
            self.corrupted_logits = self.model(self.corrupted)


@functools.cache
def shared_setup(variant: str) -> SharedSetup:
    return SharedSetup(variant)


@pytest.mark.parametrize("variant", ["gelu", "rotary", "llama"])
@pytest.mark.parametrize("metric_kind", ["position", "plain"])
def test_prompts_sharing_a_prefix_match_and_skip_it(variant, metric_kind, monkeypatch):
    s = shared_setup(variant)
    metric = s.metric if metric_kind == "position" else s.plain_metric
    starts = []
    run_chunk = patching._run_chunk
    monkeypatch.setattr(patching, "_run_chunk", lambda *args, **kw: starts.append(args[6]) or run_chunk(*args, **kw))
    corrupted_value = s.plain_metric(s.corrupted_logits).item()
    for kind in _kinds(variant):
        starts.clear()
        ours = KINDS[kind][0](s.model, s.corrupted, s.cache, metric, max_batch=5, progress=False)
        reference = s.reference(kind)
        torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)
        assert reference.std() > 1e-3
        if kind.endswith("by_pos"):  # nothing before position 3 changes: the corrupted value, without a forward
            torch.testing.assert_close(ours[:, :3], torch.full_like(ours[:, :3], corrupted_value), atol=1e-6, rtol=0)
            assert min(starts) >= 3, (kind, starts)
        else:  # every head's rows start at the first changed position
            assert min(starts) == 3, (kind, starts)
    assert circuits.hooks_attached(s.model) == 0


def _naive(s: Setup, site: patching.Site) -> float:
    """One forward with one hook that copies the clean activation in, as a for loop over sites would do it."""

    def hook(activation, hook):
        activation = activation.clone()
        index = [slice(None)] * activation.ndim
        if site.pos is not None:
            index[2 if site.hook.endswith(("hook_pattern", "hook_attn_scores")) else 1] = site.pos
        if site.head is not None:
            index[1 if site.hook.endswith(("hook_pattern", "hook_attn_scores")) else 2] = site.head
        activation[tuple(index)] = s.cache[site.hook][tuple(index)]
        return activation

    with torch.no_grad():
        return s.plain_metric(s.model.run_with_hooks(s.corrupted, fwd_hooks=[(site.hook, hook)])).item()


@pytest.mark.parametrize("variant", ["gelu", "llama"])
def test_mixed_sites_in_any_order(variant):
    """A list mixing kinds, positions (negative too), layers and hooks outside the blocks, shuffled."""
    s = setup(variant)
    sites = [
        patching.Site("hook_embed", pos=2),
        *([patching.Site("hook_pos_embed")] if variant == "gelu" else []),  # rotary: no positional embedding
        patching.Site("ln_final.hook_scale", pos=-1),
        patching.Site("blocks.1.mlp.hook_post", pos=-1),
        patching.Site("blocks.0.attn.hook_attn_scores", pos=3, head=2),
        patching.Site("blocks.1.hook_resid_mid", pos=5),
        patching.Site("blocks.0.attn.hook_v", pos=4, head=1),
        patching.Site("blocks.1.attn.hook_z", pos=-1, head=3),
        patching.Site("blocks.0.hook_resid_post", pos=0),
        patching.Site("blocks.1.ln1.hook_normalized", pos=6),
    ]
    random.Random(0).shuffle(sites)
    expected = torch.tensor([_naive(s, site) for site in sites])
    for metric in (s.metric, s.plain_metric):
        for max_batch in (None, 2):
            ours = patching.patch_sites(
                s.model, s.corrupted, s.cache, metric, sites, max_batch=max_batch, progress=False
            )
            torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)
    assert expected.unique().numel() > 5  # most of these sites move the metric


@pytest.mark.parametrize("max_batch", [1, 2, 5, 10_000])
def test_results_do_not_depend_on_max_batch(max_batch):
    """Chunks of 5 rows cut the 3-row blocks mid-way; 1 runs each row alone."""
    s = setup()
    for kind in ("resid_pre_by_pos", "attn_head_out_all_pos", "attn_head_pattern_all_pos"):
        ours = KINDS[kind][0](s.model, s.corrupted, s.cache, s.metric, max_batch=max_batch, progress=False)
        torch.testing.assert_close(ours, s.reference(kind), atol=1e-5, rtol=0)


def test_whole_residual_stream_patch_recovers_the_clean_run():
    """All positions of resid_pre at layer 0 is the clean run (normalised 1);
    z at layer 1, position 0 cannot reach the last position (0)."""
    s = setup()
    metric = patching.normalised_metric(s.metric, s.metric(s.clean_logits), s.metric(s.corrupted_logits))
    sites = [patching.Site("blocks.0.hook_resid_pre"), patching.Site("blocks.1.attn.hook_z", pos=0)]
    ours = patching.patch_sites(s.model, s.corrupted, s.cache, metric, sites, progress=False)
    torch.testing.assert_close(ours, torch.tensor([1.0, 0.0]), atol=1e-5, rtol=0)


# --------------------------------------------------------------------------------------
# Hooks, validation
# --------------------------------------------------------------------------------------


def test_no_hooks_left_after_a_failing_metric():
    s = setup()

    def failing(logits):
        raise RuntimeError("metric failed")

    with pytest.raises(RuntimeError, match="metric failed"):
        patching.attn_head_out_all_pos(s.model, s.corrupted, s.cache, failing, progress=False)
    assert circuits.hooks_attached(s.model) == 0


def test_no_hooks_left_after_a_failing_hook():
    """A clean activation of the wrong width fails inside the forward pass, with the hooks attached."""
    s = setup()
    bad = dict(s.cache.cache_dict)
    bad["blocks.1.attn.hook_z"] = bad["blocks.1.attn.hook_z"][..., :3]
    with pytest.raises(RuntimeError):
        patching.attn_head_out_all_pos(s.model, s.corrupted, bad, s.metric, progress=False)
    assert circuits.hooks_attached(s.model) == 0


@pytest.mark.parametrize("shape", [(BATCH, POS + 1), (BATCH - 1, POS)])
def test_mismatched_shapes_name_the_parameter(shape):
    s = setup()
    tokens = torch.randint(0, 60, shape)
    with pytest.raises(ValueError, match="corrupted_tokens"):
        patching.resid_pre_by_pos(s.model, tokens, s.cache, s.plain_metric, progress=False)
    with pytest.raises(ValueError, match="corrupted_tokens"):
        patching.attn_head_pattern_all_pos(s.model, tokens, s.cache, s.plain_metric, progress=False)


def test_bad_arguments_name_the_parameter():
    s = setup()
    run = functools.partial(patching.patch_sites, s.model, s.corrupted, s.cache, s.metric, progress=False)
    with pytest.raises(ValueError, match="max_batch"):
        run([patching.Site("blocks.0.hook_resid_pre")], max_batch=0)
    with pytest.raises(ValueError, match="sites"):
        run([patching.Site("blocks.7.hook_resid_pre")])
    with pytest.raises(ValueError, match="sites"):
        run([patching.Site("blocks.0.hook_resid_pre", head=0)])  # no head axis
    with pytest.raises(ValueError, match="pos"):
        run([patching.Site("blocks.0.hook_resid_pre", pos=POS)])
    with pytest.raises(ValueError, match="head"):
        run([patching.Site("blocks.0.attn.hook_z", head=4)])
    with pytest.raises(ValueError, match="clean_cache"):
        run([patching.Site("blocks.0.attn.hook_result")])  # not cached: use_attn_result is off
    attn_only = setup("attn-only")
    with pytest.raises(ValueError, match="clean_cache has no activation 'blocks.0.hook_mlp_out'"):
        patching.mlp_out_by_pos(attn_only.model, attn_only.corrupted, attn_only.cache, attn_only.metric, progress=False)
    assert run([]).shape == (0,)


# --------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------


def test_logit_diff_metric_by_hand():
    logits = torch.arange(2 * 3 * 5, dtype=torch.float32).view(2, 3, 5)  # logit = 15 b + 5 pos + token
    answers = torch.tensor([[4, 1], [0, 2]])
    assert patching.logit_diff_metric(answers)(logits).item() == pytest.approx((3 + -2) / 2)
    per_prompt = patching.logit_diff_metric(answers, pos=torch.tensor([0, 2]))
    assert per_prompt(logits).item() == pytest.approx((3 - 2) / 2)
    logits[1, 2, 0] = 10.0  # 10 - (15 + 10 + 2) at prompt 1, position 2
    assert per_prompt(logits).item() == pytest.approx((3 + 10 - 27) / 2)
    assert isinstance(per_prompt, patching.PositionMetric)
    with pytest.raises(ValueError, match="pos"):
        patching.logit_diff_metric(answers, pos=3)(logits)


def test_normalised_metric_is_zero_at_corrupted_and_one_at_clean():
    s = setup()
    clean_value, corrupted_value = s.metric(s.clean_logits), s.metric(s.corrupted_logits)
    for metric in (s.metric, s.plain_metric):
        normalised = patching.normalised_metric(metric, clean_value, corrupted_value)
        assert normalised(s.corrupted_logits).item() == pytest.approx(0.0, abs=1e-6)
        assert normalised(s.clean_logits).item() == pytest.approx(1.0, abs=1e-6)
        assert isinstance(normalised, patching.PositionMetric) == (metric is s.metric)  # stays on the fast path
    with pytest.raises(ValueError, match="clean_value"):
        patching.normalised_metric(s.metric, 1.0, 1.0)


def test_attribution_is_exact_where_the_model_is_linear_in_z():
    """1 layer, attention only, no LayerNorm: logits are linear in z, so the estimate is exact."""
    cfg = HookedTransformerConfig(
        n_layers=1,
        d_model=16,
        n_heads=4,
        d_head=4,
        n_ctx=12,
        d_vocab=30,
        attn_only=True,
        normalization_type=None,
        seed=3,
    )
    model = HookedTransformer(cfg).eval()
    generator = torch.Generator().manual_seed(4)
    clean, corrupted = (torch.randint(0, 30, (3, 8), generator=generator) for _ in range(2))
    metric = patching.logit_diff_metric(torch.randint(0, 30, (3, 2), generator=generator))
    with torch.no_grad():
        _, cache = model.run_with_cache(clean)
    exact = patching.attn_head_out_all_pos(model, corrupted, cache, metric, progress=False)
    estimate = patching.attribution_head_out_all_pos(model, corrupted, cache, metric)
    torch.testing.assert_close(estimate, exact, atol=1e-5, rtol=1e-4)
    assert circuits.hooks_attached(model) == 0


def test_attribution_shape_hooks_and_validation_on_a_nonlinear_model():
    s = setup("gelu")
    estimate = patching.attribution_head_out_all_pos(s.model, s.corrupted, s.cache, s.metric)
    assert estimate.shape == s.reference("attn_head_out_all_pos").shape
    assert circuits.hooks_attached(s.model) == 0
    with pytest.raises(ValueError, match="corrupted_tokens"):
        patching.attribution_head_out_all_pos(s.model, s.corrupted[:, :-1], s.cache, s.metric)


@pytest.mark.parametrize(
    "kind", ["resid_pre_by_pos", "attn_head_out_all_pos", "attn_head_v_all_pos", "attn_head_out_by_pos"]
)
def test_chosen_layers_match_every_layer_and_leave_nan(kind):
    s = setup("llama")
    every = KINDS[kind][0](s.model, s.corrupted, s.cache, s.metric, progress=False)
    some = KINDS[kind][0](s.model, s.corrupted, s.cache, s.metric, progress=False, layers=[1])
    assert some.shape == every.shape and some[0].isnan().all()
    torch.testing.assert_close(some[1], every[1], atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="layers"):
        KINDS[kind][0](s.model, s.corrupted, s.cache, s.metric, progress=False, layers=[2])
