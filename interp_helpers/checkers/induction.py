"""Checkers for the exercises of notebook 02 (induction heads).

2.1 the per-token loss from logits (the next token's minus log-probability),
2.2 previous-token scores and 2.3 induction scores from an attention pattern (Olsson et al.'s
convention: average over the queries that have the expected key), 2.4 the eigenvalue copying
score of a head's full OV circuit, 2.5 K-composition between layer-0 OV and layer-1 QK circuits
(Elhage et al.), 2.6 a hook that zero- or mean-ablates one head on `hook_z`.

Each check runs the student's function on tiny hand-made tensors whose answers are known
(a perfect previous-token head, a head that only attends to BOS, rank-1 circuits that compose
exactly, ...) and names the likely mistake before any generic comparison with the reference.
References wrap the package kernels (`transformer_circuits.induction`, `transformer_circuits.circuits`).
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import FactoredMatrix
from transformer_lens.hook_points import HookPoint

from interp_helpers.checkers.core import Exercise, Wrong, assert_close
from interp_helpers.core.validation import check_choice
from interp_helpers.transformer_circuits import circuits
from interp_helpers.transformer_circuits import induction as kernels

__all__ = [
    "per_token_loss",
    "previous_token_scores",
    "induction_scores",
    "copying_eigen_score",
    "k_composition_scores",
    "ablate_head_hook",
]


def _is_close(got: object, expected: Tensor, atol: float = 1e-5) -> bool:
    """True when `got` is a real tensor of `expected`'s shape and values: a recognised wrong answer."""
    return (
        isinstance(got, Tensor)
        and not got.is_complex()
        and tuple(got.shape) == tuple(expected.shape)
        and torch.allclose(got.detach().double(), expected.double(), atol=atol, rtol=1e-4)
    )


def _expect_tensor(got: object, what: str) -> Tensor:
    if not isinstance(got, Tensor):
        raise Wrong(f"{what}: expected a torch.Tensor, got {type(got).__name__}")
    return got


# --------------------------------------------------------------------------------------
# 2.1 Per-token loss
# --------------------------------------------------------------------------------------


def _reference_per_token_loss(
    logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "batch pos-1"]:
    return kernels.per_token_loss(logits, tokens)


def _check_per_token_loss(fn):
    # Logits at position i put +6 on the next token: the right loss is small everywhere.
    tokens = torch.tensor([[0, 3, 1, 4, 2], [0, 2, 2, 1, 3]])
    logits = torch.zeros(2, 5, 5)
    logits.scatter_(-1, tokens.roll(-1, dims=1)[:, :, None], 6.0)
    logits[:, :, 1] += torch.tensor([0.5, -1.0, 0.0, 2.0, 1.0])  # a position-dependent nudge, so rows differ
    expected = _reference_per_token_loss(logits, tokens)
    got = _expect_tensor(fn(logits, tokens), "per-token loss")
    if got.dim() == 0:
        raise Wrong("returned one number: return a loss per (row, target position), shape [batch, pos - 1]")
    if tuple(got.shape) == (2, 5):
        raise Wrong("shape [batch, pos]: the last position has no next token, so there are pos - 1 targets")
    logprobs = logits.log_softmax(-1)
    if _is_close(got, -expected):
        raise Wrong("the losses have the wrong sign: the loss is minus the log-probability of the next token")
    if _is_close(got, -logprobs[:, :-1].gather(-1, tokens[:, :-1, None])[..., 0]) or _is_close(
        got, -logprobs[:, 1:].gather(-1, tokens[:, 1:, None])[..., 0]
    ):
        raise Wrong("position i must score the NEXT token: logits[:, i] against tokens[:, i + 1]")
    if _is_close(got, -logits[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]) or _is_close(
        got, -logits[:, :-1].softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]
    ):
        raise Wrong("not a log-probability: normalise with log_softmax over d_vocab before picking the token")
    for dim in (0, 1):
        wrong_dim = -logits.log_softmax(dim)[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]
        if _is_close(got, wrong_dim):
            raise Wrong(f"log_softmax over dim {dim}: normalise over the vocabulary, the last dim")
    assert_close(got, expected, "per-token loss of logits that favour the next token")
    # Uniform logits: every loss is ln(d_vocab), whatever the tokens.
    uniform = torch.zeros(1, 4, 7)
    assert_close(
        fn(uniform, torch.tensor([[0, 6, 2, 2]])),
        torch.full((1, 3), torch.log(torch.tensor(7.0)).item()),
        "per-token loss of uniform logits (ln 7)",
    )


