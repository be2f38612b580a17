"""Benchmark: ablating every head one at a time, in one stacked batch vs one forward per head.

Uses zoo-attn-only-2l when data/models/ has it, otherwise a random 2-layer attention-only
model of about its size (d_model 128, 8 heads, n_ctx 256, d_vocab 4096). Reports (never
asserts) wall times for a few workloads, the ratio, and whether both methods give the
same losses to 1e-5. The blocks do the same arithmetic either way: stacking saves
per-forward overhead (it pays most when each forward is small), and the stacked path
also unembeds only the scored targets (second-repeat tokens), which the plain
one-forward-per-head reference does not.

    python benchmarks/bench_head_ablation.py [--workloads 1x64 8x256] [--kind zero] [--max-batch 32]
"""

import argparse
import os
import platform

import torch
from timing import best_time
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp_helpers.modelzoo.models import ZOO_DIR, load_model
from interp_helpers.transformer_circuits import circuits, induction

ZOO_NAME = "zoo-attn-only-2l"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workloads",
        nargs="+",
        default=["1x64", "8x64", "8x256"],
        help="BATCHxPOS repeated-token batches (POS is capped at the model's n_ctx)",
    )
    parser.add_argument("--kind", choices=circuits.ABLATIONS, default="zero")
    parser.add_argument(
        "--max-batch",
        type=int,
        default=None,
        help=f"rows per forward of the stacked batch (default {circuits.MAX_TOKENS} tokens // pos)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timings per method; the best is reported")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def get_model(seed: int) -> tuple[HookedTransformer, torch.Tensor, str]:
    """The zoo model and its word pool, or a random stand-in and the whole vocabulary."""
    if (ZOO_DIR / ZOO_NAME / "config.json").exists():
        from interp_helpers.modelzoo.zoo import token_pool

        model = load_model(ZOO_NAME)
        return model, token_pool(model.tokenizer), f"{ZOO_NAME} (trained, from {ZOO_DIR / ZOO_NAME})"
    cfg = HookedTransformerConfig(
        n_layers=2,
        d_model=128,
        n_heads=8,
        d_head=16,
        n_ctx=256,
        d_vocab=4096,
        attn_only=True,
        act_fn=None,
        normalization_type="LN",
        seed=seed,
    )
    model = HookedTransformer(cfg).eval()
    return model, torch.arange(1, cfg.d_vocab), f"random stand-in ({ZOO_NAME} not found in {ZOO_DIR})"


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    model, pool, which = get_model(args.seed)
    cfg = model.cfg
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"1 thread, load average before start {os.getloadavg()[0]:.2f}"
    )
    print(
        f"model: {which}; {cfg.n_layers} layers x {cfg.n_heads} heads, d_model {cfg.d_model}, "
        f"n_ctx {cfg.n_ctx}, d_vocab {cfg.d_vocab}; {args.kind}-ablation of hook_z, "
        f"max_batch {args.max_batch or f'{circuits.MAX_TOKENS} // pos'}"
    )
    n_heads = cfg.n_layers * cfg.n_heads
    for workload in args.workloads:
        batch, pos = (int(x) for x in workload.split("x"))
        pos = min(pos, cfg.n_ctx, len(pool) + 1)
        rep = induction.repeated_random_tokens(
            pool, batch, pos, (2, max(2, (pos - 1) // 4)), 0, torch.Generator().manual_seed(args.seed)
        )
        stacked_s, stacked = best_time(
            lambda: circuits.ablate_each_head(
                model, rep.tokens, rep.second, args.kind, max_batch=args.max_batch, progress=False
            ),
            args.repeats,
        )
        naive_s, naive = best_time(
            lambda: circuits.ablate_each_head_naive(model, rep.tokens, rep.second, args.kind, progress=False),
            args.repeats,
        )
        diff = max(abs(stacked.clean - naive.clean), (stacked.ablated - naive.ablated).abs().max().item())
        print(f"\n{batch} x {pos} tokens, {n_heads} heads + clean = {(n_heads + 1) * batch} stacked rows")
        max_batch = args.max_batch or max(1, circuits.MAX_TOKENS // pos)
        print(
            f"  stacked batch:        {1e3 * stacked_s:8.1f} ms ({-(-(n_heads + 1) * batch // max_batch)} forwards "
            f"of up to {max_batch} rows, logits only at the scored targets)"
        )
        print(f"  one forward per head: {1e3 * naive_s:8.1f} ms ({n_heads + 1} forwards)")
        print(f"  ratio (one-by-one / stacked): {naive_s / stacked_s:.2f}x")
        print(
            f"  same losses to 1e-5: {'yes' if diff <= 1e-5 else 'NO'} (max |difference| {diff:.1e} nats); "
            f"clean loss on second repeats {stacked.clean:.3f}, largest increase {stacked.increase.max().item():.3f} "
            f"at head {divmod(int(stacked.increase.argmax()), cfg.n_heads)}"
        )
    assert circuits.hooks_attached(model) == 0, "a hook leaked"  # a bug, not a benchmark result


if __name__ == "__main__":
    main()
