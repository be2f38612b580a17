"""Benchmark: do our SAE trainers find the true features? Ours against SAELens on its synthetic benchmark.

Issue #18. The data is SAELens' `SyntheticModel` (sae_lens.synthetic): 1,024 true features in
128 dimensions, Zipfian firing probabilities (0.4 down to 0.02), a one-level hierarchy (64
parents of 4 children each: a child fires only with its parent), low-rank (rank 16) firing
correlations; true L0 about 18. Each seed draws one stream of activations, held in memory,
and every trainer is fed the same batches in the same order (batch 1,024, width 1,024, Adam
lr 1e-3 on both sides). Ours is `sae.train_sae` / `matryoshka.train_matryoshka`; SAELens' is
its own `SAETrainer.fit()` (constant lr, its gradient clipping and dead-latent windows) on the
same iterator. Both are scored by SAELens' `eval_sae_on_synthetic_data` on fresh samples:
MCC (Hungarian matching of decoder rows to the true features, mean |cosine|), explained
variance, L0, dead latents (never firing on the eval samples), shrinkage (||recon|| / ||x||).
tokens/s is training tokens over the training call's wall time, one torch thread each.

Sparsity is matched: TopK, BatchTopK and Matryoshka (BatchTopK, prefixes 128/256/512/1024)
take k = 16 on both sides. ReLU + L1 and JumpReLU have a coefficient instead, whose scale
differs between libraries; each side sweeps it (--relu-l1, --saelens-relu-l1, --jumprelu-l0,
--saelens-jumprelu-l0) and the summary compares MCC at the same L0: interpolated in log L0 at the
fixed-k L0 (16) where the sweep brackets it, else the nearest point (marked *).

The default is the issue's 2M training tokens per SAE, two seeds: about 35 minutes on a 2-core laptop with
other work beside it (`--tokens 300000` for a quick look, where no SAE has learned much yet).

Measured (`python benchmarks/bench_sae_quality.py`, seeds 0 and 1, 2 cores shared, so tokens/s is rough; ReLU and
JumpReLU from `--only relu` and `--only jumprelu` after their last changes). MCC at L0 16, ours / SAELens, speed:

    TopK        0.664 0.661 / 0.487 0.493    124k / 50k tok/s   2.46x
    BatchTopK   0.589 0.584 / 0.388 0.390     92k / 31k tok/s   2.99x
    Matryoshka  0.402 0.403 / 0.370 0.377     73k / 25k tok/s   2.89x
    ReLU + L1   0.783 0.779 / 0.785 0.785    117k / 67k tok/s   1.75x
    JumpReLU    0.648 0.662 / 0.619 0.605     94k / 36k tok/s   2.59x

Ours keeps every TopK and ReLU latent alive (SAELens' ReLU loses 4-25% at l1_coeff 1.7-2); our BatchTopK and
Matryoshka leave 12-17% of latents silent on the eval samples (SAELens' 6-8%), our JumpReLU 8-10% near L0 16
(SAELens' none). Issue #18's changes behind these, each explained where it is made: encoders start at norm 0.1
(base.py; JumpReLU too, jumprelu.py); ReLU's decoder rows train with free norms from 0.1 (relu.py); ReLU and
JumpReLU clip the gradient norm to 1, as SAELens' trainer does (relu.py, jumprelu.py: JumpReLU at L0 16 went
0.578 -> 0.648); BatchTopK's eval threshold is fitted to the last training rows (batchtopk.py); every architecture
trains on its active entries (active.py; speed was 0.9-1.6x before). What falls short: ReLU is 1.75x, not 2x (its
active entries change every step: finding and ordering them costs about 4 ms of its 12 ms a step), and it sits
0.002-0.006 below SAELens at L0 16 (at equal l1_coeff the two agree to 0.006).
SAELens is not a dependency:
`make bench` installs it into .venv without moving any installed package. Without it this
bench cannot build its data (the synthetic model is SAELens'), and says so.

    python benchmarks/bench_sae_quality.py [--seeds 0 1] [--tokens 300000] [--only relu topk]
"""

import argparse
import contextlib
import io
import math
import time

import torch

