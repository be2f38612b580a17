"""Comparing dictionaries: feature splitting across sizes, and universality across models.

Two SAEs trained on the same activations with different dictionary sizes share
directions: a "birds" latent of a small dictionary has children among a large one's
latents ("raven", "eagle", ...). Two SAEs trained on different models (seeds) share
features if their latents fire on the same tokens. Both comparisons are matchings:

    decoder_cosine     cosine of every latent of one SAE with every latent of another
    coactivation       P(a fires | b fires) for every pair, over the same tokens
    children_of        the latents of a larger SAE whose nearest latent in the smaller one
                       is a given parent (by decoder cosine), with their similarity
    max_correlation    for every unit of one set, its highest Pearson correlation with any
                       unit of another, over the same tokens (universality)
    training_flops     the dense FLOPs of training an SAE, to compare compute budgets

Everything is chunked over units so that 4096 x 4096 comparisons over 50k tokens fit in a
laptop's memory.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from interp_helpers.core.validation import check_range
from interp_helpers.dictionaries import sae as sae_lib
from interp_helpers.dictionaries.matryoshka import absorption


def decoder_cosine(
    W_dec_a: Float[Tensor, "d_sae_a d_in"], W_dec_b: Float[Tensor, "d_sae_b d_in"]
) -> Float[Tensor, "d_sae_a d_sae_b"]:
    """Cosine similarity of every decoder direction of A with every one of B."""
    a = W_dec_a / W_dec_a.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    b = W_dec_b / W_dec_b.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return a @ b.T


@torch.no_grad()
def coactivation(
    codes_a: Float[Tensor, "token d_sae_a"], codes_b: Float[Tensor, "token d_sae_b"]
) -> Float[Tensor, "d_sae_a d_sae_b"]:
    """P(a > 0 | b > 0): of the tokens where latent b fires, the fraction where a fires too.

    A parent latent that keeps firing wherever its child does scores near 1; a parent
    whose role the child took over (absorption) scores near 0. Columns of b that never
    fire are 0.
    """
    if codes_a.shape[0] != codes_b.shape[0]:
        raise ValueError(f"codes_a has {codes_a.shape[0]} tokens, codes_b {codes_b.shape[0]}: use the same tokens")
    fired_a, fired_b = (codes_a > 0).float(), (codes_b > 0).float()
    both = fired_a.T @ fired_b
    return both / fired_b.sum(0).clamp_min(1.0)


@dataclass(frozen=True)
class Child:
    latent: int
    cosine: float  # decoder cosine with the parent
    coactivation: float  # P(parent fires | this child fires)


def children_of(
    parent: int,
    cosine: Float[Tensor, "d_sae_small d_sae_large"],
    coact: Float[Tensor, "d_sae_small d_sae_large"] | None = None,
    min_cosine: float = 0.3,
) -> list[Child]:
    """Latents of the larger SAE whose nearest latent (by decoder cosine) in the smaller SAE is `parent`.

    Every large latent has exactly one nearest small latent, so the children of all
    parents partition the larger dictionary; `min_cosine` drops the ones that are not
    close to any small latent. Sorted by cosine, largest first.
    """
    check_range("parent", parent, 0, cosine.shape[0] - 1)
    check_range("min_cosine", min_cosine, -1.0, 1.0)
    best, nearest = cosine.max(dim=0)
    picked = ((nearest == parent) & (best >= min_cosine)).nonzero()[:, 0]
    order = cosine[parent, picked].argsort(descending=True)
    return [
        Child(int(j), float(cosine[parent, j]), float(coact[parent, j]) if coact is not None else float("nan"))
        for j in picked[order]
    ]


@torch.no_grad()
def max_correlation(
    acts_a: Float[Tensor, "token unit_a"], acts_b: Float[Tensor, "token unit_b"], chunk: int = 1024
) -> tuple[Float[Tensor, " unit_a"], Int[Tensor, " unit_a"]]:
    """For every unit of A, the highest Pearson correlation with a unit of B over the same tokens, and which.

    Units that never vary (dead latents) have no defined correlation: they get NaN and
    index -1, so a caller can drop them rather than count them as zeros.
    """
    if acts_a.shape[0] != acts_b.shape[0]:
        raise ValueError(f"acts_a has {acts_a.shape[0]} tokens, acts_b {acts_b.shape[0]}: use the same tokens")
    check_range("chunk", chunk, 1)

    def standardise(x: Tensor) -> tuple[Tensor, Bool[Tensor, " unit"]]:
        x = x.float() - x.float().mean(0)
        std = x.norm(dim=0)
        return x / std.clamp_min(1e-12), std > 1e-8

    b, b_alive = standardise(acts_b)
    best = torch.full((acts_a.shape[1],), float("nan"))
    index = torch.full((acts_a.shape[1],), -1, dtype=torch.long)
    for start in range(0, acts_a.shape[1], chunk):
        a, a_alive = standardise(acts_a[:, start : start + chunk])
        corr = a.T @ b  # unit_a_chunk unit_b
        corr[:, ~b_alive] = float("-inf")
        value, which = corr.max(dim=1)
        ok = a_alive & torch.isfinite(value)
        best[start : start + chunk] = torch.where(ok, value, torch.tensor(float("nan")))
        index[start : start + chunk] = torch.where(ok, which, torch.tensor(-1))
    return best, index


def training_flops(n_tokens: int, d_in: int, d_sae: int) -> float:
    """Dense FLOPs of training an SAE on n_tokens rows: 12 d_in d_sae per row.

    Forward: the encoder and decoder matmuls, 2 d_in d_sae FLOPs each (a multiply and an
    add per weight); backward costs twice the forward. A sparse TopK decoder does less,
    but counting every SAE the same way keeps budgets comparable.
    """
    check_range("n_tokens", n_tokens, 0)
    return 12.0 * n_tokens * d_in * d_sae


@torch.no_grad()
def unit_f1(acts: Float[Tensor, "token unit"], truth: Bool[Tensor, "token label"]) -> Float[Tensor, "unit label"]:
    """F1 of "unit > 0" against each label, for every (unit, label) pair (SAE codes: > 0 means fires)."""
    if acts.shape[0] != truth.shape[0]:
        raise ValueError(f"acts has {acts.shape[0]} tokens, truth {truth.shape[0]}")
    fired, labelled = (acts > 0).float(), truth.float()
    tp = fired.T @ labelled
    precision = tp / fired.sum(0)[:, None].clamp_min(1.0)
    recall = tp / labelled.sum(0)[None, :].clamp_min(1.0)
    return torch.where(tp > 0, 2 * precision * recall / (precision + recall).clamp_min(1e-12), 0.0)


@dataclass(frozen=True)
class Split:
    """How a parent latent's leaves fare under it and under its children in a larger SAE."""

    leaves: list[str]
    parent_f1: Float[Tensor, " leaf"]  # the parent latent's F1 on each leaf label
    child_f1: Float[Tensor, "child leaf"]  # each child's F1 on each leaf label
    children: list[Child]

    @property
    def best_child_f1(self) -> Float[Tensor, " leaf"]:
        return self.child_f1.max(dim=0).values if len(self.children) else torch.zeros(len(self.leaves))

    @property
    def splits(self) -> bool:
        """Every leaf is matched better by some child than by the parent."""
        return bool(len(self.children)) and bool((self.best_child_f1 > self.parent_f1).all())


