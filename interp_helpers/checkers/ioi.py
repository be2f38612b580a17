"""Checkers for the exercises of notebook 03 (indirect object identification).

3.1 the logit difference logit(IO) - logit(S) at each prompt's END position, 3.2 direct logit
attribution of a stack of residual-stream components (centred, divided by the final LayerNorm's
scale, projected on the IO - S direction), 3.3 the activation-patching hook that puts one head's
clean `hook_z` back (at every position or at one position per prompt), 3.4 the loop over
(layer, head) that patches each head and normalises the metric (0 = corrupted, 1 = clean),
3.5 attribution patching of every head from one backward pass (gradient x (clean - corrupted)),
3.6 path patching of one sender head into one MLP's input at one position per prompt.

Checks 3.1-3.3 run on hand-made tensors; 3.4-3.6 on a tiny random HookedTransformer (2 layers,
d_model 16, 3 heads, d_vocab 20, n_ctx 8) whose weights come from a fixed torch.Generator, so
no global random state is read or changed. Each check names the likely mistake (wrong sign,
wrong position, missing LayerNorm scale or centring, missing normalisation, hooks left behind,
nothing frozen in path patching, ...) before the generic comparison with the reference. The
references wrap the package kernels (`interp_helpers.transformer_circuits.ioi`, `patching`, `ioi_circuit`).
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Iterator

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import ActivationCache, HookedTransformer, HookedTransformerConfig
from transformer_lens.hook_points import HookPoint

from interp_helpers.checkers.core import Exercise, Wrong, assert_close
from interp_helpers.transformer_circuits import circuits, ioi_circuit, patching

__all__ = [
    "logit_diff_per_prompt",
    "residual_logit_diff_attribution",
    "patch_head_z",
    "patch_each_head",
    "attribution_patch_heads",
    "path_patch_head_to_mlp",
    "tiny_model",
]

Metric = Callable[[Float[Tensor, "batch pos d_vocab"]], Float[Tensor, ""]]


def _is_close(got: object, expected: Tensor, atol: float = 1e-5) -> bool:
    """True when `got` is a tensor of `expected`'s shape and values: a recognised wrong answer."""
    return (
        isinstance(got, Tensor)
        and tuple(got.shape) == tuple(expected.shape)
        and torch.allclose(got.detach().double(), expected.detach().double(), atol=atol, rtol=1e-4)
    )


def _expect_tensor(got: object, what: str) -> Tensor:
    if not isinstance(got, Tensor):
        raise Wrong(f"{what}: expected a torch.Tensor, got {type(got).__name__}")
    return got


# --------------------------------------------------------------------------------------
# A tiny model with fixed weights, for the checks that need a forward pass
# --------------------------------------------------------------------------------------


SEED = 8  # of the tiny model: one whose path-patching variants differ clearly (by 0.01 to 1 nat)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Tiny forwards run fastest on one thread, above all on a busy machine; the old setting comes back after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _on_one_thread(check: Callable[[Callable], None]) -> Callable[[Callable], None]:
    @functools.wraps(check)
    def wrapped(fn: Callable) -> None:
        with _one_thread():
            check(fn)

    return wrapped


def tiny_model(seed: int = SEED) -> HookedTransformer:
    """2 layers x 3 heads, d_model 16, d_mlp 32, d_vocab 20, n_ctx 8, LayerNorm; weights from a seeded Generator.

    A fresh model each call (14 ms), so a student's function that leaves hooks or flags
    behind cannot affect the next check. The global random state is left as it was.
    """
    cfg = HookedTransformerConfig(
        n_layers=2,
        d_model=16,
        n_heads=3,
        d_head=4,
        d_mlp=32,
        d_vocab=20,
        n_ctx=8,
        act_fn="gelu",
        normalization_type="LN",
        init_weights=False,
    )
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(cfg)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            noise = torch.randn(param.shape, generator=generator)
            if name.endswith((".w",)):  # LayerNorm weights near 1
                param.copy_(1.0 + 0.2 * noise)
            elif name.split(".")[-1].startswith("b"):
                param.copy_(0.2 * noise)
            else:  # large enough that attention is peaked and the model far from linear
                param.copy_(noise * 1.5 / param.shape[-2] ** 0.5 if param.ndim >= 2 else noise)
    model.eval()
    return model


