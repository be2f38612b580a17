"""Path patching against plain activation patching, and mean ablation against a hand-built residual stream."""

from __future__ import annotations

import functools
from collections import defaultdict

import pytest
import torch
from conftest import LLAMA_STYLE
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp_helpers.transformer_circuits import ioi, ioi_circuit, patching
from interp_helpers.transformer_circuits.ioi_circuit import Receiver

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py

GELU = dict(
    n_layers=3,
    d_model=32,
    n_heads=3,
    d_head=8,
    d_mlp=64,
    n_ctx=16,
    d_vocab=60,
    act_fn="gelu",
    normalization_type="LN",
    seed=0,
)
# SmolLM2's architecture, small: 4 query heads sharing 2 key-value heads, rotary, RMSNorm, gated SiLU MLP.
LLAMA = GELU | LLAMA_STYLE | dict(n_heads=4, n_key_value_heads=2)
VARIANTS = {"gelu": GELU, "attn-only": GELU | dict(attn_only=True, d_mlp=None, act_fn=None), "llama": LLAMA}
BATCH, POS = 4, 7


class Setup:
    def __init__(self, variant: str):
        self.model = HookedTransformer(HookedTransformerConfig(**VARIANTS[variant])).eval()
        generator = torch.Generator().manual_seed(1)
        with torch.no_grad():  # norm scales away from 1, so a kernel that skipped them would disagree
            for name, param in self.model.named_parameters():
                if name.endswith(".w") and name.split(".")[-2].startswith("ln"):
                    param.uniform_(0.5, 1.5, generator=generator)
        self.clean, self.corrupted = (torch.randint(0, 60, (BATCH, POS), generator=generator) for _ in range(2))
        self.metric = patching.logit_diff_metric(torch.randint(0, 60, (BATCH, 2), generator=generator))


@functools.cache
def setup(variant: str) -> Setup:
    return Setup(variant)


def _output_hook(sender: ioi_circuit.Sender) -> str:
    layer, head = sender
    return f"blocks.{layer}.attn.hook_z" if head is not None else f"blocks.{layer}.hook_mlp_out"


@torch.no_grad()
def activation_patch(s: Setup, sender: ioi_circuit.Sender) -> torch.Tensor:
    """Reference: the clean run with the sender's output from the corrupted run (every path at once)."""
    name, head = _output_hook(sender), sender[1]
    _, cache = s.model.run_with_cache(s.corrupted, names_filter=lambda n: n == name)

    def hook(act, hook):
        act = act.clone()
        if head is None:
            act[:] = cache[name]
        else:
            act[:, :, head] = cache[name][:, :, head]
        return act

    return s.metric(s.model.run_with_hooks(s.clean, fwd_hooks=[(name, hook)]))


def _senders(variant: str) -> list[ioi_circuit.Sender]:
    heads = [(0, 1), (1, 2), (2, 0)]
    return heads if variant == "attn-only" else heads + [(0, None), (1, None), (2, None)]


# --------------------------------------------------------------------------------------
# Path patching: exact identities
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("variant", "sender"), [(v, s) for v in VARIANTS for s in _senders(v)])
def test_every_reader_as_receiver_is_activation_patching(variant, sender):
    """Adding the sender's change to every input that reads it rebuilds the whole corrupted-sender run."""
    s = setup(variant)
    receivers = ioi_circuit.downstream_receivers(s.model, sender)
    got = ioi_circuit.path_patch(s.model, s.clean, s.corrupted, [sender], receivers, s.metric)
    torch.testing.assert_close(got, activation_patch(s, sender), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("variant", "sender"), [("attn-only", (2, 1)), ("attn-only", (0, 2)), ("gelu", (2, None))])