from interp_helpers.core.validation import stream_seed
from interp_helpers.dictionaries import matryoshka as M
from interp_helpers.dictionaries import sae as S

D_IN, N_FEATURES, D_SAE, BATCH, K = 128, 1024, 1024, 1024, 16
PREFIXES = (128, 256, 512, 1024)
ARCHS = ("relu", "topk", "batchtopk", "jumprelu", "matryoshka")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="one data stream and SAE init per seed")
    parser.add_argument("--tokens", type=int, default=2_000_000, help="training tokens per SAE (the issue's 2M)")
    parser.add_argument("--eval-samples", type=int, default=50_000, help="fresh samples for eval_sae_on_synthetic_data")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate, both trainers")
    # Where each side's L0 crosses 16 at 2M tokens (seed 0): both between l1_coeff 1.5 (L0 18.4 ours, 18.0
    # SAELens) and 2 (11.7, 7.6); 1.7 puts a point close to it.
    parser.add_argument("--relu-l1", type=float, nargs="+", default=[1.5, 1.7, 2.0], help="ours: L1 swept")
    parser.add_argument("--saelens-relu-l1", type=float, nargs="+", default=[1.5, 1.7, 2.0], help="SAELens' L1")
    # Both sides train the threshold itself with the same estimator, loss scale and gradient clipping; at 2M
    # tokens, seed 0, L0 crosses 16 between l0_coeff 0.2 (ours 17.1, SAELens 16.1) and 0.3 (12.1, 11.3).
    parser.add_argument("--jumprelu-l0", type=float, nargs="+", default=[0.15, 0.2, 0.3], help="ours: l0_coeff")
    parser.add_argument(
        "--saelens-jumprelu-l0", type=float, nargs="+", default=[0.15, 0.2, 0.3], help="SAELens' l0_coeff swept"
    )
    parser.add_argument("--only", nargs="+", choices=ARCHS, default=list(ARCHS), help="architectures to run")
    parser.add_argument("--no-saelens", action="store_true", help="skip SAELens' trainers (its data is still used)")
    return parser.parse_args()


def synthetic_model():
    """SAELens' synthetic model: 1,024 features in 128 dimensions, true L0 about 18."""
    from sae_lens.synthetic import HierarchyConfig, ZipfianFiringProbabilityConfig
    from sae_lens.synthetic.synthetic_model import LowRankCorrelationConfig, SyntheticModel, SyntheticModelConfig

    cfg = SyntheticModelConfig(
        num_features=N_FEATURES,
        hidden_dim=D_IN,
        firing_probability=ZipfianFiringProbabilityConfig(exponent=1.0, max_prob=0.4, min_prob=0.02),
        hierarchy=HierarchyConfig(total_root_nodes=64, branching_factor=4, max_depth=1),
        correlation=LowRankCorrelationConfig(rank=16, correlation_scale=0.1, seed=0),
        seed=0,
    )
    return SyntheticModel(cfg)


def sample(model, n: int, seed: int, purpose: str) -> torch.Tensor:
    """n activations; SAELens' generator draws from the global RNG, so seed it from (seed, purpose)."""
    torch.manual_seed(stream_seed(seed, purpose))
    return torch.cat([model.sample(min(65_536, n - i)) for i in range(0, n, 65_536)])


def batches(data: torch.Tensor):
    for start in range(0, data.shape[0] - BATCH + 1, BATCH):
        yield data[start : start + BATCH]


def score(model, sae, seed: int, n: int) -> dict[str, float]:
    from sae_lens.synthetic import eval_sae_on_synthetic_data

    torch.manual_seed(stream_seed(seed, "bench.eval"))
    r = eval_sae_on_synthetic_data(
        sae, model.feature_dict, model.activation_generator, num_samples=n, batch_size=10_000
    )
    return {
        "mcc": r.mcc,
        "ev": r.explained_variance,
        "l0": r.sae_l0,
        "dead": r.dead_latents / D_SAE,
        "shrinkage": r.shrinkage,
        "true_l0": r.true_l0,
    }


# ------------------------------------------------------------------------------ trainers