def _tiny_prompts() -> tuple[
    Int[Tensor, "batch pos"], Int[Tensor, "batch pos"], Int[Tensor, " batch"], Int[Tensor, "batch 2"]
]:
    """Clean and corrupted tokens (3 prompts x 7 positions), each prompt's END, and (IO, S) answers."""
    generator = torch.Generator().manual_seed(3)
    clean = torch.randint(0, 20, (3, 7), generator=generator)
    corrupted = clean.clone()
    corrupted[:, 1:3] = torch.randint(0, 20, (3, 2), generator=generator)  # two "names" change
    end = torch.tensor([6, 5, 6])
    answers = torch.tensor([[3, 7], [11, 2], [5, 16]])
    return clean, corrupted, end, answers


def _same_hooks_left(model: HookedTransformer) -> None:
    if circuits.hooks_attached(model):
        raise Wrong(
            "hooks are still attached to the model after your function: use model.run_with_hooks or "
            "`with model.hooks(...)`, which remove them"
        )


# --------------------------------------------------------------------------------------
# 3.1 Logit difference at END
# --------------------------------------------------------------------------------------


def _reference_logit_diff_per_prompt(
    logits: Float[Tensor, "batch pos d_vocab"],
    end: Int[Tensor, " batch"],
    io_token: Int[Tensor, " batch"],
    s_token: Int[Tensor, " batch"],
) -> Float[Tensor, " batch"]:
    rows = torch.arange(logits.shape[0])
    end_logits = logits[rows, end]  # batch d_vocab
    return end_logits[rows, io_token] - end_logits[rows, s_token]


def _check_logit_diff_per_prompt(fn):
    generator = torch.Generator().manual_seed(31)
    logits = torch.randn(4, 6, 7, generator=generator) * 2
    end = torch.tensor([5, 3, 4, 2])  # right-padded prompts: only row 0 ends at the last position
    io, s = torch.tensor([1, 2, 3, 0]), torch.tensor([4, 5, 6, 1])
    expected = _reference_logit_diff_per_prompt(logits, end, io, s)
    got = _expect_tensor(fn(logits.clone(), end.clone(), io.clone(), s.clone()), "logit difference")
    if got.dim() == 0:
        raise Wrong(
            "returned one number: return one logit difference per prompt, shape [batch] (the notebook takes the mean)"
        )
    if tuple(got.shape) == (4, 4):
        raise Wrong(
            "shape [batch, batch]: logits[:, end, io] pairs every row with every prompt's END; "
            "index rows and positions together, logits[torch.arange(batch), end]"
        )
    rows = torch.arange(4)
    at = lambda pos: logits[rows, pos, io] - logits[rows, pos, s]  # noqa: E731
    if _is_close(got, -expected):
        raise Wrong("the logit difference has the wrong sign: IO minus S, not S minus IO")
    if _is_close(got, at(torch.full((4,), 5))):
        raise Wrong("read at the last position: prompts are right-padded, so read each prompt at its own END position")
    if _is_close(got, at(end - 1)) or _is_close(got, at((end + 1).clamp(max=5))):
        raise Wrong(
            "off by one position: the prediction of the answer is made AT the END token (end[b]), "
            "not before or after it"
        )
    probs = logits[rows, end].softmax(-1)
    if _is_close(got, probs[rows, io] - probs[rows, s]):
        raise Wrong(
            "a difference of probabilities: use the raw logits (a log-probability difference is the same thing)"
        )
    assert_close(got, expected, "logit difference IO - S at END")
    # One prompt, a tie: both names get the same logit, so the difference is exactly 0.
    tie = torch.zeros(1, 3, 5)
    tie[0, 1, [2, 4]] = 1.5
    assert_close(
        fn(tie, torch.tensor([1]), torch.tensor([2]), torch.tensor([4])),
        torch.zeros(1),
        "logit difference of a prompt where IO and S tie",
    )


logit_diff_per_prompt = Exercise(
    "3.1", "Logit difference at END", reference=_reference_logit_diff_per_prompt, check=_check_logit_diff_per_prompt
)


# --------------------------------------------------------------------------------------
# 3.2 Direct logit attribution of a residual stack
# --------------------------------------------------------------------------------------


def _reference_residual_logit_diff_attribution(
    stack: Float[Tensor, "component batch d_model"],
    ln_scale: Float[Tensor, "batch 1"],
    directions: Float[Tensor, "batch d_model"],
) -> Float[Tensor, "component batch"]:
    centred = stack - stack.mean(-1, keepdim=True)  # ln_final subtracts the mean over d_model
    return ((centred / ln_scale) * directions).sum(-1)


