"""Exercises of notebook 04 (sparse autoencoders): the SAE's pieces, and the numbers it is judged by.

    4.1 sae_forward          (x - b_dec) @ W_enc + b_enc -> activation -> codes @ W_dec + b_dec
    4.2 topk_activation      the k largest pre-activations of each row, ReLU'd, the rest 0
    4.3 explained_variance   1 - squared error / squared distance to the batch mean
    4.4 dead_and_dense_fractions fractions of latents that never fire / fire on more than dense_above of rows
    4.5 ce_loss_recovered    next-token loss clean, with the SAE spliced in, zero-ablated; the recovered share
    4.6 best_latent_f1       for each binary label, the latent whose firing (> 0) matches it with the best F1

Each check runs the student's function on tiny hand-made tensors whose answers are known
(a reconstruction off by exactly b_dec, a row with fewer than k positive pre-activations,
a latent firing on exactly dense_above of the rows, a dead latent...) and names the
mistake when the answer matches a plausible wrong formula. Exercise 4.5 uses a 1-layer
HookedTransformer of width 8 with weights drawn from a seeded generator (no global RNG).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp_helpers.checkers.core import Exercise, Wrong, assert_close
from interp_helpers.dictionaries import recovery
from interp_helpers.dictionaries import sae as sae_lib

# ------------------------------------------------------------------------------ helpers


def _same(got: Any, expected: Tensor, atol: float = 1e-5) -> bool:
    """Whether `got` is a tensor of `expected`'s shape and values (for spotting a known wrong formula)."""
    return (
        isinstance(got, Tensor)
        and tuple(got.shape) == tuple(expected.shape)
        and torch.allclose(got.detach().double(), expected.double(), atol=atol, rtol=1e-4, equal_nan=False)
    )


def _pair(got: Any, what: str) -> tuple[Any, Any]:
    if not isinstance(got, tuple | list) or len(got) != 2:
        raise Wrong(f"return a tuple {what}, got {type(got).__name__}")
    return got[0], got[1]


def _scalar(got: Any, what: str) -> Tensor:
    """A 0-d tensor (or a one-element one) as a 0-d tensor; anything else is Wrong."""
    if not isinstance(got, Tensor):
        raise Wrong(f"{what}: expected a 0-d torch.Tensor, got {type(got).__name__}")
    if got.numel() != 1:
        raise Wrong(f"{what}: expected one number (a 0-d tensor), got shape {tuple(got.shape)}")
    return got.reshape(())


# ----------------------------------------------------------------------- 4.1 forward pass


def _sae_forward(
    x: Float[Tensor, "batch d_in"],
    W_enc: Float[Tensor, "d_in d_sae"],
    b_enc: Float[Tensor, " d_sae"],
    W_dec: Float[Tensor, "d_sae d_in"],
    b_dec: Float[Tensor, " d_in"],
    activation: Callable[[Tensor], Tensor] = torch.relu,
) -> tuple[Float[Tensor, "batch d_sae"], Float[Tensor, "batch d_in"]]:
    """(codes, recon): codes = activation((x - b_dec) @ W_enc + b_enc), recon = codes @ W_dec + b_dec."""
    codes = activation((x - b_dec) @ W_enc + b_enc)
    return codes, codes @ W_dec + b_dec


def _forward_weights(d_in: int = 5, d_sae: int = 7, batch: int = 4) -> tuple[Tensor, ...]:
    g = torch.Generator().manual_seed(41)
    W_dec = torch.randn(d_sae, d_in, generator=g)
    W_dec /= W_dec.norm(dim=-1, keepdim=True)
    W_enc = torch.randn(d_in, d_sae, generator=g)  # not W_dec.T: a tied decoder would go unnoticed
    b_enc = 0.1 * torch.randn(d_sae, generator=g)
    b_dec = torch.randn(d_in, generator=g) + 2.0  # large, so forgetting it shows
    x = torch.randn(batch, d_in, generator=g) + 2.0
    return x, W_enc, b_enc, W_dec, b_dec


