"""Toy Models of Superposition (Elhage et al., 2022): data, models, batched training, analysis.

Every weight carries a leading `instance` axis, so one AdamW step trains hundreds of
independent models at once (one per density, importance and seed of a sweep). The
loss is summed over instances, so each instance gets exactly the gradient it would
get if trained alone; AdamW is elementwise, so the updates match too.

Shapes use the workbook's axis names: `batch`, `instance`, `feature`, `d_hidden`.
For the linear and ReLU-output models `d_hidden` is the bottleneck; for the
hidden-ReLU and abs models it is the number of ReLU neurons.
"""

import math
from dataclasses import dataclass
from typing import Callable, Literal

import einops
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

Kind = Literal["linear", "relu_output", "hidden_relu", "abs"]
KINDS: tuple[str, ...] = ("linear", "relu_output", "hidden_relu", "abs")
PHASES: tuple[str, ...] = ("not learned", "dedicated", "antipodal", "other")
REPRESENTED_NORM = 0.5  # ||W_i|| above this counts as "represented" (paper: features with norm ~1)


def _check(name: str, value: float, low: float, high: float, low_inclusive: bool = True) -> None:
    """ValueError naming the config field and its allowed range."""
    ok = (value >= low if low_inclusive else value > low) and value <= high
    if not ok:
        bracket = "[" if low_inclusive else "("
        raise ValueError(f"ToyModelConfig.{name}={value!r} is out of range; allowed: {bracket}{low}, {high}]")


@dataclass(frozen=True)
class ToyModelConfig:
    """Architecture and optimiser settings shared by every instance of a batched run.

    The defaults follow common replications (AdamW, batch 1024) but with a higher,
    cosine-decayed learning rate so that a few thousand steps suffice on a CPU.
    """

    n_features: int
    d_hidden: int
    n_instances: int = 1
    kind: Kind = "relu_output"
    steps: int = 3000
    batch_size: int = 1024
    lr: float = 1e-2
    weight_decay: float = 0.0  # AdamW decay; 0 keeps feature norms comparable with the paper
    cosine_decay: bool = True  # anneal lr to 0: cleaner final geometry in fewer steps
    eval_batch_size: int = 8192  # fresh batch for the final per-instance loss

    def __post_init__(self) -> None:
        _check("n_features", self.n_features, 1, 100_000)
        _check("d_hidden", self.d_hidden, 1, 100_000)
        _check("n_instances", self.n_instances, 1, 1_000_000)
        _check("steps", self.steps, 0, 10_000_000)
        _check("batch_size", self.batch_size, 1, 1_000_000)
        _check("lr", self.lr, 0.0, 10.0, low_inclusive=False)
        _check("weight_decay", self.weight_decay, 0.0, 10.0)
        _check("eval_batch_size", self.eval_batch_size, 1, 10_000_000)
        if self.kind not in KINDS:
            raise ValueError(f"ToyModelConfig.kind={self.kind!r} is not allowed; choose one of {list(KINDS)}")


# ---------------------------------------------------------------------------------- data


def generate_batch(
    feature_probability: Float[Tensor, "instance #feature"],
    batch_size: int,
    generator: torch.Generator,
    *,
    signed: bool = False,
    share_across_instances: bool = False,
) -> Float[Tensor, "batch instance feature"]:
    """Sparse synthetic features: 0 with probability S = 1 - p, else U[0,1] (U[-1,1] if signed).

    One uniform draw per entry does both jobs: u > 1 - p happens with probability p,
    and given that, (u - (1 - p)) / p is again U[0,1]. `share_across_instances` reuses
    the same draws for every instance (common random numbers), which makes final
    losses of different seeds at one grid point directly comparable.
    """
    n_instances, n_features = feature_probability.shape
    if share_across_instances:
        uniform = torch.rand(batch_size, 1, n_features, generator=generator)
    else:
        uniform = torch.rand(batch_size, n_instances, n_features, generator=generator)
    threshold = 1.0 - feature_probability
    scaled = (uniform - threshold) / feature_probability
    if signed:
        return torch.where(scaled > 0, 2.0 * scaled - 1.0, torch.zeros(()))
    return scaled.clamp(min=0.0)


