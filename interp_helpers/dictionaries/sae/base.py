"""What every SAE architecture shares: the config, the encoder and decoder, the loss skeleton.

An input x (a residual-stream or MLP activation, `d_in` wide) is encoded into `d_sae`
latents and decoded back (Bricken et al. 2023, "Towards Monosemanticity"):

    pre   = (x - b_dec) @ W_enc + b_enc        the pre-encoder bias is the decoder bias
    codes = activation(pre)                     per architecture: relu.py, topk.py, batchtopk.py, jumprelu.py
    recon = codes @ W_dec + b_dec               rows of W_dec (the latents' directions) have unit norm

`SAE` is the base class. `SAE(SAEConfig(architecture=...))` returns the subclass registered
for that architecture; each subclass overrides `_activate` (pre -> codes) and, where it has
them, `sparsity_loss`, `_sparse_forward` (a faster training path) and `after_step_` (what
the trainer does after each optimizer step). Everything else lives here: the tied
initialisation, the encoder with its cheaper backward (`_Encode`), decoding (dense and by
gathered rows), AuxK (Gao et al. 2024) for the architectures that use it, unit-norm decoder
rows with the parallel gradient removed, dead-latent counters and resampling.

Loss conventions (`SAEOutput`): `mse` is the squared error summed over d_in and averaged
over the batch, ||x - recon||^2 as written in Bricken et al. and Rajamanoharan et al.,
so their sparsity coefficients apply when the inputs are scaled as theirs are. The
coefficients depend on the scale of the data: `l1_coeff=5` is Anthropic's value for
inputs scaled to E||x|| = sqrt(d_in); JumpReLU's `l0_coeff` needs a sweep. TopK needs
neither, which is why it is the default.

Randomness comes from `SAEConfig.seed` (or an explicit torch.Generator): same seed,
same data order, one thread -> the same weights. Each stream is hashed from the seed and its
purpose (`stream_generator(seed, "sae.init")`, "sae.train"), never `manual_seed(seed)` itself:
SAELens' synthetic `FeatureDictionary(seed=s)` draws its true features as
`randn(generator=manual_seed(s))`, the very draw a plain-seeded init would make, and an SAE
that starts on the answer scores a perfect recovery it never learned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn
from torch.nn import functional as F

from interp_helpers.core.validation import check_choice, check_range, stream_generator
from interp_helpers.dictionaries.sae.active import Active, ActiveCodes, ActiveDecode
from interp_helpers.dictionaries.sae.metrics import l0

ARCHITECTURES: tuple[str, ...] = ("relu", "topk", "batchtopk", "jumprelu")
# Those with a sparse training path (`SAE.forward`, active.py).
SPARSE_ARCHITECTURES: tuple[str, ...] = ("relu", "topk", "batchtopk", "jumprelu")


@dataclass(frozen=True)
class SAEConfig:
    """Shape, architecture and training settings of one SAE.

    Defaults suit the small SAEs a laptop CPU trains in minutes (d_sae of a few
    thousand, some thousands of steps), not the papers' runs:
    - `dead_tokens`: Gao et al. call a latent dead after 10M tokens without firing;
      200k is a few hundred of our steps, so AuxK and resampling act within a short run.
    - `aux_k`: None means d_in // 2 (capped at d_sae), Gao et al.'s "a power of two close
      to d_model / 2"; see `effective_aux_k`.
    - `lr`: 1e-3 is larger than the papers' 5e-5 to 7e-4, which train for 10^5+ steps; the
      decoder's is `decoder_lr_scale` times that (see `SAE.default_decoder_lr_scale`).
    """

    d_in: int
    d_sae: int
    architecture: str = "topk"  # one of ARCHITECTURES
    k: int = 32  # active latents per row (topk), on average per row (batchtopk)
    aux_k: int | None = None  # dead latents used by AuxK; None -> d_in // 2
    aux_coeff: float = 1 / 32  # weight of AuxK (Gao et al.)
    dead_tokens: int = 200_000  # a latent that has not fired for this many training tokens is dead
    l1_coeff: float = 5.0  # relu only
    l0_coeff: float = 1e-3  # jumprelu only
    jumprelu_bandwidth: float = 0.05  # width of the rectangle kernel of the straight-through estimators
    jumprelu_init_threshold: float = 0.01  # SAELens' defaults; see jumprelu.py
    threshold_beta: float = 0.99  # batchtopk: EMA decay of the eval threshold estimate
    lr: float = 1e-3
    decoder_lr_scale: float | None = None  # W_dec's lr is this x lr; None: the architecture's (1; see base.py)
    grad_clip: float | None = None  # max global gradient norm per step; None: the architecture's (relu, jumprelu 1)
    warmup_steps: int = 0  # linear lr warmup; 0 = none
    batch_size: int = 1024  # rows per batch, for `iterate_batches` (train_sae takes whatever batches come)
    steps: int = 2000
    seed: int = 0
    resample_every: int = 0  # relu: resample dead latents every this many steps; 0 = never

    def __post_init__(self) -> None:
        check_range("SAEConfig.d_in", self.d_in, 1, 1_000_000)
        check_range("SAEConfig.d_sae", self.d_sae, 1, 10_000_000)
        check_choice("SAEConfig.architecture", self.architecture, ARCHITECTURES)
        # k only matters for the TopK family; elsewhere any positive value is harmless.
        check_range("SAEConfig.k", self.k, 1, self.d_sae if self.architecture in ("topk", "batchtopk") else None)
        if self.aux_k is not None:
            check_range("SAEConfig.aux_k", self.aux_k, 1, self.d_sae)
        check_range("SAEConfig.aux_coeff", self.aux_coeff, 0.0, 100.0)
        check_range("SAEConfig.dead_tokens", self.dead_tokens, 1)
        check_range("SAEConfig.l1_coeff", self.l1_coeff, 0.0, 1e6)
        check_range("SAEConfig.l0_coeff", self.l0_coeff, 0.0, 1e6)
        check_range("SAEConfig.jumprelu_bandwidth", self.jumprelu_bandwidth, 0.0, 1e3, low_inclusive=False)
        check_range("SAEConfig.jumprelu_init_threshold", self.jumprelu_init_threshold, 0.0, 1e3, low_inclusive=False)
        check_range("SAEConfig.threshold_beta", self.threshold_beta, 0.0, 1.0, high_inclusive=False)
        check_range("SAEConfig.lr", self.lr, 0.0, 10.0, low_inclusive=False)
        if self.decoder_lr_scale is not None:
            check_range("SAEConfig.decoder_lr_scale", self.decoder_lr_scale, 0.0, 1000.0, low_inclusive=False)
        if self.grad_clip is not None:
            check_range("SAEConfig.grad_clip", self.grad_clip, 0.0, None, low_inclusive=False)
        check_range("SAEConfig.warmup_steps", self.warmup_steps, 0, 10_000_000)
        check_range("SAEConfig.batch_size", self.batch_size, 1, 10_000_000)
        check_range("SAEConfig.steps", self.steps, 0, 100_000_000)
        check_range("SAEConfig.seed", self.seed, 0, 2**32 - 1)
        check_range("SAEConfig.resample_every", self.resample_every, 0, 100_000_000)

    @property
    def expansion_factor(self) -> float:
        return self.d_sae / self.d_in

    @property
    def effective_aux_k(self) -> int:
        """aux_k, or d_in // 2 (at least 1, at most d_sae) when it is None."""
        return self.aux_k if self.aux_k is not None else min(self.d_sae, max(1, self.d_in // 2))


@dataclass(frozen=True)
class SAEOutput:
    """One forward pass: reconstruction, codes, and the loss terms (scalars, in `mse` units).

    loss = mse + coeff * sparsity + aux_coeff * aux, with coeff = l1_coeff (relu),
    l0_coeff (jumprelu) or 0 (topk, batchtopk, whose sparsity is 0).
    """

    recon: Float[Tensor, "batch d_in"]
    codes: Float[Tensor, "batch d_sae"] | None  # None on the sparse TopK path
    fired: Bool[Tensor, " d_sae"]  # latents nonzero on at least one row (dead-latent bookkeeping)
    l0: Float[Tensor, ""]  # mean number of nonzero codes per row (not differentiable)
    mse: Float[Tensor, ""]
    sparsity: Float[Tensor, ""]  # relu: sum |code| x ||W_dec row||; jumprelu: L0 with a gradient; else 0
    aux: Float[Tensor, ""]  # AuxK (topk, batchtopk); 0 when no latent is dead or for other architectures
    loss: Float[Tensor, ""]
    smallest_code: Float[Tensor, ""] | None = None  # sparse paths: the smallest nonzero code (BatchTopK's threshold)


class _Encode(torch.autograd.Function):
    """pre = (x - b_dec) @ W_enc + b_enc, with a backward that skips x's gradient unless x needs one.

    Plain autograd forms grad_pre @ W_enc.T ([batch, d_in], as costly as the forward matmul)
    only to sum it over the batch for b_dec; summing grad_pre first gives b_dec's gradient
    from one [d_sae] vector: -W_enc @ grad_pre.sum(0).
    """

    @staticmethod
    def forward(ctx, x, W_enc, b_enc, b_dec):
        centered = (x - b_dec).reshape(-1, W_enc.shape[0])  # any leading axes, as `@` would take
        ctx.save_for_backward(centered, W_enc)
        ctx.lead_shape = x.shape[:-1]
        return torch.addmm(b_enc, centered, W_enc).reshape(*x.shape[:-1], W_enc.shape[1])

    @staticmethod
    def backward(ctx, grad_pre):
        centered, W_enc = ctx.saved_tensors
        grad_pre = grad_pre.reshape(-1, W_enc.shape[1])
        grad_b_enc = grad_pre.sum(0)
        grad_x = (grad_pre @ W_enc.T).reshape(*ctx.lead_shape, W_enc.shape[0]) if ctx.needs_input_grad[0] else None
        grad_W_enc = centered.T @ grad_pre if ctx.needs_input_grad[1] else None
        return grad_x, grad_W_enc, grad_b_enc, -(W_enc @ grad_b_enc)


class SAE(nn.Module):
    """A sparse autoencoder; `SAE(cfg)` builds the subclass for `cfg.architecture`.

    Parameters: W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in] (unit rows),
    b_dec [d_in]; jumprelu adds threshold [d_sae] (kept >= 0 after each step).
    Buffers: tokens_since_fired [d_sae] (dead-latent counter) and, for batchtopk, the
    eval threshold (0 until estimated, which makes eval a plain ReLU).
    """

    architecture: ClassVar[str] = ""  # set by each subclass: its SAEConfig.architecture
    has_sparse_path: ClassVar[bool] = False  # forward(sparse=True) allowed (all four architectures)
    uses_auxk: ClassVar[bool] = False  # the loss includes aux_coeff * AuxK (topk, batchtopk)
    # Tied init, scaled: each latent starts reading the direction it writes, encoder columns at norm
    # `encoder_init_norm`, decoder rows at `decoder_init_norm`. Adam moves every weight by about lr a step whatever
    # its size, so a column or row of norm n turns by about lr x sqrt(d_in) / n radians a step: the scale of a
    # weight is its learning rate. Issue #18, on SAELens' synthetic bench (k 16, lr 1e-3, seed 0): TopK with the
    # encoder at full scale, W_dec.T, reached MCC 0.318 after 300k tokens and 0.512 after 2M; at 0.1 (SAELens'
    # and Anthropic's encoder init) 0.356 and 0.666, BatchTopK 0.311 -> 0.350. See `default_decoder_lr_scale`
    # for the decoder.
    encoder_init_norm: ClassVar[float] = 0.1
    # Unit decoder rows throughout training (the parallel gradient removed, rows renormalised after each step),
    # or, where False (relu), rows that start at norm `decoder_init_norm`, train freely under a norm-weighted
    # penalty and are folded to unit norm when training ends (`finish_training_`); see relu.py for why.
    unit_decoder_rows: ClassVar[bool] = True
    decoder_init_norm: ClassVar[float] = 1.0
    # The decoder's lr is this x cfg.lr unless cfg.decoder_lr_scale says otherwise. Unit rows turn ten times
    # slower than encoder columns of norm 0.1 at the same lr (above); SAELens' free rows start at 0.1 and had grown
    # to a mean norm of 0.35 after 300k tokens of its bench. Three times the lr puts our unit rows near there, and
    # on that bench it pays (TopK MCC 0.356 -> 0.385 at 300k tokens, 0.666 -> 0.794 at 2M; BatchTopK 0.350 ->
    # 0.381), but not on the zoo model of notebook 05 (fast mode, seed 0: the ASCII-blob latent's F1 by size 0.91,
    # 0.77, 0.50 at 1x against 0.86, 0.64, 0.51 at 3x; default 0.70 at 256 latents at 3x, 0.88 before either
    # change), so the default stays 1 and `decoder_lr_scale` is there to try it.
    default_decoder_lr_scale: ClassVar[float] = 1.0
    # The global gradient norm is clipped to this before each step unless cfg.grad_clip says otherwise (None: never).
    default_grad_clip: ClassVar[float | None] = None
    _registry: ClassVar[dict[str, type[SAE]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("architecture"):
            SAE._registry[cls.architecture] = cls

    def __new__(cls, cfg: SAEConfig | None = None, generator: torch.Generator | None = None) -> SAE:
        if cls is SAE and cfg is not None:
            cls = SAE._registry[cfg.architecture]
        return super().__new__(cls)

    def __init__(self, cfg: SAEConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if cfg.architecture != self.architecture:
            raise ValueError(
                f"{type(self).__name__} needs architecture={self.architecture!r}, got {cfg.architecture!r}"
            )
        self.cfg = cfg
        if generator is None:
            generator = stream_generator(cfg.seed, "sae.init")
        W_dec = torch.randn(cfg.d_sae, cfg.d_in, generator=generator)
        W_dec /= W_dec.norm(dim=-1, keepdim=True)
        # Tied init (Gao et al.): each latent starts reading the direction it writes; scales as above.
        self.W_enc = nn.Parameter(W_dec.T * self.encoder_init_norm)
        self.W_dec = nn.Parameter(W_dec * self.decoder_init_norm)
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in))
        self.register_buffer("tokens_since_fired", torch.zeros(cfg.d_sae, dtype=torch.long))

    # ---------------------------------------------------------------- encode / decode

    def pre_acts(self, x: Float[Tensor, "batch d_in"]) -> Float[Tensor, "batch d_sae"]:
        """(x - b_dec) @ W_enc + b_enc."""
        return _Encode.apply(x, self.W_enc, self.b_enc, self.b_dec)

    def encode(self, x: Float[Tensor, "batch d_in"]) -> Float[Tensor, "batch d_sae"]:
        """Dense codes. BatchTopK selects over the batch in training mode, thresholds in eval mode."""
        return self._activate(self.pre_acts(x))

    def _activate(self, pre: Float[Tensor, "batch d_sae"]) -> Float[Tensor, "batch d_sae"]:
        """pre-activations -> codes: what each architecture defines."""
        raise NotImplementedError

    def decode(self, codes: Float[Tensor, "batch d_sae"]) -> Float[Tensor, "batch d_in"]:
        return codes @ self.W_dec + self.b_dec

    def decode_sparse(
        self, values: Float[Tensor, "batch k"], indices: Int[Tensor, "batch k"]
    ) -> Float[Tensor, "batch d_in"]:
        """sum_j values[:, j] * W_dec[indices[:, j]] + b_dec, touching only the k chosen rows.

        embedding_bag gathers and sums the rows in one kernel, and its backward scatters into
        those rows only: O(batch * k * d_in) both ways, against O(batch * d_sae * d_in) for `decode`.
        """
        return self._gather_decode(values, indices) + self.b_dec

    def _gather_decode(
        self, values: Float[Tensor, "batch k"], indices: Int[Tensor, "batch k"]
    ) -> Float[Tensor, "batch d_in"]:
        return F.embedding_bag(indices, self.W_dec, per_sample_weights=values, mode="sum")

    # -------------------------------------------------------------------------- losses

    def forward(self, x: Float[Tensor, "batch d_in"], *, sparse: bool = False) -> SAEOutput:
        """Reconstruct `x` and compute the loss terms.

        sparse=True skips the dense [batch, d_sae] codes where that pays (active.py): TopK and
        BatchTopK (training mode) always run on their kept entries; ReLU and JumpReLU only when at
        most SPARSE_MAX_DENSITY of the entries are active (early in training about half are, and
        the dense path is faster). Loss and gradients are the dense path's, up to float rounding;
        `codes` is None when a sparse path ran.
        """
        if sparse and not self.has_sparse_path:
            raise ValueError(
                f"sparse=True needs architecture in {SPARSE_ARCHITECTURES}, this SAE is {self.cfg.architecture!r}"
            )
        pre = self.pre_acts(x)
        if sparse:
            out = self._sparse_forward(x, pre)
            if out is not None:
                return out
        codes = self._activate(pre)
        recon = self.decode(codes)
        # Codes are >= 0 in every architecture; a float max, not a bool any(), which costs 8x more on a CPU.
        fired = codes.detach().reshape(-1, codes.shape[-1]).amax(0) > 0
        return self._output(x, pre, recon, codes, fired, l0(codes.detach()))

    def _sparse_forward(self, x: Float[Tensor, "batch d_in"], pre: Float[Tensor, "batch d_sae"]) -> SAEOutput | None:
        """The sparse training path's output (active.py), or None to take the dense one.

        Architectures whose selection has no penalty of its own (TopK, BatchTopK) only say which entries are
        active (`sparse_select`); ReLU overrides this for its L1 term.
        """
        selected = self.sparse_select(x, pre.detach())
        if selected is None:
            return None
        active, values = selected
        recon = ActiveDecode.apply(values, self.W_dec, active) + self.b_dec
        n_active, smallest = active.kept(values)
        return self._output(x, pre, recon, None, active.fired(values), n_active, smallest)

    def sparse_select(
        self, x: Float[Tensor, "batch d_in"], pre: Float[Tensor, "batch d_sae"]
    ) -> tuple[Active, Float[Tensor, " nnz"]] | None:
        """The training-mode codes as (active entries, their values with gradients), or None (no sparse path).

        `pre` is detached; the values carry the gradient through `ActiveCodes`. Matryoshka's sparse loss uses it.
        """
        return None

    def _output(
        self,
        x: Float[Tensor, "batch d_in"],
        pre: Float[Tensor, "batch d_sae"],
        recon: Float[Tensor, "batch d_in"],
        codes: Float[Tensor, "batch d_sae"] | None,
        fired: Bool[Tensor, " d_sae"],
        n_active: Float[Tensor, ""],
        smallest_code: Float[Tensor, ""] | None = None,
    ) -> SAEOutput:
        """loss = mse + coeff * sparsity + aux_coeff * aux, with the architecture's sparsity and AuxK if it uses it."""
        mse = (recon - x).pow(2).sum(-1).mean()
        zero = mse.new_zeros(())
        sparsity, coeff = self.sparsity_loss(pre, codes)
        aux = self.aux_loss(x, recon, pre) if self.uses_auxk else zero
        loss = mse + coeff * sparsity + self.cfg.aux_coeff * aux
        return SAEOutput(recon, codes, fired, n_active.detach(), mse, sparsity, aux, loss, smallest_code)

    def sparsity_loss(
        self, pre: Float[Tensor, "batch d_sae"], codes: Float[Tensor, "batch d_sae"] | None
    ) -> tuple[Float[Tensor, ""], float]:
        """(sparsity penalty, its coefficient); none (0, 0.0) unless the architecture has one."""
        return pre.new_zeros(()), 0.0

    def aux_loss(
        self, x: Float[Tensor, "batch d_in"], recon: Float[Tensor, "batch d_in"], pre: Float[Tensor, "batch d_sae"]
    ) -> Float[Tensor, ""]:
        """AuxK (Gao et al.): the top `aux_k` dead latents reconstruct the residual x - recon.

        Only dead latents' pre-activations are eligible and the residual is detached, so
        the term moves dead latents (and b_dec) and nothing else. Gao et al. normalise it
        by the residual's variance so that it keeps its weight as the error shrinks; here it
        is that normalised MSE times the variance of x, i.e. in the units of `mse`, so that
        loss = mse + aux_coeff * aux weighs the two as their normalised-MSE sum does.
        The chosen codes are re-gathered with their gradients (`ActiveCodes`), so `pre` may be
        detached (the sparse paths) or not: the gradient is the same.
        """
        dead = self.dead_mask()
        n_aux = min(self.cfg.effective_aux_k, int(dead.sum()))
        if n_aux == 0:
            return pre.new_zeros(())
        pre = pre.detach()
        indices = pre.masked_fill(~dead, -torch.inf).topk(n_aux, dim=-1, sorted=False).indices
        active = Active.of_topk(indices, self.cfg.d_sae)
        values = torch.relu(ActiveCodes.apply(pre, active, x, self.W_enc, self.b_enc, self.b_dec))
        residual = (x - recon).detach()
        residual_hat = ActiveDecode.apply(values, self.W_dec, active)
        err = (residual_hat - residual).pow(2).sum(-1).mean()
        scale = _total_variance(x) / _total_variance(residual).clamp(min=1e-12)
        return err * scale.detach()

    # ---------------------------------------------------------------- decoder geometry

    @torch.no_grad()
    def set_decoder_norm_to_unit_(self) -> None:
        self.W_dec /= self.W_dec.norm(dim=-1, keepdim=True).clamp(min=1e-12)

    @torch.no_grad()
    def fold_decoder_norms_(self) -> None:
        """Rescale every decoder row to unit norm and its code by the inverse: the same function, unit rows.

        W_dec[j] /= n_j, W_enc[:, j] *= n_j, b_enc[j] *= n_j, so code_j grows by n_j and code_j x W_dec[j]
        (hence the reconstruction, and relu's norm-weighted L1) is unchanged.
        """
        norms = self.W_dec.norm(dim=-1).clamp(min=1e-12)
        self.W_dec /= norms[:, None]
        self.W_enc *= norms
        self.b_enc *= norms

    @torch.no_grad()
    def remove_parallel_grad_(self) -> None:
        """Project each decoder row's gradient onto the plane orthogonal to the row.

        With rows renormalised after every step, the parallel component only changes a
        norm that is reset anyway, and it would interact with Adam's per-coordinate scaling
        (Bricken et al.).
        """
        if self.W_dec.grad is None:
            return
        W, grad = self.W_dec, self.W_dec.grad
        parallel = (grad * W).sum(-1, keepdim=True) / W.pow(2).sum(-1, keepdim=True).clamp(min=1e-12)
        grad -= parallel * W

    @torch.no_grad()
    def init_b_dec_geometric_median(self, x: Float[Tensor, "batch d_in"], iters: int = 100) -> None:
        """b_dec <- geometric median of `x`: a robust centre, so outlier rows do not drag it (Bricken et al.)."""
        self.b_dec.copy_(geometric_median(x, iters))

    # --------------------------------------------------------------- dead latents

    @torch.no_grad()
    def update_dead_counts_(self, fired: Bool[Tensor, " d_sae"], n_tokens: int) -> None:
        self.tokens_since_fired += n_tokens
        self.tokens_since_fired[fired] = 0

    def dead_mask(self) -> Bool[Tensor, " d_sae"]:
        return self.tokens_since_fired >= self.cfg.dead_tokens

    def after_step_(
        self, x: Float[Tensor, "batch d_in"], out: Any, step: int, generator: torch.Generator, optimizer: Any
    ) -> None:
        """What `train_sae` does after each optimizer step and dead-count update (batchtopk, relu); default nothing."""

    @torch.no_grad()
    def finish_training_(self, x: Float[Tensor, "batch d_in"]) -> None:
        """What `train_sae` does once the last step is done, given the last batch: fold free decoder norms (relu)."""
        if not self.unit_decoder_rows:
            self.fold_decoder_norms_()

    @torch.no_grad()
    def resample_dead_(
        self, x: Float[Tensor, "batch d_in"], generator: torch.Generator, optimizer: torch.optim.Optimizer | None = None
    ) -> int:
        """Re-initialise dead latents toward badly reconstructed inputs; return how many.

        A simplified Towards Monosemanticity procedure: draw inputs with probability
        proportional to their squared reconstruction loss, point each dead latent's decoder
        row at the normalised (input - b_dec), its encoder column the same way scaled to
        0.2 x the mean encoder norm of alive latents, b_enc 0, and zero the Adam moments of
        those entries (stale moments would push them straight back).
        """
        dead = self.dead_mask()
        n_dead = int(dead.sum())
        if n_dead == 0:
            return 0
        was_training = self.training
        self.eval()
        loss = (self(x).recon - x).pow(2).sum(-1)
        self.train(was_training)
        weights = loss.pow(2)
        if not torch.isfinite(weights.sum()) or weights.sum() <= 0:
            weights = torch.ones_like(weights)
        rows = torch.multinomial(weights, n_dead, replacement=True, generator=generator)
        direction = x[rows] - self.b_dec
        direction /= direction.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        alive = ~dead
        enc_norm = self.W_enc[:, alive].norm(dim=0).mean() if alive.any() else torch.tensor(1.0)
        index = dead.nonzero()[:, 0]
        # Free decoder rows (relu) restart at the alive rows' mean norm, so the penalty weighs them alike.
        dec_norm = self.W_dec[alive].norm(dim=-1).mean() if alive.any() and not self.unit_decoder_rows else 1.0
        self.W_dec[index] = direction * dec_norm
        self.W_enc[:, index] = direction.T * 0.2 * enc_norm
        self.b_enc[index] = 0.0
        self.tokens_since_fired[index] = 0
        if optimizer is not None:
            for param, select in ((self.W_dec, (index,)), (self.W_enc, (slice(None), index)), (self.b_enc, (index,))):
                state = optimizer.state.get(param, {})
                for key in ("exp_avg", "exp_avg_sq"):
                    if key in state:
                        state[key][select] = 0.0
        return n_dead


def _total_variance(x: Float[Tensor, "batch d_in"]) -> Float[Tensor, ""]:
    """Mean over rows of ||x - mean row||^2: the mse of always predicting the batch mean."""
    return (x - x.mean(dim=0)).pow(2).sum(-1).mean()


def geometric_median(
    points: Float[Tensor, "batch d_in"], iters: int = 100, eps: float = 1e-8
) -> Float[Tensor, " d_in"]:
    """The point minimising the sum of Euclidean distances to `points` (Weiszfeld's iterations).

    Each step is the mean weighted by 1 / distance, starting from the plain mean; `eps`
    keeps the weight of a point that the estimate lands on finite.
    """
    check_range("iters", iters, 0)
    median = points.mean(dim=0)
    for _ in range(iters):
        weights = 1.0 / (points - median).norm(dim=-1).clamp(min=eps)
        median = (weights[:, None] * points).sum(0) / weights.sum()
    return median
