"""Scoring units against ground-truth labels: label columns, best F1 per label, AUROC, per-unit labels."""

from __future__ import annotations

import pytest
import torch

from interp_helpers.dictionaries import activations as A
from interp_helpers.dictionaries import recovery as R
from interp_helpers.modelzoo import corpus
from interp_helpers.modelzoo.tokenizer import load_tokenizer

N, UNITS, LABELS = 3000, 10, 4


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def synthetic(seed: int = 0):
    """Sparse nonnegative units over random labels; unit 3 is exactly label 0 (with random magnitudes)."""
    g = gen(seed)
    truth = torch.rand(N, LABELS, generator=g) < torch.tensor([0.1, 0.05, 0.2, 0.02])
    acts = torch.rand(N, UNITS, generator=g) * (torch.rand(N, UNITS, generator=g) < 0.1)
    acts[:, 3] = truth[:, 0] * (0.5 + torch.rand(N, generator=g))
    return acts, truth


# --------------------------------------------------------------------------------- best_f1


def test_a_unit_equal_to_a_label_is_found_with_f1_one():
    acts, truth = synthetic()
    table = R.best_f1(acts, truth, ["a", "b", "c", "d"])
    assert table.best_unit[0] == 3
    assert table.f1[0] == 1 and table.precision[0] == 1 and table.recall[0] == 1 and table.auroc[0] == 1
    assert table.threshold[0] == 0 and table.support[0] == truth[:, 0].sum()
    assert (table.f1[1:] < 0.5).all()  # the other labels have no unit of their own
    rows = table.to_rows()
    assert rows[0] == {
        "label": "a",
        "unit": 3,
        "f1": 1.0,
        "precision": 1.0,
        "recall": 1.0,
        "auroc": 1.0,
        "threshold": 0.0,
        "support": int(truth[:, 0].sum()),
    }
    assert table.mean_f1() == pytest.approx(float(table.f1.mean()))
    assert table.mean_f1("a") == 1.0


def test_a_noisy_copy_scores_lower_but_still_wins():
    acts, truth = synthetic()
    flip = torch.rand(N, generator=gen(1)) < 0.03
    acts[:, 3] = (truth[:, 0] ^ flip) * (0.5 + torch.rand(N, generator=gen(2)))
    table = R.best_f1(acts, truth)
    assert table.best_unit[0] == 3
    assert 0.6 < table.f1[0] < 1
    tp = (truth[:, 0] & (acts[:, 3] > 0)).sum()
    assert table.precision[0] == pytest.approx(float(tp / (acts[:, 3] > 0).sum()))
    assert table.recall[0] == pytest.approx(float(tp / truth[:, 0].sum()))
    assert table.labels == ["label_0", "label_1", "label_2", "label_3"]


def test_quantile_thresholds_find_a_dense_unit_above_zero():
    acts, truth = synthetic()
    # Dense and always positive: "> 0" fires everywhere, but a threshold near 4 separates label 1.
    acts[:, 5] = 3 + 2 * truth[:, 1] + 0.3 * torch.randn(N, generator=gen(3))
    positive = R.best_f1(acts, truth, thresholds="positive")
    quantiles = R.best_f1(acts, truth, thresholds="quantiles")
    density = float(truth[:, 1].float().mean())
    assert positive.f1[1] <= 2 * density / (1 + density) + 1e-6  # what firing everywhere can reach
    assert quantiles.best_unit[1] == 5 and quantiles.f1[1] > 0.9
    assert 3.3 < quantiles.threshold[1] < 5
    assert quantiles.thresholds == "quantiles"
    # Quantile thresholds are the unit's own quantiles, top-heavy.
    thr = R.unit_thresholds(acts, "quantiles", quantiles=(0.5, 0.9))
    assert thr.shape == (UNITS, 2)
    assert torch.allclose(thr[5], acts[:, 5].sort().values[torch.tensor([round(0.5 * (N - 1)), round(0.9 * (N - 1))])])