def train_ours(arch: str, data: torch.Tensor, seed: int, lr: float, coeff: float | None):
    steps = data.shape[0] // BATCH
    cfg = S.SAEConfig(
        d_in=D_IN,
        d_sae=D_SAE,
        architecture="batchtopk" if arch == "matryoshka" else arch,
        k=K,
        lr=lr,
        steps=steps,
        batch_size=BATCH,
        seed=seed,
        l1_coeff=coeff if arch == "relu" else 5.0,
        l0_coeff=coeff if arch == "jumprelu" else 1e-3,
    )
    if arch == "matryoshka":
        sae, _ = M.train_matryoshka(M.MatryoshkaConfig(cfg, PREFIXES), batches(data), progress=False)
    else:
        sae, _ = S.train_sae(cfg, batches(data), progress=False)
    return sae


def train_saelens(arch: str, data: torch.Tensor, seed: int, lr: float, coeff: float | None):
    import sae_lens as L
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    torch.manual_seed(stream_seed(seed, "bench.saelens.init"))
    common = {"d_in": D_IN, "d_sae": D_SAE}
    sae = {
        "relu": lambda: L.StandardTrainingSAE(L.StandardTrainingSAEConfig(**common, l1_coefficient=coeff)),
        "topk": lambda: L.TopKTrainingSAE(L.TopKTrainingSAEConfig(**common, k=K)),
        "batchtopk": lambda: L.BatchTopKTrainingSAE(L.BatchTopKTrainingSAEConfig(**common, k=K)),
        "jumprelu": lambda: L.JumpReLUTrainingSAE(L.JumpReLUTrainingSAEConfig(**common, l0_coefficient=coeff)),
        "matryoshka": lambda: L.MatryoshkaBatchTopKTrainingSAE(
            L.MatryoshkaBatchTopKTrainingSAEConfig(**common, k=K, matryoshka_widths=list(PREFIXES))
        ),
    }[arch]()
    steps = data.shape[0] // BATCH
    trainer_cfg = SAETrainerConfig(  # sae_lens.synthetic.train_toy_sae's settings, our lr and batch
        n_checkpoints=0,
        checkpoint_path=None,
        save_final_checkpoint=False,
        total_training_samples=steps * BATCH,
        device="cpu",
        autocast=False,
        lr=lr,
        lr_end=lr,
        lr_scheduler_name="constant",
        lr_warm_up_steps=0,
        adam_beta1=0.9,
        adam_beta2=0.999,
        lr_decay_steps=0,
        n_restart_cycles=1,
        train_batch_size_samples=BATCH,
        dead_feature_window=1000,
        feature_sampling_window=2000,
        logger=LoggingConfig(log_to_wandb=False, eval_every_n_wandb_logs=2**31 - 1),
        n_batches_for_norm_estimate=10,
    )
    with contextlib.redirect_stderr(io.StringIO()):  # its progress bar, one line per 100 steps, would bury the table
        SAETrainer(cfg=trainer_cfg, sae=sae, data_provider=batches(data)).fit()
    return sae


