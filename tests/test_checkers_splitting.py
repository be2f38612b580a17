"""Notebook 05's exercise checkers: the reference and the notebook's solutions pass, and
plausible wrong answers are rejected with a diagnosis the student can act on."""

import math

import pytest
import torch

from interp_helpers.checkers import splitting as checks
from interp_helpers.checkers.core import SOLVED, run_check


def assert_rejected(exercise, fn, *words):
    status, message = run_check(exercise, fn)
    assert status != SOLVED, f"{fn.__name__} passed {exercise.label}"
    for word in words:
        assert word in message, f"{fn.__name__}: {message!r} lacks {word!r}"


@pytest.mark.parametrize(
    "exercise",
    [
        checks.nearest_parent,
        checks.coactivation,
        checks.absorption,
        checks.prefix_errors,
        checks.training_flops,
        checks.max_correlation,
    ],
    ids=lambda e: e.number,
)
def test_reference_passes(exercise):
    assert run_check(exercise, exercise.reference) == (SOLVED, "solved")


def _unit(W):
    return W / W.norm(dim=-1, keepdim=True).clamp_min(1e-12)


# ------------------------------------------------------------------ 5.1 nearest parent


def test_nearest_parent_solution_passes():
    def nearest_parent(W_dec_small, W_dec_large):
        small = W_dec_small / W_dec_small.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        large = W_dec_large / W_dec_large.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        cosine, parent = (small @ large.T).max(dim=0)
        return cosine, parent

    assert run_check(checks.nearest_parent, nearest_parent) == (SOLVED, "solved")


def test_nearest_parent_rejects_raw_dot_product():
    def raw_dot(W_dec_small, W_dec_large):
        return (W_dec_small @ W_dec_large.T).max(dim=0)

    assert_rejected(checks.nearest_parent, raw_dot, "raw dot product", "normalise")


def test_nearest_parent_rejects_the_wrong_axis():
    def per_small_latent(W_dec_small, W_dec_large):
        return (_unit(W_dec_small) @ _unit(W_dec_large).T).max(dim=1)

    assert_rejected(checks.nearest_parent, per_small_latent, "SMALLER dictionary", "dim 0")


def test_nearest_parent_rejects_absolute_cosine():
    def absolute(W_dec_small, W_dec_large):
        return (_unit(W_dec_small) @ _unit(W_dec_large).T).abs().max(dim=0)

    assert_rejected(checks.nearest_parent, absolute, "|cosine|", "signed")


def test_nearest_parent_rejects_half_normalised_cosines():
    def only_small(W_dec_small, W_dec_large):
        return (_unit(W_dec_small) @ W_dec_large.T).max(dim=0)

    assert_rejected(checks.nearest_parent, only_small, "BOTH")


# ------------------------------------------------------------------ 5.2 co-activation


def test_coactivation_solution_passes():
    def coactivation(codes_a, codes_b):
        fired_a, fired_b = (codes_a > 0).float(), (codes_b > 0).float()
        return (fired_a.T @ fired_b) / fired_b.sum(0).clamp_min(1.0)

    assert run_check(checks.coactivation, coactivation) == (SOLVED, "solved")


def test_coactivation_rejects_conditioning_on_a():
    def given_a(codes_a, codes_b):
        fired_a, fired_b = (codes_a > 0).float(), (codes_b > 0).float()
        return (fired_a.T @ fired_b) / fired_a.sum(0).clamp_min(1.0)[:, None]

    assert_rejected(checks.coactivation, given_a, "P(b fires | a fires)", "condition on b")


def test_coactivation_rejects_activation_values():
    def magnitudes(codes_a, codes_b):
        return (codes_a.T @ codes_b) / (codes_b > 0).float().sum(0).clamp_min(1.0)

    assert_rejected(checks.coactivation, magnitudes, "above 1", "binarise")


def test_coactivation_rejects_nan_for_silent_latents():
    def unclamped(codes_a, codes_b):
        fired_a, fired_b = (codes_a > 0).float(), (codes_b > 0).float()
        return (fired_a.T @ fired_b) / fired_b.sum(0)

    assert_rejected(checks.coactivation, unclamped, "NaN", "clamp")