def test_nothing_in_between_is_activation_patching(variant, sender):
    """Last-layer head (attention-only) or last MLP -> logits: the direct path is the only path."""
    s = setup(variant)
    if sender == (0, 2):  # a one-layer model: layer 0 is also the last
        s = Setup.__new__(Setup)
        s.__dict__.update(setup(variant).__dict__)
        s.model = HookedTransformer(HookedTransformerConfig(**(VARIANTS[variant] | dict(n_layers=1)))).eval()
    got = ioi_circuit.path_patch(s.model, s.clean, s.corrupted, [sender], [ioi_circuit.final_resid(s.model)], s.metric)
    torch.testing.assert_close(got, activation_patch(s, sender), atol=1e-5, rtol=1e-5)


def test_recomputed_mlps_make_last_layer_head_to_logits_activation_patching():
    """With MLPs recomputed (Wang et al.'s GPT-2 choice) the last MLP is on the direct path; frozen, it is not."""
    s = setup("gelu")
    final = [ioi_circuit.final_resid(s.model)]
    recomputed = ioi_circuit.path_patch(s.model, s.clean, s.corrupted, [(2, 1)], final, s.metric, freeze_mlps=False)
    frozen = ioi_circuit.path_patch(s.model, s.clean, s.corrupted, [(2, 1)], final, s.metric)
    torch.testing.assert_close(recomputed, activation_patch(s, (2, 1)), atol=1e-5, rtol=1e-5)
    assert abs(frozen.item() - recomputed.item()) > 1e-4


@torch.no_grad()
def test_frozen_path_to_logits_adds_the_head_output_change():
    """Everything frozen: the final residual stream moves by exactly (z_corrupted - z_clean) @ W_O of the sender."""
    s = setup("gelu")
    layer, head = 0, 2
    name = f"blocks.{layer}.attn.hook_z"
    z = {
        which: s.model.run_with_cache(tokens, names_filter=lambda n: n == name)[1][name][:, :, head]
        for which, tokens in (("clean", s.clean), ("corrupted", s.corrupted))
    }
    delta = (z["corrupted"] - z["clean"]) @ s.model.W_O[layer, head]
    final = f"blocks.{s.model.cfg.n_layers - 1}.hook_resid_post"
    expected = s.metric(s.model.run_with_hooks(s.clean, fwd_hooks=[(final, lambda act, hook: act + delta)]))
    got = ioi_circuit.path_patch(
        s.model, s.clean, s.corrupted, [(layer, head)], [ioi_circuit.final_resid(s.model)], s.metric
    )
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_grouped_key_value_receivers_are_per_key_value_head():
    """k/v inputs under GQA have one head per key-value head: query heads 2 and 3 share key-value head 1,
    and the per-head receivers of every key-value head add up to the whole layer's."""
    s = setup("llama")
    assert [r.head for r in ioi_circuit.head_receivers(s.model, 2, head=3, kinds="qkv")] == [3, 1, 1]
    assert ioi_circuit.kv_head(s.model, 1) == 0
    args = (s.model, s.clean, s.corrupted, [(0, 1), (1, None)])
    for kind in "kv":
        whole = ioi_circuit.path_patch(*args, [Receiver(kind, 2)], s.metric)
        per_head = ioi_circuit.path_patch(*args, [Receiver(kind, 2, head=h) for h in range(2)], s.metric)
        torch.testing.assert_close(per_head, whole, atol=1e-5, rtol=1e-5)
        one = ioi_circuit.path_patch(*args, [Receiver(kind, 2, head=1)], s.metric)
        assert abs(one.item() - whole.item()) > 1e-5  # a head index selects something
    with pytest.raises(ValueError, match="receivers"):
        ioi_circuit.path_patch(*args, [Receiver("k", 2, head=2)], s.metric)  # only 2 key-value heads
    with pytest.raises(ValueError, match="head"):
        ioi_circuit.head_receivers(s.model, 2, head=4)


