"""Benchmark: SAE training throughput (tokens/s), ours against SAELens on the same activations.

Workload (issue #6): d_in = 512 (zoo-gelu-1l-a's MLP neurons), d_sae = 4096, batch 4096,
ReLU + L1 and TopK (k = 32). The activations are real: blocks.0.mlp.hook_post of
zoo-gelu-1l-a on corpus text, collected once and held in memory, so neither side pays for
the model. A step is what each library's trainer does per batch: ours is one step of
`sae.train_sae` (forward, backward, gradient projection, Adam, decoder renormalisation,
dead-latent counters), SAELens' mirrors `SAETrainer._train_step` (training_forward_pass,
firing counters, backward, gradient clipping, Adam). Steps are timed after warm-up; the best
of `--repeats` timings is reported.

ReLU is timed where it trains, not at initialisation, where about half its codes are
nonzero: one SAE is first trained for `--relu-warm-steps` steps (ours, lr 1e-3, batch 1024,
L1 coefficient `--relu-l1`), and both trainers start from copies of its weights, with the
same L1 coefficient (both libraries' loss is sum-over-d_in MSE + coeff x mean sum |code| x
||W_dec row||), the same `--warmup` untimed steps and the same batches. The L0 each trainer
was at when timed is printed. Our ReLU trainer switches between a dense and a sparse path by
the density of each batch's codes (`sae.RELU_SPARSE_MAX_DENSITY`); SAELens' is dense.
TopK starts from initialisation on both sides (its L0 is k throughout).

Also measured: this machine's fp32 matmul rate at the encoder's shape, and the fraction of
it each trainer reaches, counting the dense-equivalent FLOPs of a ReLU SAE (forward and
backward of encoder and decoder, 12 x batch x d_in x d_sae) for ReLU, and for TopK the
encoder's forward and weight gradient, 4 x batch x d_in x d_sae, since its decoder touches
only k rows per token. Our sparse ReLU path does less than the 12: the fraction can pass 100%.

SAELens is not a dependency of the workbook: `make bench` installs it into .venv without
changing any installed package (pip constraints from `pip freeze`). Without it the bench
reports ours alone.

    python benchmarks/bench_sae.py [--steps 10] [--threads 2] [--relu-l1 1.0] [--relu-warm-steps 150]
"""

import argparse
import os
import platform
import time

import torch

from interp_helpers.dictionaries import sae as sae_mod
from interp_helpers.modelzoo.models import load_model
from interp_helpers.modelzoo.zoo import ZOO, packed_batches

D_SAE, BATCH, K = 4096, 4096, 32
HOOK = "blocks.0.mlp.hook_post"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per trainer")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=2, help="timings per trainer; the best is reported")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads for every trainer")
    parser.add_argument("--relu-l1", type=float, default=1.0, help="ReLU L1 coefficient, both trainers")
    parser.add_argument(
        "--relu-warm-steps",
        type=int,
        default=150,
        help="steps that train the ReLU SAE both trainers start from (0: initialisation)",
    )
    return parser.parse_args()


@torch.no_grad()
def mlp_activations(n_tokens: int) -> torch.Tensor:
    """[n_tokens, 512] MLP activations of zoo-gelu-1l-a on training-distribution text."""
    model = load_model("zoo-gelu-1l-a")
    spec = ZOO["zoo-gelu-1l-a"]
    rows = []
    batches = packed_batches(spec.corpus(), model.tokenizer, 32, spec.n_ctx)
    while sum(r.shape[0] for r in rows) < n_tokens:
        _, cache = model.run_with_cache(next(batches), names_filter=HOOK, stop_at_layer=1)
        rows.append(cache[HOOK][:, 1:].reshape(-1, cache[HOOK].shape[-1]))
    return torch.cat(rows)[:n_tokens].contiguous()


def matmul_gflops(threads: int, repeats: int = 5) -> float:
    """Best fp32 rate of [BATCH, 512] @ [512, D_SAE], the encoder's matmul."""
    a, b = torch.randn(BATCH, 512), torch.randn(512, D_SAE)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * BATCH * 512 * D_SAE / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def batches_of(data: torch.Tensor):
    gen = torch.Generator().manual_seed(0)
    return sae_mod.iterate_batches(data, BATCH, gen)


def config(
    data: torch.Tensor, architecture: str, steps: int, l1: float, lr: float = 1e-4, batch: int = BATCH
) -> sae_mod.SAEConfig:
    return sae_mod.SAEConfig(
        d_in=data.shape[1],
        d_sae=D_SAE,
        architecture=architecture,
        k=K,
        batch_size=batch,
        steps=steps,
        lr=lr,
        l1_coeff=l1,
    )


def warm_state(data: torch.Tensor, architecture: str, l1: float, steps: int) -> dict[str, torch.Tensor] | None:
    """Weights after `steps` of training at lr 1e-3 and batch 1024 (None for 0 steps: start from init)."""
    if steps == 0:
        return None
    cfg = config(data, architecture, steps, l1, lr=1e-3, batch=1024)
    batches = sae_mod.iterate_batches(data, 1024, torch.Generator().manual_seed(1))
    sae, _ = sae_mod.train_sae(cfg, batches, progress=False, log_every=10**9)
    return sae.state_dict()