@pytest.mark.parametrize("thresholds", ["positive", "quantiles"])
def test_chunking_does_not_change_the_result(thresholds):
    acts, truth = synthetic()
    acts[:, 5] = 3 + 2 * truth[:, 1] + 0.3 * torch.randn(N, generator=gen(3))
    whole = R.best_f1(acts, truth, thresholds=thresholds)
    chunked = R.best_f1(acts, truth, thresholds=thresholds, chunk_size=1, token_chunk=37)
    for field in ("best_unit", "f1", "precision", "recall", "auroc", "threshold", "support"):
        assert torch.equal(getattr(whole, field), getattr(chunked, field)), field
    assert R.unit_labels(acts, truth, whole.labels, thresholds=thresholds) == R.unit_labels(
        acts, truth, whole.labels, thresholds=thresholds, chunk_size=3, token_chunk=101
    )


def test_best_f1_validates():
    acts, truth = synthetic()
    with pytest.raises(ValueError, match="thresholds='median'"):
        R.best_f1(acts, truth, thresholds="median")
    with pytest.raises(ValueError, match="names has 2 entries"):
        R.best_f1(acts, truth, ["a", "b"])
    with pytest.raises(ValueError, match="chunk_size=0"):
        R.best_f1(acts, truth, chunk_size=0)
    with pytest.raises(ValueError, match="quantiles=1.5"):
        R.best_f1(acts, truth, thresholds="quantiles", quantiles=(0.5, 1.5))
    with pytest.raises(ValueError, match="prefix='node_l2='"):
        R.best_f1(acts, truth).mean_f1("node_l2=")


# ----------------------------------------------------------------------------------- AUROC


def brute_force_auroc(scores, truth):
    pos, neg = scores[truth], scores[~truth]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).double() + 0.5 * (diff == 0).double()).mean())


@pytest.mark.parametrize("seed", range(5))
def test_auroc_matches_counting_pairs_with_ties(seed):
    g = gen(seed)
    n = int(torch.randint(5, 200, (1,), generator=g))
    scores = torch.randint(0, 6, (n,), generator=g).float()  # many ties
    truth = torch.rand(n, generator=g) < 0.3
    truth[0], truth[1] = True, False
    assert R.auroc(scores, truth) == pytest.approx(brute_force_auroc(scores, truth), abs=1e-12)
    continuous = torch.randn(n, generator=g)
    assert R.auroc(continuous, truth) == pytest.approx(brute_force_auroc(continuous, truth), abs=1e-12)


def test_auroc_edge_cases():
    scores = torch.tensor([0.1, 0.4, 0.35, 0.8])
    assert R.auroc(scores, torch.tensor([False, False, True, True])) == pytest.approx(0.75)
    assert R.auroc(scores, torch.tensor([True, True, False, False])) == pytest.approx(0.25)
    assert R.auroc(torch.ones(4), torch.tensor([True, False, True, False])) == 0.5
    assert torch.isnan(torch.tensor(R.auroc(scores, torch.ones(4, dtype=torch.bool))))


# ---------------------------------------------------------------------------- unit_labels


def test_unit_labels_lists_each_units_best_labels():
    acts, truth = synthetic()
    acts[:, 7] = 0  # a dead unit
    labels = R.unit_labels(acts, truth, ["a", "b", "c", "d"], top=2)
    assert len(labels) == UNITS
    assert labels[3][0] == ("a", 1.0) and len(labels[3]) <= 2
    assert labels[7] == []
    assert all(f1s == sorted(f1s, reverse=True) for f1s in ([f for _, f in unit] for unit in labels))


# --------------------------------------------------------------------------- label_matrix


def test_label_matrix_on_synthetic_labels():
    labels = {
        "b64_class": torch.tensor([0] * 25 + [1] * 5 + [-1] * 30 + [2] * 20),
        "repeat_occ": torch.tensor([0] * 40 + [1] * 20 + [-1] * 20),
    }
    matrix, names = R.label_matrix(labels, ["b64_class", "repeat_occ"], min_count=20)
    assert names == ["b64_class=letter", "b64_class=other", "repeat_occ=0", "repeat_occ=1"]  # digit: 5 < 20
    assert matrix.dtype == torch.bool and matrix.shape == (80, 4)
    assert torch.equal(matrix[:, 0], labels["b64_class"] == 0)
    assert matrix.sum(0).tolist() == [25, 20, 40, 20]
    with pytest.raises(ValueError, match="fields='sense'"):
        R.label_matrix(labels, ["sense"])
    with pytest.raises(ValueError, match="min_count=0"):
        R.label_matrix(labels, ["b64_class"], min_count=0)