def test_receiver_positions_and_unchanged_senders():
    s = setup("gelu")
    last = torch.full((BATCH,), POS - 1)
    args = (s.model, s.clean, s.corrupted, [(1, 0)])
    everywhere = ioi_circuit.path_patch(*args, [ioi_circuit.final_resid(s.model)], s.metric)
    at_read = ioi_circuit.path_patch(*args, [ioi_circuit.final_resid(s.model, pos=last)], s.metric)
    torch.testing.assert_close(everywhere, at_read)  # the metric reads only the last position
    clean_value = s.metric(s.model(s.clean))
    same = ioi_circuit.path_patch(
        s.model, s.clean, s.clean, [(0, 0), (1, None)], ioi_circuit.head_receivers(s.model, 2), s.metric
    )
    torch.testing.assert_close(same, clean_value, atol=1e-5, rtol=1e-5)


def test_grids_match_single_calls_and_mark_missing_paths():
    s = setup("gelu")
    receivers = ioi_circuit.head_receivers(s.model, 2, head=1, kinds="qv")
    grid = ioi_circuit.path_patch_all_heads(s.model, s.clean, s.corrupted, receivers, s.metric)
    assert grid.shape == (3, 3) and grid[2].isnan().all() and not grid[:2].isnan().any()
    one = ioi_circuit.path_patch(s.model, s.clean, s.corrupted, [(1, 2)], receivers, s.metric)
    torch.testing.assert_close(grid[1, 2], one)
    mlps = ioi_circuit.path_patch_all_mlps(s.model, s.clean, s.corrupted, [Receiver("mlp", 1)], s.metric)
    assert mlps.shape == (3,) and mlps[1:].isnan().all() and not mlps[0].isnan()


def test_chosen_senders_match_the_full_grid_on_the_llama_shaped_model():
    s = setup("llama")
    receivers = ioi_circuit.head_receivers(s.model, 2, head=3, kinds="qv")
    grid = ioi_circuit.path_patch_all_heads(s.model, s.clean, s.corrupted, receivers, s.metric)
    some = ioi_circuit.path_patch_heads(s.model, s.clean, s.corrupted, [(1, 2), (0, 0), (2, 1)], receivers, s.metric)
    torch.testing.assert_close(some[:2], torch.stack([grid[1, 2], grid[0, 0]]))
    assert some[2].isnan()  # layer 2 does not reach its own inputs


def test_chosen_mlps_match_the_full_grid():
    s = setup("llama")
    receivers = [Receiver("mlp", 2), ioi_circuit.final_resid(s.model)]
    grid = ioi_circuit.path_patch_all_mlps(s.model, s.clean, s.corrupted, receivers, s.metric)
    some = ioi_circuit.path_patch_mlps(s.model, s.clean, s.corrupted, [1, 0], receivers, s.metric)
    torch.testing.assert_close(some, torch.stack([grid[1], grid[0]]))
    with pytest.raises(ValueError, match="layer"):
        ioi_circuit.path_patch_mlps(s.model, s.clean, s.corrupted, [3], receivers, s.metric)


def test_errors_and_model_flags_restored():
    s = setup("gelu")
    before = (s.model.cfg.use_split_qkv_input, s.model.cfg.use_hook_mlp_in)
    with pytest.raises(ValueError, match="no receiver reads"):
        ioi_circuit.path_patch(s.model, s.clean, s.corrupted, [(2, 0)], [Receiver("q", 1)], s.metric)
    with pytest.raises(ValueError, match="kind"):
        ioi_circuit.path_patch(s.model, s.clean, s.corrupted, [(0, 0)], [Receiver("x", 1)], s.metric)
    with pytest.raises(ValueError, match="MLP sender"):
        ioi_circuit.path_patch(
            setup("attn-only").model, s.clean, s.corrupted, [(0, None)], [Receiver("q", 1)], s.metric
        )
    ioi_circuit.path_patch(s.model, s.clean, s.corrupted, [(0, 0)], [Receiver("k", 1), Receiver("mlp", 2)], s.metric)
    assert (s.model.cfg.use_split_qkv_input, s.model.cfg.use_hook_mlp_in) == before


