"""Sparse autoencoders on model activations: ReLU + L1, TopK, BatchTopK and JumpReLU.

One small class per architecture over a shared base, beside one shared trainer:

    base.py        SAEConfig, SAEOutput, the SAE base class: encoder, decoder, AuxK, decoder
                   geometry, dead latents; `SAE(cfg)` builds the class for cfg.architecture
    relu.py        ReLUSAE: L1 penalty weighted by decoder norms, a sparse training path
                   (Bricken et al. 2023, "Towards Monosemanticity")
    topk.py        TopKSAE: the k largest codes per row, AuxK (Gao et al. 2024, "Scaling and
                   evaluating sparse autoencoders")
    batchtopk.py   BatchTopKSAE: k x batch over the batch, a global threshold at eval
                   (Bussmann et al. 2024, "BatchTopK Sparse Autoencoders")
    jumprelu.py    JumpReLUSAE: learned thresholds, L0 by straight-through estimators
                   (Rajamanoharan et al. 2024, "Jumping Ahead")
    train.py       train_sae, iterate_batches
    metrics.py     l0, explained variance, density, evaluate, loss recovered when spliced in
    checkpoint.py  save_sae / load_sae (safetensors + JSON)

Everything is re-exported here: `from interp_helpers.dictionaries import sae as sae_lib;
sae_lib.SAE(sae_lib.SAEConfig(...))`.
"""

from interp_helpers.dictionaries.sae.base import (
    ARCHITECTURES,
    SAE,
    SPARSE_ARCHITECTURES,
    SAEConfig,
    SAEOutput,
    geometric_median,
)
from interp_helpers.dictionaries.sae.batchtopk import BatchTopKSAE
from interp_helpers.dictionaries.sae.checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_sae, save_sae
from interp_helpers.dictionaries.sae.jumprelu import JumpReLUSAE
from interp_helpers.dictionaries.sae.metrics import (
    ce_loss_recovered,
    dead_and_dense,
    evaluate,
    explained_variance,
    feature_density,
    l0,
    normalized_mse,
    sae_splice_hook,
    zero_ablate_hook,
)
from interp_helpers.dictionaries.sae.relu import RELU_SPARSE_MAX_DENSITY, ReLUSAE
from interp_helpers.dictionaries.sae.topk import TopKSAE
from interp_helpers.dictionaries.sae.train import iterate_batches, train_sae

__all__ = [
    "ARCHITECTURES",
    "CONFIG_FILE",
    "RELU_SPARSE_MAX_DENSITY",
    "SAE",
    "SPARSE_ARCHITECTURES",
    "WEIGHTS_FILE",
    "BatchTopKSAE",
    "JumpReLUSAE",
    "ReLUSAE",
    "SAEConfig",
    "SAEOutput",
    "TopKSAE",
    "ce_loss_recovered",
    "dead_and_dense",
    "evaluate",
    "explained_variance",
    "feature_density",
    "geometric_median",
    "iterate_batches",
    "l0",
    "load_sae",
    "normalized_mse",
    "sae_splice_hook",
    "save_sae",
    "train_sae",
    "zero_ablate_hook",
]