def run(trainer, arch, data, seed, lr, coeff, model, eval_n) -> dict:
    torch.manual_seed(0)
    start = time.perf_counter()
    sae = trainer(arch, data, seed, lr, coeff)
    seconds = time.perf_counter() - start
    return {"tok/s": data.shape[0] // BATCH * BATCH / seconds, **score(model, sae, seed, eval_n)}


# ------------------------------------------------------------------------------ report


def at_l0(points: list[tuple[float, float]], target: float) -> tuple[float, bool]:
    """MCC at L0 = target, linear in log L0 between the bracketing points; else the nearest (False).

    Points with L0 below 0.5 (a ReLU SAE whose latents all died) say nothing about MCC at any L0 and are left out.
    """
    points = sorted(p for p in points if p[0] >= 0.5)
    if not points:
        return math.nan, False
    if len(points) == 1 and abs(points[0][0] / target - 1) <= 0.1:
        return points[0][1], True  # a fixed-k trainer at its k
    for (l0_a, mcc_a), (l0_b, mcc_b) in zip(points, points[1:]):
        if l0_a <= target <= l0_b and l0_b > l0_a:
            t = (math.log(target) - math.log(l0_a)) / (math.log(l0_b) - math.log(l0_a))
            return mcc_a + t * (mcc_b - mcc_a), True
    return min(points, key=lambda p: abs(math.log(p[0] / target)))[1], False


def print_row(trainer: str, arch: str, coeff, seed: int, r: dict) -> None:
    knob = "-" if coeff is None else f"{coeff:g}"
    print(
        f"{arch:10s} {trainer:8s} {knob:>6s} {seed:4d} {r['mcc']:6.3f} {r['ev']:6.3f} {r['l0']:6.1f} "
        f"{r['dead']:6.3f} {r['shrinkage']:6.3f} {r['tok/s']:9,.0f}",
        flush=True,
    )


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    tokens = args.tokens
    try:
        import sae_lens
    except ImportError:
        print("SAELens is not installed: this bench needs its synthetic model and scorer (make bench installs it)")
        return
    with_theirs = not args.no_saelens
    print(f"torch {torch.__version__}, SAELens {sae_lens.__version__}, 1 thread per trainer")
    print(
        f"{N_FEATURES} true features in {D_IN} dims; width {D_SAE}, batch {BATCH}, lr {args.lr}, "
        f"{tokens:,} training tokens per SAE, {args.eval_samples:,} eval samples; seeds {args.seeds}"
    )
    if tokens < 2_000_000:
        print(f"({tokens:,} tokens, fewer than the issue's 2M: the coefficient sweeps may not bracket L0 = {K})")
    model = synthetic_model()
    trainers = {"ours": train_ours, **({"SAELens": train_saelens} if with_theirs else {})}
    knobs = {
        "relu": {"ours": args.relu_l1, "SAELens": args.saelens_relu_l1},
        "jumprelu": {"ours": args.jumprelu_l0, "SAELens": args.saelens_jumprelu_l0},
    }
    results = []  # (arch, trainer, coeff, seed, result)
    print(
        f"\n{'arch':10s} {'trainer':8s} {'coeff':>6s} {'seed':>4s} {'MCC':>6s} {'EV':>6s} {'L0':>6s} "
        f"{'dead':>6s} {'shrink':>6s} {'tokens/s':>9s}"
    )
    for seed in args.seeds:
        data = sample(model, tokens, seed, "bench.train")
        for arch in args.only:
            for name, trainer in trainers.items():
                for coeff in knobs.get(arch, {}).get(name, [None]):
                    r = run(trainer, arch, data, seed, args.lr, coeff, model, args.eval_samples)
                    results.append((arch, name, coeff, seed, r))
                    print_row(name, arch, coeff, seed, r)
    print(f"(true L0 of the eval samples: {results[0][4]['true_l0']:.1f})")
    summary(results, args.seeds, trainers)


def summary(results, seeds, trainers) -> None:
    """Per architecture and seed: each trainer's MCC at L0 = K, and the speed ratio."""
    print(
        f"\nMCC at L0 = {K} (* nearest point: L0 not bracketed, or a fixed k missed by > 10%), "
        "mean tokens/s; speed = ours / SAELens"
    )
    for arch in ARCHS:
        rows = [r for r in results if r[0] == arch]
        if not rows:
            continue
        line = f"{arch:10s}"
        for name in trainers:
            mccs = []
            for seed in seeds:
                mcc, bracketed = at_l0([(r[4]["l0"], r[4]["mcc"]) for r in rows if r[1] == name and r[3] == seed], K)
                mccs.append(f"{mcc:.3f}{'' if bracketed else '*'}")
            speed = sum(r[4]["tok/s"] for r in rows if r[1] == name) / sum(1 for r in rows if r[1] == name)
            line += f" | {name} MCC {' '.join(mccs)}, {speed:,.0f} tok/s"
        if len(trainers) == 2:
            mean = {n: [r[4]["tok/s"] for r in rows if r[1] == n] for n in trainers}
            mean = {n: sum(v) / len(v) for n, v in mean.items()}
            line += f" | speed {mean['ours'] / mean['SAELens']:.2f}x"
        print(line)


if __name__ == "__main__":
    main()