def _check_sae_forward(fn: Callable[..., Any]) -> None:
    x, W_enc, b_enc, W_dec, b_dec = _forward_weights()
    codes, recon = _pair(fn(x, W_enc, b_enc, W_dec, b_dec, torch.relu), "(codes, recon)")
    expected_codes, expected_recon = _sae_forward(x, W_enc, b_enc, W_dec, b_dec, torch.relu)
    if _same(codes, torch.relu(x @ W_enc + b_enc)):
        raise Wrong("the codes ignore b_dec: encode x - b_dec, i.e. (x - b_dec) @ W_enc + b_enc")
    if _same(codes, (x - b_dec) @ W_enc + b_enc):
        raise Wrong("some codes are negative: apply `activation` to the pre-activations")
    assert_close(codes, expected_codes, "codes of a ReLU SAE")
    if _same(recon, codes @ W_dec):
        raise Wrong("the reconstruction is off by b_dec: add b_dec back after decoding, codes @ W_dec + b_dec")
    if _same(recon, codes @ W_enc.T + b_dec):
        raise Wrong("decode with W_dec (codes @ W_dec), not with the encoder's transpose")
    assert_close(recon, expected_recon, "reconstruction of a ReLU SAE")
    # TopK with k = 2 (as the notebook passes): a hard-coded ReLU keeps more latents per row.
    top2 = functools.partial(_topk_activation, k=2)
    codes, recon = _pair(fn(x, W_enc, b_enc, W_dec, b_dec, top2), "(codes, recon)")
    if _same(codes, expected_codes):
        raise Wrong("the codes ignore the `activation` argument: apply activation(pre), not a fixed ReLU")
    expected_codes, expected_recon = _sae_forward(x, W_enc, b_enc, W_dec, b_dec, top2)
    assert_close(codes, expected_codes, "codes with activation = TopK, k = 2")
    assert_close(recon, expected_recon, "reconstruction with activation = TopK, k = 2")


# ------------------------------------------------------------------------------- 4.2 TopK


def _topk_activation(pre: Float[Tensor, "batch d_sae"], k: int) -> Float[Tensor, "batch d_sae"]:
    """ReLU of the k largest entries of each row of `pre`, every other entry 0 (as `SAE.encode`, topk)."""
    values, indices = pre.topk(k, dim=-1, sorted=False)
    return torch.zeros_like(pre).scatter(-1, indices, torch.relu(values))


def _check_topk_activation(fn: Callable[..., Any]) -> None:
    pre = torch.tensor(
        [
            [3.0, -1.0, 2.0, 0.5, -4.0],
            [-3.0, -2.0, -1.0, -0.5, 1.0],  # one positive entry only
            [0.2, 5.0, -6.0, 1.5, 0.1],
            [1.1, 0.3, 0.7, 2.0, 0.6],
        ]
    )  # all positive
    expected = torch.tensor(
        [[3.0, 0.0, 2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0], [0.0, 5.0, 0.0, 1.5, 0.0], [1.1, 0.0, 0.0, 2.0, 0.0]]
    )
    got = fn(pre.clone(), 2)
    no_relu = expected.clone()
    no_relu[1, 3] = -0.5
    if _same(got, no_relu):
        raise Wrong(
            "a code is negative: apply ReLU to the kept values (in a row with one positive "
            "pre-activation and k = 2, the second kept value is 0)"
        )
    per_column = torch.zeros_like(pre).scatter(0, pre.topk(2, dim=0).indices, torch.relu(pre.topk(2, dim=0).values))
    if _same(got, per_column):
        raise Wrong("kept the k largest of each column: TopK keeps the k largest latents of each row (dim=-1)")
    flat = torch.relu(pre).flatten()
    batch_topk = torch.zeros_like(flat).scatter(0, flat.topk(2 * 4).indices, flat.topk(2 * 4).values).view_as(pre)
    if _same(got, batch_topk):
        raise Wrong("that is BatchTopK (k x batch largest over the whole batch): keep k latents in every row")
    by_abs = pre.abs().topk(2, dim=-1).indices
    if _same(got, torch.zeros_like(pre).scatter(-1, by_abs, torch.relu(pre.gather(-1, by_abs)))):
        raise Wrong("kept the k largest |pre|: keep the k largest values (a large negative one is not active)")
    if isinstance(got, Tensor) and got.shape == pre.shape and bool(((got != 0).sum(-1) > 2).any()):
        raise Wrong("more than k latents are active in a row: keep only the k largest pre-activations of each row")
    assert_close(got, expected, "TopK codes of a 4 x 5 example with k = 2")
    g = torch.Generator().manual_seed(42)
    pre = torch.randn(6, 10, generator=g)
    for k in (1, 3, 10):  # k = d_sae keeps every positive entry: a plain ReLU
        assert_close(
            fn(pre.clone(), k), _topk_activation(pre, k), f"TopK codes of random 6 x 10 pre-activations, k = {k}"
        )