# --------------------------------------------------------------------------------------
# Mean ablation on the zoo model (small batch: each forward is a few ms)
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def zoo():
    from interp_helpers.modelzoo.models import load_model
    from interp_helpers.modelzoo.tokenizer import load_tokenizer

    tok = load_tokenizer()
    clean = ioi.ioi_dataset(tok, n=24, seed=0)
    return load_model("zoo-gelu-4l"), tok, clean, ioi.abc_dataset(clean, tok, seed=0)


def test_whole_model_is_fully_faithful(zoo):
    model, _, clean, abc = zoo
    everything = [(l, h) for l in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)]
    result = ioi_circuit.faithfulness(model, clean, abc, everything, range(model.cfg.n_layers))
    assert result.fraction == 1.0 and result.above_empty == 1.0


@torch.no_grad()
def test_empty_circuit_is_embeddings_plus_mean_outputs(zoo):
    """Every head and MLP at its ABC mean: the final stream is the clean embeddings plus per-layout mean outputs."""
    model, _, clean, abc = zoo
    result = ioi_circuit.faithfulness(model, clean, abc, [], [])
    names = [f"blocks.{l}.hook_{part}_out" for l in range(model.cfg.n_layers) for part in ("attn", "mlp")]
    _, abc_cache = model.run_with_cache(abc.tokens, names_filter=lambda n: n in names)
    _, clean_cache = model.run_with_cache(clean.tokens, names_filter=lambda n: n in ("hook_embed", "hook_pos_embed"))
    groups = defaultdict(list)
    for i in range(len(abc)):
        groups[(int(abc.templates[i]), *(int(abc.positions[r][i]) for r in ioi.ROLES))].append(i)
    group_of = {i: rows for rows in groups.values() for i in rows}
    outputs = sum(abc_cache[n] for n in names)
    resid = (
        clean_cache["hook_embed"]
        + clean_cache["hook_pos_embed"]
        + torch.stack([outputs[group_of[i]].mean(0) for i in range(len(clean))])
    )
    expected = ioi.logit_diff(model.unembed(model.ln_final(resid)), clean).item()
    assert result.empty == pytest.approx(expected, abs=1e-4)
    assert result.model == pytest.approx(ioi.logit_diff(model(clean.tokens), clean).item(), abs=1e-5)


def test_knockout_of_nothing_changes_nothing_and_roles_have_shapes(zoo):
    model, tok, clean, abc = zoo
    nothing = ioi_circuit.knockout(model, clean, abc, [])
    torch.testing.assert_close(nothing.head_total_after, nothing.head_total)
    assert nothing.knocked_logit_diff == nothing.logit_diff and nothing.head_growth.shape == (4, 4)
    one = ioi_circuit.knockout(model, clean, abc, [(3, 0)])
    assert one.head_total_after[3, 0].isnan() and one.head_total[3, 0] == pytest.approx(
        one.logit_diff - one.knocked_logit_diff
    )
    scores = ioi_circuit.ioi_attention_scores(model, clean)
    assert set(scores) == set(ioi_circuit.ATTENTION_SCORES) and all(v.shape == (4, 4) for v in scores.values())
    assert ((scores["END->IO"] + scores["END->S1"] + scores["END->S2"]) <= 1 + 1e-5).all()
    copying = ioi_circuit.name_copy_scores(model, ioi_circuit.name_tokens(tok))
    assert copying.top_k.shape == (4, 4) and ((copying.top_k >= 0) & (copying.top_k <= 1)).all()


def _evidence(overrides: dict):
    grid = lambda v=0.0: torch.full((2, 2), v)  # noqa: E731
    evidence = {key: grid() for key in ioi_circuit.ATTENTION_SCORES} | {
        "direct": grid(),
        "total": grid(),
        "copying": grid(),
        "to_mlps": grid(),
        "to_queries": grid(),
    }
    for (key, l, h), value in overrides.items():
        evidence[key][l, h] = value
    return evidence


