"""Notebook 04's exercise checkers: the references and the notebook's solutions pass, and
plausible wrong answers are rejected with their diagnosis."""

import functools

import pytest
import torch

from interp_helpers.checkers import sae as checks
from interp_helpers.checkers.core import SOLVED, run_check


def rejected(exercise, fn, *words):
    status, message = run_check(exercise, fn)
    assert status != SOLVED, f"{exercise.label} accepted a wrong answer"
    for word in words:
        assert word in message, message


ALL = [
    checks.sae_forward,
    checks.topk_activation,
    checks.explained_variance,
    checks.dead_and_dense_fractions,
    checks.ce_loss_recovered,
    checks.best_latent_f1,
]


def test_numbers_follow_the_notebook():
    assert [e.number for e in ALL] == ["4.1", "4.2", "4.3", "4.4", "4.5", "4.6"]


@pytest.mark.parametrize("exercise", ALL, ids=lambda e: e.number)
def test_reference_passes(exercise):
    assert run_check(exercise, exercise.reference) == (SOLVED, "solved")


# ------------------------------------------------------------------- 4.1 the forward pass


def sae_forward(x, W_enc, b_enc, W_dec, b_dec, activation=torch.relu):  # the notebook's solution
    pre = (x - b_dec) @ W_enc + b_enc  # the decoder bias centres the input first
    codes = activation(pre)
    recon = codes @ W_dec + b_dec
    return codes, recon


def test_forward_solution_passes():
    assert run_check(checks.sae_forward, sae_forward) == (SOLVED, "solved")


def test_forward_without_centering_is_rejected():
    def no_centering(x, W_enc, b_enc, W_dec, b_dec, activation=torch.relu):
        codes = activation(x @ W_enc + b_enc)
        return codes, codes @ W_dec + b_dec

    rejected(checks.sae_forward, no_centering, "ignore b_dec", "(x - b_dec) @ W_enc")


def test_forward_without_decoder_bias_is_rejected():
    def no_b_dec(x, W_enc, b_enc, W_dec, b_dec, activation=torch.relu):
        codes = activation((x - b_dec) @ W_enc + b_enc)
        return codes, codes @ W_dec

    rejected(checks.sae_forward, no_b_dec, "off by b_dec", "add b_dec back")


def test_forward_with_a_fixed_relu_is_rejected():
    def fixed_relu(x, W_enc, b_enc, W_dec, b_dec, activation=torch.relu):
        codes = torch.relu((x - b_dec) @ W_enc + b_enc)
        return codes, codes @ W_dec + b_dec

    rejected(checks.sae_forward, fixed_relu, "ignore the `activation` argument")


def test_forward_with_a_tied_decoder_is_rejected():
    def tied(x, W_enc, b_enc, W_dec, b_dec, activation=torch.relu):
        codes = activation((x - b_dec) @ W_enc + b_enc)
        return codes, codes @ W_enc.T + b_dec

    rejected(checks.sae_forward, tied, "decode with W_dec")


def test_forward_without_activation_is_rejected():
    def linear(x, W_enc, b_enc, W_dec, b_dec, activation=torch.relu):
        codes = (x - b_dec) @ W_enc + b_enc
        return codes, codes @ W_dec + b_dec

    rejected(checks.sae_forward, linear, "negative", "apply `activation`")


# ------------------------------------------------------------------------------- 4.2 TopK


def topk_activation(pre, k):  # the notebook's solution
    values, indices = pre.topk(k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, indices, torch.relu(values))


def test_topk_solution_passes():
    assert run_check(checks.topk_activation, topk_activation) == (SOLVED, "solved")


def test_topk_by_threshold_passes():
    def by_threshold(pre, k):  # the same set when no two pre-activations tie
        kth = pre.topk(k, dim=-1).values[:, -1:]
        return torch.relu(pre) * (pre >= kth)

    assert run_check(checks.topk_activation, by_threshold) == (SOLVED, "solved")


def test_topk_without_relu_is_rejected():
    def no_relu(pre, k):
        values, indices = pre.topk(k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, indices, values)

    rejected(checks.topk_activation, no_relu, "negative", "apply ReLU")


def test_topk_along_the_batch_is_rejected():
    def per_column(pre, k):
        values, indices = pre.topk(k, dim=0)
        return torch.zeros_like(pre).scatter(0, indices, torch.relu(values))

    rejected(checks.topk_activation, per_column, "each column", "dim=-1")


def test_batch_topk_is_rejected():
    def batch_topk(pre, k):
        flat = torch.relu(pre).flatten()
        values, indices = flat.topk(k * pre.shape[0])
        return torch.zeros_like(flat).scatter(0, indices, values).view_as(pre)

    rejected(checks.topk_activation, batch_topk, "BatchTopK", "every row")