def _check_residual_logit_diff_attribution(fn):
    generator = torch.Generator().manual_seed(32)
    # Components with a nonzero mean over d_model and a direction with one too: centring matters.
    stack = torch.randn(3, 2, 8, generator=generator) + torch.tensor([0.5, -1.0, 2.0])[:, None, None]
    scale = torch.tensor([[2.0], [0.5]])
    directions = torch.randn(2, 8, generator=generator) + 0.4
    expected = _reference_residual_logit_diff_attribution(stack, scale, directions)
    got = _expect_tensor(fn(stack.clone(), scale.clone(), directions.clone()), "direct attribution")
    if tuple(got.shape) == (2, 3):
        raise Wrong("shape [batch, component]: return [component, batch], one row per component")
    centred = stack - stack.mean(-1, keepdim=True)
    project = lambda x: (x * directions).sum(-1)  # noqa: E731
    if _is_close(got, -expected):
        raise Wrong("wrong sign: project on directions as given (IO minus S)")
    if _is_close(got, project(centred)):
        raise Wrong("missing the LayerNorm scale: divide each prompt's components by ln_scale[b]")
    if _is_close(got, project(centred * scale)):
        raise Wrong("multiplied by the LayerNorm scale: ln_final divides the residual stream by it")
    if _is_close(got, project(stack / scale)) or _is_close(got, project(stack)):
        raise Wrong("not centred: ln_final subtracts each vector's mean over d_model, so centre every component first")
    if any(_is_close(got, project((stack - stack.mean(dim, keepdim=True)) / scale)) for dim in (0, 1)):
        raise Wrong("centred over the wrong axis: subtract the mean over d_model (the last axis)")
    if _is_close(got, project(centred / centred.std(-1, keepdim=True, unbiased=False))) or _is_close(
        got, project(centred / centred.norm(dim=-1, keepdim=True))
    ):
        raise Wrong("normalised each component by itself: divide by ln_scale, the whole residual stream's scale")
    if _is_close(got, ((centred / scale) * directions[0]).sum(-1)):
        raise Wrong("used prompt 0's direction for every prompt: prompt b reads directions[b]")
    assert_close(got, expected, "direct logit attribution of a stack")
    # The attributions add up: the sum of the components' shares is the share of their sum.
    total = fn(stack.sum(0, keepdim=True), scale, directions)
    assert_close(total, expected.sum(0, keepdim=True), "attribution of the summed stack")


residual_logit_diff_attribution = Exercise(
    "3.2",
    "Direct logit attribution",
    reference=_reference_residual_logit_diff_attribution,
    check=_check_residual_logit_diff_attribution,
)


# --------------------------------------------------------------------------------------
# 3.3 The activation-patching hook
# --------------------------------------------------------------------------------------


def _reference_patch_head_z(
    z: Float[Tensor, "batch pos head_index d_head"],
    hook: HookPoint | None,
    head: int,
    clean_z: Float[Tensor, "batch pos head_index d_head"],
    pos: Int[Tensor, " batch"] | None = None,
) -> Float[Tensor, "batch pos head_index d_head"]:
    z = z.clone()
    if pos is None:
        z[:, :, head] = clean_z[:, :, head]
    else:
        rows = torch.arange(z.shape[0])
        z[rows, pos, head] = clean_z[rows, pos, head]
    return z


def _check_patch_head_z(fn):
    generator = torch.Generator().manual_seed(33)
    z = torch.randn(3, 5, 2, 4, generator=generator)
    clean_z = torch.randn(3, 5, 2, 4, generator=generator)
    hook = HookPoint()
    got = fn(z.clone(), hook, 1, clean_z.clone())
    if got is None:
        raise Wrong("the hook returned None: return the patched z")
    got = _expect_tensor(got, "patched z")
    expected = _reference_patch_head_z(z, hook, 1, clean_z)
    if _is_close(got, clean_z):
        raise Wrong("every head was patched: replace only head `head` (axis 2 of z), keep the others' corrupted values")
    if _is_close(got, z):
        raise Wrong("nothing changed: put clean_z's values for head `head` into z")
    wrong_axis = z.clone()
    wrong_axis[:, 1] = clean_z[:, 1]
    if _is_close(got, wrong_axis):
        raise Wrong(
            "patched position `head` instead of head `head`: z is [batch, pos, head_index, d_head], heads are axis 2"
        )
    assert_close(got, expected, "z with head 1 patched at every position")

    pos = torch.tensor([4, 2, 3])
    got = _expect_tensor(fn(z.clone(), hook, 0, clean_z.clone(), pos.clone()), "patched z")
    expected = _reference_patch_head_z(z, hook, 0, clean_z, pos)
    if _is_close(got, _reference_patch_head_z(z, hook, 0, clean_z)):
        raise Wrong("with pos given, patch only position pos[b] of row b, not every position")
    crossed = z.clone()
    crossed[:, pos, 0] = clean_z[:, pos, 0]
    if _is_close(got, crossed):
        raise Wrong(
            "rows were patched at other prompts' positions too: index rows and positions together, "
            "z[torch.arange(batch), pos, head]"
        )
    assert_close(got, expected, "z with head 0 patched at pos[b] only")


