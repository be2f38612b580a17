"""Notebook 02's exercise checkers: the reference and the notebook's solutions pass, and plausible
wrong answers are rejected with a message that names the mistake."""

import pytest
import torch

from interp_helpers.checkers import induction as checks
from interp_helpers.checkers.core import SOLVED, run_check


def _rejected(exercise, wrong, *words):
    status, message = run_check(exercise, wrong)
    assert status != SOLVED, f"{wrong.__name__} passed {exercise.label}"
    for word in words:
        assert word in message, f"{wrong.__name__}: {message!r} lacks {word!r}"


ALL = [
    checks.per_token_loss,
    checks.previous_token_scores,
    checks.induction_scores,
    checks.copying_eigen_score,
    checks.k_composition_scores,
    checks.ablate_head_hook,
]


def test_numbers_follow_the_notebook_order():
    assert [e.number for e in ALL] == [f"2.{k}" for k in range(1, 7)]


@pytest.mark.parametrize("exercise", ALL, ids=lambda e: e.number)
def test_reference_passes(exercise):
    assert run_check(exercise, exercise.reference) == (SOLVED, "solved")


# --------------------------------------------------------------------------------------
# 2.1 Per-token loss
# --------------------------------------------------------------------------------------


def per_token_loss(logits, tokens):  # the notebook's solution
    logprobs = logits[:, :-1].log_softmax(dim=-1)
    return -logprobs.gather(-1, tokens[:, 1:, None])[..., 0]


def per_token_loss_cross_entropy(logits, tokens):  # another right answer
    return torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none")


def loss_same_position(logits, tokens):
    return -logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, :-1, None])[..., 0]


def loss_wrong_sign(logits, tokens):
    return logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]


def loss_raw_logits(logits, tokens):
    return -logits[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]


def loss_softmax_over_positions(logits, tokens):
    return -logits.log_softmax(1)[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]


def loss_keeps_last_position(logits, tokens):
    return -logits.log_softmax(-1).gather(-1, tokens.roll(-1, dims=1)[..., None])[..., 0]


def loss_mean(logits, tokens):
    return per_token_loss(logits, tokens).mean()


def test_per_token_loss():
    assert run_check(checks.per_token_loss, per_token_loss) == (SOLVED, "solved")
    assert run_check(checks.per_token_loss, per_token_loss_cross_entropy) == (SOLVED, "solved")
    _rejected(checks.per_token_loss, loss_same_position, "NEXT token", "tokens[:, i + 1]")
    _rejected(checks.per_token_loss, loss_wrong_sign, "wrong sign")
    _rejected(checks.per_token_loss, loss_raw_logits, "log_softmax over d_vocab")
    _rejected(checks.per_token_loss, loss_softmax_over_positions, "dim 1")
    _rejected(checks.per_token_loss, loss_keeps_last_position, "pos - 1 targets")
    _rejected(checks.per_token_loss, loss_mean, "one number")


# --------------------------------------------------------------------------------------
# 2.2 Previous-token scores
# --------------------------------------------------------------------------------------


def previous_token_scores(pattern):  # the notebook's solution
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(0, -1))


def prev_includes_query_0(pattern):
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).sum(-1).mean(0) / pattern.shape[-2]


def prev_upper_diagonal(pattern):
    return pattern.diagonal(offset=1, dim1=-2, dim2=-1).mean(dim=(0, -1))


def prev_sums_queries(pattern):
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).sum(-1).mean(0)


def prev_wrong_axis(pattern):
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(1, -1))


def test_previous_token_scores():
    assert run_check(checks.previous_token_scores, previous_token_scores) == (SOLVED, "solved")
    _rejected(checks.previous_token_scores, prev_includes_query_0, "skip query 0")
    _rejected(checks.previous_token_scores, prev_upper_diagonal, "BELOW", "offset=-1")
    _rejected(checks.previous_token_scores, prev_sums_queries, "don't sum")
    _rejected(checks.previous_token_scores, prev_wrong_axis, "expected shape (3,)")


# --------------------------------------------------------------------------------------
# 2.3 Induction scores
# --------------------------------------------------------------------------------------