per_token_loss = Exercise("2.1", "Per-token loss", reference=_reference_per_token_loss, check=_check_per_token_loss)


# --------------------------------------------------------------------------------------
# 2.2 Previous-token scores
# --------------------------------------------------------------------------------------


def _reference_previous_token_scores(
    pattern: Float[Tensor, "batch head_index query_pos key_pos"],
) -> Float[Tensor, " head_index"]:
    return kernels.previous_token_score(pattern)


def _causal_uniform(pos: int) -> Tensor:
    """Each query spreads its attention evenly over itself and every earlier key."""
    mask = torch.ones(pos, pos).tril()
    return mask / mask.sum(-1, keepdim=True)


def _previous_token_pattern(pos: int) -> Tensor:
    """Query q attends to q - 1; query 0 (BOS) to itself."""
    pattern = torch.zeros(pos, pos)
    pattern[0, 0] = 1.0
    pattern[torch.arange(1, pos), torch.arange(pos - 1)] = 1.0
    return pattern


def _bos_pattern(pos: int) -> Tensor:
    pattern = torch.zeros(pos, pos)
    pattern[:, 0] = 1.0
    return pattern


def _check_previous_token_scores(fn):
    batch, pos = 2, 6
    # Head 0: a perfect previous-token head; head 1: uniform over earlier keys; head 2: always BOS.
    heads = [_previous_token_pattern(pos), _causal_uniform(pos), _bos_pattern(pos)]
    pattern = torch.stack(heads)[None].expand(batch, -1, -1, -1).clone()
    expected = _reference_previous_token_scores(pattern)  # [1, mean of 1/(q+1) over q >= 1, 1/(pos-1)]
    got = _expect_tensor(fn(pattern), "previous-token scores")
    if got.dim() == 1 and got.shape[0] == 3:
        if abs(float(got[0]) - (pos - 1) / pos) < 1e-5:
            raise Wrong(
                f"a perfect previous-token head scored {(pos - 1) / pos:.3f}, not 1: skip query 0, "
                "which has no previous token (average over queries 1 and later)"
            )
        if abs(float(got[0])) < 1e-6 and abs(float(got[2])) < 1e-6:
            raise Wrong(
                "a perfect previous-token head scored 0: the previous token is key = query - 1, "
                "the diagonal BELOW the main one (offset=-1)"
            )
        if float(got[0]) > 1 + 1e-5:
            raise Wrong(
                f"a perfect previous-token head scored {float(got[0]):.2f} > 1: average the attention, don't sum it"
            )
    assert_close(got, expected, "previous-token scores (heads: perfect, uniform, BOS-only)")
    # One row, heads in another order: catches averaging over the wrong axis.
    one = torch.stack([heads[2], heads[0]])[None]
    assert_close(fn(one), _reference_previous_token_scores(one), "previous-token scores of one row (BOS-only, perfect)")


previous_token_scores = Exercise(
    "2.2", "Previous-token scores", reference=_reference_previous_token_scores, check=_check_previous_token_scores
)


# --------------------------------------------------------------------------------------
# 2.3 Induction scores
# --------------------------------------------------------------------------------------


def _reference_induction_scores(
    pattern: Float[Tensor, "batch head_index query_pos key_pos"], earlier: Int[Tensor, "batch query_pos"]
) -> Float[Tensor, " head_index"]:
    return kernels.induction_score(pattern, earlier)


def _pattern_to(keys: Tensor, pos: int) -> Tensor:
    """[batch, query_pos, key_pos] one-hot attention from query q to keys[b, q]."""
    return torch.nn.functional.one_hot(keys, pos).float()