patch_head_z = Exercise(
    "3.3", "The activation-patching hook", reference=_reference_patch_head_z, check=_check_patch_head_z
)


# --------------------------------------------------------------------------------------
# 3.4 Patch every head, normalised metric
# --------------------------------------------------------------------------------------


def _reference_patch_each_head(
    model: HookedTransformer,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    metric: Metric,
    clean_value: float,
    corrupted_value: float,
) -> Float[Tensor, "layer head_index"]:
    normalised = patching.normalised_metric(metric, clean_value, corrupted_value)
    return patching.attn_head_out_all_pos(model, corrupted_tokens, clean_cache, normalised, progress=False)


@torch.no_grad()
def _patching_setup() -> tuple:
    model = tiny_model()
    clean, corrupted, end, answers = _tiny_prompts()
    metric = patching.logit_diff_metric(answers, end)
    _, clean_cache = model.run_with_cache(clean)
    return model, clean, corrupted, clean_cache, metric, metric(model(clean)).item(), metric(model(corrupted)).item()


@_on_one_thread
def _check_patch_each_head(fn):
    model, clean, corrupted, clean_cache, metric, clean_value, corrupted_value = _patching_setup()
    expected = _reference_patch_each_head(model, corrupted, clean_cache, metric, clean_value, corrupted_value)
    with torch.no_grad():
        got = fn(model, corrupted.clone(), clean_cache, metric, clean_value, corrupted_value)
    _same_hooks_left(model)
    got = _expect_tensor(got, "patching grid")
    if tuple(got.shape) == (3, 2):
        raise Wrong("shape [head_index, layer]: return [layer, head_index]")
    raw = expected * (clean_value - corrupted_value) + corrupted_value
    if _is_close(got, raw, atol=1e-4):
        raise Wrong("not normalised: return (patched - corrupted_value) / (clean_value - corrupted_value)")
    if _is_close(got, expected - 1, atol=1e-4):
        raise Wrong("subtracted clean_value: the corrupted run must score 0 and the clean run 1")
    if _is_close(got, raw / clean_value, atol=1e-4) or _is_close(got, (raw - corrupted_value) / clean_value, atol=1e-4):
        raise Wrong("divided by clean_value: divide by (clean_value - corrupted_value), the whole gap")
    if _is_close(got, torch.ones_like(expected), atol=1e-4):
        raise Wrong("every head scored 1: run the CORRUPTED tokens and put back one head's clean z at a time")
    if _is_close(got, torch.zeros_like(expected), atol=1e-4):
        raise Wrong(
            "every head scored 0: the patch never happened; hook blocks.{layer}.attn.hook_z and return the patched z"
        )
    if got.shape == expected.shape and all(torch.allclose(row, row[0].expand_as(row)) for row in got.detach()):
        raise Wrong("every head of a layer got the same value: patch one head at a time, z[:, :, head] only")
    assert_close(got, expected, "normalised metric with each head patched", atol=1e-4)


patch_each_head = Exercise(
    "3.4", "Patch every head", reference=_reference_patch_each_head, check=_check_patch_each_head
)


# --------------------------------------------------------------------------------------
# 3.5 Attribution patching
# --------------------------------------------------------------------------------------


def _reference_attribution_patch_heads(
    model: HookedTransformer,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_cache: ActivationCache,
    metric: Metric,
) -> Float[Tensor, "layer head_index"]:
    return patching.attribution_head_out_all_pos(model, corrupted_tokens, clean_cache, metric)