def time_ours(
    data: torch.Tensor, architecture: str, steps: int, warmup: int, l1: float, state: dict[str, torch.Tensor] | None
) -> tuple[float, float]:
    """(seconds per step, L0 at the last step) of train_sae: time(warmup + steps) - time(warmup) cancels setup."""

    def run(n: int) -> tuple[float, float]:
        cfg = config(data, architecture, n, l1)
        sae = None
        if state is not None:
            sae = sae_mod.SAE(cfg)
            sae.load_state_dict(state)
        start = time.perf_counter()
        _, history = sae_mod.train_sae(cfg, batches_of(data), progress=False, log_every=10**9, sae=sae)
        return time.perf_counter() - start, history[-1]["l0"]

    (long, l0), (short, _) = run(warmup + steps), run(warmup)
    return (long - short) / steps, l0


def time_saelens(
    data: torch.Tensor, architecture: str, steps: int, warmup: int, l1: float, state: dict[str, torch.Tensor] | None
) -> tuple[float, float] | None:
    """(seconds per step, L0 at the last step) of SAELens' training step, or None without SAELens."""
    try:
        from sae_lens import StandardTrainingSAE, StandardTrainingSAEConfig, TopKTrainingSAE, TopKTrainingSAEConfig
        from sae_lens.saes.sae import TrainStepInput
    except ImportError:
        return None
    d_in = data.shape[1]
    if architecture == "relu":
        sae = StandardTrainingSAE(StandardTrainingSAEConfig(d_in=d_in, d_sae=D_SAE, l1_coefficient=l1))
    else:
        sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d_in, d_sae=D_SAE, k=K))
    if state is not None:  # same parametrisation: (x - b_dec) @ W_enc + b_enc, codes @ W_dec + b_dec
        with torch.no_grad():
            for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
                getattr(sae, name).copy_(state[name])
    optimizer = torch.optim.Adam(sae.parameters(), lr=1e-4, betas=(0.9, 0.999))
    since_fired = torch.zeros(D_SAE)
    coefficients = {name: (c.value if hasattr(c, "value") else c) for name, c in sae.get_coefficients().items()}
    batches = batches_of(data)
    last = {}

    def step(i: int) -> None:  # SAETrainer._train_step without logging and schedulers
        sae.train()
        out = sae.training_forward_pass(
            TrainStepInput(
                sae_in=next(batches),
                coefficients=coefficients,
                dead_neuron_mask=since_fired > 1000,
                n_training_steps=i,
                is_logging_step=False,
            )
        )
        with torch.no_grad():
            did_fire = out.feature_acts.bool().float().sum(-2).bool()
            if did_fire.is_sparse:
                did_fire = did_fire.to_dense()
            since_fired.add_(1)
            since_fired[did_fire] = 0
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(sae.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        last["acts"] = out.feature_acts

    for i in range(warmup):
        step(i)
    seconds = _timed(lambda: [step(warmup + i) for i in range(steps)]) / steps
    acts = last["acts"].detach()
    acts = acts.to_dense() if acts.is_sparse else acts
    return seconds, (acts != 0).sum(-1).float().mean().item()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    data = mlp_activations(4 * BATCH)
    peak = matmul_gflops(args.threads)
    try:
        import sae_lens

        saelens_version = sae_lens.__version__
    except ImportError:
        saelens_version = None
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{args.threads} thread(s); SAELens {saelens_version or 'not installed'}"
    )
    print(f"d_in {data.shape[1]}, d_sae {D_SAE}, batch {BATCH}, TopK k {K}; real activations ({HOOK} of zoo-gelu-1l-a)")
    print(f"fp32 matmul [{BATCH}x512]@[512x{D_SAE}]: {peak:.1f} GFLOP/s (best of 5)")
    flops = {"relu": 12 * BATCH * 512 * D_SAE, "topk": 4 * BATCH * 512 * D_SAE}
    targets = {"relu": 1.2, "topk": 2.0}
    for arch in ("relu", "topk"):
        l1, warm_steps = args.relu_l1, (args.relu_warm_steps if arch == "relu" else 0)
        state = warm_state(data, arch, l1, warm_steps)
        start = (
            f"after {warm_steps} warm-up steps (L1 coefficient {l1})" if state is not None else "from initialisation"
        )
        print(f"{arch}: both trainers start {start}, then {args.warmup} untimed + {args.steps} timed steps")
        ours, ours_l0 = min(time_ours(data, arch, args.steps, args.warmup, l1, state) for _ in range(args.repeats))
        theirs_runs = [time_saelens(data, arch, args.steps, args.warmup, l1, state) for _ in range(args.repeats)]
        theirs, theirs_l0 = (None, None) if theirs_runs[0] is None else min(theirs_runs)
        line = (
            f"{arch:5s} ours {BATCH / ours:9,.0f} tokens/s ({ours * 1e3:6.1f} ms/step, "
            f"{flops[arch] / ours / 1e9 / peak:6.1%} of matmul rate, L0 {ours_l0:6.1f})"
        )
        if theirs is not None:
            line += (
                f" | SAELens {BATCH / theirs:9,.0f} tokens/s ({theirs * 1e3:6.1f} ms/step, "
                f"{flops[arch] / theirs / 1e9 / peak:6.1%}, L0 {theirs_l0:6.1f})"
                f" | ratio {theirs / ours:4.2f}x (target >= {targets[arch]}x)"
            )
        print(line, flush=True)


if __name__ == "__main__":
    main()
