"""Toy Models of Superposition (Elhage et al., 2022): data, models, batched training, analysis.

Every weight carries a leading `instance` axis, so one AdamW step trains hundreds of
independent models at once (one per density, importance and seed of a sweep). The
loss is summed over instances, so each instance gets exactly the gradient it would
get if trained alone; AdamW is elementwise, so the updates match too.

Shapes use the workbook's axis names: `instance`, `feature`, `d_hidden`, `batch`,
plus `point` (one setting of a sweep) and `seed` (repeats of a setting). For the
linear and ReLU-output models `d_hidden` is the bottleneck; for the hidden-ReLU and
abs models it is the number of ReLU neurons.

Randomness only comes from the `torch.Generator` passed in: same generator seed,
same models.
"""

import dataclasses
import math
from dataclasses import dataclass

import einops
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

from interp_helpers.core.validation import check_range, torch_threads

KINDS: tuple[str, ...] = ("linear", "relu_output", "hidden_relu", "abs")
PHASES: tuple[str, ...] = ("not learned", "dedicated", "antipodal", "other")
REPRESENTED_NORM = 0.5  # ||W_i|| above this counts as "represented" (paper: features with norm ~1)


@dataclass(frozen=True)
class ToyModelConfig:
    """Architecture and optimiser settings shared by every instance of a batched run.

    The defaults follow common replications (AdamW, batch 1024) but with a 10x higher,
    cosine-decayed learning rate so that 2,000 steps replace their 10,000 on a CPU.
    """

    n_features: int
    d_hidden: int
    n_instances: int = 1
    kind: str = "relu_output"  # one of KINDS
    steps: int = 2000
    batch_size: int = 1024
    lr: float = 1e-2
    weight_decay: float = 0.0  # AdamW decay; 0 keeps feature norms comparable with the paper
    cosine_decay: bool = True  # anneal lr to 0: cleaner final geometry in fewer steps
    eval_batch_size: int = 8192  # fresh batch for the final per-instance loss
    threads: int | None = 1  # torch threads while training; None keeps torch's setting (see `train`)

    def __post_init__(self) -> None:
        check_range("ToyModelConfig.n_features", self.n_features, 1, 100_000)
        check_range("ToyModelConfig.d_hidden", self.d_hidden, 1, 100_000)
        check_range("ToyModelConfig.n_instances", self.n_instances, 1, 1_000_000)
        check_range("ToyModelConfig.steps", self.steps, 0, 10_000_000)
        check_range("ToyModelConfig.batch_size", self.batch_size, 1, 1_000_000)
        check_range("ToyModelConfig.lr", self.lr, 0.0, 10.0, low_inclusive=False)
        check_range("ToyModelConfig.weight_decay", self.weight_decay, 0.0, 10.0)
        check_range("ToyModelConfig.eval_batch_size", self.eval_batch_size, 1, 10_000_000)
        if self.threads is not None:
            check_range("ToyModelConfig.threads", self.threads, 1, 1024)
        if self.kind not in KINDS:
            raise ValueError(f"ToyModelConfig.kind={self.kind!r} is not allowed; choose one of {list(KINDS)}")


# ---------------------------------------------------------------------------------- data


def generate_batch(
    feature_probability: Float[Tensor, "instance feature"],
    batch_size: int,
    generator: torch.Generator,
    *,
    signed: bool = False,
) -> Float[Tensor, "instance feature batch"]:
    """Sparse synthetic features: 0 with probability S = 1 - p, else U[0,1] (U[-1,1] if signed).

    One uniform draw per (feature, example) does both jobs: u > 1 - p happens with
    probability p, and given that, (u - (1 - p)) / p is again U[0,1]. The draws are
    shared by all instances, each thresholding them at its own density: every
    instance still sees i.i.d. data with its own distribution, the random-number
    cost does not grow with the number of instances, and an instance trained alone
    with the same generator sees exactly the data it saw in the batch.

    The batch axis is last so that per-(instance, feature) broadcasts vectorise
    even when there are only two features.
    """
    n_features = feature_probability.shape[-1]
    uniform = torch.rand(1, n_features, batch_size, generator=generator)
    p = feature_probability.unsqueeze(-1)
    scaled = (uniform - (1.0 - p)).div_(p)  # > 0 exactly when the feature is active
    if signed:
        active = scaled > 0
        return scaled.mul_(2.0).sub_(1.0).mul_(active)
    return scaled.clamp_(min=0.0)