# --------------------------------------------------------------------- 4.3 explained variance


def _explained_variance(x: Float[Tensor, "batch d_in"], recon: Float[Tensor, "batch d_in"]) -> Float[Tensor, ""]:
    """1 - sum of squared errors / sum of squared distances to the batch mean (as `sae_lib.explained_variance`)."""
    return sae_lib.explained_variance(x, recon)


def _check_explained_variance(fn: Callable[..., Any]) -> None:
    g = torch.Generator().manual_seed(43)
    scale, offset = torch.tensor([1.0, 2.0, 0.5, 3.0]), torch.tensor([10.0, -5.0, 0.0, 3.0])
    x = torch.randn(8, 4, generator=g) * scale + offset  # dimensions of different means and variances
    perfect = _scalar(fn(x, x.clone()), "explained variance of a perfect reconstruction")
    if abs(perfect.item()) < 1e-4:
        raise Wrong("a perfect reconstruction scored 0: return the explained variance, 1 - the fraction unexplained")
    assert_close(perfect, torch.tensor(1.0), "explained variance of a perfect reconstruction")
    mean = x.mean(dim=0).expand_as(x).clone()
    at_mean = _scalar(fn(x, mean), "explained variance of predicting the batch mean")
    if abs(at_mean.item() - (1 - (x - mean).pow(2).sum() / x.pow(2).sum()).item()) < 1e-4:
        raise Wrong(
            "predicting the batch mean scored above 0: the variance is around the batch mean, "
            "sum of (x - x.mean(dim=0))^2, not around zero"
        )
    if abs(at_mean.item()) > 1e-4:
        raise Wrong(
            f"predicting the batch mean should score 0, got {at_mean.item():.4g}: divide by the sum over rows "
            "and dimensions of (x - x.mean(dim=0))^2 (each dimension's own mean, no n - 1)"
        )
    recon = x + torch.randn(8, 4, generator=g) * torch.tensor([0.1, 1.5, 0.4, 0.3])
    got = _scalar(fn(x, recon), "explained variance of a noisy reconstruction")
    err, centred = (recon - x).pow(2), (x - x.mean(dim=0)).pow(2)
    if abs(got.item() - (1 - (err.sum(0) / centred.sum(0)).mean()).item()) < 1e-4:
        raise Wrong("averaged one ratio per dimension: use one ratio, total squared error / total variance")
    if abs(got.item() - (1 - (err.sum(1) / centred.sum(1)).mean()).item()) < 1e-4:
        raise Wrong("averaged one ratio per row: use one ratio, total squared error / total variance")
    assert_close(got, _explained_variance(x, recon), "explained variance of a noisy reconstruction")


# ------------------------------------------------------------------ 4.4 dead and dense latents


def _dead_and_dense_fractions(
    codes: Float[Tensor, "batch d_sae"], dense_above: float = 0.1
) -> tuple[Float[Tensor, ""], Float[Tensor, ""]]:
    """(dead fraction, dense fraction) of the latents: never nonzero / nonzero on more than dense_above of rows."""
    dead, dense = sae_lib.dead_and_dense(sae_lib.feature_density(codes), dense_above=dense_above)
    return dead.float().mean(), dense.float().mean()


def _density_codes() -> Tensor:
    """10 rows x 6 latents: densities 0, 0.1, 0.8, 0.2, 0, 0.3; rows 2 and 9 have no active latent."""
    codes = torch.zeros(10, 6)
    codes[0, 1] = 0.7
    codes[:9, 2] = torch.linspace(0.5, 2.0, 9)
    codes[9, 2] = 0.0
    codes[2, 2] = 0.0  # latent 2 on 8 rows: still dense
    codes[[3, 6], 3] = torch.tensor([1.2, 0.4])
    codes[[1, 4, 8], 5] = torch.tensor([0.3, 2.5, 1.1])
    return codes