def test_coactivation_rejects_the_joint_probability():
    def joint(codes_a, codes_b):
        return ((codes_a > 0).float().T @ (codes_b > 0).float()) / codes_a.shape[0]

    assert_rejected(checks.coactivation, joint, "P(a and b fire)")


# ------------------------------------------------------------------ 5.3 absorption


def test_absorption_solution_passes():
    def absorption(parent_codes, child_codes, parent_truth, child_truth):
        both = parent_truth & child_truth
        n = int(both.sum())
        if n == 0:
            return {"n": 0, "parent_fires": math.nan, "absorbed": math.nan, "missed": math.nan}
        parent_on = parent_codes[both] > 0
        child_on = (child_codes[both] > 0).any(dim=-1)
        return {
            "n": n,
            "parent_fires": parent_on.float().mean().item(),
            "absorbed": (~parent_on & child_on).float().mean().item(),
            "missed": (~parent_on & ~child_on).float().mean().item(),
        }

    assert run_check(checks.absorption, absorption) == (SOLVED, "solved")


def _absorption_from(on, parent_on, child_on):
    return {
        "n": int(on.sum()),
        "parent_fires": parent_on.float().mean().item(),
        "absorbed": (~parent_on & child_on).float().mean().item(),
        "missed": (~parent_on & ~child_on).float().mean().item(),
    }


def test_absorption_rejects_ignoring_the_parent_label():
    def child_tokens_only(parent_codes, child_codes, parent_truth, child_truth):
        return _absorption_from(child_truth, parent_codes[child_truth] > 0, (child_codes[child_truth] > 0).any(-1))

    assert_rejected(checks.absorption, child_tokens_only, "labelled both")


def test_absorption_rejects_child_firing_alone():
    def child_fires(parent_codes, child_codes, parent_truth, child_truth):
        both = parent_truth & child_truth
        parent_on, child_on = parent_codes[both] > 0, (child_codes[both] > 0).any(-1)
        return {**_absorption_from(both, parent_on, child_on), "absorbed": child_on.float().mean().item()}

    assert_rejected(checks.absorption, child_fires, "parent is silent")


def test_absorption_rejects_all_children():
    def all_children(parent_codes, child_codes, parent_truth, child_truth):
        both = parent_truth & child_truth
        return _absorption_from(both, parent_codes[both] > 0, (child_codes[both] > 0).all(-1))

    assert_rejected(checks.absorption, all_children, "ANY child")


def test_absorption_rejects_counts():
    def counts(parent_codes, child_codes, parent_truth, child_truth):
        both = parent_truth & child_truth
        parent_on, child_on = parent_codes[both] > 0, (child_codes[both] > 0).any(-1)
        return {
            "n": int(both.sum()),
            "parent_fires": int(parent_on.sum()),
            "absorbed": int((~parent_on & child_on).sum()),
            "missed": int((~parent_on & ~child_on).sum()),
        }

    assert_rejected(checks.absorption, counts, "fractions", "not counts")


def test_absorption_rejects_dividing_by_zero():
    def python_division(parent_codes, child_codes, parent_truth, child_truth):
        both = parent_truth & child_truth
        n = int(both.sum())
        parent_on, child_on = parent_codes[both] > 0, (child_codes[both] > 0).any(-1)
        return {
            "n": n,
            "parent_fires": int(parent_on.sum()) / n,
            "absorbed": int((~parent_on & child_on).sum()) / n,
            "missed": int((~parent_on & ~child_on).sum()) / n,
        }

    assert_rejected(checks.absorption, python_division, "n = 0", "NaN")


def test_absorption_rejects_a_crash_without_children():
    def max_over_children(parent_codes, child_codes, parent_truth, child_truth):
        both = parent_truth & child_truth
        return _absorption_from(both, parent_codes[both] > 0, child_codes[both].max(dim=-1).values > 0)

    assert_rejected(checks.absorption, max_over_children, "no child latents")


# ------------------------------------------------------------------ 5.4 Matryoshka prefix errors


def test_prefix_errors_solution_passes():
    def prefix_errors(x, codes, W_dec, b_dec, prefixes):
        errors = []
        for m in prefixes:
            recon = codes[:, :m] @ W_dec[:m] + b_dec  # the first m latents, and the bias, alone
            errors.append((x - recon).pow(2).sum(-1).mean())
        return torch.stack(errors)

    assert run_check(checks.prefix_errors, prefix_errors) == (SOLVED, "solved")


