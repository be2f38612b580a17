"""Benchmark: activation patching in one stacked batch (transformer_circuits.patching) vs transformer_lens.patching.

Uses zoo-gelu-4l when data/models/ has it, otherwise a random 4-layer GELU model of about
its size (d_model 128, 4 heads of 32, d_mlp 512, n_ctx 128, d_vocab 4096). Clean and
corrupted prompts are random tokens (8 prompts of 20 by default) and the metric is the
logit difference of two random answer tokens at the last position. Reports (never
asserts) the best of 3 wall times of resid_pre_by_pos, attn_head_out_all_pos and
attn_head_out_by_pos against their TransformerLens counterparts, the ratio, and the
largest |difference| of the results (1e-5 is the tolerance). One thread.

TransformerLens runs one forward pass of the whole model per patch site. Ours does the
same patches with the same hooks but skips work that cannot change the result: layers
before the patched one (started from the corrupted residual stream), positions before the
patched one (the corrupted keys and values through a frozen key-value cache), other
positions of the patched block for position-local sites (z, attn_out, ...), and, through
`patching.PositionMetric`, the unembedding of every position the metric does not read, the
positions after it and all but keys and values of the last block at unread positions.
`--plain-metric` passes the metric as a plain function, which turns those off.

    python benchmarks/bench_patching.py [--batch 8] [--pos 20] [--max-batch N] [--plain-metric]
"""

import argparse
import os
import platform
import warnings
from contextlib import redirect_stderr

import torch
import transformer_lens.patching as tl_patching
from timing import best_time
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp_helpers.modelzoo.models import ZOO_DIR, load_model
from interp_helpers.transformer_circuits import circuits, patching

ZOO_NAME = "zoo-gelu-4l"
KINDS = [
    ("resid_pre_by_pos", patching.resid_pre_by_pos, tl_patching.get_act_patch_resid_pre),
    ("attn_head_out_all_pos", patching.attn_head_out_all_pos, tl_patching.get_act_patch_attn_head_out_all_pos),
    ("attn_head_out_by_pos", patching.attn_head_out_by_pos, tl_patching.get_act_patch_attn_head_out_by_pos),
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8, help="prompts")
    parser.add_argument("--pos", type=int, default=20, help="tokens per prompt (capped at the model's n_ctx)")
    parser.add_argument(
        "--max-batch",
        type=int,
        default=None,
        help=f"rows per forward of the stacked batch (default {circuits.MAX_TOKENS} tokens // pos)",
    )
    parser.add_argument(
        "--plain-metric",
        action="store_true",
        help="hand our functions the metric as a plain callable (full logits, no PositionMetric short cut)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timings per method; the best is reported")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def get_model(seed: int) -> tuple[HookedTransformer, str]:
    """The zoo model, or a random stand-in of its shape."""
    if (ZOO_DIR / ZOO_NAME / "config.json").exists():
        return load_model(ZOO_NAME), f"{ZOO_NAME} (trained, from {ZOO_DIR / ZOO_NAME})"
    cfg = HookedTransformerConfig(
        n_layers=4,
        d_model=128,
        n_heads=4,
        d_head=32,
        d_mlp=512,
        n_ctx=128,
        d_vocab=4096,
        act_fn="gelu",
        normalization_type="LN",
        seed=seed,
    )
    return HookedTransformer(cfg).eval(), f"random stand-in ({ZOO_NAME} not found in {ZOO_DIR})"


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    model, which = get_model(args.seed)
    cfg = model.cfg
    pos = min(args.pos, cfg.n_ctx)
    generator = torch.Generator().manual_seed(args.seed)
    clean, corrupted = (torch.randint(1, cfg.d_vocab, (args.batch, pos), generator=generator) for _ in range(2))
    metric = patching.logit_diff_metric(torch.randint(1, cfg.d_vocab, (args.batch, 2), generator=generator))
    ours_metric = (lambda logits: metric(logits)) if args.plain_metric else metric
    tl_metric = lambda logits: metric(logits)  # noqa: E731  (a plain function, as TransformerLens users write it)
    with torch.no_grad():
        clean_logits, clean_cache = model.run_with_cache(clean)
        corrupted_logits = model(corrupted)
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"1 thread, load average before start {os.getloadavg()[0]:.2f}"
    )
    print(
        f"model: {which}; {cfg.n_layers} layers x {cfg.n_heads} heads, d_model {cfg.d_model}, d_mlp {cfg.d_mlp}, "
        f"d_vocab {cfg.d_vocab}; {args.batch} prompts x {pos} tokens; logit difference at the last position "
        f"(clean {metric(clean_logits).item():.3f}, corrupted {metric(corrupted_logits).item():.3f}); "
        f"{'plain-function' if args.plain_metric else 'PositionMetric'} metric for ours; "
        f"max_batch {args.max_batch or f'{circuits.MAX_TOKENS} // pos'}"
    )
    for name, ours, theirs in KINDS:
        ours_s, ours_result = best_time(
            lambda: ours(model, corrupted, clean_cache, ours_metric, max_batch=args.max_batch, progress=False),
            args.repeats,
        )
        with open(os.devnull, "w") as devnull, redirect_stderr(devnull):  # TransformerLens always shows a tqdm bar
            tl_s, tl_result = best_time(lambda: theirs(model, corrupted, clean_cache, tl_metric), args.repeats)
        diff = (ours_result - tl_result).abs().max().item()
        print(f"\n{name}: {tl_result.numel()} sites {tuple(tl_result.shape)}")
        print(f"  interp_helpers.transformer_circuits.patching: {1e3 * ours_s:8.1f} ms")
        print(f"  transformer_lens:        {1e3 * tl_s:8.1f} ms ({tl_result.numel()} forwards)")
        print(f"  ratio (TransformerLens / ours): {tl_s / ours_s:.1f}x")
        print(f"  same results to 1e-5: {'yes' if diff < 1e-5 else 'NO'} (max |difference| {diff:.1e})")
    assert circuits.hooks_attached(model) == 0, "a hook leaked"  # a bug, not a benchmark result


if __name__ == "__main__":
    main()