def _check_dead_and_dense_fractions(fn: Callable[..., Any]) -> None:
    codes = _density_codes()
    dead, dense = _pair(fn(codes.clone(), 0.1), "(dead_fraction, dense_fraction)")
    dead, dense = _scalar(dead, "dead fraction"), _scalar(dense, "dense fraction")
    if abs(dead.item() - 3 / 6) < 1e-6 and abs(dense.item() - 2 / 6) < 1e-6:
        raise Wrong("the two fractions are swapped: return (dead_fraction, dense_fraction)")
    if abs(dead.item() - 2) < 1e-6:
        raise Wrong("returned a count of dead latents: return the fraction of latents (divide by d_sae)")
    if abs(dead.item() - (codes == 0).all(dim=1).float().mean().item()) < 1e-6:
        raise Wrong("counted rows with no active latent: a dead latent is a column of codes that is 0 on every row")
    if abs(dead.item() - (codes == 0).float().mean().item()) < 1e-6:
        raise Wrong("that is the fraction of zero codes: a dead latent is a latent (column) that is 0 on every row")
    assert_close(dead, torch.tensor(2 / 6), "dead fraction of a 10 x 6 example with 2 dead latents")
    if abs(dense.item() - 4 / 6) < 1e-6:
        raise Wrong("a latent firing on exactly dense_above of the rows is not dense: use density > dense_above")
    assert_close(dense, torch.tensor(3 / 6), "dense fraction (density > 0.1) of the 10 x 6 example")
    _, dense_half = _pair(fn(codes.clone(), 0.5), "(dead_fraction, dense_fraction)")
    if _same(dense_half, dense):
        raise Wrong("the dense fraction ignores `dense_above`: dense means density > dense_above")
    assert_close(_scalar(dense_half, "dense fraction"), torch.tensor(1 / 6), "dense fraction with dense_above = 0.5")
    g = torch.Generator().manual_seed(44)
    codes = torch.relu(torch.randn(50, 12, generator=g) - 1.5)
    codes[:, [0, 7]] = 0.0
    for got, expected, what in zip(
        _pair(fn(codes.clone(), 0.1), "(dead_fraction, dense_fraction)"),
        _dead_and_dense_fractions(codes, 0.1),
        ("dead", "dense"),
    ):
        assert_close(_scalar(got, f"{what} fraction"), expected, f"{what} fraction of random 50 x 12 codes")


# ------------------------------------------------------------------- 4.5 CE loss recovered


def _ce_loss_recovered(
    model: HookedTransformer, sae: sae_lib.SAE, hook_name: str, tokens: Int[Tensor, "batch pos"]
) -> dict[str, float]:
    """{"clean", "spliced", "zero_ablated", "recovered"}: as `sae_lib.ce_loss_recovered`."""
    return sae_lib.ce_loss_recovered(model, sae, hook_name, tokens)


HOOK = "blocks.0.mlp.hook_post"


@functools.cache
def _tiny_model() -> HookedTransformer:
    """A 1-layer GELU transformer (d_model 8, d_mlp 16, vocab 12), weights from a seeded generator."""
    cfg = HookedTransformerConfig(
        n_layers=1,
        d_model=8,
        d_head=4,
        n_heads=2,
        d_mlp=16,
        d_vocab=12,
        n_ctx=8,
        act_fn="gelu",
        normalization_type="LN",
        init_weights=False,
        seed=None,
        device="cpu",
    )
    with warnings.catch_warnings():  # "HookedTransformer is deprecated": the workbook uses it throughout
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(cfg)  # init_weights=False: no global RNG is touched
    g = torch.Generator().manual_seed(45)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim >= 2 and "ln" not in name:  # weights; LayerNorm scales stay 1 and biases 0
                param.copy_(2.0 * torch.randn(param.shape, generator=g) / math.sqrt(param.shape[-2]))
    return model.eval()


def _tiny_sae(kind: str) -> sae_lib.SAE:
    """'perfect' reconstructs GELU outputs exactly, 'zero' reconstructs 0, 'random' is a random ReLU SAE."""
    d_sae = 32 if kind == "random" else 16
    sae = sae_lib.SAE(sae_lib.SAEConfig(d_in=16, d_sae=d_sae, architecture="relu"), torch.Generator().manual_seed(46))
    with torch.no_grad():
        if kind == "perfect":  # GELU > -0.17, so x + 1 > 0 and ReLU keeps it: codes = x + 1, recon = x
            sae.W_enc.copy_(torch.eye(16))
            sae.W_dec.copy_(torch.eye(16))
            sae.b_dec.fill_(-1.0)
        if kind == "zero":
            sae.W_dec.zero_()
    return sae.eval()