def leaf_split(
    parent: int,
    children: list[Child],
    codes_small: Float[Tensor, "token d_sae_small"],
    codes_large: Float[Tensor, "token d_sae_large"],
    truth: Bool[Tensor, "token label"],
    names: list[str],
    leaves: list[str],
) -> Split:
    """Score a parent latent and its children on the parent's leaf labels (names from `label_matrix`)."""
    missing = [leaf for leaf in leaves if leaf not in names]
    if missing:
        raise ValueError(f"parameter leaves: {missing} are not among the labels")
    columns = truth[:, [names.index(leaf) for leaf in leaves]]
    parent_f1 = unit_f1(codes_small[:, [parent]], columns)[0]
    child_f1 = (
        unit_f1(codes_large[:, [c.latent for c in children]], columns) if children else torch.zeros(0, len(leaves))
    )
    return Split(leaves, parent_f1, child_f1, children)


def depth_first_codes(
    parent_codes: Float[Tensor, " token"], child_codes: Float[Tensor, "token d_child"]
) -> Float[Tensor, "token d_child"]:
    """A child dictionary's codes where its parent latent fires, 0 elsewhere: the depth-first composite.

    The child SAE was trained only on tokens where the parent fires, so it says nothing
    about the rest; its latents are read as "parent, and then this".
    """
    return child_codes * (parent_codes > 0)[:, None]