def _check_induction_scores(fn):
    # Row 0: BOS 7 8 9 7 8 9 (a repeated segment); row 1: BOS 5 5 6 1 2 3 (one adjacent repeat, key = query).
    tokens = torch.tensor([[0, 7, 8, 9, 7, 8, 9], [0, 5, 5, 6, 1, 2, 3]])
    earlier = kernels.previous_occurrence(tokens)
    batch, pos = tokens.shape
    query = torch.arange(pos).expand(batch, pos)
    matched = earlier >= 0
    # Perfect induction head: repeated queries attend to the token after their earlier occurrence,
    # the others to themselves.
    induction = _pattern_to(torch.where(matched, earlier + 1, query), pos)
    duplicate = _pattern_to(torch.where(matched, earlier, query), pos)  # a duplicate-token head
    bos = _pattern_to(torch.zeros_like(query), pos)  # a head that only ever attends to BOS
    pattern = torch.stack([induction, duplicate, bos], dim=1)  # batch head_index query_pos key_pos
    expected = _reference_induction_scores(pattern, earlier)  # [1, 0, 0]
    got = _expect_tensor(fn(pattern, earlier), "induction scores")
    if _is_close(got, torch.tensor([0.0, 1.0, 0.0])):
        raise Wrong(
            "a duplicate-token head scored 1 and a perfect induction head 0: the induction key is the token "
            "AFTER the earlier occurrence, earlier + 1"
        )
    n_matched, n_all = int(matched.sum()), batch * pos
    if got.shape == (3,) and abs(float(got[0]) - n_matched / n_all) < 1e-5:
        raise Wrong(
            f"a perfect induction head scored {n_matched}/{n_all}: divide by the number of queries with an "
            "earlier occurrence (earlier >= 0), not by every query"
        )
    if got.shape == (3,) and float(got[2]) > 1e-5:
        raise Wrong(
            f"a head that only attends to BOS scored {float(got[2]):.2f}: leave out queries with no earlier "
            "occurrence (earlier == -1, so earlier + 1 points at BOS)"
        )
    assert_close(got, expected, "induction scores (heads: induction, duplicate-token, BOS-only)")
    # Perfect in row 0 (3 repeats), silent in row 1 (1 repeat): pooled over (row, query) pairs, 3/4, not 1/2.
    half = torch.stack([induction[0], bos[1]])[:, None]
    got_half = _expect_tensor(fn(half, earlier), "induction score of a head that works in row 0 only")
    if _is_close(got_half, torch.tensor([0.5])):
        raise Wrong(
            "averaged row by row: pool every (row, query) pair with an earlier occurrence, then average "
            "(rows repeat different numbers of tokens)"
        )
    assert_close(
        got_half, _reference_induction_scores(half, earlier), "induction score of a head that works in row 0 only"
    )


induction_scores = Exercise(
    "2.3", "Induction scores", reference=_reference_induction_scores, check=_check_induction_scores
)


# --------------------------------------------------------------------------------------
# 2.4 Copying score of the full OV circuit
# --------------------------------------------------------------------------------------


def _reference_copying_eigen_score(
    W_E: Float[Tensor, "d_vocab d_model"],
    W_V: Float[Tensor, "head_index d_model d_head"],
    W_O: Float[Tensor, "head_index d_head d_model"],
    W_U: Float[Tensor, "d_model d_vocab"],
) -> Float[Tensor, " head_index"]:
    return circuits.copying_eigen_score(FactoredMatrix(W_E @ W_V, W_O @ W_U))


def _copying_circuits() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """d_vocab 6, d_model 4, d_head 2; W_U @ W_E = I, so W_O @ W_V (2 x 2) holds each head's eigenvalues.

    Head 0 copies (eigenvalues 1, 1: score 1), head 1 has eigenvalues 2 and -1 (score 1/3),
    head 2 rotates by 60 degrees (eigenvalues e^(+-i pi/3): score cos 60 = 0.5).
    """
    generator = torch.Generator().manual_seed(0)
    W_E = torch.cat([torch.eye(4), torch.randn(2, 4, generator=generator)])  # extra tokens are off the W_U path
    W_U = torch.cat([torch.eye(4), torch.zeros(4, 2)], dim=1)
    W_V = torch.eye(4)[:, :2].expand(3, 4, 2).clone()
    cos, sin = 0.5, 3**0.5 / 2
    small = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [0.0, -1.0]], [[cos, -sin], [sin, cos]]])
    W_O = torch.cat([small, torch.randn(3, 2, 2, generator=generator)], dim=-1)  # W_O @ W_V = small
    return W_E, W_V, W_O, W_U


