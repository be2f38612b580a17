"""Exercises of notebook 05 (feature splitting, absorption, depth-first expansion, universality).

5.1 matches every latent of a larger dictionary to its nearest latent of a smaller one by
decoder cosine; 5.2 measures co-activation, P(a fires | b fires); 5.3 measures absorption
on labelled tokens; 5.4 computes the per-prefix reconstruction errors of the Matryoshka
loss; 5.5 counts the training FLOPs of the depth-first comparison; 5.6 finds, for every
unit of one model, its most correlated unit in another (universality). Each check runs the
student's function on tensors of a few rows, built by hand so that a plausible mistake
(raw dot products, the wrong axis, no centring, the wrong denominator, ...) gives a
recognisable answer, and names that mistake.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp_helpers.checkers.core import Exercise, Wrong, assert_close
from interp_helpers.dictionaries import matryoshka
from interp_helpers.dictionaries import splitting as splitting_lib


def _close(got: Tensor, expected: Tensor, atol: float = 1e-5) -> bool:
    """Same shape and values: the test behind a targeted diagnosis."""
    return (
        isinstance(got, Tensor)
        and tuple(got.shape) == tuple(expected.shape)
        and torch.allclose(got.detach().double(), expected.double(), atol=atol, rtol=1e-4, equal_nan=True)
    )


def _pair(got: object, what: str) -> tuple[Tensor, Tensor]:
    """Unpack a (values, indices) answer, or say what shape of answer was expected."""
    if not isinstance(got, (tuple, list)) or len(got) != 2 or not all(isinstance(t, Tensor) for t in got):
        raise Wrong(f"return a pair of tensors ({what}), got {type(got).__name__}")
    values, index = got
    if index.is_floating_point():
        raise Wrong("the indices must be an integer tensor (e.g. the .indices of .max(dim=...)), so they can index")
    return values, index


# ------------------------------------------------------------------ 5.1 nearest parent


def nearest_parent_reference(
    W_dec_small: Float[Tensor, "d_sae_small d_in"],
    W_dec_large: Float[Tensor, "d_sae_large d_in"],
) -> tuple[Float[Tensor, " d_sae_large"], Int[Tensor, " d_sae_large"]]:
    """For each latent of the larger dictionary: its highest decoder cosine with a smaller latent, and which."""
    values, index = splitting_lib.decoder_cosine(W_dec_small, W_dec_large).max(dim=0)
    return values, index


def _check_nearest_parent(fn):
    # Large latent 0 points between s0 (long, 45 degrees off) and s1 (short, 8 degrees off): cosine picks s1,
    # a raw dot product picks s0. Large latent 1's best signed cosine is s0 (0.45); s2 is anti-aligned (-0.89).
    small = torch.tensor([[5.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.0, 0.0, -1.0]])
    large = torch.tensor([[1.0, 1.0, 0.0], [0.5, 0.0, 1.0], [0.0, 3.0, 0.0], [-1.0, 0.0, 0.1]])
    values, index = _pair(fn(small, large), "cosine and index, one each per latent of the larger dictionary")
    if tuple(values.shape) == (3,) or tuple(index.shape) == (3,):
        raise Wrong(
            "got one entry per latent of the SMALLER dictionary: take the max over the smaller latents "
            "(dim 0 of small @ large.T), so each larger latent gets its parent"
        )
    expected_values, expected_index = nearest_parent_reference(small, large)
    if tuple(index.shape) == (4,) and int(index[0]) == 0:
        raise Wrong("matched latents by raw dot product: normalise decoder rows first, or long rows win")
    if tuple(index.shape) == (4,) and int(index[1]) == 2:
        raise Wrong(
            "took |cosine|: an anti-aligned latent (cosine -0.89) writes the opposite direction; use the signed maximum"
        )
    small_unit, large_unit = small / small.norm(dim=-1, keepdim=True), large / large.norm(dim=-1, keepdim=True)
    half_normalised = [(small_unit @ large.T).max(dim=0).values, (small @ large_unit.T).max(dim=0).values]
    if any(_close(values, variant) for variant in half_normalised):
        raise Wrong(
            "the cosines are off by a row norm: divide every row of BOTH W_dec_small and W_dec_large "
            "by its norm (dim=-1)"
        )
    assert_close(index, expected_index, "index of each larger latent's nearest smaller latent")
    assert_close(values, expected_values, "cosine of each larger latent with its nearest smaller latent")
    generator = torch.Generator().manual_seed(0)
    small = torch.randn(5, 8, generator=generator)
    large = torch.randn(7, 8, generator=generator) * torch.rand(7, 1, generator=generator).add(0.5)
    values, index = _pair(fn(small, large), "cosine and index")
    expected_values, expected_index = nearest_parent_reference(small, large)
    assert_close(index, expected_index, "nearest smaller latent of random decoder rows")
    assert_close(values, expected_values, "cosine with the nearest smaller latent, random decoder rows")


nearest_parent = Exercise(
    "5.1", "Nearest parent by decoder cosine", reference=nearest_parent_reference, check=_check_nearest_parent
)


# ------------------------------------------------------------------ 5.2 co-activation


def _check_coactivation(fn):
    # 6 tokens. a0 fires on 0-3, a1 on 5; b0 fires on 0, 1, 4, 5, b1 on 2, b2 never.
    codes_a = torch.tensor([[2.0, 0.0], [0.5, 0.0], [3.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 4.0]])
    codes_b = torch.tensor(
        [[1.0, 0.0, 0.0], [4.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [1.0, 0.0, 0.0]]
    )
    got = fn(codes_a, codes_b)
    expected = splitting_lib.coactivation(codes_a, codes_b)  # [[2/4, 1, 0], [1/4, 0, 0]]
    if not isinstance(got, Tensor):
        raise Wrong(f"return a [d_sae_a, d_sae_b] tensor, got {type(got).__name__}")
    if tuple(got.shape) == (3, 2):
        raise Wrong("got [d_sae_b, d_sae_a]: rows are the latents of A, columns the latents of B")
    if tuple(got.shape) == (2, 3):
        if torch.isnan(got[:, 2]).any():
            raise Wrong("a latent of B that never fires gave NaN: its column must be 0 (clamp the denominator to 1)")
        if (got > 1 + 1e-6).any():
            raise Wrong(
                "a probability above 1: count firings, do not multiply activation values "
                "(binarise with codes > 0 first)"
            )
        fired_a, fired_b = (codes_a > 0).float(), (codes_b > 0).float()
        both = fired_a.T @ fired_b
        if _close(got, both / fired_a.sum(0)[:, None]):
            raise Wrong("that is P(b fires | a fires): condition on b, dividing each column by how often b fires")
        if _close(got, both / codes_a.shape[0]):
            raise Wrong("that is P(a and b fire): divide by the number of tokens where b fires, not by all tokens")
    assert_close(got, expected, "P(a fires | b fires) on hand-made codes")
    generator = torch.Generator().manual_seed(1)
    codes_a = torch.rand(20, 4, generator=generator).sub(0.5).clamp_min(0)
    codes_b = torch.rand(20, 5, generator=generator).sub(0.6).clamp_min(0)
    assert_close(
        fn(codes_a, codes_b), splitting_lib.coactivation(codes_a, codes_b), "P(a fires | b fires) on random codes"
    )


coactivation = Exercise(
    "5.2", "Co-activation of parent and child", reference=splitting_lib.coactivation, check=_check_coactivation
)


# ------------------------------------------------------------------ 5.3 absorption

_KEYS = ("n", "parent_fires", "absorbed", "missed")


def _fractions(got: object) -> Tensor:
    if not isinstance(got, dict) or any(key not in got for key in _KEYS):
        raise Wrong(f"return a dict with keys {', '.join(_KEYS)}, got {type(got).__name__}")
    try:
        return torch.tensor([float(got[key]) for key in _KEYS], dtype=torch.float64)
    except (TypeError, ValueError) as err:
        raise Wrong(f"every value of the dict must be a number: {err}") from None


def _check_absorption(fn):
    # 8 tokens. Labelled parent and child: 0-4 (n = 5); token 6 has a child label but no parent label.
    # Parent fires on 0 (and on 5, 6, outside the 5). Children: c0 on 0, 1, 6; c1 on 1, 2. Nothing on 3, 4.
    parent_truth = torch.tensor([1, 1, 1, 1, 1, 1, 0, 0], dtype=torch.bool)
    child_truth = torch.tensor([1, 1, 1, 1, 1, 0, 1, 0], dtype=torch.bool)
    parent_codes = torch.tensor([1.0, 0, 0, 0, 0, 2, 3, 0])
    child_codes = torch.tensor([[1.0, 0], [2, 1], [0, 3], [0, 0], [0, 0], [0, 0], [1, 0], [0, 0]])
    got = _fractions(fn(parent_codes, child_codes, parent_truth, child_truth))
    expected = _fractions(matryoshka.absorption(parent_codes, child_codes, parent_truth, child_truth))  # 5, .2, .4, .4
    if got[0] == 6:
        raise Wrong(
            "counted tokens with a child label but no parent label: use only tokens labelled both "
            "(parent_truth & child_truth)"
        )
    if (got[1:] > 1 + 1e-6).any():
        raise Wrong("parent_fires, absorbed and missed are fractions of the n tokens, not counts")
    if abs(got[2] - 0.6) < 1e-6:
        raise Wrong(
            "absorbed counted tokens where the parent fires too: absorbed means the parent is silent "
            "AND a child fires (the three fractions add to 1)"
        )
    if abs(got[2] - 0.2) < 1e-6:
        raise Wrong("a token is absorbed when ANY child latent fires (.any over children), not all of them")
    assert_close(got, expected, "(n, parent_fires, absorbed, missed) on hand-made codes")
    try:  # no child latents at all (a parent whose leaves share its latent): nothing can be absorbed
        got = _fractions(fn(parent_codes, child_codes[:, :0], parent_truth, child_truth))
    except (NotImplementedError, Wrong):
        raise
    except Exception as err:  # noqa: BLE001 - any crash here has one cause: the empty child axis
        raise Wrong(
            f"with no child latents (child_codes of shape [batch, 0]) your function raised "
            f"{type(err).__name__}: .any(dim=-1) of an empty row is False"
        ) from None
    assert_close(got, torch.tensor([5, 0.2, 0.0, 0.8], dtype=torch.float64), "(n, fractions) with no child latents")
    try:  # no token labelled both: nothing to measure
        got = _fractions(fn(parent_codes, child_codes, torch.zeros(8, dtype=torch.bool), child_truth))
    except ZeroDivisionError:
        raise Wrong("with no token labelled both, return n = 0 and NaN fractions instead of dividing by 0") from None
    if got[0] != 0 or not torch.isnan(got[1:]).all():
        raise Wrong("with no token labelled both, the fractions are undefined: return n = 0 and NaN for each")


absorption = Exercise("5.3", "Absorption on labelled tokens", reference=matryoshka.absorption, check=_check_absorption)


# ------------------------------------------------------------------ 5.4 Matryoshka prefix errors


def prefix_errors_reference(
    x: Float[Tensor, "batch d_in"],
    codes: Float[Tensor, "batch d_sae"],
    W_dec: Float[Tensor, "d_sae d_in"],
    b_dec: Float[Tensor, " d_in"],
    prefixes: list[int] | tuple[int, ...],
) -> Float[Tensor, " prefix"]:
    """||x - (codes[:, :m] @ W_dec[:m] + b_dec)||^2 summed over d_in, mean over the batch, for each prefix m."""
    return torch.stack([(x - codes[:, :m] @ W_dec[:m] - b_dec).pow(2).sum(-1).mean() for m in prefixes])


def _check_prefix_errors(fn):
    generator = torch.Generator().manual_seed(2)
    batch, d_in, d_sae, prefixes = 3, 2, 5, [2, 5]
    x = torch.randn(batch, d_in, generator=generator)
    codes = torch.rand(batch, d_sae, generator=generator)
    W_dec = torch.randn(d_sae, d_in, generator=generator)
    b_dec = torch.tensor([0.7, -0.4])
    got = fn(x, codes, W_dec, b_dec, prefixes)
    expected = prefix_errors_reference(x, codes, W_dec, b_dec, prefixes)
    if not isinstance(got, Tensor):
        raise Wrong(f"return a tensor with one error per prefix, got {type(got).__name__}")
    if tuple(got.shape) != (len(prefixes),):
        raise Wrong(f"return one error per prefix, shape ({len(prefixes)},), got {tuple(got.shape)}")
    no_bias = prefix_errors_reference(x, codes, W_dec, torch.zeros(d_in), prefixes)
    suffix = torch.stack([(x - codes[:, -m:] @ W_dec[-m:] - b_dec).pow(2).sum(-1).mean() for m in prefixes])
    unsquared = torch.stack([(x - codes[:, :m] @ W_dec[:m] - b_dec).norm(dim=-1).mean() for m in prefixes])
    if _close(got, no_bias):
        raise Wrong("forgot b_dec: every prefix reconstructs as codes[:, :m] @ W_dec[:m] + b_dec")
    if _close(got, suffix):
        raise Wrong("used the last m latents: a prefix is the FIRST m latents, codes[:, :m] and W_dec[:m]")
    if _close(got, expected / d_in):
        raise Wrong("averaged over d_in: sum the squared error over d_in, then average over the batch")
    if _close(got, expected * batch):
        raise Wrong("summed over the batch: sum over d_in, then average over the batch")
    if _close(got, unsquared):
        raise Wrong("took the norm of the error: the loss is its square, summed over d_in")
    assert_close(got, expected, "squared error of each prefix's reconstruction")
    # One prefix covering every latent is an ordinary SAE's reconstruction loss.
    assert_close(fn(x, codes, W_dec, b_dec, [d_sae]), expected[-1:], "error of the full dictionary (prefixes [d_sae])")


prefix_errors = Exercise(
    "5.4", "Matryoshka prefix errors", reference=prefix_errors_reference, check=_check_prefix_errors
)


# ------------------------------------------------------------------ 5.5 training FLOPs

_FLOP_MISTAKES = {  # ratio to the right count -> what was probably counted
    1 / 3: "that is the forward pass alone (4 d_in d_sae per token): the backward pass costs twice the forward",
    2 / 3: "the backward pass costs twice the forward (gradients for the weights and for the inputs), not once",
    1 / 2: "half the count: a multiply and an add are 2 FLOPs per weight, and both encoder and decoder count",
    1 / 6: "that is one matmul's forward pass: count the encoder and the decoder, then the backward pass",
    1 / 12: "that is weights x tokens: each weight costs 2 FLOPs per matmul, 2 matmuls, x3 for backward",
}


def _check_training_flops(fn):
    n_tokens, d_in, d_sae = 1000, 512, 4096
    got = fn(n_tokens, d_in, d_sae)
    expected = splitting_lib.training_flops(n_tokens, d_in, d_sae)
    if isinstance(got, Tensor) and got.numel() == 1:
        got = got.item()
    if isinstance(got, bool) or not isinstance(got, (int, float)):
        raise Wrong(f"return a number of FLOPs, got {type(got).__name__}")
    ratio = got / expected
    if math.isclose(ratio, 1 / n_tokens, rel_tol=1e-6):
        raise Wrong("the count is per token: multiply by n_tokens")
    for wrong, message in _FLOP_MISTAKES.items():
        if math.isclose(ratio, wrong, rel_tol=1e-6):
            raise Wrong(message)
    assert_close(torch.tensor(float(got)), torch.tensor(expected), "FLOPs of 1000 tokens through a 512 x 4096 SAE")
    assert_close(torch.tensor(float(fn(0, d_in, d_sae))), torch.tensor(0.0), "FLOPs of training on 0 tokens")
    assert_close(torch.tensor(float(fn(7, 3, 5))), torch.tensor(12.0 * 7 * 3 * 5), "FLOPs of 7 tokens, d_in 3, d_sae 5")


training_flops = Exercise("5.5", "Training FLOPs", reference=splitting_lib.training_flops, check=_check_training_flops)


# ------------------------------------------------------------------ 5.6 max correlation


def _universality_data() -> tuple[Tensor, Tensor]:
    """A: [10 + p, constant, -p]; B: [10 + 0.1 (p + r), p, constant, p + 2 r], over 40 tokens.

    Pearson pairs a0 with b1 (correlation 1); cosine without centring pairs it with b0, because
    both sit far from 0. a1 never varies (NaN, -1); b2 never varies (nobody's partner). a2 is
    anticorrelated with every live unit of B: its answer is the least negative one, b0 or b3.
    """
    generator = torch.Generator().manual_seed(3)
    p, r = 3 * torch.randn(40, generator=generator), torch.randn(40, generator=generator)
    acts_a = torch.stack([10 + p, torch.full((40,), 2.0), -p], dim=1)
    acts_b = torch.stack([10 + 0.1 * (p + r), p, torch.full((40,), 0.5), p + 2 * r], dim=1)
    return acts_a, acts_b


def _check_max_correlation(fn):
    acts_a, acts_b = _universality_data()
    values, index = _pair(fn(acts_a, acts_b), "max correlation and index, one each per unit of A")
    expected_values, expected_index = splitting_lib.max_correlation(acts_a, acts_b)
    if tuple(values.shape) == (4,) or tuple(index.shape) == (4,):
        raise Wrong("got one entry per unit of B: take the max over B's units (dim 1 of the [unit_a, unit_b] matrix)")
    if tuple(values.shape) != (3,) or tuple(index.shape) != (3,):
        raise Wrong(f"return two tensors of shape (unit_a,) = (3,), got {tuple(values.shape)} and {tuple(index.shape)}")
    n = acts_a.shape[0]
    if any(abs(float(values[0]) - ratio) < 1e-4 for ratio in ((n - 1) / n, n / (n - 1))):
        raise Wrong(
            "a perfectly correlated pair scored (n-1)/n or n/(n-1): use the same normaliser (n or n-1) "
            "for the covariance and the standard deviations"
        )
    if (values.abs() > 1 + 1e-4).any():
        raise Wrong("a correlation above 1: divide the covariance by both units' standard deviations")
    if torch.isnan(values[[0, 2]]).any():
        raise Wrong(
            "NaN for a unit of A that varies: a unit of B that never varies has no correlation, "
            "so exclude it before the max (e.g. set its column to -inf)"
        )
    if int(index[0]) == 0:
        raise Wrong(
            "correlation without centring: subtract each unit's mean over the tokens first, "
            "or units far from 0 look alike"
        )
    if int(index[2]) == 1:
        raise Wrong("took |correlation|: an anticorrelated unit is not a partner; use the signed maximum")
    if int(index[2]) == 2:
        raise Wrong("picked a unit of B that never varies: exclude B's dead units (centred norm ~0) from the max")
    if not torch.isnan(values[1]) or int(index[1]) != -1:
        raise Wrong("a unit of A that never varies has no correlation: give it NaN and index -1")
    assert_close(index, expected_index, "index of each unit's most correlated partner")
    assert_close(values, expected_values, "max correlation of each unit of A", atol=1e-4)
    generator = torch.Generator().manual_seed(4)  # a shuffled copy: every unit finds itself, correlation 1
    acts = torch.rand(30, 6, generator=generator)
    order = torch.randperm(6, generator=generator)
    values, index = _pair(fn(acts, acts[:, order]), "max correlation and index")
    assert_close(index, order.argsort(), "partner of each unit in a shuffled copy of the same units")
    assert_close(values, torch.ones(6), "max correlation of each unit with a shuffled copy of itself", atol=1e-4)


max_correlation = Exercise(
    "5.6", "Max-correlation universality", reference=splitting_lib.max_correlation, check=_check_max_correlation
)