def test_label_matrix_on_corpus_labels_covers_the_hierarchy_and_drops_rare_values():
    rows = A.labelled_rows(corpus.CorpusConfig(seed=0), load_tokenizer(), 160, 128)
    flat = A.flatten_labels(rows.labels, rows.keep)
    fields = [*corpus.LEVEL_FIELDS, "b64_class", "genre"]
    matrix, names = R.label_matrix(flat, fields, min_count=20)
    assert matrix.shape == (int(rows.keep.sum()), len(names))
    for level, field in enumerate(corpus.LEVEL_FIELDS):
        level_names = [n for n in names if n.startswith(field + "=")]
        assert level_names, field
        assert all(n.split("=")[1].count("/") == level and n.split("=")[1] in corpus.NODE_VOCAB for n in level_names)
    assert "b64_class=letter" in names and "genre=story" in names
    assert (matrix.sum(0) >= 20).all()
    # Values seen fewer than 20 times get no column; there are some at the leaf level.
    values, counts = flat["node_l2"].unique(return_counts=True)
    rare = [corpus.NODE_PATHS[v] for v, c in zip(values.tolist(), counts.tolist()) if v >= 0 and c < 20]
    assert rare and not any(f"node_l2={path}" in names for path in rare)
    frequent = [corpus.NODE_PATHS[v] for v, c in zip(values.tolist(), counts.tolist()) if v >= 0 and c >= 20]
    assert [n.split("=")[1] for n in names if n.startswith("node_l2=")] == frequent
    # And the whole pipeline scores: the table has one row per column, F1 in [0, 1].
    acts = torch.randn(matrix.shape[0], 16, generator=gen(0)).relu()
    table = R.best_f1(acts, matrix, names)
    assert len(table.to_rows()) == len(names) and ((table.f1 >= 0) & (table.f1 <= 1)).all()
    assert 0 <= table.mean_f1("node_l2=") <= 1


# ------------------------------------------------------------------ known directions (MCC)


def test_mcc_hand_computed():
    """Two true directions e0, e1; learned: e1 (exact), (e0 + e1)/sqrt(2), -e0 (sign ignored) and a spare.

    Best one-to-one matching: e0 <- -e0 (|cos| 1), e1 <- e1 (1): MCC 1. Drop -e0 and e0 must
    take the diagonal (cos 1/sqrt(2)): MCC (1 + 0.7071) / 2, not the greedy 1 for both.
    """
    e0, e1 = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    diag = (e0 + e1) / 2**0.5
    true = torch.stack([e0, e1])
    assert R.mean_correlation_coefficient(torch.stack([e1, diag, -e0, torch.tensor([0.0, 0.0, 3.0])]), true) == (
        pytest.approx(1.0)
    )
    assert R.mean_correlation_coefficient(torch.stack([e1, 2 * diag]), true) == pytest.approx((1 + 0.5**0.5) / 2)


def test_mcc_matches_saelens_on_the_same_sae():
    evals = pytest.importorskip("sae_lens.synthetic.evals", reason="sae_lens not installed (the bench's baseline only)")
    from interp_helpers.dictionaries import sae as S

    g = gen(0)
    true = torch.randn(48, 16, generator=g)
    sae = S.SAE(S.SAEConfig(d_in=16, d_sae=64, architecture="topk", k=4, seed=1))
    with torch.no_grad():
        sae.W_dec[:24] = true[:24] + 0.3 * torch.randn(24, 16, generator=g)  # half found, roughly
    ours = R.mean_correlation_coefficient(sae.W_dec, true)
    theirs = evals.mean_correlation_coefficient(sae.W_dec.detach(), true)
    assert ours == pytest.approx(theirs, abs=1e-5)
    assert 0.5 < ours < 0.99  # neither trivial case