# --------------------------------------------------------------------------------- model


class ToyModel(nn.Module):
    """`n_instances` independent toy models of one `kind`, stacked on a leading axis.

    linear:       x' = W^T W x + b
    relu_output:  x' = ReLU(W^T W x + b)
    hidden_relu:  h = ReLU(W_in x), x' = ReLU(W_out h + b)      (privileged hidden basis)
    abs:          same network as hidden_relu, trained on y = |x| with x in [-1, 1]
    """

    def __init__(self, cfg: ToyModelConfig, generator: torch.Generator) -> None:
        super().__init__()
        self.cfg = cfg
        std = math.sqrt(2.0 / (cfg.n_features + cfg.d_hidden))  # Xavier normal per instance
        shape_in = (cfg.n_instances, cfg.d_hidden, cfg.n_features)
        self.W_in = nn.Parameter(torch.randn(shape_in, generator=generator) * std)
        if self.untied:
            shape_out = (cfg.n_instances, cfg.n_features, cfg.d_hidden)
            self.W_out = nn.Parameter(torch.randn(shape_out, generator=generator) * std)
        self.b_final = nn.Parameter(torch.zeros(cfg.n_instances, cfg.n_features))

    @property
    def untied(self) -> bool:
        return self.cfg.kind in ("hidden_relu", "abs")

    @property
    def W(self) -> Float[Tensor, "instance d_hidden feature"]:
        """Feature directions in the hidden space (columns W_i), as in the paper."""
        return self.W_in

    def hidden(self, x: Float[Tensor, "batch instance feature"]) -> Float[Tensor, "batch instance d_hidden"]:
        h = einops.einsum(self.W_in, x, "instance d_hidden feature, batch instance feature -> batch instance d_hidden")
        return torch.relu(h) if self.untied else h

    def forward(self, x: Float[Tensor, "batch instance feature"]) -> Float[Tensor, "batch instance feature"]:
        h = self.hidden(x)
        W_out = self.W_out if self.untied else self.W_in.transpose(1, 2)
        out = einops.einsum(W_out, h, "instance feature d_hidden, batch instance d_hidden -> batch instance feature")
        out = out + self.b_final
        return out if self.cfg.kind == "linear" else torch.relu(out)


def per_instance_loss(
    model: ToyModel,
    x: Float[Tensor, "batch instance feature"],
    importance: Float[Tensor, "instance #feature"],
) -> Float[Tensor, " instance"]:
    """Importance-weighted MSE, mean over batch and features; target is |x| for `abs`."""
    target = x.abs() if model.cfg.kind == "abs" else x
    sq_err = (model(x) - target).pow(2) * importance
    return einops.reduce(sq_err, "batch instance feature -> instance", "mean")


BatchSource = Callable[[int], Float[Tensor, "batch instance feature"]]


