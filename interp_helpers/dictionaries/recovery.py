"""Scoring latents (or neurons) against the corpus's ground-truth labels.

On real text, "this SAE latent is the raven feature" is a judgement made by reading
examples. The synthetic corpus records why every token is there (`corpus.py`), so the
question becomes a measurement: for each ground-truth label (a node of the concept
hierarchy, a base64 character class, a name, a word sense...), is there a unit whose
firing matches the label, and how well?

    label_matrix   one binary column per (field, value) with enough positives
    best_f1        for every label, the unit and threshold with the highest F1 of
                   "unit > threshold" against the label, with precision, recall, and
                   the AUROC of that unit's raw activation as a score for the label
    unit_labels    the other direction, for dashboards: each unit's best labels
    mean_correlation_coefficient
                   where the true feature *directions* are known (toy models, synthetic
                   data): decoder directions matched one-to-one to them, mean |cosine|

F1 rewards a unit that fires on the label's tokens and nowhere else, which is what
"monosemantic for this label" means; AUROC asks only whether the unit ranks the
label's tokens above the rest, whatever threshold is used, so it forgives a unit whose
threshold the F1 grid missed. Mean F1 over a level of the hierarchy
(`table.mean_f1("node_l2=")`) is one number for "how much of the ground truth did
this dictionary recover".

Thresholds: SAE codes are exactly 0 when a latent is off, so "fires" means > 0
(`thresholds="positive"`). Neurons are dense (GELU is rarely exactly 0), so
`thresholds="quantiles"` tries, per unit, a grid of that unit's own activation
quantiles, dense near the top because most labels are rare: a label on a fraction p of
tokens is best matched near the unit's (1 - p) quantile.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from interp_helpers.core.validation import check_choice, check_range
from interp_helpers.modelzoo import corpus

THRESHOLD_MODES = ("positive", "quantiles")
# Upper-tail fractions from 1/2 down to 1/10,000: the quantile grid of "quantiles" mode.
DEFAULT_QUANTILES: tuple[float, ...] = tuple(
    1.0 - f for f in (0.5, 0.3, 0.2, 0.1, 0.05, 0.03, 0.02, 0.01, 0.005, 0.003, 0.002, 0.001, 5e-4, 2e-4, 1e-4)
)
# Elements of the [token, unit] slab sorted at once when computing quantiles (64 MB of float32).
_SORT_ELEMENTS = 2**24

# --------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------


def _value_name(field: str, value: int) -> str:
    if field in (*corpus.LABEL_FIELDS, *corpus.LEVEL_FIELDS, *corpus.TOPIC_LEVEL_FIELDS):
        return str(corpus.label_name(field, value))
    return str(value)  # a field of the caller's own, e.g. a document index


def label_matrix(
    labels: dict[str, Int[Tensor, " token"]], fields: list[str], min_count: int = 20
) -> tuple[Bool[Tensor, "token label"], list[str]]:
    """One binary column per (field, value) with at least `min_count` positive tokens.

    `labels` are per-token label arrays (`activations.flatten_labels`); -1 means "no
    label" and never becomes a column. Columns are named `field=value` with readable
    values ("node_l2=animals/birds/raven", "b64_class=digit", "repeat_occ=1"), in the
    order of `fields`, then by label id. Rare values are dropped because an F1 on a
    handful of tokens says more about chance than about the unit.
    """
    check_range("min_count", min_count, 1)
    if not fields:
        raise ValueError("parameter fields=[] is empty; name at least one label field")
    n = None
    for field in fields:
        check_choice("fields", field, list(labels))
        if n is not None and labels[field].shape[0] != n:
            raise ValueError(f"labels[{field!r}] has {labels[field].shape[0]} tokens, the others {n}")
        n = labels[field].shape[0]
    columns: list[Tensor] = []
    names: list[str] = []
    for field in fields:
        values, counts = torch.unique(labels[field], return_counts=True)
        for value, count in zip(values.tolist(), counts.tolist()):
            if value >= 0 and count >= min_count:
                columns.append(labels[field] == value)
                names.append(f"{field}={_value_name(field, value)}")
    assert n is not None
    matrix = torch.stack(columns, dim=1) if columns else torch.zeros(n, 0, dtype=torch.bool)
    return matrix, names


# --------------------------------------------------------------------------------------
# AUROC
# --------------------------------------------------------------------------------------


def _average_ranks(scores: Float[Tensor, " token"]) -> Float[Tensor, " token"]:
    """1-based ranks of `scores` in float64, tied values sharing their mean rank."""
    sorted_scores, order = torch.sort(scores, stable=True)
    _, inverse, counts = torch.unique_consecutive(sorted_scores, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()  # rank of each group's last member
    group_rank = ends - (counts.double() - 1) / 2
    ranks = torch.empty(len(scores), dtype=torch.float64)
    ranks[order] = group_rank[inverse]
    return ranks


def _auroc_from_ranks(ranks: Float[Tensor, " token"], truth: Bool[Tensor, " token"]) -> float:
    n_pos = int(truth.sum())
    n_neg = len(truth) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    rank_sum = float(ranks[truth].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def auroc(scores: Float[Tensor, " token"], truth: Bool[Tensor, " token"]) -> float:
    """Probability that a random positive token scores above a random negative one (ties count 1/2).

    The Mann-Whitney form: from the rank sum of the positives, with tied scores given
    their average rank, so it is exact (equal to counting all positive-negative pairs)
    in O(n log n). NaN when `truth` is all True or all False.
    """
    return _auroc_from_ranks(_average_ranks(scores), truth)


# --------------------------------------------------------------------------------------
# Best F1 per label
# --------------------------------------------------------------------------------------


def unit_thresholds(
    acts: Float[Tensor, "token unit"], thresholds: str = "positive", quantiles: Sequence[float] = DEFAULT_QUANTILES
) -> Float[Tensor, "unit grid"]:
    """The thresholds tried for each unit: one 0 per unit ("positive"), or the unit's own quantiles."""
    check_choice("thresholds", thresholds, THRESHOLD_MODES)
    n_tokens, n_units = acts.shape
    if thresholds == "positive":
        return torch.zeros(n_units, 1, dtype=acts.dtype)
    if not quantiles:
        raise ValueError("parameter quantiles=() is empty; give at least one quantile in [0, 1]")
    for q in quantiles:
        check_range("quantiles", q, 0.0, 1.0)
    # Quantile q = the sorted value at index round(q * (n - 1)); sorting a few units at a
    # time keeps memory bounded (torch.quantile also refuses inputs over 2**24 elements).
    index = torch.tensor([round(q * (n_tokens - 1)) for q in quantiles])
    out = torch.empty(n_units, len(quantiles), dtype=acts.dtype)
    step = max(1, _SORT_ELEMENTS // max(1, n_tokens))
    for u0 in range(0, n_units, step):
        column = acts[:, u0 : u0 + step].sort(dim=0).values
        out[u0 : u0 + step] = column[index].T
    return out


def _counts(acts: Tensor, truth: Tensor, thr: Tensor, chunk_size: int, token_chunk: int) -> tuple[Tensor, Tensor]:
    """True-positive counts [unit, grid, label] and firing counts [unit, grid], float64.

    A unit "fires" when its activation is strictly above the threshold. Counts are
    products of 0/1 matrices in float32, exact because each token chunk has fewer
    than 2**24 rows, and summed across chunks in float64, so exact for any size.
    Memory: token_chunk x chunk_size floats for the binarised activations.
    """
    n_tokens, n_units = acts.shape
    n_grid, n_labels = thr.shape[1], truth.shape[1]
    tp = torch.zeros(n_units, n_grid, n_labels, dtype=torch.float64)
    fired_count = torch.zeros(n_units, n_grid, dtype=torch.float64)
    per_chunk = max(1, chunk_size // n_grid)  # units per product: chunk_size (unit, threshold) columns
    for t0 in range(0, n_tokens, token_chunk):
        target = truth[t0 : t0 + token_chunk].float()
        for u0 in range(0, n_units, per_chunk):
            block = acts[t0 : t0 + token_chunk, u0 : u0 + per_chunk]
            fired = (block[:, :, None] > thr[u0 : u0 + per_chunk]).float().flatten(1)  # [token, (unit grid)]
            units = block.shape[1]
            tp[u0 : u0 + units] += (fired.T @ target).double().view(units, n_grid, n_labels)
            fired_count[u0 : u0 + units] += fired.sum(0).double().view(units, n_grid)
    return tp, fired_count


def _f1_chunks(tp: Tensor, fired: Tensor, support: Tensor, step: int = 256) -> Iterator[tuple[int, Tensor]]:
    """F1 [units, grid, label] a few units at a time (the full array can be large), 0 where undefined."""
    for u0 in range(0, tp.shape[0], step):
        denom = fired[u0 : u0 + step, :, None] + support
        yield u0, torch.where(denom > 0, 2 * tp[u0 : u0 + step] / denom.clamp_min(1), 0.0)


def _check_inputs(
    acts: Tensor, truth: Tensor, names: Sequence[str] | None, chunk_size: int, token_chunk: int
) -> list[str]:
    if acts.shape[0] != truth.shape[0]:
        raise ValueError(f"acts has {acts.shape[0]} tokens, truth has {truth.shape[0]}")
    check_range("chunk_size", chunk_size, 1)
    check_range("token_chunk", token_chunk, 1, 2**24)
    if names is None:
        return [f"label_{i}" for i in range(truth.shape[1])]
    if len(names) != truth.shape[1]:
        raise ValueError(f"parameter names has {len(names)} entries, truth has {truth.shape[1]} label columns")
    return list(names)


@dataclass
class RecoveryTable:
    """For each label: the unit (and threshold) whose firing best matches it, and how well.

    `f1`, `precision` and `recall` are those of "unit > threshold" against the label at
    the F1-maximising unit and threshold (ties go to the lowest unit index);
    `auroc` is that unit's raw activation as a score for the label; `support` is the
    label's number of positive tokens.
    """

    labels: list[str]
    best_unit: Int[Tensor, " label"]
    f1: Float[Tensor, " label"]
    precision: Float[Tensor, " label"]
    recall: Float[Tensor, " label"]
    auroc: Float[Tensor, " label"]
    threshold: Float[Tensor, " label"]
    support: Int[Tensor, " label"]
    thresholds: str = "positive"

    def to_rows(self) -> list[dict[str, Any]]:
        """One plain dict per label (for a DataFrame, a table widget or JSON)."""
        return [
            {
                "label": name,
                "unit": int(self.best_unit[i]),
                "f1": float(self.f1[i]),
                "precision": float(self.precision[i]),
                "recall": float(self.recall[i]),
                "auroc": float(self.auroc[i]),
                "threshold": float(self.threshold[i]),
                "support": int(self.support[i]),
            }
            for i, name in enumerate(self.labels)
        ]

    def mean_f1(self, prefix: str | None = None) -> float:
        """Mean best F1 over all labels, or over those whose name starts with `prefix` ("node_l2=")."""
        picked = [i for i, name in enumerate(self.labels) if prefix is None or name.startswith(prefix)]
        if not picked:
            fields = sorted({name.split("=")[0] + "=" for name in self.labels})
            raise ValueError(f"parameter prefix={prefix!r} matches no label; label prefixes: {fields}")
        return float(self.f1[picked].mean())


@torch.no_grad()
def best_f1(
    acts: Float[Tensor, "token unit"],
    truth: Bool[Tensor, "token label"],
    names: Sequence[str] | None = None,
    *,
    thresholds: str = "positive",
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    chunk_size: int = 1024,
    token_chunk: int = 8192,
) -> RecoveryTable:
    """For every label (column of `truth`), the unit and threshold that maximise F1.

    `thresholds="positive"`: a unit fires when > 0 (SAE codes). `"quantiles"`: each
    unit is tried at its own `quantiles` (dense neurons); see the module docstring.
    Memory-bounded for large inputs (200k tokens x 4096 latents): activations are
    binarised `token_chunk` tokens by `chunk_size` (unit, threshold) columns at a
    time and reduced by matrix products against the label columns, so memory is
    about token_chunk x chunk_size floats plus the counts, [unit, grid, label]. The
    result does not depend on the chunk sizes. `names` label the columns (default
    label_0, label_1, ...), e.g. from `label_matrix`.
    """
    names = _check_inputs(acts, truth, names, chunk_size, token_chunk)
    thr = unit_thresholds(acts, thresholds, quantiles)
    tp, fired = _counts(acts, truth, thr, chunk_size, token_chunk)
    support = truth.sum(0).double()
    n_labels, n_grid = truth.shape[1], thr.shape[1]
    best = torch.full((n_labels,), -1.0, dtype=torch.float64)
    best_flat = torch.zeros(n_labels, dtype=torch.long)  # index into (unit, grid)
    for u0, f1 in _f1_chunks(tp, fired, support):
        value, flat = f1.flatten(0, 1).max(dim=0)  # first maximum: lowest unit, then lowest threshold
        better = value > best
        best = torch.where(better, value, best)
        best_flat = torch.where(better, flat + u0 * n_grid, best_flat)
    unit, grid = best_flat // n_grid, best_flat % n_grid
    label = torch.arange(n_labels)
    tp_best, fired_best = tp[unit, grid, label], fired[unit, grid]
    precision = torch.where(fired_best > 0, tp_best / fired_best.clamp_min(1), 0.0)
    recall = torch.where(support > 0, tp_best / support.clamp_min(1), 0.0)
    scores = torch.full((n_labels,), float("nan"), dtype=torch.float64)
    for u in unit.unique().tolist():  # one sort per distinct best unit, however many labels share it
        ranks = _average_ranks(acts[:, u])
        for i in (unit == u).nonzero()[:, 0].tolist():
            scores[i] = _auroc_from_ranks(ranks, truth[:, i])
    return RecoveryTable(
        labels=names,
        best_unit=unit,
        f1=best.float(),
        precision=precision.float(),
        recall=recall.float(),
        auroc=scores.float(),
        threshold=thr[unit, grid].float(),
        support=support.long(),
        thresholds=thresholds,
    )


@torch.no_grad()
def unit_labels(
    acts: Float[Tensor, "token unit"],
    truth: Bool[Tensor, "token label"],
    names: Sequence[str],
    top: int = 3,
    *,
    thresholds: str = "positive",
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    chunk_size: int = 1024,
    token_chunk: int = 8192,
) -> list[list[tuple[str, float]]]:
    """For each unit, its `top` best-matching labels as (name, F1), best first.

    The dashboard's "this latent's best ground-truth label": F1 of the unit against
    each label, at the unit's best threshold for that label. Labels the unit never
    matches (F1 = 0) are left out, so a dead latent gets an empty list. Same chunking
    and thresholds as `best_f1`.
    """
    names = _check_inputs(acts, truth, names, chunk_size, token_chunk)
    check_range("top", top, 1)
    thr = unit_thresholds(acts, thresholds, quantiles)
    tp, fired = _counts(acts, truth, thr, chunk_size, token_chunk)
    if truth.shape[1] == 0:
        return [[] for _ in range(acts.shape[1])]
    out: list[list[tuple[str, float]]] = []
    for _, f1 in _f1_chunks(tp, fired, truth.sum(0).double()):
        values, index = f1.max(dim=1).values.topk(min(top, truth.shape[1]), dim=1)
        for unit_values, unit_index in zip(values.tolist(), index.tolist()):
            out.append([(names[i], v) for v, i in zip(unit_values, unit_index) if v > 0])
    return out


# --------------------------------------------------------------------------------------
# Known directions
# --------------------------------------------------------------------------------------


def mean_correlation_coefficient(learned: Float[Tensor, "n_learned d"], true: Float[Tensor, "n_true d"]) -> float:
    """Mean |cosine| of the best one-to-one matching of learned to true directions (MCC).

    The metric of Paulo & Belrose (2025, "Position: Mechanistic Interpretability Should
    Prioritize Feature Consistency in SAEs") and SAELens' synthetic benchmark: Hungarian
    matching (scipy's linear_sum_assignment) maximises the summed |cosine| over pairs, and
    the mean runs over min(n_learned, n_true) matched pairs. 1 means every true direction
    has its own latent pointing along it (up to sign); random directions in d dimensions
    score well above 0, so compare against a baseline (e.g. the SAE's initialisation).
    A zero row has cosine 0 with everything.
    """
    from scipy.optimize import linear_sum_assignment  # only here: the rest of the module needs no scipy

    a = learned.detach().double()
    b = true.detach().double()
    cos = (a / a.norm(dim=-1, keepdim=True).clamp(min=1e-12)) @ (b / b.norm(dim=-1, keepdim=True).clamp(min=1e-12)).T
    cos = cos.abs().cpu().numpy()
    rows, cols = linear_sum_assignment(cos, maximize=True)
    return float(cos[rows, cols].mean())