def test_prefix_errors_rejects_a_missing_bias():
    def no_bias(x, codes, W_dec, b_dec, prefixes):
        return torch.stack([(x - codes[:, :m] @ W_dec[:m]).pow(2).sum(-1).mean() for m in prefixes])

    assert_rejected(checks.prefix_errors, no_bias, "b_dec")


def test_prefix_errors_rejects_the_last_latents():
    def suffix(x, codes, W_dec, b_dec, prefixes):
        return torch.stack([(x - codes[:, -m:] @ W_dec[-m:] - b_dec).pow(2).sum(-1).mean() for m in prefixes])

    assert_rejected(checks.prefix_errors, suffix, "FIRST m latents")


def test_prefix_errors_rejects_a_mean_over_d_in():
    def mse_loss(x, codes, W_dec, b_dec, prefixes):
        return torch.stack([torch.nn.functional.mse_loss(codes[:, :m] @ W_dec[:m] + b_dec, x) for m in prefixes])

    assert_rejected(checks.prefix_errors, mse_loss, "averaged over d_in")


def test_prefix_errors_rejects_an_unsquared_norm():
    def norm(x, codes, W_dec, b_dec, prefixes):
        return torch.stack([(x - codes[:, :m] @ W_dec[:m] - b_dec).norm(dim=-1).mean() for m in prefixes])

    assert_rejected(checks.prefix_errors, norm, "norm", "square")


def test_prefix_errors_rejects_the_summed_loss():
    def total(x, codes, W_dec, b_dec, prefixes):
        return sum((x - codes[:, :m] @ W_dec[:m] - b_dec).pow(2).sum(-1).mean() for m in prefixes)

    assert_rejected(checks.prefix_errors, total, "one error per prefix")


# ------------------------------------------------------------------ 5.5 training FLOPs


def test_training_flops_solution_passes():
    def training_flops(n_tokens, d_in, d_sae):
        forward = 2 * (2 * d_in * d_sae)  # encoder and decoder matmuls, a multiply and an add per weight
        return float(3 * forward * n_tokens)  # backward costs twice the forward

    assert run_check(checks.training_flops, training_flops) == (SOLVED, "solved")


@pytest.mark.parametrize(
    ("factor", "words"),
    [
        (4, "forward pass alone"),
        (8, "twice the forward"),
        (6, "multiply and an add"),
        (2, "one matmul"),
        (1, "weights x tokens"),
    ],
)
def test_training_flops_rejects_wrong_factors(factor, words):
    def wrong_factor(n_tokens, d_in, d_sae):
        return float(factor * n_tokens * d_in * d_sae)

    assert_rejected(checks.training_flops, wrong_factor, words)


def test_training_flops_rejects_a_count_per_token():
    def per_token(n_tokens, d_in, d_sae):
        return 12.0 * d_in * d_sae

    assert_rejected(checks.training_flops, per_token, "per token", "n_tokens")


# ------------------------------------------------------------------ 5.6 max correlation


def max_correlation_solution(acts_a, acts_b):
    a = acts_a.float() - acts_a.float().mean(0)
    b = acts_b.float() - acts_b.float().mean(0)
    a_norm, b_norm = a.norm(dim=0), b.norm(dim=0)
    corr = (a / a_norm.clamp_min(1e-12)).T @ (b / b_norm.clamp_min(1e-12))
    corr[:, b_norm <= 1e-8] = float("-inf")
    best, index = corr.max(dim=1)
    dead = (a_norm <= 1e-8) | ~torch.isfinite(best)
    return best.masked_fill(dead, float("nan")), index.masked_fill(dead, -1)


def test_max_correlation_solution_passes():
    assert run_check(checks.max_correlation, max_correlation_solution) == (SOLVED, "solved")


def test_max_correlation_solution_matches_the_package_on_sae_like_codes():
    from interp_helpers.dictionaries.splitting import max_correlation

    generator = torch.Generator().manual_seed(0)
    codes_a = torch.randn(500, 64, generator=generator).sub(1.5).clamp_min(0)
    codes_b = torch.randn(500, 48, generator=generator).sub(1.5).clamp_min(0)
    codes_a[:, 3] = 0  # a dead latent
    ours, theirs = max_correlation_solution(codes_a, codes_b), max_correlation(codes_a, codes_b, chunk=16)
    torch.testing.assert_close(ours[0], theirs[0], equal_nan=True)
    assert torch.equal(ours[1], theirs[1])


