"""Benchmark: activation patching on the real model (SmolLM2-135M-Instruct, 4-bit) vs transformer_lens.patching.

IOI prompts from `transformer_circuits.ioi` (names that are one token for SmolLM2's
tokenizer), all of one layout so END is every prompt's last position; corrupted = the ABC
prompts (three other names); metric = logit(IO) - logit(S) at END, a `PositionMetric`.
For resid_pre_by_pos, attn_head_out_all_pos and attn_head_out_by_pos it reports our wall
time over every site, TransformerLens' wall time, the ratio, and the largest |difference|
of the two results (1e-4 is the tolerance).

TransformerLens runs one forward of the whole model per site: 30 layers x 9 heads x pos
sites for attn_head_out_by_pos is hours on 2 cores. So by default it runs a random sample of
`--tl-sites` sites of each kind through its own loop (`generic_activation_patch` with an
`index_df`, the code path of its get_act_patch_* functions), and its time for every site is
extrapolated as (time per sampled site) x (number of sites). Every forward of that loop is
the same size whatever the site, so the extrapolation is linear and the output says which
numbers are extrapolated. `--tl-sites 0` runs TransformerLens' full loop instead.

Numbers are of the 4-bit build (weights dequantised from Q4_1 / Q8_0), one thread.
Measured with the defaults (2 prompts x 14 tokens, 12 sampled TL sites) on a 2-core machine busy with
other work, so +-20%. Before sites equal in both runs were skipped (load average 0.4): resid_pre_by_pos
9.5x, attn_head_out_all_pos 6.4x, attn_head_out_by_pos 11.8x. After (load average 3.7-4.1, two runs):
15.5x / 13.0x, 7.5x / 7.2x and 12.9x / 17.5x; results equal to 4e-6. IOI's clean and ABC prompts share
every token before the first name, so every site there keeps the corrupted value without a forward and
every all-positions site starts at the first name. attn_head_out_all_pos cannot reach 10x exactly: a head
patched at every position from the first name on must rerun, on average, half of the 30 layers at 12 of
the 14 positions, 712 GFLOP for the 270 heads (torch's profiler), against TransformerLens' 2043 (all 30
layers and the 49152-way unembedding at every position, per head): 2.9x less arithmetic. Our stacked
forwards already run at about the single-core float32 matrix-product rate (about 150 GFLOP/s, against
about 60 for TransformerLens' small forwards), so 10x would need 3.5x less arithmetic, and exact patching
cannot skip more of it.

    python benchmarks/bench_real_patching.py [--prompts 2] [--tl-sites 12] [--seed 0]
"""

import argparse
import os
import platform
import time
import warnings
from contextlib import redirect_stderr

import pandas as pd
import torch
import transformer_lens.patching as tl_patching
from transformer_lens import HookedTransformer

from interp_helpers.modelzoo.models import load_model
from interp_helpers.modelzoo.real_model import NAME
from interp_helpers.transformer_circuits import circuits, ioi, patching

