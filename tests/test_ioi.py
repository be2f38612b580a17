"""IOI datasets line up token by token, and the metric reads the right logits."""

import pytest
import torch
from conftest import LLAMA_STYLE

from interp_helpers.modelzoo import corpus
from interp_helpers.modelzoo.corpus import IOI_TEMPLATES
from interp_helpers.modelzoo.tokenizer import load_tokenizer
from interp_helpers.transformer_circuits import ioi


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


@pytest.fixture(scope="module")
def clean(tok):
    return ioi.ioi_dataset(tok, n=120, seed=0)


def test_roles_sit_on_the_right_names(clean, tok):
    assert set(clean.orders) == {"ABBA", "BABA"} and len(set(clean.templates.tolist())) >= min(15, len(IOI_TEMPLATES))
    rows = torch.arange(len(clean))
    tokens = clean.tokens
    name_of = lambda pos: [tok.decode([int(t)]).strip() for t in tokens[rows, pos]]  # noqa: E731
    answers = [tok.decode([int(t)]).strip() for t in clean.io_token]
    distractors = [tok.decode([int(t)]).strip() for t in clean.s_token]
    assert name_of(clean.positions["IO"]) == answers
    assert name_of(clean.positions["S1"]) == distractors == name_of(clean.positions["S2"])
    assert torch.equal(tokens[rows, clean.positions["S2"]], clean.s_token)  # mid-sentence: the answer's own token
    assert (clean.positions["S1"] < clean.positions["S2"]).all() and (clean.positions["S2"] < clean.end).all()
    abba = torch.tensor([o == "ABBA" for o in clean.orders])
    assert (clean.positions["IO"][abba] < clean.positions["S1"][abba]).all()
    assert (clean.positions["IO"][~abba] > clean.positions["S1"][~abba]).all()
    for i in range(5):  # END is the prompt's last token and BOS pads the rest
        assert tok.decode(tokens[i, 1 : clean.end[i] + 1]) == clean.texts[i]
        assert (tokens[i, clean.end[i] + 1 :] == tok.bos_token_id).all()


def test_corrupted_sets_keep_every_position(clean, tok):
    abc = ioi.abc_dataset(clean, tok, seed=0)
    flipped = ioi.flipped_dataset(clean, tok)
    for other in (abc, flipped):
        assert other.tokens.shape == clean.tokens.shape
        for role in ioi.ROLES:
            assert torch.equal(other.positions[role], clean.positions[role])
        assert torch.equal(other.io_token, clean.io_token) and torch.equal(other.s_token, clean.s_token)
        same = other.tokens == clean.tokens
        names = torch.zeros_like(same)
        for role in ("IO", "S1", "S2"):
            names[torch.arange(len(clean)), other.positions[role]] = True
        assert same[~names].all()  # only name slots differ
    for (n1, n2, s2), old in zip(abc.names, clean.names):
        assert len({n1, n2, s2}) == 3 and not {n1, n2, s2} & set(old)
    rows = torch.arange(len(clean))
    assert torch.equal(flipped.tokens[rows, clean.positions["S2"]], clean.io_token)  # IO is now the repeated name
    assert any(
        text.startswith(names[0]) for text, names in zip(clean.texts, clean.names)
    )  # templates opening on a name
    assert ioi.abc_dataset(clean, tok, seed=0).tokens.equal(abc.tokens)


def test_logit_diff_and_accuracy_read_end_logits(clean):
    logits = torch.zeros(len(clean), clean.tokens.shape[1], 50)
    small = ioi.IOIDataset(
        clean.tokens,
        clean.positions,
        clean.io_token % 50,
        clean.s_token % 50,
        clean.templates,
        clean.orders,
        clean.names,
        clean.texts,
    )
    rows = torch.arange(len(clean))
    same = small.io_token == small.s_token
    logits[rows, clean.end, small.io_token] += 2.0
    logits[rows, clean.end, small.s_token] -= 1.0
    logits[rows, 0, small.s_token] += 100.0  # other positions never count
    diff = ioi.logit_diff(logits, small, per_prompt=True)
    torch.testing.assert_close(diff[~same], torch.full((int((~same).sum()),), 3.0))
    assert ioi.accuracy(logits, small) == pytest.approx((~same).float().mean().item())


def test_bad_arguments_name_the_parameter(tok):
    with pytest.raises(ValueError, match="split"):
        ioi.ioi_dataset(tok, 4, split="test")
    with pytest.raises(ValueError, match="n"):
        ioi.ioi_dataset(tok, 0)