# --------------------------------------------------------------------------------- model


class ToyModel(nn.Module):
    """`n_instances` independent toy models of one `kind`, stacked on a leading axis.

    linear:       x' = W^T W x + b
    relu_output:  x' = ReLU(W^T W x + b)
    hidden_relu:  h = ReLU(W x), x' = ReLU(W^T h + b)        privileged hidden basis, tied as in the paper
    abs:          h = ReLU(W_in x), y' = ReLU(W_out h + b)   untied, trained on y = |x| with x in [-1, 1]

    W_in is the paper's W (column i = feature i's direction); every kind but `abs`
    reuses its transpose as the readout.
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
        return self.cfg.kind == "abs"

    @property
    def hidden_relu(self) -> bool:
        return self.cfg.kind in ("hidden_relu", "abs")

    @property
    def W(self) -> Float[Tensor, "instance d_hidden feature"]:
        """Feature directions in the hidden space (column W_i per feature), detached."""
        return self.W_in.detach()

    def hidden(self, x: Float[Tensor, "instance feature batch"]) -> Float[Tensor, "instance d_hidden batch"]:
        h = self.W_in @ x  # batched matmul over instances
        return torch.relu(h) if self.hidden_relu else h

    def forward(self, x: Float[Tensor, "instance feature batch"]) -> Float[Tensor, "instance feature batch"]:
        W_out = self.W_out if self.untied else self.W_in.transpose(1, 2)
        out = W_out @ self.hidden(x) + self.b_final.unsqueeze(-1)
        return out if self.cfg.kind == "linear" else torch.relu(out)


def per_instance_loss(
    model: ToyModel,
    x: Float[Tensor, "instance feature batch"],
    importance: Float[Tensor, "instance feature"],
) -> Float[Tensor, " instance"]:
    """Importance-weighted MSE, mean over batch and features; the target is |x| for `abs`."""
    target = x.abs() if model.cfg.kind == "abs" else x
    sq_err = (model(x) - target).pow_(2).mul_(importance.unsqueeze(-1))
    return einops.reduce(sq_err, "instance feature batch -> instance", "mean")


def train(
    model: ToyModel,
    feature_probability: Float[Tensor, "instance feature"],
    importance: Float[Tensor, "instance feature"],
    generator: torch.Generator,
    *,
    progress: bool = False,
) -> Float[Tensor, " instance"]:
    """Train every instance in one AdamW loop; return each instance's final loss.

    The loss is summed over instances, so each instance's gradient (and, AdamW
    being elementwise, its update) is what it would get if trained alone.
    `progress` shows a tqdm bar; worth it for runs longer than a few seconds.

    Training uses `cfg.threads` threads (default 1). Each op here is small, so a
    second OpenMP thread buys little on a 2-core machine, and when anything else is
    running it makes training 10-100x slower (threads wait on each other at every op).
    """
    cfg = model.cfg
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = range(cfg.steps)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc=f"training {cfg.n_instances} x {cfg.kind}", leave=False)
    with torch.enable_grad(), torch_threads(cfg.threads):
        for step in steps:
            if cfg.cosine_decay:
                for group in optimizer.param_groups:
                    group["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
            x = generate_batch(feature_probability, cfg.batch_size, generator, signed=cfg.kind == "abs")
            loss = per_instance_loss(model, x, importance).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return evaluate(model, feature_probability, importance, generator)


@torch.no_grad()
def evaluate(
    model: ToyModel,
    feature_probability: Float[Tensor, "instance feature"],
    importance: Float[Tensor, "instance feature"],
    generator: torch.Generator,
) -> Float[Tensor, " instance"]:
    """Per-instance loss on one fresh batch; instances share the draws, so seeds compare fairly."""
    x = generate_batch(feature_probability, model.cfg.eval_batch_size, generator, signed=model.cfg.kind == "abs")
    return per_instance_loss(model, x, importance)


def train_toy_models(
    cfg: ToyModelConfig,
    feature_probability: Float[Tensor, "instance feature"],
    importance: Float[Tensor, "instance feature"],
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


def plateau(
    x: Float[Tensor, " point"], y: Float[Tensor, " point"], level: float, tol: float
) -> tuple[float, float] | None:
    """The widest run of consecutive points with |y - level| <= tol, as (x_first, x_last).

    Used for the "sticky" 1/2 of dimensions per feature: a curve that merely passed
    through 1/2 would leave the band within one grid step.
    """
    inside = ((y - level).abs() <= tol).tolist()
    best, start = None, None
    for k, ok in enumerate(inside + [False]):
        if ok and start is None:
            start = k
        elif not ok and start is not None:
            if best is None or k - start > best[1] - best[0] + 1:
                best = (start, k - 1)
            start = None
    return None if best is None else (x[best[0]].item(), x[best[1]].item())


def represented_angles(
    W: Float[Tensor, "d_hidden feature"], threshold: float = REPRESENTED_NORM
) -> Float[Tensor, " k"]:
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


def best_instance(loss: Float[Tensor, " instance"], n_seeds: int) -> Int[Tensor, " point"]:
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
    W_in: Float[Tensor, "*instance d_hidden feature"],
    *,
    signed_inputs: bool = False,
    relative: float = 0.5,
    minimum: float = 0.2,
) -> Bool[Tensor, "*instance d_hidden feature"]:
    """Which features drive each ReLU neuron.

    Neuron n responds to feature i when its input weight is above `minimum` and at
    least `relative` x the neuron's strongest weight. With inputs in [0, 1] only
    positive weights can switch a neuron on, so negative ones do not count; with
    signed inputs (the abs model) either sign can.
    """
    drive = W_in.abs() if signed_inputs else W_in
    strongest = drive.max(dim=-1, keepdim=True).values
    return (drive > minimum) & (drive >= relative * strongest)


def polysemanticity(
    W_in: Float[Tensor, "*instance d_hidden feature"],
    *,
    signed_inputs: bool = False,
    relative: float = 0.5,
    minimum: float = 0.2,
) -> Int[Tensor, "*instance d_hidden"]:
    """Number of features each hidden neuron responds to: 1 monosemantic, >= 2 polysemantic, 0 dead."""
    return neuron_features(W_in, signed_inputs=signed_inputs, relative=relative, minimum=minimum).sum(dim=-1)


def abs_pairs(W_in: Float[Tensor, "*instance d_hidden feature"]) -> Int[Tensor, "*instance"]:
    """Features computed the textbook way, |x| = ReLU(x) + ReLU(-x).

    Counts features that own two monosemantic neurons, one with a positive and one
    with a negative input weight. With d_hidden neurons at most d_hidden // 2
    features can be computed like this; computing more needs superposition.
    """
    drives = neuron_features(W_in, signed_inputs=True)
    mono = (drives.sum(dim=-1, keepdim=True) == 1) & drives
    has_pos = (mono & (W_in > 0)).any(dim=-2)
    has_neg = (mono & (W_in < 0)).any(dim=-2)
    return (has_pos & has_neg).sum(dim=-1)


# -------------------------------------------------------------------------------- sweeps


@dataclass
class DensitySweep:
    """The lowest-loss seed at each density of a sweep."""

    density: Float[Tensor, " point"]
    importance: Float[Tensor, " feature"]
    W: Float[Tensor, "point d_hidden feature"]
    W_out: Float[Tensor, "point feature d_hidden"] | None  # only for the untied abs model
    b_final: Float[Tensor, "point feature"]
    loss: Float[Tensor, " point"]
    seed_loss: Float[Tensor, "point seed"]


def train_density_sweep(
    cfg: ToyModelConfig,
    density: Float[Tensor, " point"],
    importance: Float[Tensor, " feature"],
    generator: torch.Generator,
    *,
    n_seeds: int = 1,
    progress: bool = False,
) -> DensitySweep:
    """Train `n_seeds` models per density in one batched run and keep the best of each.

    `cfg.n_instances` is ignored: the run has len(density) * n_seeds instances.
    """
    n_points = density.shape[0]
    run_cfg = dataclasses.replace(cfg, n_instances=n_points * n_seeds)
    per_instance = einops.repeat(density, "point -> (point seed) feature", seed=n_seeds, feature=cfg.n_features)
    importance_rows = einops.repeat(importance, "feature -> instance feature", instance=run_cfg.n_instances)
    model, loss = train_toy_models(run_cfg, per_instance, importance_rows, generator, progress=progress)
    best = best_instance(loss, n_seeds)
    W_out = model.W_out.detach()[best] if model.untied else None
    return DensitySweep(
        density=density,
        importance=importance,
        W=model.W[best],
        W_out=W_out,
        b_final=model.b_final.detach()[best],
        loss=loss[best],
        seed_loss=einops.rearrange(loss, "(point seed) -> point seed", seed=n_seeds),
    )


@dataclass
class PhaseDiagram:
    """2 -> 1 ReLU-output models over (density, relative importance of feature 2)."""

    density: Float[Tensor, " density"]
    relative_importance: Float[Tensor, " importance"]
    phase: Int[Tensor, "density importance"]  # index into PHASES, best seed per point
    W: Float[Tensor, "density importance d_hidden feature"]  # best seed per point
    run_phase: Int[Tensor, "density importance seed"]  # every run, before picking the best

    @property
    def stuck_fraction(self) -> float:
        """Share of single runs that ended in a different phase from their point's best run."""
        return (self.run_phase != self.phase.unsqueeze(-1)).float().mean().item()