@_on_one_thread
def _check_attribution_patch_heads(fn):
    model, clean, corrupted, clean_cache, raw_metric, clean_value, corrupted_value = _patching_setup()
    metric = patching.normalised_metric(raw_metric, clean_value, corrupted_value)
    expected = _reference_attribution_patch_heads(model, corrupted, clean_cache, metric)
    try:
        with torch.no_grad():  # as in the notebook, which turns gradients off
            got = fn(model, corrupted.clone(), clean_cache, metric)
    except NotImplementedError:
        raise
    except RuntimeError as err:
        if "grad" in str(err):
            raise Wrong(
                "no gradient: the notebook turns gradients off; run the forward and backward inside "
                "`with torch.enable_grad():`"
            ) from err
        raise
    _same_hooks_left(model)
    got = _expect_tensor(got, "attribution estimate")
    if tuple(got.shape) == (3, 2):
        raise Wrong("shape [head_index, layer]: return [layer, head_index]")
    change = expected  # the normalised metric is 0 on the corrupted run, so the estimate is all change
    if _is_close(got, -change, atol=1e-4):
        raise Wrong("wrong sign: delta is clean z minus corrupted z (the patch moves the corrupted run toward clean)")
    batch, n_pos, d_head = clean.shape[0], clean.shape[1], model.cfg.d_head
    if any(_is_close(got, change / n, atol=1e-5) for n in (batch, batch * n_pos, batch * n_pos * d_head)):
        raise Wrong(
            "averaged gradient x delta: sum it over batch, pos and d_head (the metric already averages prompts)"
        )
    assert_close(got, expected, "attribution-patching estimate of each head", atol=1e-4)
    # With a metric that is not 0 on the corrupted run, the estimate must start from that value.
    offset = lambda logits: metric(logits) + 0.5  # noqa: E731
    expected = _reference_attribution_patch_heads(model, corrupted, clean_cache, offset)
    with torch.no_grad():
        got = _expect_tensor(fn(model, corrupted.clone(), clean_cache, offset), "attribution estimate")
    if _is_close(got, expected - 0.5, atol=1e-4):
        raise Wrong("returned only the change: the estimate is metric(corrupted run) + gradient x delta")
    assert_close(got, expected, "attribution estimate with a metric that is 0.5 on the corrupted run", atol=1e-4)


attribution_patch_heads = Exercise(
    "3.5", "Attribution patching", reference=_reference_attribution_patch_heads, check=_check_attribution_patch_heads
)


# --------------------------------------------------------------------------------------
# 3.6 Path patching: one head into one MLP
# --------------------------------------------------------------------------------------


def _reference_path_patch_head_to_mlp(
    model: HookedTransformer,
    clean_tokens: Int[Tensor, "batch pos"],
    corrupted_tokens: Int[Tensor, "batch pos"],
    sender: tuple[int, int],
    mlp_layer: int,
    pos: Int[Tensor, " batch"],
    metric: Metric,
) -> Float[Tensor, ""]:
    receiver = ioi_circuit.Receiver("mlp", mlp_layer, pos=pos)
    return ioi_circuit.path_patch(model, clean_tokens, corrupted_tokens, [sender], [receiver], metric)


@torch.no_grad()
def path_patch_variant(
    model: HookedTransformer,
    clean_tokens: Tensor,
    corrupted_tokens: Tensor,
    sender: tuple[int, int],
    mlp_layer: int,
    pos: Tensor | None,
    metric: Metric,
    freeze_heads: bool = True,
    freeze_mlps: bool = True,
) -> Tensor:
    """Path patching written out, with the freezing switchable: the reference and the usual mistakes.

    pos None lets the change into the receiver at every position.
    """
    layer, head = sender
    _, clean = model.run_with_cache(clean_tokens)
    _, corrupted = model.run_with_cache(corrupted_tokens)

    def sender_z(z: Tensor, hook: HookPoint) -> Tensor:
        z = (clean[hook.name] if freeze_heads else z).clone()
        z[:, :, head] = corrupted[hook.name][:, :, head]
        return z

    def freeze(act: Tensor, hook: HookPoint) -> Tensor:
        return clean[hook.name]

    hooks = [(f"blocks.{layer}.attn.hook_z", sender_z)]
    hooks += [(f"blocks.{l}.attn.hook_z", freeze) for l in range(model.cfg.n_layers) if freeze_heads and l != layer]
    hooks += [(f"blocks.{l}.hook_mlp_out", freeze) for l in range(model.cfg.n_layers) if freeze_mlps]
    receiver = f"blocks.{mlp_layer}.hook_mlp_in"
    with ioi_circuit.input_hooks(model):
        with model.hooks(fwd_hooks=hooks):
            _, patched = model.run_with_cache(clean_tokens, names_filter=receiver)
        rows = torch.arange(clean_tokens.shape[0])

        def let_in(x: Tensor, hook: HookPoint) -> Tensor:
            x = x.clone()
            if pos is None:
                return patched[receiver]
            x[rows, pos] = patched[receiver][rows, pos]
            return x

        return metric(model.run_with_hooks(clean_tokens, fwd_hooks=[(receiver, let_in)]))