def _check_copying_eigen_score(fn):
    W_E, W_V, W_O, W_U = _copying_circuits()
    expected = _reference_copying_eigen_score(W_E, W_V, W_O, W_U)  # [1, 1/3, 1/2]
    got = _expect_tensor(fn(W_E, W_V, W_O, W_U), "copying scores")
    if got.is_complex():
        raise Wrong("the scores are complex: eigenvalues of a non-symmetric matrix are complex; return the real part")
    if got.shape == (3,) and abs(float(got[1]) - 1.0) < 1e-4:
        raise Wrong(
            "eigenvalues 2 and -1 scored 1, not 1/3: divide by the sum of the magnitudes |lambda|, "
            "not by the magnitude of the sum"
        )
    if (
        got.shape == (3,)
        and torch.allclose(got[:2].double(), expected[:2].double(), atol=1e-4)
        and abs(float(got[2]) - 0.5) > 1e-4
    ):
        raise Wrong(
            f"a 60-degree rotation scored {float(got[2]):.3f}, not cos 60 = 0.5: its eigenvalues are complex; "
            "use torch.linalg.eigvals (eigvalsh assumes a symmetric matrix) and their magnitudes |lambda|"
        )
    assert_close(got, expected, "copying scores (heads: copy, eigenvalues 2 and -1, 60-degree rotation)")
    # Negating W_U turns copying into anti-copying: every score flips sign.
    flipped = _expect_tensor(fn(W_E, W_V, W_O, -W_U), "copying scores with -W_U")
    if _is_close(flipped, got.detach()):
        raise Wrong(
            "negating W_U did not change the scores: the full OV circuit is W_E W_V W_O W_U, "
            "embedding and unembedding included"
        )
    assert_close(flipped, -expected, "copying scores with W_U negated (anti-copying)")
    generator = torch.Generator().manual_seed(1)
    shapes = [(9, 5), (2, 5, 3), (2, 3, 5), (5, 9)]
    random = [torch.randn(*shape, generator=generator) for shape in shapes]
    assert_close(fn(*random), _reference_copying_eigen_score(*random), "copying scores of random weights", atol=1e-4)


copying_eigen_score = Exercise(
    "2.4", "Copying score of the OV circuit", reference=_reference_copying_eigen_score, check=_check_copying_eigen_score
)


# --------------------------------------------------------------------------------------
# 2.5 K-composition
# --------------------------------------------------------------------------------------


def _reference_k_composition_scores(
    W_OV_0: Float[Tensor, "head_index d_model d_model"], W_QK_1: Float[Tensor, "head_index d_model d_model"]
) -> Float[Tensor, "head_index head_index"]:
    return circuits.composition_score(W_OV_0, W_QK_1.transpose(-2, -1))


def _unit(i: int, j: int, d: int = 6) -> Tensor:
    """The rank-1 map e_i -> e_j of row vectors (x @ M): M = e_i^T e_j."""
    matrix = torch.zeros(d, d)
    matrix[i, j] = 1.0
    return matrix


def _check_k_composition_scores(fn):
    # Writers: head a reads direction a and writes direction 3 + a (x @ W_OV).
    W_OV_0 = torch.stack([_unit(0, 3), _unit(1, 4), _unit(2, 5)])
    # Readers: W_QK = e_q^T e_k: the query reads direction q, the key direction k.
    # Reader 0's key reads writer 1's output; reader 1's key reads writer 0's;
    # reader 2's query (not key) reads writer 2's.
    W_QK_1 = torch.stack([_unit(0, 4), _unit(1, 3), _unit(5, 0)])
    expected = _reference_k_composition_scores(W_OV_0, W_QK_1)  # [[0, 1, 0], [1, 0, 0], [0, 0, 0]]
    got = _expect_tensor(fn(W_OV_0, W_QK_1), "K-composition scores")
    if _is_close(got, circuits.composition_score(W_OV_0, W_QK_1)):
        raise Wrong(
            "that is Q-composition: the key side of W_QK = W_Q W_K^T is its columns, so use W_OV_0[a] @ W_QK_1[b].T"
        )
    generator = torch.Generator().manual_seed(0)
    ov, qk = torch.randn(3, 6, 6, generator=generator), torch.randn(3, 6, 6, generator=generator)
    reference = _reference_k_composition_scores(ov, qk)
    got_random = _expect_tensor(fn(ov, qk), "K-composition scores of random matrices")
    if _is_close(got_random, reference.T, atol=1e-4) and not _is_close(got_random, reference, atol=1e-4):
        raise Wrong("rows and columns swapped: row a is the layer-0 (writer) head, column b the layer-1 (reader) head")
    scaled = _expect_tensor(fn(3.0 * ov, 0.5 * qk), "K-composition scores of rescaled matrices")
    if not _is_close(scaled, got_random.detach(), atol=1e-4):
        raise Wrong(
            "rescaling W_OV by 3 and W_QK by 0.5 changed the scores: divide by both Frobenius norms, "
            "||W_OV_0[a]||_F ||W_QK_1[b]||_F"
        )
    backwards = torch.linalg.matrix_norm(qk.transpose(-2, -1)[None] @ ov[:, None])
    backwards = backwards / (ov.norm(dim=(-2, -1))[:, None] * qk.norm(dim=(-2, -1))[None])
    if _is_close(got_random, backwards, atol=1e-4):
        raise Wrong("product in the wrong order: the writer's output enters the reader, W_OV_0[a] @ W_QK_1[b].T")
    assert_close(got, expected, "K-composition of rank-1 heads (1 where a key reads what a writer writes)")
    assert_close(got_random, reference, "K-composition scores of random matrices", atol=1e-4)