def phase_grid(
    density: Float[Tensor, " density"], relative_importance: Float[Tensor, " importance"], n_seeds: int
) -> tuple[Float[Tensor, "instance 2"], Float[Tensor, "instance 2"]]:
    """(feature_probability, importance) of every 2 -> 1 instance, laid out (density, importance, seed).

    Feature 1 has importance 1, feature 2 ("the extra feature") the relative
    importance; both features share the density.
    """
    grid_density, grid_importance = torch.meshgrid(density, relative_importance, indexing="ij")
    feature_probability = einops.repeat(grid_density, "d i -> (d i seed) feature", seed=n_seeds, feature=2)
    extra = einops.repeat(grid_importance, "d i -> (d i seed)", seed=n_seeds)
    return feature_probability, torch.stack([torch.ones_like(extra), extra], dim=-1)


def summarise_phase_diagram(
    W: Float[Tensor, "instance 1 2"],
    loss: Float[Tensor, " instance"],
    density: Float[Tensor, " density"],
    relative_importance: Float[Tensor, " importance"],
    n_seeds: int,
) -> PhaseDiagram:
    """Keep the lowest-loss seed per point and classify every run (instances laid out as in `phase_grid`)."""
    n_density = density.shape[0]
    best = best_instance(loss, n_seeds)
    run_phase = einops.rearrange(classify_phase(W), "(d i seed) -> d i seed", d=n_density, seed=n_seeds)
    W_best = einops.rearrange(W[best], "(d i) m f -> d i m f", d=n_density)
    return PhaseDiagram(density, relative_importance, classify_phase(W_best), W_best, run_phase)


def train_phase_diagram(
    density: Float[Tensor, " density"],
    relative_importance: Float[Tensor, " importance"],
    generator: torch.Generator,
    *,
    n_seeds: int = 3,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 0.02,
    progress: bool = False,
) -> PhaseDiagram:
    """The paper's 2 -> 1 phase diagram as one batched run of len(density) x len(importance) x n_seeds models.

    Several seeds per point, keep the best loss: a run whose two weights start with
    the same sign often ends with one feature dead (its ReLU output never fires
    again), a genuine local minimum rather than the phase.
    """
    feature_probability, importance = phase_grid(density, relative_importance, n_seeds)
    cfg = ToyModelConfig(2, 1, importance.shape[0], "relu_output", steps=steps, batch_size=batch_size, lr=lr)
    model, loss = train_toy_models(cfg, feature_probability, importance, generator, progress=progress)
    return summarise_phase_diagram(model.W, loss, density, relative_importance, n_seeds)
