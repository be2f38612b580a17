"""Matryoshka SAEs: config checks, the nested-prefix loss, training, and the absorption metric."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from interp_helpers.dictionaries import matryoshka as M
from interp_helpers.dictionaries import sae as S

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def sae_cfg(architecture: str = "topk", d_in: int = 8, d_sae: int = 32, **overrides) -> S.SAEConfig:
    return S.SAEConfig(d_in=d_in, d_sae=d_sae, architecture=architecture, **{"k": 4} | overrides)


def hierarchy(n_parents: int = 4, n_children: int = 3, d_in: int = 16, p: float = 0.25, q: float = 0.75, seed: int = 0):
    """Parent and child unit directions and a sampler of [batch, d_in] rows with their labels.

    Each parent is active with probability p; an active parent has, with probability q,
    exactly one of its children active too (children are mutually exclusive, and a child is
    never active without its parent). x = sum of active directions with magnitudes in [0.75, 1.25].
    Returns parent_dirs [parent, d_in], child_dirs [parent, child, d_in] and
    sample(batch, generator) -> (x, parent [batch, parent], child [batch, parent, child]).
    """
    g = gen(seed)
    dirs = torch.randn(n_parents * (1 + n_children), d_in, generator=g)
    dirs /= dirs.norm(dim=-1, keepdim=True)
    parent_dirs, child_dirs = dirs[:n_parents], dirs[n_parents:].reshape(n_parents, n_children, d_in)

    def sample(batch: int, g: torch.Generator):
        parent = torch.rand(batch, n_parents, generator=g) < p
        has_child = parent & (torch.rand(batch, n_parents, generator=g) < q)
        which = torch.randint(0, n_children, (batch, n_parents), generator=g)
        child = torch.nn.functional.one_hot(which, n_children).bool() & has_child[..., None]
        parent_mag = torch.rand(batch, n_parents, generator=g) * 0.5 + 0.75
        child_mag = torch.rand(batch, n_parents, n_children, generator=g) * 0.5 + 0.75
        x = (parent_mag * parent) @ parent_dirs + torch.einsum("bpc,pcd->bd", child_mag * child, child_dirs)
        return x, parent, child

    return parent_dirs, child_dirs, sample


def stream(sample, batch: int, seed: int):
    g = gen(seed)
    while True:
        yield sample(batch, g)[0]


def mean_absorption(sae: S.SAE, parent_dirs, child_dirs, sample, first: int | None = None) -> dict[str, float]:
    """absorption() averaged over parents, on held-out rows.

    The parent latent is the one (among the first `first`, if given) whose decoder row is
    closest to the parent direction; its child latents the closest to each child direction.
    """
    x, parent, child = sample(4096, gen(12345))
    codes = sae.encode(x).detach()
    among = torch.arange(first) if first is not None else None
    rows = []
    for i in range(parent_dirs.shape[0]):
        parent_latent = M.closest_latents(sae.W_dec, parent_dirs[i : i + 1], among)[0]
        others = torch.tensor([j for j in range(sae.cfg.d_sae) if j != parent_latent])
        child_latents = M.closest_latents(sae.W_dec, child_dirs[i], others)
        rows.append(M.absorption(codes[:, parent_latent], codes[:, child_latents], parent[:, i], child[:, i].any(-1)))
    return {key: sum(row[key] for row in rows) / len(rows) for key in ("parent_fires", "absorbed", "missed")}


# ---------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"prefixes": ()}, r"MatryoshkaConfig.prefixes=\(\) is empty"),
        ({"prefixes": (0, 32)}, r"MatryoshkaConfig.prefixes\[0\]=0 is out of range; allowed: \[1, 32\]"),
        ({"prefixes": (8, 8, 32)}, r"MatryoshkaConfig.prefixes\[1\]=8 is out of range; allowed: \[9, 32\]"),
        ({"prefixes": (16, 8, 32)}, r"MatryoshkaConfig.prefixes\[1\]=8 is out of range"),
        ({"prefixes": (8, 40)}, r"MatryoshkaConfig.prefixes\[1\]=40 is out of range; allowed: \[9, 32\]"),
        ({"prefixes": (8, 16)}, r"MatryoshkaConfig.prefixes=\(8, 16\) must end at d_sae=32"),
        ({"reduction": "median"}, r"MatryoshkaConfig.reduction='median' is not allowed"),
        (
            {"sae": sae_cfg("relu")},
            r"MatryoshkaConfig.sae.architecture='relu' is not allowed; choose one of \['topk', 'batchtopk'\]",
        ),
    ],
)
def test_config_rejects_bad_values_naming_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        M.MatryoshkaConfig(**{"sae": sae_cfg(), "prefixes": (8, 32)} | overrides)


def test_config_types_and_doubling_prefixes():
    cfg = M.MatryoshkaConfig(sae_cfg(), (4, 16, 32))
    assert cfg.prefixes == (4, 16, 32) and cfg.reduction == "sum"
    assert M.doubling_prefixes(4, 32) == (4, 8, 16, 32)
    assert M.doubling_prefixes(5, 32) == (5, 10, 20, 32)
    assert M.doubling_prefixes(32, 32) == (32,)
    M.MatryoshkaConfig(sae_cfg(), M.doubling_prefixes(3, 32))
    # A TypeError either way: from the runtime type checks under pytest, from __post_init__ without them.
    for bad in (
        {"sae": {"d_in": 8}, "prefixes": (32,)},
        {"sae": sae_cfg(), "prefixes": [8, 32]},
        {"sae": sae_cfg(), "prefixes": (8, 2.5, 32)},
    ):
        with pytest.raises(TypeError, match="sae|prefixes"):
            M.MatryoshkaConfig(**bad)


# ---------------------------------------------------------------------------------- loss


@pytest.mark.parametrize("architecture", M.ARCHITECTURES)
def test_one_prefix_is_the_plain_topk_loss(architecture):
    sae = S.SAE(sae_cfg(architecture, dead_tokens=10, aux_k=4))
    sae.tokens_since_fired[::3] = 10  # some dead latents, so the AuxK term is in both losses
    x = torch.randn(16, 8, generator=gen()) * 2
    matry = M.matryoshka_forward(sae, x, (32,))
    # train_sae's path (sparse decoding for topk) to 1e-6; the dense decode sums in another order.
    for plain, rtol in ((sae(x, sparse=architecture == "topk"), 0.0), (sae(x), 1e-6)):
        assert plain.aux.item() > 0
        for name in ("recon", "fired", "l0", "mse", "aux", "loss"):
            torch.testing.assert_close(getattr(matry, name), getattr(plain, name), atol=1e-6, rtol=rtol)
        torch.testing.assert_close(matry.prefix_mse, plain.mse[None], atol=1e-6, rtol=rtol)


@pytest.mark.parametrize("architecture", M.ARCHITECTURES)
def test_one_prefix_trains_exactly_like_train_sae(architecture):
    sae_config = sae_cfg(architecture, d_in=16, d_sae=48, k=3, steps=25, lr=1e-2, dead_tokens=64, warmup_steps=5)
    _, _, sample = hierarchy()
    plain, plain_history = S.train_sae(sae_config, stream(sample, 32, 1), progress=False, log_every=5)
    matry, matry_history = M.train_matryoshka(
        M.MatryoshkaConfig(sae_config, (48,)), stream(sample, 32, 1), progress=False, log_every=5
    )
    for name, tensor in plain.state_dict().items():
        torch.testing.assert_close(matry.state_dict()[name], tensor, atol=1e-6, rtol=0)
    assert [row["step"] for row in matry_history] == [row["step"] for row in plain_history]
    for a, b in zip(matry_history, plain_history):
        assert a == pytest.approx(b, abs=1e-5)


@pytest.mark.parametrize("architecture", M.ARCHITECTURES)
@pytest.mark.parametrize("reduction", M.REDUCTIONS)
def test_prefix_losses_match_the_definition(architecture, reduction):
    sae = S.SAE(sae_cfg(architecture, k=6))
    x = torch.randn(10, 8, generator=gen(2)) * 2
    prefixes = (4, 12, 32)
    out = M.matryoshka_forward(sae, x, prefixes, reduction)
    codes = sae.encode(x)  # same mode and batch, so the same selection
    W_dec, b_dec = sae.W_dec, sae.b_dec
    expected = torch.stack([(codes[:, :m] @ W_dec[:m] + b_dec - x).pow(2).sum(-1).mean() for m in prefixes])
    torch.testing.assert_close(out.prefix_mse, expected, atol=1e-5, rtol=1e-5)
    assert out.aux.item() == 0.0  # nothing dead yet
    torch.testing.assert_close(
        out.loss, expected.sum() if reduction == "sum" else expected.mean(), atol=1e-5, rtol=1e-5
    )
    # Every latent of the first prefix is in all three terms; gradients reach the later ones too.
    out.loss.backward()
    assert sae.W_dec.grad[12:].abs().sum() > 0


def test_forward_rejects_bad_prefixes_and_architectures():
    sae = S.SAE(sae_cfg())
    x = torch.randn(3, 8, generator=gen())
    for prefixes in ((8, 16), (16, 8, 32), ()):
        with pytest.raises(ValueError, match="must increase strictly and end at d_sae=32"):
            M.matryoshka_forward(sae, x, prefixes)
    with pytest.raises(ValueError, match="needs architecture in"):
        M.matryoshka_forward(S.SAE(sae_cfg("relu")), x, (32,))


# ------------------------------------------------------------------------------ training


def test_train_matryoshka_is_deterministic_and_returns_a_plain_sae(tmp_path):
    _, _, sample = hierarchy()

    def run():
        cfg = M.MatryoshkaConfig(
            sae_cfg(d_in=16, d_sae=48, k=3, steps=30, lr=1e-2, dead_tokens=64, seed=4), (4, 16, 48)
        )
        return M.train_matryoshka(cfg, stream(sample, 64, 3), progress=False, log_every=10)

    (a, history_a), (b, history_b) = run(), run()
    for name, tensor in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[name], tensor, rtol=0, atol=0)
    assert history_a == history_b and [row["step"] for row in history_a] == [0, 10, 20, 29]
    assert all(set(row) == {"step", "loss", "mse", "explained_variance", "l0", "dead_fraction"} for row in history_a)
    assert history_a[-1]["loss"] > history_a[-1]["mse"]  # the sum over prefixes includes the full mse
    assert isinstance(a, S.SAE) and not a.training
    torch.testing.assert_close(a.W_dec.norm(dim=-1), torch.ones(48))
    x = sample(256, gen(9))[0]
    assert S.evaluate(a, x)["l0"] <= 3
    S.save_sae(a, a.cfg, tmp_path)
    torch.testing.assert_close(S.load_sae(tmp_path)(x).recon, a(x).recon)


def test_train_matryoshka_needs_batches():
    with pytest.raises(ValueError, match="got no batches"):
        M.train_matryoshka(M.MatryoshkaConfig(sae_cfg(), (32,)), iter([]), progress=False)


def test_matryoshka_keeps_the_parent_latent_where_topk_absorbs_it():
    """On hierarchical data a plain TopK SAE lets child latents absorb the parent; Matryoshka less so.

    k=3 is below what some rows need (up to 8 active features, 1.75 on average), so merging
    parent and child into one latent pays for a plain SAE. One seed is not enough: until issue
    #18 the SAE's init drew randn(16, 16) from manual_seed(seed), the very draw `hierarchy`
    makes for its directions, so every latent started on a true direction (the parents in
    Matryoshka's first prefix) and each seed looked clean. From a hashed init stream, seeds
    0-29 give plain absorbed 0.18-0.57, parent_fires 0.42-0.81; Matryoshka absorbed
    0.08-0.38, parent_fires 0.56-0.92, and on a few seeds Matryoshka is the worse of the two.
    Means over blocks of 8 seeds (0-7, 8-15, 16-23): plain absorbed 0.38-0.42, parent_fires
    0.55-0.59; Matryoshka 0.18-0.25 and 0.73-0.80. The asserts are on the mean of seeds 0-7.
    """
    n_parents, plain_rows, matry_rows = 4, [], []
    for seed in range(8):
        parent_dirs, child_dirs, sample = hierarchy(n_parents=n_parents, n_children=3, d_in=16, seed=seed)
        sae_config = S.SAEConfig(
            d_in=16, d_sae=16, architecture="topk", k=3, lr=3e-3, steps=400, seed=seed, dead_tokens=20_000
        )
        plain, _ = S.train_sae(sae_config, stream(sample, 128, seed), progress=False)
        matry, history = M.train_matryoshka(
            M.MatryoshkaConfig(sae_config, (n_parents, 16)), stream(sample, 128, seed), progress=False
        )
        plain_rows.append(mean_absorption(plain, parent_dirs, child_dirs, sample))
        matry_rows.append(mean_absorption(matry, parent_dirs, child_dirs, sample, first=n_parents))
        assert history[-1]["explained_variance"] >= 0.8  # it still reconstructs
        torch.testing.assert_close(matry.W_dec.norm(dim=-1), torch.ones(16))
    plain_mean = {key: sum(r[key] for r in plain_rows) / 8 for key in ("absorbed", "parent_fires")}
    matry_mean = {key: sum(r[key] for r in matry_rows) / 8 for key in ("absorbed", "parent_fires")}
    assert matry_mean["parent_fires"] >= 0.65 and matry_mean["absorbed"] <= 0.3, matry_mean
    assert plain_mean["absorbed"] >= matry_mean["absorbed"] + 0.1, (plain_mean, matry_mean)
    assert plain_mean["parent_fires"] <= matry_mean["parent_fires"] - 0.1, (plain_mean, matry_mean)


# ---------------------------------------------------------------------------- absorption


def test_absorption_on_hand_made_codes():
    parent_codes = torch.tensor([1.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0])
    child_codes = torch.tensor([[0.0, 1.0], [3.0, 0.0], [0.0, 0.5], [0.0, 0.0], [0.0, 0.0], [5.0, 0.0], [0.0, 0.0]])
    parent_truth = torch.tensor([True, True, True, True, True, True, False])
    child_truth = torch.tensor(
        [True, True, True, True, False, False, True]
    )  # token 6: child without parent, not counted
    result = M.absorption(parent_codes, child_codes, parent_truth, child_truth)
    # Tokens 0-3 count: parent fires on 0; 1 and 2 absorbed; 3 missed. 4 and 5 have no child label.
    assert result == {"n": 4, "parent_fires": 0.25, "absorbed": 0.5, "missed": 0.25}


def test_absorption_with_no_child_tokens_is_nan():
    result = M.absorption(
        torch.ones(3), torch.ones(3, 2), torch.ones(3, dtype=torch.bool), torch.zeros(3, dtype=torch.bool)
    )
    assert result["n"] == 0 and all(math.isnan(result[key]) for key in ("parent_fires", "absorbed", "missed"))


def test_absorption_rejects_mismatched_shapes():
    truth = torch.ones(3, dtype=torch.bool)
    # Under pytest jaxtyping rejects the shapes first (a TypeError); without it absorption's own ValueError does.
    with pytest.raises((ValueError, TypeError)):
        M.absorption(torch.ones(3), torch.ones(4, 2), truth, truth)
    with pytest.raises((ValueError, TypeError)):
        M.absorption(torch.ones(3), torch.ones(3, 2), truth, torch.ones(2, dtype=torch.bool))


def test_closest_latents():
    W_dec = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.6, 0.8]])
    directions = torch.tensor([[3.0, 0.0], [0.5, 0.5]])
    assert M.closest_latents(W_dec, directions).tolist() == [0, 2]
    assert M.closest_latents(W_dec, directions, among=torch.tensor([1, 2])).tolist() == [2, 2]


def test_dataclass_replace_revalidates():
    cfg = M.MatryoshkaConfig(sae_cfg(), (8, 32))
    with pytest.raises(ValueError, match="must end at d_sae=64"):
        dataclasses.replace(cfg, sae=sae_cfg(d_sae=64))