def _standardised(x, centre=True):
    x = x.float() - x.float().mean(0) if centre else x.float()
    return x / x.norm(dim=0).clamp_min(1e-12), x.norm(dim=0)


def test_max_correlation_rejects_no_centring():
    def cosine(acts_a, acts_b):
        (a, a_norm), (b, _) = _standardised(acts_a, False), _standardised(acts_b, False)
        best, index = (a.T @ b).max(dim=1)
        return best.masked_fill(a_norm <= 1e-8, float("nan")), index.masked_fill(a_norm <= 1e-8, -1)

    assert_rejected(checks.max_correlation, cosine, "without centring")


def test_max_correlation_rejects_covariance():
    def covariance(acts_a, acts_b):
        a, b = acts_a - acts_a.mean(0), acts_b - acts_b.mean(0)
        return (a.T @ b / (a.shape[0] - 1)).max(dim=1)

    assert_rejected(checks.max_correlation, covariance, "above 1", "standard deviations")


def test_max_correlation_rejects_absolute_correlation():
    def absolute(acts_a, acts_b):
        (a, a_norm), (b, b_norm) = _standardised(acts_a), _standardised(acts_b)
        corr = (a.T @ b).abs()
        corr[:, b_norm <= 1e-8] = float("-inf")
        best, index = corr.max(dim=1)
        return best.masked_fill(a_norm <= 1e-8, float("nan")), index.masked_fill(a_norm <= 1e-8, -1)

    assert_rejected(checks.max_correlation, absolute, "|correlation|", "signed")


def test_max_correlation_rejects_dead_units_of_b():
    def unmasked(acts_a, acts_b):
        (a, a_norm), (b, _) = _standardised(acts_a), _standardised(acts_b)
        best, index = (a.T @ b).max(dim=1)
        return best.masked_fill(a_norm <= 1e-8, float("nan")), index.masked_fill(a_norm <= 1e-8, -1)

    assert_rejected(checks.max_correlation, unmasked, "never varies")


def test_max_correlation_rejects_nan_from_dead_units_of_b():
    def torch_corrcoef(acts_a, acts_b):
        corr = torch.corrcoef(torch.cat([acts_a, acts_b], dim=1).T)[: acts_a.shape[1], acts_a.shape[1] :]
        return corr.max(dim=1)

    assert_rejected(checks.max_correlation, torch_corrcoef, "NaN", "exclude it")


def test_max_correlation_rejects_numbers_for_dead_units_of_a():
    def zero_for_dead(acts_a, acts_b):
        (a, _), (b, b_norm) = _standardised(acts_a), _standardised(acts_b)
        corr = a.T @ b
        corr[:, b_norm <= 1e-8] = float("-inf")
        return corr.max(dim=1)

    assert_rejected(checks.max_correlation, zero_for_dead, "NaN and index -1")


def test_max_correlation_rejects_mixed_normalisers():
    def bessel_mismatch(acts_a, acts_b):
        a, b = acts_a - acts_a.mean(0), acts_b - acts_b.mean(0)
        std_a, std_b = acts_a.std(0), acts_b.std(0)  # n - 1
        corr = (a.T @ b / a.shape[0]) / (std_a[:, None] * std_b[None, :]).clamp_min(1e-12)  # n
        corr[:, std_b <= 1e-8] = float("-inf")
        best, index = corr.max(dim=1)
        dead = std_a <= 1e-8
        return best.masked_fill(dead, float("nan")), index.masked_fill(dead, -1)

    assert_rejected(checks.max_correlation, bessel_mismatch, "(n-1)/n")


def test_max_correlation_rejects_the_wrong_axis():
    def per_unit_of_b(acts_a, acts_b):
        (a, _), (b, _) = _standardised(acts_a), _standardised(acts_b)
        return (a.T @ b).max(dim=0)

    assert_rejected(checks.max_correlation, per_unit_of_b, "per unit of B")