def family_tree(
    root: int,
    decoders: list[Tensor],
    best_labels: list[list[list[tuple[str, float]]]],
    min_cosine: float = 0.3,
    max_children: int = 6,
) -> list[dict[str, object]]:
    """A latent of the smallest dictionary and its descendants through the larger ones, as tree nodes.

    decoders: W_dec ([d_sae, d_in]) of each dictionary, smallest first; best_labels: for each dictionary,
    `recovery.unit_labels` (each latent's best labels). A latent's children are the next
    dictionary's latents nearest to it (`children_of`), at most `max_children`. Node ids
    are "level:latent" (level 0 = the smallest dictionary); `label` is the latent's best
    ground-truth label, `f1` its F1.
    """
    if len(decoders) != len(best_labels) or not decoders:
        raise ValueError("parameters decoders and best_labels need one entry per dictionary, smallest first")
    check_range("root", root, 0, decoders[0].shape[0] - 1)

    def node(level: int, latent: int, parent: str) -> dict[str, object]:
        name, f1 = (best_labels[level][latent] or [("(none)", 0.0)])[0]
        return {
            "id": f"{level}:{latent}",
            "parent": parent,
            "size": decoders[level].shape[0],
            "latent": latent,
            "label": name,
            "f1": float(f1),
        }

    nodes = [node(0, root, "")]
    frontier = [(root, nodes[0]["id"])]
    for level in range(1, len(decoders)):
        cosine = decoder_cosine(decoders[level - 1], decoders[level])
        next_frontier = []
        for latent, node_id in frontier:
            for child in children_of(latent, cosine, min_cosine=min_cosine)[:max_children]:
                nodes.append(node(level, child.latent, node_id))
                next_frontier.append((child.latent, nodes[-1]["id"]))
        frontier = next_frontier
    return nodes


def absorption_by_label(
    codes: Float[Tensor, "token d_sae"],
    best_unit: Int[Tensor, " label"],
    truth: Bool[Tensor, "token label"],
    names: list[str],
    parent_field: str = "topic_l1",
    leaf_field: str = "topic",
) -> list[dict[str, object]]:
    """`matryoshka.absorption` for every parent label of `parent_field` with leaves in `leaf_field`.

    The parent latent is the best-F1 latent for the parent label (`best_unit`, from
    `recovery.best_f1` on the same labels); the child latents are the best latents of its
    leaves ("topic_l1=animals/birds" -> "topic=animals/birds/raven", ...), excluding the
    parent latent itself. Parents with fewer than two leaves among the labels are skipped.
    """
    rows = []
    for i, name in enumerate(names):
        if not name.startswith(parent_field + "="):
            continue
        value = name.split("=", 1)[1]
        leaves = [j for j, n in enumerate(names) if n.startswith(f"{leaf_field}={value}/")]
        if len(leaves) < 2:
            continue
        parent = int(best_unit[i])
        children = sorted({int(best_unit[j]) for j in leaves} - {parent})
        child_truth = truth[:, leaves].any(dim=1)
        child_codes = codes[:, children] if children else torch.zeros(codes.shape[0], 1)
        rows.append(
            {
                "parent": name,
                "parent_latent": parent,
                "children": len(children),
                **absorption(codes[:, parent], child_codes, truth[:, i], child_truth),
            }
        )
    return rows