k_composition_scores = Exercise(
    "2.5", "K-composition scores", reference=_reference_k_composition_scores, check=_check_k_composition_scores
)


# --------------------------------------------------------------------------------------
# 2.6 Head ablation hook
# --------------------------------------------------------------------------------------


def _reference_ablate_head_hook(
    z: Float[Tensor, "batch pos head_index d_head"], hook: HookPoint, head: int, kind: str = "zero"
) -> Float[Tensor, "batch pos head_index d_head"]:
    check_choice("kind", kind, circuits.ABLATIONS)
    if kind == "zero":
        return kernels.zero_head_hook(z, hook, head)
    ablate = torch.zeros(z.shape[0], z.shape[2], dtype=torch.bool)
    ablate[:, head] = True
    return circuits.replace_heads_hook(
        z, hook, ablate, z.mean(0)
    )  # the batch mean at each position, as ablation_values


def _check_ablate_head_hook(fn):
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(3, 5, 4, 2, generator=generator)  # batch 3, pos 5, head_index 4, d_head 2
    hook = HookPoint()
    other_heads, other_positions = torch.arange(4) != 1, torch.arange(5) != 1
    for kind in ("zero", "mean"):
        expected = _reference_ablate_head_hook(z, hook, 1, kind)
        what = f"ablating head 1 (kind={kind!r})"
        got = fn(z.clone(), hook, 1) if kind == "zero" else fn(z.clone(), hook, 1, kind="mean")
        if got is None:
            raise Wrong(f"{what}: the hook returned None; return the edited z")
        got = _expect_tensor(got, what)
        if got.shape != z.shape:
            raise Wrong(f"{what}: returned shape {tuple(got.shape)}; return the whole z, shape {tuple(z.shape)}")
        if torch.allclose(got[:, other_positions], z[:, other_positions]) and not torch.allclose(got[:, 1], z[:, 1]):
            raise Wrong(
                f"{what}: position 1 changed, not head 1: hook_z is [batch, pos, head_index, d_head], "
                "so the head is axis 2, z[:, :, head]"
            )
        if not torch.allclose(got[:, :, other_heads], z[:, :, other_heads]):
            raise Wrong(f"{what}: heads other than 1 changed; replace z[:, :, head] only")
        if kind == "mean":
            if torch.allclose(got[:, :, 1], torch.zeros(3, 5, 2)):
                raise Wrong("kind='mean' zeroed the head: replace it by its mean over the batch instead")
            over_pos = [z[:, :, 1].mean(dims, keepdim=True).expand(3, 5, 2) for dims in ((0, 1), (1,))]
            if any(torch.allclose(got[:, :, 1], value) for value in over_pos):
                raise Wrong(
                    "kind='mean' averaged over positions: average over the batch only (dim 0), one mean per position"
                )
        assert_close(got, expected, f"hook_z after {what}")
    # The last head of a single row (its batch mean is the row itself).
    one = z[:1].clone()
    for kind in ("zero", "mean"):
        assert_close(
            fn(one.clone(), hook, 3, kind=kind),
            _reference_ablate_head_hook(one, hook, 3, kind),
            f"hook_z of one row after ablating head 3 (kind={kind!r})",
        )


ablate_head_hook = Exercise(
    "2.6", "Head ablation hook", reference=_reference_ablate_head_hook, check=_check_ablate_head_hook
)