def _losses(got: Any) -> dict[str, float]:
    keys = ("clean", "spliced", "zero_ablated", "recovered")
    if not isinstance(got, dict) or not all(key in got for key in keys):
        raise Wrong("return a dict with keys 'clean', 'spliced', 'zero_ablated' and 'recovered'")
    if not all(isinstance(got[key], float) for key in keys):
        raise Wrong("return Python floats (.item() on each loss): the notebook formats and records them")
    return {key: got[key] for key in keys}


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-4 + 1e-4 * abs(b)


def _check_ce_loss_recovered(fn: Callable[..., Any]) -> None:
    model = _tiny_model()
    tokens = torch.randint(0, 12, (3, 8), generator=torch.Generator().manual_seed(47))
    sae = _tiny_sae("random")
    with torch.no_grad():
        try:
            got = _losses(fn(model, sae, HOOK, tokens))
        except ZeroDivisionError:
            raise Wrong(
                "division by zero: the zero-ablated loss equals the clean loss; the ablation hook must "
                "return torch.zeros_like(act)"
            ) from None
        expected = _ce_loss_recovered(model, sae, HOOK, tokens)
        logits = model(tokens)
    own_token = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens.flatten()).item()
    if _close(got["clean"], own_token):
        raise Wrong("the clean loss scores each position's own token: logits at position i predict tokens[:, i + 1]")
    if not _close(got["clean"], expected["clean"]):
        raise Wrong(
            f"clean loss: expected {expected['clean']:.4f}, got {got['clean']:.4f}: the mean next-token "
            "cross-entropy of the unhooked model"
        )
    if _close(got["zero_ablated"], expected["clean"]):
        raise Wrong(
            "the zero-ablated loss equals the clean loss: run with a hook at hook_name that returns "
            "torch.zeros_like(act)"
        )
    if _close(got["spliced"], expected["clean"]):
        raise Wrong(
            "the spliced loss equals the clean loss: the hook must return the SAE's reconstruction "
            "of act, sae.decode(sae.encode(act))"
        )
    for key in ("zero_ablated", "spliced"):
        if not _close(got[key], expected[key]):
            raise Wrong(f"{key} loss: expected {expected[key]:.4f}, got {got[key]:.4f}")
    if _close(got["recovered"], 1 - expected["recovered"]):
        raise Wrong("that is the fraction of loss lost: recovered = (zero_ablated - spliced) / (zero_ablated - clean)")
    if not _close(got["recovered"], expected["recovered"]):
        raise Wrong(
            f"recovered: expected {expected['recovered']:.4f}, got {got['recovered']:.4f}: "
            "(zero_ablated - spliced) / (zero_ablated - clean)"
        )
    for kind, target in (("perfect", 1.0), ("zero", 0.0)):
        with torch.no_grad():
            recovered = _losses(fn(model, _tiny_sae(kind), HOOK, tokens))["recovered"]
        if not _close(recovered, target):
            raise Wrong(
                f"an SAE that reconstructs {'exactly' if kind == 'perfect' else '0'} recovered "
                f"{recovered:.4f}, expected {target:.0f}"
            )


# ------------------------------------------------------------------------- 4.6 best F1


def _best_latent_f1(
    codes: Float[Tensor, "batch d_sae"], truth: Bool[Tensor, "batch label"]
) -> tuple[Float[Tensor, " label"], Int[Tensor, " label"]]:
    """For each label, the best F1 of "latent > 0" against it over latents, and that latent (lowest on ties).

    F1 = 2 TP / (rows fired + rows labelled), 0 when both are 0: `recovery.best_f1`'s f1 and best_unit.
    """
    table = recovery.best_f1(codes, truth)
    return table.f1, table.best_unit


def _f1_example() -> tuple[Tensor, Tensor]:
    """8 tokens, 4 latents, 3 labels; best F1: label 0 by latent 0 (1.0), label 1 by latent 1 (8/9), label 2: 0."""
    truth = torch.zeros(8, 3, dtype=torch.bool)
    truth[[0, 1], 0] = True
    truth[[2, 3, 4, 5], 1] = True
    truth[6, 2] = True  # no latent fires on token 6
    codes = torch.zeros(8, 4)
    codes[[0, 1], 0] = torch.tensor([2.0, 1.0])  # exactly label 0
    codes[[2, 3, 4, 5, 7], 1] = torch.tensor([0.5, 0.4, 0.6, 0.3, 0.2])  # label 1 and token 7: precision 0.8
    codes[[2, 3], 2] = torch.tensor([3.0, 3.0])  # half of label 1, strongly: precision 1, recall 0.5
    return codes, truth  # latent 3 never fires