def induction_scores(pattern, earlier):  # the notebook's solution
    matched = (earlier >= 0).to(pattern.dtype)[:, None, :]
    key = (earlier + 1).clamp(min=0)
    index = key[:, None, :, None].expand(-1, pattern.shape[1], -1, 1)
    attention = pattern.gather(-1, index)[..., 0]
    return (attention * matched).sum(dim=(0, 2)) / matched.sum(dim=(0, 2))


def _attention_at(pattern, key):
    return pattern.gather(-1, key.clamp(min=0)[:, None, :, None].expand(-1, pattern.shape[1], -1, 1))[..., 0]


def induction_at_earlier(pattern, earlier):  # the duplicate-token score
    matched = (earlier >= 0).float()[:, None]
    return (_attention_at(pattern, earlier) * matched).sum((0, 2)) / matched.sum((0, 2))


def induction_all_queries(pattern, earlier):  # head_detector's denominator
    matched = (earlier >= 0).float()[:, None]
    return (_attention_at(pattern, earlier + 1) * matched).mean((0, 2))


def induction_unmasked(pattern, earlier):  # new tokens (earlier = -1) score their attention to BOS
    return _attention_at(pattern, earlier + 1).mean((0, 2))


def induction_row_by_row(pattern, earlier):
    matched = (earlier >= 0).float()[:, None]
    per_row = (_attention_at(pattern, earlier + 1) * matched).sum(2) / matched.sum(2)
    return per_row.mean(0)


def test_induction_scores():
    assert run_check(checks.induction_scores, induction_scores) == (SOLVED, "solved")
    _rejected(checks.induction_scores, induction_at_earlier, "AFTER the earlier occurrence")
    _rejected(checks.induction_scores, induction_all_queries, "not by every query")
    _rejected(checks.induction_scores, induction_unmasked, "only attends to BOS", "earlier == -1")
    _rejected(checks.induction_scores, induction_row_by_row, "row by row")


# --------------------------------------------------------------------------------------
# 2.4 Copying score of the OV circuit
# --------------------------------------------------------------------------------------


def copying_eigen_score(W_E, W_V, W_O, W_U):  # the notebook's solution
    small = (W_O @ W_U) @ (W_E @ W_V)
    eigenvalues = torch.linalg.eigvals(small)
    return (eigenvalues.sum(-1) / eigenvalues.abs().sum(-1)).real


def copying_full_matrix(W_E, W_V, W_O, W_U):  # right but slow: the d_vocab x d_vocab circuit itself
    eigenvalues = torch.linalg.eigvals(W_E @ W_V @ W_O @ W_U)
    return (eigenvalues.sum(-1) / eigenvalues.abs().sum(-1)).real


def copying_complex(W_E, W_V, W_O, W_U):
    eigenvalues = torch.linalg.eigvals((W_O @ W_U) @ (W_E @ W_V))
    return eigenvalues.sum(-1) / eigenvalues.abs().sum(-1)


def copying_abs_of_sum(W_E, W_V, W_O, W_U):
    eigenvalues = torch.linalg.eigvals((W_O @ W_U) @ (W_E @ W_V))
    return (eigenvalues.sum(-1) / eigenvalues.sum(-1).abs()).real


def copying_eigvalsh(W_E, W_V, W_O, W_U):
    eigenvalues = torch.linalg.eigvalsh((W_O @ W_U) @ (W_E @ W_V))
    return eigenvalues.sum(-1) / eigenvalues.abs().sum(-1)


def copying_ov_only(W_E, W_V, W_O, W_U):  # eigenvalues of W_V W_O alone, without embedding and unembedding
    eigenvalues = torch.linalg.eigvals(W_O @ W_V)
    return (eigenvalues.sum(-1) / eigenvalues.abs().sum(-1)).real


def test_copying_eigen_score():
    assert run_check(checks.copying_eigen_score, copying_eigen_score) == (SOLVED, "solved")
    assert run_check(checks.copying_eigen_score, copying_full_matrix) == (SOLVED, "solved")
    _rejected(checks.copying_eigen_score, copying_complex, "complex", "real part")
    _rejected(checks.copying_eigen_score, copying_abs_of_sum, "sum of the magnitudes")
    _rejected(checks.copying_eigen_score, copying_eigvalsh, "60-degree", "eigvals")
    _rejected(checks.copying_eigen_score, copying_ov_only, "negating W_U", "W_E W_V W_O W_U")


