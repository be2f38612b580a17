"""Benchmark: the 2 -> 1 phase diagram as one batched run vs one model at a time.

Reports (never asserts) the wall time of the whole grid trained as a single batched
run, the phase diagram it finds, and the speed-up over training the same models one
at a time. The sequential baseline trains a random sample of the grid's instances
alone and extrapolates to the full grid; each sampled model starts from the same
initial weights and sees the same data as its batched twin, so the run also checks
that batching changes nothing but the speed.

    python benchmarks/bench_superposition.py [--points 20] [--seeds 5] [--steps 2000] [--sample 8]
"""

import argparse
import dataclasses
import os
import platform
import time

import torch

from interp_helpers.superposition import toy_models as tm

SYMBOLS = {"not learned": ".", "dedicated": "D", "antipodal": "A", "other": "?"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--points", type=int, default=20, help="grid points per axis (paper: density 1..0.01, ratio 0.1..10)"
    )
    parser.add_argument("--seeds", type=int, default=5, help="models per grid point; the lowest-loss one is kept")
    parser.add_argument("--steps", type=int, default=2000, help="AdamW steps")
    parser.add_argument("--batch-size", type=int, default=256, help="examples per step")
    parser.add_argument("--sample", type=int, default=8, help="instances trained one at a time for the baseline")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def print_diagram(diagram: tm.PhaseDiagram) -> None:
    """Rows: density (top = dense); columns: relative importance of the extra feature, 0.1 -> 10."""
    print(
        f"\nphase diagram (best seed per point); rows density 1 -> {diagram.density[-1]:.2g}, "
        f"columns importance ratio {diagram.relative_importance[0]:.2g} -> {diagram.relative_importance[-1]:.2g}"
    )
    for density, row in zip(diagram.density.tolist(), diagram.phase.tolist()):
        print(f"  {density:7.4f}  " + "".join(SYMBOLS[tm.PHASES[k]] for k in row))
    print("  legend: " + ", ".join(f"{s} {name}" for name, s in SYMBOLS.items()))
    shares = {name: (diagram.phase == k).float().mean().item() for k, name in enumerate(tm.PHASES)}
    print("  shares: " + ", ".join(f"{name} {share:.1%}" for name, share in shares.items()))
    print(f"  single runs ending in another phase than their point's best seed: {diagram.stuck_fraction:.1%}")


def main() -> None:
    args = parse_args()
    density = tm.log_grid(1.0, 0.01, args.points)
    relative_importance = tm.log_grid(0.1, 10.0, args.points)
    feature_probability, importance = tm.phase_grid(density, relative_importance, args.seeds)
    n_instances = importance.shape[0]
    cfg = tm.ToyModelConfig(2, 1, n_instances, "relu_output", steps=args.steps, batch_size=args.batch_size, lr=0.02)

    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"training threads {cfg.threads}, load average before start {os.getloadavg()[0]:.2f}"
    )
    print(
        f"grid {args.points} x {args.points} points x {args.seeds} seeds = {n_instances} models, "
        f"{args.steps} steps of batch {args.batch_size}"
    )

    batched = tm.ToyModel(cfg, torch.Generator().manual_seed(args.seed))
    initial = {name: p.detach().clone() for name, p in batched.named_parameters()}
    start = time.perf_counter()
    loss = tm.train(batched, feature_probability, importance, torch.Generator().manual_seed(args.seed + 1))
    batched_s = time.perf_counter() - start
    diagram = tm.summarise_phase_diagram(batched.W, loss, density, relative_importance, args.seeds)
    print(
        f"\nbatched: {batched_s:.1f} s for all {n_instances} models ({1e3 * batched_s / n_instances:.1f} ms per model)"
    )
    print_diagram(diagram)

    # Sequential baseline: a random sample of instances, each trained alone from its batched twin's start.
    picks = torch.randperm(n_instances, generator=torch.Generator().manual_seed(args.seed + 2))[: args.sample]
    alone_cfg = dataclasses.replace(cfg, n_instances=1)
    times, max_diff = [], 0.0
    for k in picks.tolist():
        alone = tm.ToyModel(alone_cfg, torch.Generator().manual_seed(0))
        with torch.no_grad():
            for name, param in alone.named_parameters():
                param.copy_(initial[name][k : k + 1])
        start = time.perf_counter()
        tm.train(
            alone, feature_probability[k : k + 1], importance[k : k + 1], torch.Generator().manual_seed(args.seed + 1)
        )
        times.append(time.perf_counter() - start)
        max_diff = max(max_diff, (alone.W[0] - batched.W[k]).abs().max().item())
    per_model = sum(times) / len(times)
    sequential_s = per_model * n_instances
    print(
        f"\none at a time: {per_model:.2f} s per model, measured on {len(picks)} random instances; "
        f"extrapolated to {n_instances} models: {sequential_s:.0f} s ({sequential_s / 60:.1f} min)"
    )
    print(f"sampled models trained alone match their batched twins: max |W_alone - W_batched| = {max_diff:.1e}")
    print(
        f"\nspeed-up of the batched run: {sequential_s / batched_s:.0f}x "
        f"(batched {batched_s:.1f} s vs one at a time ~{sequential_s:.0f} s, extrapolated)"
    )
    print(f"target: whole batched grid <= 60 s here -> {'met' if batched_s <= 60 else 'NOT met'} ({batched_s:.1f} s)")


if __name__ == "__main__":
    main()
