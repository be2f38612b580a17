"""Dictionary comparisons: decoder matching, co-activation, leaf splits, correlations, FLOPs."""

from __future__ import annotations

import pytest
import torch

from interp_helpers.dictionaries import splitting as SP

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def test_decoder_cosine_and_children_partition_the_larger_dictionary():
    small = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    large = torch.tensor([[0.9, 0.1, 0.0], [0.8, -0.3, 0.0], [0.1, 2.0, 0.0], [0.0, 0.0, 1.0]])
    cos = SP.decoder_cosine(small, large)
    assert cos.shape == (2, 4) and cos[1, 2] == pytest.approx(2.0 / (0.1**2 + 4.0) ** 0.5)
    kids0 = SP.children_of(0, cos, min_cosine=0.3)
    kids1 = SP.children_of(1, cos, min_cosine=0.3)
    assert [c.latent for c in kids0] == [0, 1] and [c.latent for c in kids1] == [2]  # latent 3 is near nobody
    assert kids0[0].cosine >= kids0[1].cosine


def test_coactivation_is_the_conditional_firing_rate():
    a = torch.tensor([[1.0], [0.0], [1.0], [0.0]])
    b = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    co = SP.coactivation(a, b)
    assert co[0, 0] == pytest.approx(2 / 3) and co[0, 1] == 0.0  # b1 never fires


def test_unit_f1_and_leaf_split():
    truth = torch.tensor([[1, 0], [1, 0], [0, 1], [0, 1], [0, 0]], dtype=torch.bool)  # two leaves
    parent = torch.tensor([[1.0], [1.0], [1.0], [1.0], [1.0]])  # fires everywhere: F1 0.57 on each
    children = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 0.0]])  # one per leaf
    f1 = SP.unit_f1(parent, truth)
    assert f1[0].tolist() == pytest.approx([2 * 0.4 * 1 / 1.4] * 2)
    kids = [SP.Child(0, 0.9, 1.0), SP.Child(1, 0.8, 1.0)]
    split = SP.leaf_split(0, kids, parent, children, truth, ["x=a", "x=b"], ["x=a", "x=b"])
    assert split.best_child_f1.tolist() == [1.0, 1.0] and split.splits
    assert not SP.leaf_split(0, [], parent, children, truth, ["x=a", "x=b"], ["x=a"]).splits
    with pytest.raises(ValueError, match="leaves"):
        SP.leaf_split(0, kids, parent, children, truth, ["x=a", "x=b"], ["x=c"])


def test_max_correlation_finds_the_matching_unit_and_skips_dead_ones():
    g = torch.Generator().manual_seed(0)
    b = torch.randn(500, 6, generator=g)
    a = torch.stack([2 * b[:, 4] + 1, -b[:, 1], torch.zeros(500)], dim=1)  # a copy, an anti-copy, a dead unit
    best, which = SP.max_correlation(a, b, chunk=2)
    assert best[0] == pytest.approx(1.0, abs=1e-5) and int(which[0]) == 4
    assert best[1] < 0.3  # anti-correlation is not a match
    assert torch.isnan(best[2]) and int(which[2]) == -1


def test_depth_first_codes_and_flops():
    parent = torch.tensor([0.0, 2.0, 0.5])
    child = torch.ones(3, 2)
    assert SP.depth_first_codes(parent, child).tolist() == [[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]
    assert SP.training_flops(10, 4, 8) == 12 * 10 * 4 * 8


def test_family_tree_follows_nearest_latents_down_the_sizes():
    d0 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    d1 = torch.tensor([[1.0, 0.1], [1.0, -0.1], [0.0, 1.0]])
    d2 = torch.tensor([[1.0, 0.2], [1.0, 0.05], [0.0, 1.0]])
    labels = [[[("x=a", 0.5)], [("x=b", 0.4)]], [[("x=a1", 0.6)], [], [("x=b", 0.4)]], [[("x=a1", 0.7)]] * 3]
    nodes = SP.family_tree(0, [d0, d1, d2], labels)
    by_id = {n["id"]: n for n in nodes}
    assert by_id["0:0"]["parent"] == "" and by_id["1:0"]["parent"] == "0:0" and by_id["1:1"]["parent"] == "0:0"
    assert "1:2" not in by_id and by_id["1:1"]["label"] == "(none)"  # latent 2 of level 1 is under the other root
    assert {n["parent"] for n in nodes if n["id"].startswith("2:")} <= {"1:0", "1:1"}
    assert sorted(by_id) == ["0:0", "1:0", "1:1", "2:0", "2:1"]  # 2:2 sits under 1:2, outside the tree
    assert by_id["2:0"]["parent"] == by_id["2:1"]["parent"] == "1:0"


def test_leaves_of_and_split_table():
    names = [
        "genre=base64",
        "b64_class=digit",
        "b64_class=letter",
        "topic_l0=a",
        "topic_l1=a/b",
        "topic_l1=a/c",
        "topic=a/b/x",
        "topic=a/b/y",
        "topic=a/c/z",
    ]
    assert SP.leaves_of("topic_l1=a/b", names) == ["topic=a/b/x", "topic=a/b/y"]
    assert SP.leaves_of("topic_l0=a", names) == ["topic_l1=a/b", "topic_l1=a/c"]
    assert SP.leaves_of("genre=base64", names) == ["b64_class=digit", "b64_class=letter"]
    assert SP.leaves_of("topic=a/b/x", names) == []
    # one parent direction at size 1 splitting into x and y at size 2
    truth = torch.zeros(4, len(names), dtype=torch.bool)
    truth[:2, names.index("topic=a/b/x")] = truth[2:, names.index("topic=a/b/y")] = True
    truth[:, names.index("topic_l1=a/b")] = True
    codes = {1: torch.ones(4, 1), 2: torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])}
    decoders = {1: torch.tensor([[1.0, 0.0]]), 2: torch.tensor([[1.0, 0.2], [1.0, -0.2]])}
    best = {1: torch.zeros(len(names), dtype=torch.long), 2: torch.zeros(len(names), dtype=torch.long)}
    rows = SP.split_table([1, 2], decoders, codes, best, truth, names)
    by_label = {r["coarse label"]: r for r in rows}
    assert by_label["topic_l1=a/b"]["splits"] and by_label["topic_l1=a/b"]["children"] == 2
    assert by_label["topic_l1=a/b"]["P(parent fires | child fires)"] == pytest.approx(
        1.0
    )  # the parent fires everywhere
    assert set(by_label) == {"genre=base64", "topic_l0=a", "topic_l1=a/b"}