# --------------------------------------------------------------------------------------
# 2.5 K-composition scores
# --------------------------------------------------------------------------------------


def k_composition_scores(W_OV_0, W_QK_1):  # the notebook's solution
    product = W_OV_0[:, None] @ W_QK_1.transpose(-2, -1)[None]
    norms_0, norms_1 = W_OV_0.norm(dim=(-2, -1)), W_QK_1.norm(dim=(-2, -1))
    return torch.linalg.matrix_norm(product) / (norms_0[:, None] * norms_1[None, :])


def _frobenius_scores(left, right, normalise=True):
    """||left[a] @ right[b]||_F (over both norms when normalise)."""
    scores = torch.linalg.matrix_norm(left[:, None] @ right[None])
    return scores / (left.norm(dim=(-2, -1))[:, None] * right.norm(dim=(-2, -1))[None]) if normalise else scores


def composition_q(W_OV_0, W_QK_1):
    return _frobenius_scores(W_OV_0, W_QK_1)


def composition_unnormalised(W_OV_0, W_QK_1):
    return _frobenius_scores(W_OV_0, W_QK_1.transpose(-2, -1), normalise=False)


def composition_swapped(W_OV_0, W_QK_1):
    return k_composition_scores(W_OV_0, W_QK_1).T


def composition_backwards(W_OV_0, W_QK_1):
    return _frobenius_scores(W_QK_1.transpose(-2, -1), W_OV_0).T


def test_k_composition_scores():
    assert run_check(checks.k_composition_scores, k_composition_scores) == (SOLVED, "solved")
    _rejected(checks.k_composition_scores, composition_q, "Q-composition", "W_QK_1[b].T")
    _rejected(checks.k_composition_scores, composition_unnormalised, "Frobenius norms")
    _rejected(checks.k_composition_scores, composition_swapped, "swapped")
    _rejected(checks.k_composition_scores, composition_backwards, "wrong order")


# --------------------------------------------------------------------------------------
# 2.6 Head ablation hook
# --------------------------------------------------------------------------------------


def ablate_head_hook(z, hook, head, kind="zero"):  # the notebook's solution
    z = z.clone()
    z[:, :, head] = 0.0 if kind == "zero" else z[:, :, head].mean(dim=0)
    return z


def ablate_in_place(z, hook, head, kind="zero"):  # right too: TransformerLens uses the returned tensor
    z[:, :, head] = 0.0 if kind == "zero" else z[:, :, head].mean(dim=0)
    return z


def ablate_position_axis(z, hook, head, kind="zero"):
    z = z.clone()
    z[:, head] = 0.0 if kind == "zero" else z[:, head].mean(dim=0)
    return z


def ablate_mean_over_positions(z, hook, head, kind="zero"):
    z = z.clone()
    z[:, :, head] = 0.0 if kind == "zero" else z[:, :, head].mean(dim=(0, 1))
    return z


def ablate_ignores_kind(z, hook, head, kind="zero"):
    z = z.clone()
    z[:, :, head] = 0.0
    return z


def ablate_every_head(z, hook, head, kind="zero"):
    return torch.zeros_like(z) if kind == "zero" else z.mean(0, keepdim=True).expand_as(z)


def ablate_returns_nothing(z, hook, head, kind="zero"):
    z[:, :, head] = 0.0


def test_ablate_head_hook():
    assert run_check(checks.ablate_head_hook, ablate_head_hook) == (SOLVED, "solved")
    assert run_check(checks.ablate_head_hook, ablate_in_place) == (SOLVED, "solved")
    _rejected(checks.ablate_head_hook, ablate_position_axis, "position 1 changed", "axis 2")
    _rejected(checks.ablate_head_hook, ablate_mean_over_positions, "averaged over positions")
    _rejected(checks.ablate_head_hook, ablate_ignores_kind, "kind='mean' zeroed the head")
    _rejected(checks.ablate_head_hook, ablate_every_head, "heads other than 1 changed")
    _rejected(checks.ablate_head_hook, ablate_returns_nothing, "returned None")