def test_classify_heads_applies_each_role_and_marks_causal_heads():
    ev = _evidence(
        {
            ("END->IO", 1, 0): 0.6,
            ("direct", 1, 0): 2.0,
            ("total", 1, 0): 2.0,  # name mover
            ("END->S2", 0, 0): 0.9,
            ("to_mlps", 0, 0): 0.8,
            ("total", 0, 0): 5.0,  # recent-name mover
            ("END->IO", 0, 1): 0.2,
            ("END->S1", 0, 1): 0.2,
            ("END->S2", 0, 1): 0.2,
            ("copying", 0, 1): 0.5,
            ("to_mlps", 0, 1): 0.3,  # all-names mover, but its ablation does nothing: not causal
            ("S2->S1", 1, 1): 0.5,  # duplicate-token pattern
        }
    )
    rows = {row["head"]: row for row in ioi_circuit.classify_heads(ev, logit_diff=8.0)}
    assert rows["L1H0"]["roles"] == "name mover" and rows["L1H0"]["causal"]
    assert rows["L0H0"]["roles"] == "recent-name mover" and rows["L0H0"]["causal"]
    assert rows["L0H1"]["roles"] == "all-names mover" and not rows["L0H1"]["causal"]
    assert rows["L1H1"]["roles"] == "duplicate-token"
    ev = _evidence({("END->IO", 1, 0): 0.6, ("direct", 1, 0): -2.0, ("END->S2", 0, 0): 0.9, ("to_queries", 0, 0): 0.5})
    rows = {row["head"]: row["roles"] for row in ioi_circuit.classify_heads(ev, logit_diff=8.0)}
    assert rows == {"L1H0": "negative name mover", "L0H0": "S-inhibition"}


def test_slot_preference_reads_the_three_names_at_end():
    model = HookedTransformer(HookedTransformerConfig(**GELU)).eval()
    tokens = torch.tensor([[0, 5, 6, 7, 8], [0, 9, 10, 11, 12]])
    ds = ioi.IOIDataset(
        tokens=tokens,
        positions={
            "IO": torch.tensor([1, 1]),
            "S1": torch.tensor([2, 2]),
            "S2": torch.tensor([3, 3]),
            "END": torch.tensor([4, 4]),
        },
        io_token=torch.tensor([5, 9]),
        s_token=torch.tensor([6, 10]),
        templates=torch.tensor([0, 0]),
        orders=("ABBA", "ABBA"),
        names=(("a", "b", "c"),) * 2,
        texts=("x", "y"),
    )
    logits = model(tokens)[torch.arange(2), 4]
    pref = ioi_circuit.slot_preference(model, ds)
    expected = (logits[0, 5] - logits[0, 7] + logits[1, 9] - logits[1, 11]) / 2
    assert pref["IO_slot_minus_S2_slot"] == pytest.approx(expected.item(), abs=1e-5)
    assert sum(pref[f"top_is_{r}_slot"] for r in ("IO", "S1", "S2")) == pytest.approx(1.0)