def test_relu_without_topk_is_rejected():
    rejected(checks.topk_activation, lambda pre, k: torch.relu(pre), "more than k latents")


def test_topk_by_magnitude_is_rejected():
    def by_abs(pre, k):
        indices = pre.abs().topk(k, dim=-1).indices
        return torch.zeros_like(pre).scatter(-1, indices, torch.relu(pre.gather(-1, indices)))

    rejected(checks.topk_activation, by_abs, "|pre|")


# ------------------------------------------------------------------- 4.3 explained variance


def explained_variance(x, recon):  # the notebook's solution
    squared_error = (recon - x).pow(2).sum()
    total_variance = (x - x.mean(dim=0)).pow(2).sum()
    return 1 - squared_error / total_variance


def test_explained_variance_solution_passes():
    assert run_check(checks.explained_variance, explained_variance) == (SOLVED, "solved")


def test_fraction_unexplained_is_rejected():
    rejected(
        checks.explained_variance,
        lambda x, recon: 1 - explained_variance(x, recon),
        "scored 0",
        "1 - the fraction unexplained",
    )


def test_variance_around_zero_is_rejected():
    rejected(
        checks.explained_variance,
        lambda x, recon: 1 - (recon - x).pow(2).sum() / x.pow(2).sum(),
        "around the batch mean",
        "not around zero",
    )


def test_global_unbiased_variance_is_rejected():
    def mse_over_var(x, recon):
        return 1 - (recon - x).pow(2).mean() / x.var()

    rejected(checks.explained_variance, mse_over_var, "should score 0", "each dimension's own mean")


def test_per_dimension_average_is_rejected():
    def per_dimension(x, recon):
        return 1 - ((recon - x).pow(2).sum(0) / (x - x.mean(0)).pow(2).sum(0)).mean()

    rejected(checks.explained_variance, per_dimension, "per dimension", "one ratio")


# --------------------------------------------------------------- 4.4 dead and dense latents


def dead_and_dense_fractions(codes, dense_above=0.1):  # the notebook's solution
    density = (codes != 0).float().mean(dim=0)  # fraction of rows on which each latent fires
    return (density == 0).float().mean(), (density > dense_above).float().mean()


def test_dead_and_dense_solution_passes():
    assert run_check(checks.dead_and_dense_fractions, dead_and_dense_fractions) == (SOLVED, "solved")


def test_dead_rows_instead_of_latents_is_rejected():
    def rows(codes, dense_above=0.1):
        return (codes == 0).all(dim=1).float().mean(), dead_and_dense_fractions(codes, dense_above)[1]

    rejected(checks.dead_and_dense_fractions, rows, "rows with no active latent", "column")


def test_dead_count_is_rejected():
    def count(codes, dense_above=0.1):
        return (codes == 0).all(dim=0).float().sum(), dead_and_dense_fractions(codes, dense_above)[1]

    rejected(checks.dead_and_dense_fractions, count, "count", "divide by d_sae")


def test_fraction_of_zero_codes_is_rejected():
    def zeros(codes, dense_above=0.1):
        return (codes == 0).float().mean(), dead_and_dense_fractions(codes, dense_above)[1]

    rejected(checks.dead_and_dense_fractions, zeros, "fraction of zero codes")


def test_dense_at_the_boundary_is_rejected():
    def at_least(codes, dense_above=0.1):
        density = (codes != 0).float().mean(dim=0)
        return (density == 0).float().mean(), (density >= dense_above).float().mean()

    rejected(checks.dead_and_dense_fractions, at_least, "density > dense_above")


def test_swapped_fractions_are_rejected():
    rejected(
        checks.dead_and_dense_fractions,
        lambda codes, dense_above=0.1: dead_and_dense_fractions(codes, dense_above)[::-1],
        "swapped",
    )


def test_fixed_dense_threshold_is_rejected():
    rejected(
        checks.dead_and_dense_fractions,
        lambda codes, dense_above=0.1: dead_and_dense_fractions(codes, 0.1),
        "ignores `dense_above`",
    )


# ------------------------------------------------------------------ 4.5 CE loss recovered


def next_token_loss(logits, tokens):
    logprobs = logits[:, :-1].log_softmax(dim=-1)
    return -logprobs.gather(-1, tokens[:, 1:, None]).mean()


def splice_hook(act, hook, sae):
    rows = act.reshape(-1, act.shape[-1])
    return sae.decode(sae.encode(rows)).reshape(act.shape)