@torch.no_grad()
def _activation_patch_sender(
    model: HookedTransformer, clean_tokens: Tensor, corrupted_tokens: Tensor, sender: tuple[int, int], metric: Metric
) -> Tensor:
    """The clean run with the sender's z from the corrupted run and nothing else: every path at once."""
    layer, head = sender
    _, corrupted = model.run_with_cache(corrupted_tokens)
    hook = functools.partial(_reference_patch_head_z, head=head, clean_z=corrupted[f"blocks.{layer}.attn.hook_z"])
    return metric(model.run_with_hooks(clean_tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", hook)]))


@_on_one_thread
def _check_path_patch_head_to_mlp(fn):
    model = tiny_model()
    clean, corrupted, end, answers = _tiny_prompts()
    metric = patching.logit_diff_metric(answers, end)
    # A layer-0 head into MLP1 (a layer-1 head and MLP0 sit in between), into MLP0 (its own layer), and a layer-1 head.
    for sender, mlp_layer in (((0, 1), 1), ((0, 2), 0), ((1, 0), 1)):
        expected = _reference_path_patch_head_to_mlp(model, clean, corrupted, sender, mlp_layer, end, metric)
        with torch.no_grad():
            got = fn(model, clean.clone(), corrupted.clone(), sender, mlp_layer, end.clone(), metric)
        _same_hooks_left(model)
        if model.cfg.use_hook_mlp_in or model.cfg.use_split_qkv_input:
            raise Wrong(
                "hook_mlp_in was left switched on: use `with ioi_circuit.input_hooks(model):`, which restores it"
            )
        if isinstance(got, float):
            got = torch.tensor(got)
        got = _expect_tensor(got, f"path patching L{sender[0]}H{sender[1]} -> MLP{mlp_layer}")
        if got.dim() != 0:
            raise Wrong(f"expected one number (the metric), got shape {tuple(got.shape)}")
        if _is_close(got, expected, atol=1e-4):
            continue
        # Wrong: name the mistake (each alternative costs a few forwards, so only now).
        args = (model, clean, corrupted, sender, mlp_layer)
        if _is_close(got, _activation_patch_sender(model, clean, corrupted, sender, metric), atol=1e-4):
            raise Wrong(
                "that is activation patching of the sender (every path at once): let the change in only "
                f"through the receiver, MLP{mlp_layer}'s input at pos"
            )
        if _is_close(got, path_patch_variant(*args, end, metric, freeze_heads=False), atol=1e-4):
            raise Wrong("other heads were not frozen in step 2: set every head's z but the sender's to its clean value")
        if _is_close(got, path_patch_variant(*args, end, metric, freeze_mlps=False), atol=1e-4):
            raise Wrong("the MLPs were not frozen in step 2: set every hook_mlp_out to its clean value too")
        if _is_close(got, path_patch_variant(*args, None, metric), atol=1e-4):
            raise Wrong("the receiver was patched at every position: let the change in only at pos[b] of row b")
        if _is_close(got, metric(model(clean)), atol=1e-4):
            raise Wrong(
                "nothing was patched (the clean run's metric): hook_mlp_in only runs inside "
                "`with ioi_circuit.input_hooks(model):`"
            )
        if _is_close(got, metric(model(corrupted)), atol=1e-4):
            raise Wrong("the corrupted run's metric: steps 2 and 3 run the CLEAN tokens")
        assert_close(
            got, expected, f"metric after path patching L{sender[0]}H{sender[1]} -> MLP{mlp_layer} at pos", atol=1e-4
        )


path_patch_head_to_mlp = Exercise(
    "3.6", "Path patching into an MLP", reference=_reference_path_patch_head_to_mlp, check=_check_path_patch_head_to_mlp
)