def depth_first_train(
    parent: int,
    coarse_sae: sae_lib.SAE,
    shards: Iterable[Tensor],
    eval_acts: Float[Tensor, "token d_in"],
    child_cfg: sae_lib.SAEConfig,
    progress: bool = False,
) -> tuple[sae_lib.SAE, Tensor, int, float]:
    """Train a child SAE only on the activations where a coarse latent fires; return what to compare.

    shards: an iterable of [token, d_in] activation tensors (e.g. the cache's shards),
    filtered through `coarse_sae` so only the parent's region is kept in memory. Returns
    (child_sae, composite eval codes from `depth_first_codes`, tokens in the region,
    training seconds).
    """
    with torch.no_grad():
        region = torch.cat([acts[coarse_sae.encode(acts)[:, parent] > 0] for acts in shards])
    if region.shape[0] < child_cfg.batch_size:
        raise ValueError(
            f"latent {parent} fires on only {region.shape[0]} training tokens; "
            f"the child SAE needs at least batch_size={child_cfg.batch_size}"
        )
    start = time.perf_counter()
    batches = sae_lib.iterate_batches(region, child_cfg.batch_size, torch.Generator().manual_seed(child_cfg.seed))
    child, _ = sae_lib.train_sae(child_cfg, batches, progress=progress)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        composite = depth_first_codes(coarse_sae.encode(eval_acts)[:, parent], child.encode(eval_acts))
    return child, composite, region.shape[0], seconds


def leaves_of(coarse: str, names: list[str]) -> list[str]:
    """The finer labels under a coarse one: topic_l0 -> its topic_l1s, topic_l1 -> its topics,
    genre=base64 -> the b64_class values. Empty for any other label."""
    field, value = coarse.split("=", 1)
    if coarse == "genre=base64":
        return [n for n in names if n.startswith("b64_class=")]
    finer = {"topic_l0": "topic_l1", "topic_l1": "topic"}.get(field)
    return [n for n in names if finer and n.startswith(f"{finer}={value}/")]


def split_table(
    sizes: list[int],
    decoders: dict[int, Tensor],
    codes: dict[int, Tensor],
    best_units: dict[int, Tensor],
    truth: Bool[Tensor, "token label"],
    names: list[str],
) -> list[dict[str, object]]:
    """For each pair of consecutive sizes and each coarse label with 2+ leaves: does its best latent split?

    decoders / codes / best_units: per size, W_dec, held-out codes, and `recovery.best_f1(...).best_unit`.
    """
    rows = []
    for small, large in zip(sizes, sizes[1:]):
        cosine = decoder_cosine(decoders[small], decoders[large])
        coact = coactivation(codes[small], codes[large])
        for i, name in enumerate(names):
            leaves = leaves_of(name, names)
            if len(leaves) < 2:
                continue
            parent = int(best_units[small][i])
            split = leaf_split(
                parent, children_of(parent, cosine, coact), codes[small], codes[large], truth, names, leaves
            )
            rows.append(
                {
                    "sizes": f"{small} -> {large}",
                    "coarse label": name,
                    "parent latent": parent,
                    "children": len(split.children),
                    "P(parent fires | child fires)": (
                        sum(c.coactivation for c in split.children) / len(split.children)
                        if split.children
                        else float("nan")
                    ),
                    "parent F1 on leaves": split.parent_f1.mean().item(),
                    "best child F1 on leaves": split.best_child_f1.mean().item(),
                    "splits": split.splits,
                }
            )
    return rows