def _variant_f1(codes: Tensor, truth: Tensor, kind: str) -> Tensor:
    """Best value over latents of a plausible wrong score."""
    fired = (codes >= 0 if kind == "geq" else codes > 0).float()
    weight = codes if kind == "soft" else fired
    target = truth.float()
    tp = weight.T @ target
    n_fired, support = weight.sum(0)[:, None], target.sum(0)
    if kind == "accuracy":
        score = (tp + (1 - fired).T @ (1 - target)) / codes.shape[0]
    elif kind == "precision":
        score = tp / n_fired.clamp(min=1)
    elif kind == "recall":
        score = tp / support.clamp(min=1)
    else:
        score = 2 * tp / (n_fired + support).clamp(min=1e-12)
    return score.max(dim=0).values


def _check_best_latent_f1(fn: Callable[..., Any]) -> None:
    codes, truth = _f1_example()
    f1, unit = _pair(fn(codes.clone(), truth.clone()), "(f1, unit)")
    if isinstance(f1, Tensor) and tuple(f1.shape) == (4,):
        raise Wrong("one F1 per latent: return one per label, the max over latents (dim 0 of the [d_sae, label] F1s)")
    if isinstance(f1, Tensor) and bool(f1.isnan().any()):
        raise Wrong(
            "an F1 is NaN: a latent that never fires (or a label it never hits) has F1 0; "
            "use 2 TP / (fired + positives)"
        )
    messages = {
        "accuracy": "that is accuracy, which a latent that never fires scores well on: use F1",
        "precision": "that is precision: F1 = 2 TP / (rows fired + rows labelled)",
        "recall": "that is recall: F1 = 2 TP / (rows fired + rows labelled)",
        "soft": "counted activation values: count rows, a latent fires where its code is > 0",
        "geq": "a latent whose code is 0 counted as firing: it fires where its code is > 0",
    }
    for kind, message in messages.items():
        if _same(f1, _variant_f1(codes, truth, kind)):
            raise Wrong(message)
    assert_close(f1, torch.tensor([1.0, 8 / 9, 0.0]), "best F1 per label of an 8-token example")
    if _same(unit, torch.tensor([0, 2, 0])):
        raise Wrong("label 1's best latent is the one with the best F1 (latent 1), not the best precision")
    assert_close(unit, torch.tensor([0, 1, 0]), "best latent per label (lowest index on ties)")
    if isinstance(unit, Tensor) and unit.is_floating_point():
        raise Wrong("return latent indices as an integer tensor (argmax over latents)")
    g = torch.Generator().manual_seed(48)
    codes = torch.relu(torch.randn(200, 12, generator=g) - 1.0)
    truth = torch.rand(200, 5, generator=g) < torch.tensor([0.05, 0.1, 0.2, 0.3, 0.5])
    f1, unit = _pair(fn(codes.clone(), truth.clone()), "(f1, unit)")
    expected_f1, expected_unit = _best_latent_f1(codes, truth)
    assert_close(f1, expected_f1, "best F1 per label of random codes")
    assert_close(unit, expected_unit, "best latent per label of random codes")


# ------------------------------------------------------------------------------ exercises

sae_forward = Exercise("4.1", "The SAE forward pass", reference=_sae_forward, check=_check_sae_forward)
topk_activation = Exercise("4.2", "TopK activation", reference=_topk_activation, check=_check_topk_activation)
explained_variance = Exercise(
    "4.3", "Explained variance", reference=_explained_variance, check=_check_explained_variance
)
dead_and_dense_fractions = Exercise(
    "4.4", "Dead and dense latents", reference=_dead_and_dense_fractions, check=_check_dead_and_dense_fractions
)
ce_loss_recovered = Exercise(
    "4.5", "Loss recovered by splicing the SAE in", reference=_ce_loss_recovered, check=_check_ce_loss_recovered
)
best_latent_f1 = Exercise(
    "4.6", "Best F1 of a label by a latent", reference=_best_latent_f1, check=_check_best_latent_f1
)