# SmolLM2's architecture (modelzoo/real_model.py), small: grouped-query attention, rotary, RMSNorm, gated SiLU.
LLAMA = LLAMA_STYLE | dict(n_key_value_heads=2)


@pytest.mark.parametrize("arch", ["ln-gelu", "llama"])
def test_component_attribution_adds_up_to_the_logit_difference(clean, tok, arch):
    """Embeddings, every layer's attention and MLP output and the biases sum to logit(IO) - logit(S)."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from interp_helpers.transformer_circuits import circuits

    base = dict(
        n_layers=2,
        d_model=32,
        n_heads=4,
        d_head=8,
        d_mlp=64,
        n_ctx=48,
        d_vocab=len(tok),
        act_fn="gelu",
        normalization_type="LN",
        seed=0,
    )
    cfg = HookedTransformerConfig(**(base | (LLAMA if arch == "llama" else {})))
    model = HookedTransformer(cfg, tokenizer=tok).eval()
    with torch.no_grad():
        model.ln_final.w.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(1))
        if arch != "llama":  # RMSNorm has no bias
            model.ln_final.b.normal_(generator=torch.Generator().manual_seed(2))
        model.b_U.normal_(generator=torch.Generator().manual_seed(3))
        logits = model(clean.tokens)
    parts = ioi.component_attribution(model, clean)
    positions = {"pos_embed"} if arch != "llama" else set()  # rotary: positions never enter the stream
    assert {"embed", *positions, "L0 attn", "L0 mlp", "L1 attn", "L1 mlp", "bias"} == set(parts)
    torch.testing.assert_close(
        sum(parts.values()), ioi.logit_diff(logits, clean, per_prompt=True), atol=1e-4, rtol=1e-4
    )
    # the heads plus the attention bias b_O make up each layer's attention share
    heads = ioi.head_logit_diff_attribution(model, clean)
    dirs = ioi.logit_diff_directions(model, clean)
    _, cache = model.run_with_cache(clean.tokens)
    scale = cache["ln_final.hook_scale"][torch.arange(len(clean)), clean.end]
    for layer in range(2):
        b_O = model.blocks[layer].attn.b_O
        centred = b_O - b_O.mean() if arch != "llama" else b_O  # RMSNorm does not centre
        bias_share = ((centred / scale) * dirs).sum(-1).mean()
        torch.testing.assert_close(
            heads[layer].sum() + bias_share, parts[f"L{layer} attn"].mean(), atol=1e-4, rtol=1e-4
        )
    assert circuits.hooks_attached(model) == 0


def test_select_and_same_layout_give_a_dataset_like_a_fresh_one(tok):
    many = ioi.ioi_dataset(tok, 200, seed=3)
    rows = ioi.same_layout(many, 0)
    assert len(rows) >= 2 and int(rows[0]) == 0
    sub = ioi.select(many, rows)
    assert len(sub) == len(rows) and sub.texts == tuple(many.texts[i] for i in rows.tolist())
    for role in ioi.ROLES:  # one layout: every role at one position
        assert sub.positions[role].unique().numel() == 1
    assert sub.tokens.shape[1] == int(sub.end[0]) + 1  # padding no row needs is gone
    for kind in ioi.CORRUPTIONS:  # so a corrupted set built from it lines up
        assert ioi.corrupted_dataset(sub, tok, kind, seed=1).tokens.shape == sub.tokens.shape
    with pytest.raises(ValueError, match="rows"):
        ioi.select(many, [len(many)])
    with pytest.raises(ValueError, match="corruption="):
        ioi.corrupted_dataset(sub, tok, "shuffled")


def _splitting_one_name(name: str):
    """A tokenizer like ours, except that `name` becomes two tokens (as a hub tokenizer splits some names)."""
    odd = load_tokenizer()
    encode = odd.encode

    def split_encode(text: str, add_special_tokens: bool = False) -> list[int]:
        ids = encode(text, add_special_tokens=add_special_tokens)
        return ids + ids[-1:] if text.strip() == name else ids

    odd.encode = split_encode  # on this instance only
    return odd


def test_names_that_are_not_single_tokens_are_left_out(tok, clean):
    assert ioi.usable_names(tok) == frozenset(corpus.NAMES)  # ours: every name
    again = ioi.ioi_dataset(tok, n=120, seed=0)
    assert again.texts == clean.texts  # filtering changes nothing for our tokenizer
    split = clean.names[0][0]
    odd = _splitting_one_name(split)
    assert split not in ioi.usable_names(odd)
    ds = ioi.ioi_dataset(odd, n=60, seed=0)
    assert all(split not in names for names in ds.names)
    assert all(split not in names for names in ioi.abc_dataset(ds, odd, seed=0).names)


def test_three_name_prompts_put_the_answer_in_every_slot_once(tok):
    ds = ioi.three_name_dataset(tok, n_per_slot=3, seed=0)
    assert ds.answer_slot.tolist() == [0] * 3 + [1] * 3 + [2] * 3
    rows = torch.arange(len(ds))
    for i, text in enumerate(ds.texts):
        first, second = text.split(". ")
        names = [tok.decode([int(t)]).strip() for t in ds.name_tokens[i]]
        answer = names[int(ds.answer_slot[i])]
        assert first.startswith(f"{names[0]}, {names[1]} and {names[2]}") and answer not in second
        assert all(name in second for name in names if name != answer)  # the other two are repeated
        assert [tok.decode([int(t)]).strip() for t in ds.tokens[i, ds.name_pos[i]]] == names
        repeated = [names[int(k)] for k in ds.repeated_slots[i]]
        assert [tok.decode([int(t)]).strip() for t in ds.tokens[i, ds.repeat_pos[i]]] == repeated
        assert (ds.repeat_pos[i] > ds.name_pos[i].max()).all()  # said again after all three were introduced
    assert (ds.tokens[rows, ds.end] == tok.encode(" to", add_special_tokens=False)[0]).all()
    assert (
        ioi.three_name_text(("A", "B", "C"), 1, "park", "ball") == "A, B and C went to the park. A and C gave a ball to"
    )
    assert ioi.three_name_dataset(tok, 3, seed=0).texts == ds.texts != ioi.three_name_dataset(tok, 3, seed=1).texts


def test_split_three_name_prompts_pair_with_the_standard_ones(tok):
    """Same names, places and objects per seed; the repeated names said in two clauses, in introduced order."""
    standard = ioi.three_name_dataset(tok, n_per_slot=2, seed=0)
    split = ioi.three_name_dataset(tok, n_per_slot=2, seed=0, template=ioi.SPLIT_THREE_NAME_TEMPLATE)
    assert torch.equal(split.name_tokens, standard.name_tokens) and torch.equal(split.name_pos, standard.name_pos)
    assert split.repeated_slots.tolist() == [[1, 2]] * 2 + [[0, 2]] * 2 + [[0, 1]] * 2
    for i, text in enumerate(split.texts):
        names = [tok.decode([int(t)]).strip() for t in split.name_tokens[i]]
        x, y = (names[int(k)] for k in split.repeated_slots[i])
        assert f", and {x} sat down. Later, {y} gave a " in text and text.endswith(" to")
        assert [tok.decode([int(t)]).strip() for t in split.tokens[i, split.repeat_pos[i]]] == [x, y]
    assert (
        ioi.three_name_text(("A", "B", "C"), 2, "park", "ball", ioi.SPLIT_THREE_NAME_TEMPLATE)
        == "A, B and C went to the park, and A sat down. Later, B gave a ball to"
    )


def test_three_name_choice_and_direction_read_the_three_names(tok):
    ds = ioi.three_name_dataset(tok, n_per_slot=2, seed=0)
    logits = torch.zeros(len(ds), ds.tokens.shape[1], len(tok))
    rows = torch.arange(len(ds))
    logits[rows, ds.end, ds.name_tokens[:, 2]] = 1.0  # always the last introduced name
    assert ioi.three_name_choice(logits, ds).tolist() == [2] * len(ds)
    logits[rows, ds.end - 1, ds.name_tokens[:, 0]] = 5.0  # not at END: ignored
    assert ioi.three_name_choice(logits, ds).tolist() == [2] * len(ds)
    assert ioi.three_name_accuracy(logits, ds) == [0.0, 0.0, 1.0]  # right only where the answer was introduced last
    with pytest.raises(ValueError, match="answer_slot"):
        ioi.three_name_text(("A", "B", "C"), 3, "park", "ball")


def test_name_movers_need_attention_to_io_and_a_direct_share():
    from interp_helpers.transformer_circuits import ioi_circuit

    attention = torch.tensor([[0.9, 0.9, 0.1], [0.5, 0.35, 0.9]])
    direct = torch.tensor([[0.5, -0.6, 2.0], [1.0, 0.05, -2.0]])
    assert ioi_circuit.name_movers(attention, direct, logit_diff=2.0) == [(1, 0), (0, 0)]  # 0.2 is the bar
    assert ioi_circuit.name_movers(attention, direct, logit_diff=2.0, negative=True) == [(1, 2), (0, 1)]
    assert ioi_circuit.name_movers(attention, direct, logit_diff=20.0) == []


def test_backup_direct_on_a_llama_shaped_model(clean, tok):
    """Knocking out nothing changes nothing; knocking out a head NaNs it and moves the logit difference."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from interp_helpers.transformer_circuits import ioi_circuit

    cfg = dict(n_layers=2, d_model=32, n_heads=4, d_head=8, d_mlp=64, n_ctx=48, d_vocab=len(tok), seed=0)
    model = HookedTransformer(HookedTransformerConfig(**(cfg | LLAMA)), tokenizer=tok).eval()
    small = ioi.select(clean, range(8))
    abc = ioi.abc_dataset(small, tok, seed=0)
    nothing = ioi_circuit.backup_direct(model, small, abc, [])
    assert nothing.knocked_logit_diff == pytest.approx(nothing.logit_diff, abs=1e-5)
    assert torch.allclose(nothing.growth, torch.zeros(2, 4), atol=1e-5)
    assert torch.allclose(nothing.head_direct, ioi.head_logit_diff_attribution(model, small))
    one = ioi_circuit.backup_direct(model, small, abc, [(0, 1)])
    assert one.growth[0, 1].isnan() and not one.growth[1].isnan().any()
    assert one.knocked_logit_diff != pytest.approx(one.logit_diff, abs=1e-6)
    assert not torch.allclose(one.head_direct_after[1], one.head_direct[1])  # layer 1 reads the knocked head


