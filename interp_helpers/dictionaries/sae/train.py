"""The shared training loop for every architecture (and, through `forward=`, for Matryoshka SAEs).

Adam (0.9, 0.999) with optional linear warmup, the decoder at `decoder_lr_scale` x lr (see
`SAE.default_decoder_lr_scale`); b_dec starts at the geometric median of the first batch
(Bricken et al. 2023). Each step, whatever the architecture:

    loss = forward(x).loss; backward
    remove the decoder gradient parallel to each row      (the rows are renormalised anyway)
    clip the gradient norm                                (ReLU, JumpReLU: to 1, as SAELens does; relu.py)
    Adam step; renormalise decoder rows to unit norm
    update dead-latent counters
    sae.after_step_(...)                                  BatchTopK's threshold, ReLU's resampling

and once at the end `sae.finish_training_(last batches)`: ReLU folds its free decoder norms into
unit rows, BatchTopK sets its eval threshold under the final weights.

Every architecture trains on its sparse path where it pays (`SAE.forward(sparse=True)`, active.py).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from interp_helpers.core.validation import check_range, stream_generator
from interp_helpers.dictionaries.sae.base import SAE, SAEConfig
from interp_helpers.dictionaries.sae.metrics import explained_variance

# `SAE.finish_training_` gets the last training batches, at least this many rows where the run had them:
# BatchTopK sets its eval threshold on them under the final weights (one batch of 128 rows x k 4 left eval
# L0 anywhere in 3.3-4.7; see batchtopk.py).
FINISH_ROWS = 8192


def iterate_batches(data: Float[Tensor, "n d_in"], batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    """Shuffled batches of stored activations, epoch after epoch, forever (the last partial batch is dropped)."""
    check_range("batch_size", batch_size, 1, data.shape[0])
    while True:
        order = torch.randperm(data.shape[0], generator=generator)
        for start in range(0, data.shape[0] - batch_size + 1, batch_size):
            yield data[order[start : start + batch_size]]


def train_sae(
    cfg: SAEConfig,
    batches: Iterable[Tensor],
    progress: bool = True,
    log_every: int = 50,
    sae: SAE | None = None,
    forward: Callable[[SAE, Tensor], Any] | None = None,
) -> tuple[SAE, list[dict[str, int | float]]]:
    """Train an SAE on `batches` ([batch, d_in] tensors) for cfg.steps steps; return it (eval mode) and a log.

    Adam (0.9, 0.999) with optional linear warmup, W_dec at cfg.decoder_lr_scale x lr (None:
    the architecture's); b_dec starts at the first batch's geometric median. Each step:
    forward, backward, remove_parallel_grad_, Adam step, renormalise the decoder (both
    skipped for relu's free rows), update dead-latent counters
    (and the BatchTopK threshold), resample dead latents (relu, every `resample_every` steps).
    At the end, `sae.finish_training_` on the last FINISH_ROWS or more training rows (relu:
    unit decoder rows; batchtopk: the eval threshold). Every architecture trains with
    `sparse=True` (see `SAE.forward`). Training stops early if `batches` runs out. History
    rows, every `log_every` steps and at the last: step, loss, mse, explained_variance, l0,
    dead_fraction, all on that step's batch. Bit-identical for a seed and the same batches
    when torch uses one thread. `sae` (built with `cfg`): train it further, in place, with
    a fresh optimizer and its b_dec as it is, instead of a new SAE. `forward(sae, x)`
    replaces the loss (it returns an object with SAEOutput's recon, codes, fired, l0, mse
    and loss fields), e.g. `matryoshka.matryoshka_forward`; the rest of the loop is the same.
    """
    check_range("log_every", log_every, 1)
    batches = iter(batches)
    generator = stream_generator(cfg.seed, "sae.train")  # resampling draws; never the init's stream
    if sae is not None and sae.cfg != cfg:
        raise ValueError("train_sae: cfg differs from the config `sae` was built with (sae.cfg)")
    fresh = sae is None
    sae = SAE(cfg) if fresh else sae
    history: list[dict[str, int | float]] = []
    try:
        first = next(batches)
    except StopIteration:
        raise ValueError("train_sae got no batches") from None
    if fresh:
        sae.init_b_dec_geometric_median(first)
    decoder_lr = cfg.lr * (cfg.decoder_lr_scale if cfg.decoder_lr_scale is not None else sae.default_decoder_lr_scale)
    groups = [
        {"params": [p for name, p in sae.named_parameters() if name != "W_dec"], "base_lr": cfg.lr},
        {"params": [sae.W_dec], "base_lr": decoder_lr},
    ]
    optimizer = torch.optim.Adam(groups, lr=cfg.lr, betas=(0.9, 0.999))
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"]
    sparse = sae.has_sparse_path
    grad_clip = cfg.grad_clip if cfg.grad_clip is not None else sae.default_grad_clip
    bar = tqdm(
        range(cfg.steps),
        desc=f"training {cfg.architecture} SAE {cfg.d_in}->{cfg.d_sae}",
        leave=False,
        disable=not progress,
    )
    sae.train()
    x = first
    recent: deque[Tensor] = deque()  # the last batches, FINISH_ROWS rows or more, for finish_training_
    with torch.enable_grad():
        for step in bar:
            if step > 0:
                try:
                    x = next(batches)
                except StopIteration:
                    break
            if cfg.warmup_steps:
                for group in optimizer.param_groups:
                    group["lr"] = group["base_lr"] * min(1.0, (step + 1) / cfg.warmup_steps)
            recent.append(x)
            while sum(batch.shape[0] for batch in recent) - recent[0].shape[0] >= FINISH_ROWS:
                recent.popleft()
            out = sae(x, sparse=sparse) if forward is None else forward(sae, x)
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            if sae.unit_decoder_rows:
                sae.remove_parallel_grad_()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(sae.parameters(), grad_clip)
            optimizer.step()
            if sae.unit_decoder_rows:
                sae.set_decoder_norm_to_unit_()
            sae.update_dead_counts_(out.fired, x.shape[0])
            sae.after_step_(x, out, step, generator, optimizer)
            if step % log_every == 0 or step == cfg.steps - 1:
                row = _log_row(step, x, out, sae)
                history.append(row)
                bar.set_postfix(mse=f"{row['mse']:.4g}", L0=f"{row['l0']:.1f}", dead=f"{row['dead_fraction']:.2f}")
    sae.finish_training_(torch.cat(list(recent)) if recent else x)
    sae.eval()
    return sae, history


def _log_row(step: int, x: Float[Tensor, "batch d_in"], out: Any, sae: SAE) -> dict[str, int | float]:
    """One history row; `out` is an SAEOutput or anything with its fields (train_sae's `forward`)."""
    return {
        "step": step,
        "loss": out.loss.item(),
        "mse": out.mse.item(),
        "explained_variance": explained_variance(x, out.recon.detach()).item(),
        "l0": out.l0.item(),
        "dead_fraction": sae.dead_mask().float().mean().item(),
    }