@torch.no_grad()
def test_three_name_attention_reads_end_rows_at_the_name_positions(zoo):
    """Against a per-row loop over each prompt's own positions (one head, every key)."""
    model, tok, _, _ = zoo
    ds = ioi.three_name_dataset(tok, n_per_slot=2, seed=0)
    scores = ioi_circuit.three_name_attention(model, ds)
    _, cache = model.run_with_cache(ds.tokens)
    for layer, head in ((0, 1), (2, 3)):
        row = cache["pattern", layer][torch.arange(len(ds)), head, ds.end]  # batch key_pos
        for b in range(len(ds)):
            assert ds.repeat_pos[b].tolist() == sorted(ds.repeat_pos[b].tolist())  # {x} is said before {y}
        positions = {
            "answer": lambda b: [int(ds.name_pos[b, ds.answer_slot[b]])],
            "repeated, first mentions": lambda b: ds.name_pos[b, ds.repeated_slots[b]].tolist(),
            "earlier repeat": lambda b: [int(ds.repeat_pos[b, 0])],
            "last repeat": lambda b: [int(ds.repeat_pos[b, 1])],
        }
        for key, where in positions.items():
            expected = torch.stack([row[b, where(b)].sum() for b in range(len(ds))]).mean()
            assert scores[key][layer, head] == pytest.approx(expected.item(), abs=1e-6), key
    assert set(scores) == set(positions) and all(v.shape == (4, 4) for v in scores.values())


def test_three_name_test_and_key_head_on_the_recency_model(zoo):
    """zoo-gelu-4l never picks the name said last; its key head is the recent-name mover L0H1 (no name movers)."""
    model, tok, clean, abc = zoo
    result = ioi_circuit.three_name_test(model, n_per_slot=10, seed=0)
    assert set(result) == {
        f"{split}{key}"
        for split in ("", "split_")
        for key in ("accuracy_by_slot", "picks_earlier_repeat", "picks_last_repeat")
    }
    assert len(result["accuracy_by_slot"]) == 3 and result["picks_last_repeat"] <= 0.1
    for split in ("", "split_"):  # answer, earlier repeat and last repeat are the only choices
        picks = sum(result[f"{split}accuracy_by_slot"]) / 3
        assert picks + result[f"{split}picks_earlier_repeat"] + result[f"{split}picks_last_repeat"] == pytest.approx(
            1.0
        )
    effects = ioi_circuit.knockout(model, clean, abc, [])
    assert ioi_circuit.key_head(model, clean, abc, effects) == (0, 1)


def test_total_effects_by_patching_equal_the_knockout(zoo):
    """Mean-ablating each component as a patch from the ABC means: knockout's head_total and mlp_total."""
    model, _, clean, abc = zoo
    effects = ioi_circuit.knockout(model, clean, abc, [])
    fast = ioi_circuit.total_effects(model, clean, abc, progress=False)
    assert float(fast.logit_diff) == pytest.approx(ioi.logit_diff(model(clean.tokens), clean).mean().item(), abs=1e-5)
    torch.testing.assert_close(fast.head_total, effects.head_total, atol=1e-5, rtol=0)
    torch.testing.assert_close(fast.mlp_total, effects.mlp_total, atol=1e-5, rtol=0)
    some = ioi_circuit.total_effects(model, clean, abc, layers=[2, 0], progress=False)
    assert some.head_total[[1, 3]].isnan().all() and some.mlp_total[[1, 3]].isnan().all()
    torch.testing.assert_close(some.head_total[[0, 2]], effects.head_total[[0, 2]], atol=1e-5, rtol=0)
    torch.testing.assert_close(some.mlp_total[[0, 2]], effects.mlp_total[[0, 2]], atol=1e-5, rtol=0)
    assert ioi_circuit.key_head(model, clean, abc, some) == (0, 1)  # the recent-name mover; NaN heads passed over


def test_knockout_summary_names_the_growth_and_skips_the_knocked_head(zoo):
    model, _, clean, abc = zoo
    one = ioi_circuit.knockout(model, clean, abc, [(0, 1)])
    row = one.summary()
    assert row["knocked out"] == "L0H1" and row["survives"] == pytest.approx(one.knocked_logit_diff / one.logit_diff)
    growth = one.head_growth.clone()
    growth[0, 1] = float("-inf")
    l, h = divmod(int(growth.nan_to_num(float("-inf")).flatten().argmax()), 4)
    assert row["largest total-effect growth"].startswith(f"L{l}H{h} ")
    assert "L0H1" not in row["largest direct-effect growth"]