@pytest.mark.parametrize("template", ioi.NOVEL_TWO_NAME_TEMPLATES)
def test_two_name_prompts_repeat_the_subject_and_answer_the_other(tok, template):
    ds = ioi.two_name_dataset(tok, 6, template, seed=3)
    assert len(ds) == 6 and ds.tokens.shape[0] == 6
    for row in range(6):
        ids = ds.tokens[row, : ds.end[row] + 1].tolist()
        io, s = int(ds.io_token[row]), int(ds.s_token[row])
        # a name opening the text is its bare token ("Mary", not " Mary")
        io_ids, s_ids = ({t, *tok.encode(tok.decode([t]).strip(), add_special_tokens=False)} for t in (io, s))
        io_at = [i for i, t in enumerate(ids) if t in io_ids]
        s_at = [i for i, t in enumerate(ids) if t in s_ids]
        assert io != s and len(s_at) == 2 and len(io_at) == 1, ds.texts[row]
        assert tok.decode(ids[1:]) == ds.texts[row] and (ds.tokens[row, ds.end[row] + 1 :] == tok.bos_token_id).all()
        # ABBA on even rows, BABA on odd: the answer is mentioned first, then second
        assert (io_at[0] < s_at[0]) == (row % 2 == 0)


def test_two_name_logit_diff_reads_io_minus_s_at_end(tok):
    ds = ioi.two_name_dataset(tok, 4, ioi.NOVEL_TWO_NAME_TEMPLATES[0])
    logits = torch.zeros(4, ds.tokens.shape[1], tok.vocab_size)
    logits[torch.arange(4), ds.end, ds.io_token] = torch.tensor([1.0, 2.0, 0.0, -1.0])
    logits[torch.arange(4), ds.end - 1, ds.s_token] = 9.0  # not END: ignored
    assert ioi.two_name_logit_diff(logits, ds).tolist() == [1.0, 2.0, 0.0, -1.0]
    with pytest.raises(ValueError, match="parameter n="):
        ioi.two_name_dataset(tok, 1, ioi.NOVEL_TWO_NAME_TEMPLATES[0])


@pytest.mark.parametrize("template", ioi.NOVEL_THREE_NAME_TEMPLATES)
def test_novel_three_name_wordings_build_datasets(tok, template):
    ds = ioi.three_name_dataset(tok, 2, seed=1, template=template)
    assert sorted(ds.answer_slot.tolist()) == [0, 0, 1, 1, 2, 2]
    for row in range(len(ds)):
        ids = ds.tokens[row].tolist()
        bare = [tok.encode(tok.decode([int(t)]).strip(), add_special_tokens=False)[0] for t in ds.name_tokens[row]]
        counts = [ids.count(int(t)) + ids.count(b) for t, b in zip(ds.name_tokens[row], bare, strict=True)]
        assert counts[int(ds.answer_slot[row])] == 1 and sorted(counts) == [1, 2, 2], ds.texts[row]