def ce_loss_recovered(model, sae, hook_name, tokens, *, ratio="right", splice=True, ablate=True, shift=True):
    """The notebook's solution; the keyword arguments switch on one mistake each."""
    loss = (
        next_token_loss
        if shift
        else (lambda logits, tokens: torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens.flatten()))
    )
    clean = loss(model(tokens), tokens).item()
    hook = functools.partial(splice_hook, sae=sae) if splice else (lambda act, hook: act)
    spliced = loss(model.run_with_hooks(tokens, fwd_hooks=[(hook_name, hook)]), tokens).item()
    zero_hook = (lambda act, hook: torch.zeros_like(act)) if ablate else (lambda act, hook: None)
    zero = loss(model.run_with_hooks(tokens, fwd_hooks=[(hook_name, zero_hook)]), tokens).item()
    recovered = (zero - spliced) / (zero - clean) if ratio == "right" else (spliced - clean) / (zero - clean)
    return {"clean": clean, "spliced": spliced, "zero_ablated": zero, "recovered": recovered}


def test_ce_solution_passes():
    assert run_check(checks.ce_loss_recovered, ce_loss_recovered) == (SOLVED, "solved")


def test_fraction_lost_is_rejected():
    rejected(checks.ce_loss_recovered, functools.partial(ce_loss_recovered, ratio="lost"), "fraction of loss lost")


def test_hook_that_does_not_splice_is_rejected():
    rejected(
        checks.ce_loss_recovered,
        functools.partial(ce_loss_recovered, splice=False),
        "spliced loss equals the clean loss",
        "reconstruction",
    )


def test_missing_ablation_is_rejected():
    rejected(
        checks.ce_loss_recovered,
        functools.partial(ce_loss_recovered, ablate=False),
        "zero-ablated loss equals the clean loss",
        "zeros_like",
    )


def test_unshifted_loss_is_rejected():
    rejected(checks.ce_loss_recovered, functools.partial(ce_loss_recovered, shift=False), "tokens[:, i + 1]")


def test_tensor_losses_are_rejected():
    def tensors(*args):
        return {key: torch.tensor(value) for key, value in ce_loss_recovered(*args).items()}

    rejected(checks.ce_loss_recovered, tensors, "Python floats")


# ------------------------------------------------------------------------- 4.6 best F1


def best_latent_f1(codes, truth):  # the notebook's solution
    fired, target = (codes > 0).float(), truth.float()
    true_positives = fired.T @ target  # [d_sae, label]
    denominator = fired.sum(0)[:, None] + target.sum(0)  # rows fired + rows labelled
    f1 = 2 * true_positives / denominator.clamp(min=1)  # 0 where both are 0
    best = f1.max(dim=0)
    return best.values, best.indices


def test_f1_solution_passes():
    assert run_check(checks.best_latent_f1, best_latent_f1) == (SOLVED, "solved")


def test_f1_per_latent_is_rejected():
    def per_latent(codes, truth):
        f1, _ = best_latent_f1(codes, truth)
        fired, target = (codes > 0).float(), truth.float()
        scores = 2 * (fired.T @ target) / (fired.sum(0)[:, None] + target.sum(0)).clamp(min=1)
        best = scores.max(dim=1)
        return best.values, best.indices

    rejected(checks.best_latent_f1, per_latent, "one F1 per latent", "one per label")


def test_f1_with_nan_is_rejected():
    def naive(codes, truth):
        fired, target = (codes > 0).float(), truth.float()
        tp = fired.T @ target
        precision, recall = tp / fired.sum(0)[:, None], tp / target.sum(0)
        best = (2 * precision * recall / (precision + recall)).max(dim=0)
        return best.values, best.indices

    rejected(checks.best_latent_f1, naive, "NaN", "F1 0")


def test_accuracy_is_rejected():
    def accuracy(codes, truth):
        fired, target = (codes > 0).float(), truth.float()
        best = ((fired.T @ target + (1 - fired).T @ (1 - target)) / codes.shape[0]).max(dim=0)
        return best.values, best.indices

    rejected(checks.best_latent_f1, accuracy, "accuracy")


def test_precision_is_rejected():
    def precision(codes, truth):
        fired, target = (codes > 0).float(), truth.float()
        best = ((fired.T @ target) / fired.sum(0)[:, None].clamp(min=1)).max(dim=0)
        return best.values, best.indices

    rejected(checks.best_latent_f1, precision, "precision")


def test_soft_counts_are_rejected():
    def soft(codes, truth):
        target = truth.float()
        f1 = 2 * (codes.T @ target) / (codes.sum(0)[:, None] + target.sum(0)).clamp(min=1)
        best = f1.max(dim=0)
        return best.values, best.indices

    rejected(checks.best_latent_f1, soft, "activation values", "> 0")


def test_zero_codes_firing_is_rejected():
    rejected(checks.best_latent_f1, lambda codes, truth: best_latent_f1(codes + 1.0, truth), "code is 0")