def train(
    model: ToyModel,
    feature_probability: Float[Tensor, "instance #feature"],
    importance: Float[Tensor, "instance #feature"],
    generator: torch.Generator,
    *,
    progress: bool = False,
    batch_source: BatchSource | None = None,
) -> Float[Tensor, " instance"]:
    """Train every instance in one AdamW loop; return each instance's final loss.

    The final loss is measured on a fresh batch that all instances share
    (common random numbers), so "keep the best seed" compares like with like.
    `batch_source(step)` replaces the generated data (used by the tests).
    """
    cfg = model.cfg
    signed = cfg.kind == "abs"
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = range(cfg.steps)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc=f"training {cfg.n_instances} x {cfg.kind}", leave=False)
    with torch.enable_grad():
        for step in steps:
            if cfg.cosine_decay:
                for group in optimizer.param_groups:
                    group["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
            if batch_source is None:
                x = generate_batch(feature_probability, cfg.batch_size, generator, signed=signed)
            else:
                x = batch_source(step)
            loss = per_instance_loss(model, x, importance).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return evaluate(model, feature_probability, importance, generator)


@torch.no_grad()
def evaluate(
    model: ToyModel,
    feature_probability: Float[Tensor, "instance #feature"],
    importance: Float[Tensor, "instance #feature"],
    generator: torch.Generator,
) -> Float[Tensor, " instance"]:
    """Per-instance loss on one fresh batch shared by all instances."""
    x = generate_batch(
        feature_probability,
        model.cfg.eval_batch_size,
        generator,
        signed=model.cfg.kind == "abs",
        share_across_instances=True,
    )
    return per_instance_loss(model, x, importance)


def train_toy_models(
    cfg: ToyModelConfig,
    feature_probability: Float[Tensor, "instance #feature"],
    importance: Float[Tensor, "instance #feature"],
    generator: torch.Generator,
    *,
    progress: bool = False,
) -> tuple[ToyModel, Float[Tensor, " instance"]]:
    """Build `cfg.n_instances` models from `generator`, train them together, return (model, loss)."""
    model = ToyModel(cfg, generator)
    loss = train(model, feature_probability, importance, generator, progress=progress)
    return model, loss


def importance_decay(
    n_features: int, decay: Float[Tensor, " instance"] | float, n_instances: int = 1
) -> Float[Tensor, "instance feature"]:
    """I_i = decay**i (i = 0..n-1), one row per instance; a float decay is shared by all."""
    decay = torch.as_tensor(decay, dtype=torch.float32).reshape(-1, 1).expand(n_instances, 1)
    return decay ** torch.arange(n_features, dtype=torch.float32)


def log_grid(start: float, stop: float, n: int) -> Float[Tensor, " point"]:
    """n points from start to stop, evenly spaced in log (both ends included)."""
    return torch.logspace(math.log10(start), math.log10(stop), n)


# ------------------------------------------------------------------------------ analysis


def feature_norms(W: Float[Tensor, "*instance d_hidden feature"]) -> Float[Tensor, "*instance feature"]:
    """||W_i||: how strongly each feature is embedded (1 = fully represented)."""
    return W.norm(dim=-2)


def features_represented(
    W: Float[Tensor, "*instance d_hidden feature"], threshold: float = REPRESENTED_NORM
) -> Int[Tensor, "*instance"]:
    """Number of features with ||W_i|| > threshold (paper's represented features have norm ~1)."""
    return (feature_norms(W) > threshold).sum(dim=-1)


def _unit(W: Float[Tensor, "*instance d_hidden feature"]) -> Float[Tensor, "*instance d_hidden feature"]:
    return W / feature_norms(W).unsqueeze(-2).clamp(min=1e-8)


def interference(W: Float[Tensor, "*instance d_hidden feature"]) -> Float[Tensor, "*instance feature"]:
    """sum_{j != i} (W_i_hat . W_j)^2: how much other features leak into feature i's direction.

    This is the paper's "superposition" colour in the 20 -> 5 bar charts: 0 when
    feature i has a dimension to itself.
    """
    overlaps = einops.einsum(_unit(W), W, "... d_hidden fi, ... d_hidden fj -> ... fi fj").pow(2)
    return overlaps.sum(-1) - overlaps.diagonal(dim1=-2, dim2=-1)


def dimensions_per_feature(W: Float[Tensor, "*instance d_hidden feature"]) -> Float[Tensor, "*instance"]:
    """D* = m / ||W||_F^2 (paper's "dimensions per feature"): 1 dense, 1/2 when features pair up."""
    m = W.shape[-2]
    return m / W.pow(2).sum(dim=(-2, -1))


def feature_dimensionality(W: Float[Tensor, "*instance d_hidden feature"]) -> Float[Tensor, "*instance feature"]:
    """D_i = ||W_i||^2 / sum_j (W_i_hat . W_j)^2: the share of a dimension feature i owns.

    Regular geometries give D_i = 1 (own dimension), 3/4 tetrahedron, 2/3 triangle,
    1/2 antipodal pair, 2/5 pentagon, 3/8 square antiprism; unrepresented features ~0.
    """
    overlaps = einops.einsum(_unit(W), W, "... d_hidden fi, ... d_hidden fj -> ... fi fj").pow(2)
    return feature_norms(W).pow(2) / overlaps.sum(-1).clamp(min=1e-12)


def represented_angles(W: Float[Tensor, "d_hidden feature"], threshold: float = REPRESENTED_NORM) -> Float[Tensor, " k"]:
    """Angles (degrees) between neighbouring represented directions of a 2-D embedding, summing to 360.

    For a regular pentagon every gap is 72; for an orthogonal pair 90 and 270.
    """
    if W.shape[0] != 2:
        raise ValueError(f"represented_angles needs a 2-D hidden space, got d_hidden={W.shape[0]}")
    keep = feature_norms(W) > threshold
    if keep.sum() == 0:
        return torch.zeros(0)
    theta = torch.rad2deg(torch.atan2(W[1, keep], W[0, keep])).sort().values
    gaps = torch.diff(torch.cat([theta, theta[:1] + 360.0]))
    return gaps


def pairwise_angles(W: Float[Tensor, "d_hidden feature"], threshold: float = REPRESENTED_NORM) -> Float[Tensor, "k k"]:
    """Angles (degrees) between every pair of represented feature directions."""
    keep = feature_norms(W) > threshold
    unit = _unit(W[:, keep])
    cos = einops.einsum(unit, unit, "d_hidden fi, d_hidden fj -> fi fj").clamp(-1.0, 1.0)
    return torch.rad2deg(torch.arccos(cos))


def best_instance(
    loss: Float[Tensor, " instance"], n_seeds: int
) -> Int[Tensor, " point"]:
    """Index of the lowest-loss seed at each grid point (instances laid out point-major, seed-minor).

    The paper trains several models per point and keeps the best: optimisation
    sometimes lands in a worse local minimum, which would otherwise speckle the figure.
    """
    per_point = einops.rearrange(loss, "(point seed) -> point seed", seed=n_seeds)
    return per_point.argmin(dim=-1) + n_seeds * torch.arange(per_point.shape[0])


def classify_phase(
    W: Float[Tensor, "*instance d_hidden feature"], threshold: float = REPRESENTED_NORM
) -> Int[Tensor, "*instance"]:
    """Phase of a 2 -> 1 model as an index into PHASES.

    0 not learned  W ~ [1, 0]   only the important feature is embedded
    1 dedicated    W ~ [0, 1]   the extra feature takes the only dimension
    2 antipodal    W ~ [1, -1]  both embedded, pointing opposite ways (superposition)
    3 other        anything else (nothing learned, or same-sign overlap)
    """
    if W.shape[-1] != 2:
        raise ValueError(f"classify_phase needs exactly 2 features, got {W.shape[-1]}")
    norms = feature_norms(W)
    on = norms > threshold
    cos = einops.einsum(_unit(W)[..., 0], _unit(W)[..., 1], "... d_hidden, ... d_hidden -> ...")
    phase = torch.full(norms.shape[:-1], 3, dtype=torch.long)
    phase[on[..., 0] & ~on[..., 1]] = 0
    phase[~on[..., 0] & on[..., 1]] = 1
    phase[on[..., 0] & on[..., 1] & (cos < -0.5)] = 2
    return phase


def neuron_features(
    W_in: Float[Tensor, "*instance d_hidden feature"], relative: float = 0.5, minimum: float = 0.2
) -> Bool[Tensor, "*instance d_hidden feature"]:
    """Which features drive each ReLU neuron.

    Neuron n responds to feature i when its input weight W_in[n, i] is positive, above
    `minimum`, and at least `relative` x the neuron's largest weight. Negative weights
    only keep the neuron off, so they do not count.
    """
    strongest = W_in.max(dim=-1, keepdim=True).values
    return (W_in > minimum) & (W_in >= relative * strongest)


def polysemanticity(
    W_in: Float[Tensor, "*instance d_hidden feature"], relative: float = 0.5, minimum: float = 0.2
) -> Int[Tensor, "*instance d_hidden"]:
    """Number of features each hidden neuron responds to: 1 monosemantic, >= 2 polysemantic."""
    return neuron_features(W_in, relative, minimum).sum(dim=-1)