# (name, ours, TransformerLens' full function, its setter, activation, index axes)
KINDS = [
    (
        "resid_pre_by_pos",
        patching.resid_pre_by_pos,
        tl_patching.get_act_patch_resid_pre,
        tl_patching.layer_pos_patch_setter,
        "resid_pre",
        ("layer", "pos"),
    ),
    (
        "attn_head_out_all_pos",
        patching.attn_head_out_all_pos,
        tl_patching.get_act_patch_attn_head_out_all_pos,
        tl_patching.layer_head_vector_patch_setter,
        "z",
        ("layer", "head"),
    ),
    (
        "attn_head_out_by_pos",
        patching.attn_head_out_by_pos,
        tl_patching.get_act_patch_attn_head_out_by_pos,
        tl_patching.layer_pos_head_vector_patch_setter,
        "z",
        ("layer", "pos", "head"),
    ),
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=2, help="IOI prompts (all of one layout)")
    parser.add_argument(
        "--tl-sites", type=int, default=12, help="sites of each kind TransformerLens runs (0: all of them)"
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def prompts(model: HookedTransformer, n: int, seed: int) -> tuple[ioi.IOIDataset, ioi.IOIDataset]:
    """n clean IOI prompts sharing one layout (END last in every row) and their ABC corruption."""
    ds = ioi.ioi_dataset(model.tokenizer, 20 * n, seed=seed)
    rows = ioi.same_layout(ds, 0)[:n]
    if len(rows) < n:
        raise SystemExit(f"only {len(rows)} prompts share a layout; ask for fewer --prompts")
    clean = ioi.select(ds, rows)
    return clean, ioi.abc_dataset(clean, model.tokenizer, seed=seed)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    model = load_model(NAME)
    clean, corrupted = prompts(model, args.prompts, args.seed)
    metric = patching.logit_diff_metric(torch.stack([clean.io_token, clean.s_token], dim=1), pos=clean.end)
    tl_metric = lambda logits: metric(logits)  # noqa: E731  (a plain function, as TransformerLens users write it)
    with torch.no_grad():
        clean_logits, clean_cache = model.run_with_cache(clean.tokens)
        corrupted_logits = model(corrupted.tokens)
    cfg, (batch, pos) = model.cfg, clean.tokens.shape
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"1 thread, load average before start {os.getloadavg()[0]:.2f}"
    )
    print(
        f"model: {NAME} (SmolLM2-135M-Instruct, 4-bit weights); {cfg.n_layers} layers x {cfg.n_heads} heads "
        f"({cfg.n_key_value_heads} key-value heads), d_model {cfg.d_model}, d_vocab {cfg.d_vocab}; "
        f"{batch} IOI prompts x {pos} tokens, e.g. {clean.texts[0]!r} / ABC {corrupted.texts[0]!r}; "
        f"logit difference at END (clean {metric(clean_logits).item():.3f}, "
        f"corrupted {metric(corrupted_logits).item():.3f})"
    )
    generator = torch.Generator().manual_seed(args.seed)
    for name, ours, theirs, setter, activation, axes in KINDS:
        ours_s, ours_result = timed(lambda: ours(model, corrupted.tokens, clean_cache, metric, progress=False))
        n_sites = ours_result.numel()
        with open(os.devnull, "w") as devnull, redirect_stderr(devnull):  # TransformerLens always shows a tqdm bar
            if args.tl_sites == 0 or args.tl_sites >= n_sites:
                tl_s, tl_result = timed(lambda: theirs(model, corrupted.tokens, clean_cache, tl_metric))
                sampled, extrapolated = n_sites, False
                ours_at = ours_result.flatten()
                tl_at = tl_result.flatten()
            else:
                picked = torch.randperm(n_sites, generator=generator)[: args.tl_sites].sort().values
                index = torch.stack(torch.unravel_index(picked, ours_result.shape), dim=1)
                index_df = pd.DataFrame(index.numpy(), columns=list(axes))
                run_s, tl_at = timed(
                    lambda: tl_patching.generic_activation_patch(
                        model, corrupted.tokens, clean_cache, tl_metric, setter, activation, index_df=index_df
                    )
                )
                tl_s, sampled, extrapolated = run_s * n_sites / len(picked), len(picked), True
                ours_at = ours_result.flatten()[picked]
        diff = (ours_at - tl_at.flatten()).abs().max().item()
        print(f"\n{name}: {n_sites} sites {tuple(ours_result.shape)}")
        print(f"  interp_helpers.transformer_circuits.patching: {ours_s:8.1f} s (every site)")
        if extrapolated:
            print(
                f"  transformer_lens:        {tl_s:8.1f} s EXTRAPOLATED from {sampled} random sites "
                f"({tl_s * sampled / n_sites:.1f} s, one forward each) to all {n_sites}"
            )
        else:
            print(f"  transformer_lens:        {tl_s:8.1f} s ({n_sites} forwards)")
        print(f"  ratio (TransformerLens / ours): {tl_s / ours_s:.1f}x")
        print(
            f"  same results to 1e-4 on the {sampled} sites TL ran: {'yes' if diff <= 1e-4 else 'NO'} (max {diff:.1e})"
        )
    assert circuits.hooks_attached(model) == 0, "a hook leaked"  # a bug, not a benchmark result


if __name__ == "__main__":
    main()
