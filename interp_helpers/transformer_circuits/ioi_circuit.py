"""Finding the IOI circuit: path patching, role evidence, faithfulness and backup.

Path patching (Wang et al. 2022, appendix B) asks how much of a sender's effect flows
along its *direct* edges into a set of receivers:

    1. run the clean and corrupted prompts, caching every head's z and every MLP's output;
    2. run the clean prompts with the senders' outputs taken from the corrupted run and
       every other head (and MLP, unless `freeze_mlps=False`) frozen to its clean output;
       record the receivers' inputs;
    3. run the clean prompts again, adding to each receiver's input its change in step 2,
       and score the logits with `metric`.

Receivers are a head's query, key or value input (`blocks.{l}.hook_q_input`, `k_input`,
`v_input`, which exist while `use_split_qkv_input` is on), an MLP's input
(`blocks.{l}.hook_mlp_in`) or the final residual stream (`blocks.{L-1}.hook_resid_post`),
at every position or at one position per prompt (e.g. END).

Step 3 *adds* the change rather than overwriting the input. With one receiver, or
receivers none of which reads another, the two are the same. With receivers at several
layers, adding keeps the effect an earlier receiver passes on to a later one, so the
result is the union of the paths "sender -> receiver -> anything". That makes one identity
exact (tests/test_ioi_circuit.py): with every component that reads the sender as a
receiver, path patching equals plain activation patching of the sender.

Metrics are the `patching` ones: `ioi_metric` gives `patching.normalised_metric` of the
logit difference at END, so 1 = clean (the paths carry nothing the corruption changes) and
0 = corrupted (the paths carry all of it). Sign conventions for grids: lower = more important.

Roles follow Wang et al.: name movers (attend END -> IO, copy it), S-inhibition heads (at
END, change where later heads attend), induction and duplicate-token heads (at S2, find
that S is repeated), previous-token heads (at S1+1). `ioi_attention_scores` gives the
attention part of that evidence, `name_copy_scores` the OV part, `faithfulness` the
mean-ablation test of a circuit and `knockout` the backup analysis.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import einops
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint
from transformers import PreTrainedTokenizerFast

from interp_helpers.core.validation import check_choice, check_range
from interp_helpers.modelzoo import corpus
from interp_helpers.transformer_circuits import circuits, ioi, patching

Metric = Callable[[Float[Tensor, "batch pos d_vocab"]], Float[Tensor, ""]]
Sender = tuple[int, int | None]  # (layer, head), or (layer, None) for that layer's MLP
RECEIVER_KINDS = ("q", "k", "v", "mlp", "resid")

# --------------------------------------------------------------------------------------
# Metric
# --------------------------------------------------------------------------------------


@torch.no_grad()
def ioi_metric(model: HookedTransformer, clean: ioi.IOIDataset, corrupted: ioi.IOIDataset) -> patching.Normalised:
    """Logit difference IO - S at END, normalised so the clean run scores 1 and the corrupted run 0."""
    answers = torch.stack([clean.io_token, clean.s_token], dim=-1)
    base = patching.logit_diff_metric(answers, clean.end)
    return patching.normalised_metric(base, base(model(clean.tokens)), base(model(corrupted.tokens)))


# --------------------------------------------------------------------------------------
# Path patching
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Receiver:
    """Where a path ends: a head's q/k/v input, an MLP's input, or the final residual stream.

    `head` None means every head of the layer (q/k/v only); otherwise an index into the
    hook's head axis: a query head for q, a key-value head for k and v (`kv_head`; the same
    thing without grouped-query attention). `pos` None means every position; otherwise one
    position per prompt (e.g. `ds.end`), where the change is let in.
    """

    kind: str  # one of RECEIVER_KINDS
    layer: int  # for "resid", the last layer
    head: int | None = None
    pos: Int[Tensor, " batch"] | None = None

    def hook_name(self) -> str:
        if self.kind == "mlp":
            return f"blocks.{self.layer}.hook_mlp_in"
        if self.kind == "resid":
            return f"blocks.{self.layer}.hook_resid_post"
        return f"blocks.{self.layer}.hook_{self.kind}_input"

    def reads(self, sender: Sender) -> bool:
        """Whether the sender's output is part of this receiver's input (a direct edge exists)."""
        layer, head = sender
        if self.kind == "resid":
            return True
        if self.kind == "mlp":  # an MLP reads its own layer's attention, not itself
            return self.layer > layer or (self.layer == layer and head is not None)
        return self.layer > layer


def final_resid(model: HookedTransformer, pos: Int[Tensor, " batch"] | None = None) -> Receiver:
    """The receiver that stands for the logits: the last block's hook_resid_post."""
    return Receiver("resid", model.cfg.n_layers - 1, None, pos)


def head_receivers(
    model: HookedTransformer,
    layer: int,
    head: int | None = None,
    kinds: str = "qkv",
    pos: Int[Tensor, " batch"] | None = None,
) -> list[Receiver]:
    """q, k and/or v inputs of one head (or every head of `layer`), e.g. kinds="q" for S-inhibition.

    `head` is a query head, as senders and roles name heads. With grouped-query attention
    its k and v inputs are those of its key-value head (`kv_head`), shared by every query
    head of the group: patching them changes the whole group's keys or values.
    """
    check_range("layer", layer, 0, model.cfg.n_layers - 1)
    if head is not None:
        check_range("head", head, 0, model.cfg.n_heads - 1)
    return [Receiver(kind, layer, head if head is None or kind == "q" else kv_head(model, head), pos) for kind in kinds]


def kv_head(model: HookedTransformer, head: int) -> int:
    """The key-value head that query head `head` reads (itself without grouped-query attention).

    TransformerLens repeats each key-value head for n_heads // n_key_value_heads consecutive
    query heads (`repeat_interleave`), so query head h reads key-value head h // group.
    """
    return head // (model.cfg.n_heads // n_kv_heads(model))


def n_kv_heads(model: HookedTransformer) -> int:
    """Heads of hook_k, hook_v, hook_k_input and hook_v_input: n_key_value_heads under (grouped) GQA, else n_heads."""
    n_kv = model.cfg.n_key_value_heads
    return model.cfg.n_heads if n_kv is None or model.cfg.ungroup_grouped_query_attention else n_kv


def downstream_receivers(model: HookedTransformer, sender: Sender) -> list[Receiver]:
    """Every component input that reads `sender`, at every position, plus the final residual stream."""
    layer, _ = sender
    mlps = [] if model.cfg.attn_only else [Receiver("mlp", l) for l in range(layer, model.cfg.n_layers)]
    heads = [Receiver(kind, l) for l in range(layer + 1, model.cfg.n_layers) for kind in "qkv"]
    return [r for r in mlps if r.reads(sender)] + heads + [final_resid(model)]


@contextlib.contextmanager
def input_hooks(model: HookedTransformer) -> Iterator[HookedTransformer]:
    """hook_q_input/k_input/v_input and hook_mlp_in switched on for the block, then restored."""
    old = (model.cfg.use_split_qkv_input, model.cfg.use_hook_mlp_in)
    model.set_use_split_qkv_input(True)
    if not model.cfg.attn_only:
        model.set_use_hook_mlp_in(True)
    try:
        yield model
    finally:
        model.set_use_split_qkv_input(old[0])
        if not model.cfg.attn_only:
            model.set_use_hook_mlp_in(old[1])


def _z(layer: int) -> str:
    return f"blocks.{layer}.attn.hook_z"


def _mlp_out(layer: int) -> str:
    return f"blocks.{layer}.hook_mlp_out"


def _output_names(model: HookedTransformer) -> list[str]:
    names = [_z(l) for l in range(model.cfg.n_layers)]
    return names if model.cfg.attn_only else names + [_mlp_out(l) for l in range(model.cfg.n_layers)]


@torch.no_grad()
def _cache(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], names: Sequence[str], fwd_hooks: list | None = None
) -> dict[str, Tensor]:
    """Activations `names` of a run with `fwd_hooks` (and the input hooks on)."""
    wanted = set(names)
    with input_hooks(model), model.hooks(fwd_hooks=fwd_hooks or []):
        _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in wanted, return_type=None)
    return dict(cache.cache_dict)


def _where(
    shape: torch.Size, pos: Int[Tensor, " batch"] | None, head: int | None, head_axis: bool
) -> Bool[Tensor, ...]:
    """Mask over (batch, pos[, head_index], 1): the given position per row (or all), the given head (or all)."""
    batch, n_pos = shape[0], shape[1]
    rows = (
        torch.ones(batch, n_pos, dtype=torch.bool)
        if pos is None
        else torch.arange(n_pos)[None, :] == pos.cpu()[:, None]
    )
    if not head_axis:
        return rows[..., None]
    heads = torch.ones(shape[2], dtype=torch.bool) if head is None else torch.arange(shape[2]) == head
    return (rows[:, :, None] & heads[None, None, :])[..., None]


def add_hook(act: Float[Tensor, ...], hook: HookPoint, delta: Float[Tensor, ...]) -> Float[Tensor, ...]:
    """act + delta (a new tensor): a receiver's input with its path-patched change let in."""
    return act + delta.to(act.dtype)


def _step2_hooks(
    model: HookedTransformer,
    clean: dict[str, Tensor],
    corrupted: dict[str, Tensor],
    senders: Sequence[Sender],
    sender_pos: Int[Tensor, " batch"] | None,
    freeze_mlps: bool,
) -> list:
    """Senders from the corrupted run, every other head (and MLP if frozen) at its clean output."""
    hooks = []
    for name in _output_names(model):
        layer = int(name.split(".")[1])
        is_z = name.endswith("hook_z")
        mine = [h for l, h in senders if l == layer and (h is not None) == is_z]
        value = clean[name]
        if mine:
            mask = torch.zeros(*value.shape[:-1], 1, dtype=torch.bool)
            for head in mine:
                mask |= _where(value.shape, sender_pos, head, is_z)
            value = torch.where(mask, corrupted[name], value)
        if is_z or freeze_mlps:  # frozen: the whole output is replaced
            full = torch.ones(*value.shape[:-1], 1, dtype=torch.bool)
            hooks.append((name, functools.partial(patching.patch_hook, mask=full, clean=value)))
        elif mine:  # recomputed MLP that is itself a sender: only the sender's positions are replaced
            hooks.append((name, functools.partial(patching.patch_hook, mask=mask, clean=value)))
    return hooks


def _check_senders(model: HookedTransformer, senders: Sequence[Sender]) -> None:
    for layer, head in senders:
        check_range("senders[].layer", layer, 0, model.cfg.n_layers - 1)
        if head is None and model.cfg.attn_only:
            raise ValueError("parameter senders: an MLP sender (layer, None) needs a model with MLPs")
        if head is not None:
            check_range("senders[].head", head, 0, model.cfg.n_heads - 1)


def _check_receivers(model: HookedTransformer, receivers: Sequence[Receiver], batch: int) -> None:
    if not receivers:
        raise ValueError("parameter receivers is empty")
    for r in receivers:
        check_choice("receivers[].kind", r.kind, RECEIVER_KINDS)
        check_range("receivers[].layer", r.layer, 0, model.cfg.n_layers - 1)
        if r.kind == "resid" and r.layer != model.cfg.n_layers - 1:
            raise ValueError(f"parameter receivers: the residual receiver is the last layer's, got layer {r.layer}")
        if r.kind == "mlp" and model.cfg.attn_only:
            raise ValueError("parameter receivers: an MLP receiver needs a model with MLPs")
        if r.head is not None and r.kind in ("mlp", "resid"):
            raise ValueError(f"parameter receivers: kind {r.kind!r} takes no head")
        if r.head is not None:  # k and v inputs have one head per key-value head (grouped-query attention)
            n_heads = model.cfg.n_heads if r.kind == "q" else n_kv_heads(model)
            check_range(f"receivers[].head ({r.kind})", r.head, 0, n_heads - 1)
        if r.pos is not None and r.pos.shape != (batch,):
            raise ValueError(f"parameter receivers: pos has shape {tuple(r.pos.shape)}; expected ({batch},)")


@dataclass(frozen=True)
class _Runs:
    """Clean and corrupted outputs of every component, plus the clean receiver inputs."""

    clean: dict[str, Tensor]
    corrupted: dict[str, Tensor]


def _runs(
    model: HookedTransformer, clean_tokens: Tensor, corrupted_tokens: Tensor, receivers: Sequence[Receiver]
) -> _Runs:
    outputs = _output_names(model)
    inputs = sorted({r.hook_name() for r in receivers})
    return _Runs(_cache(model, clean_tokens, outputs + inputs), _cache(model, corrupted_tokens, outputs))


@torch.no_grad()
def _path_patch(
    model: HookedTransformer,
    clean_tokens: Tensor,
    runs: _Runs,
    senders: Sequence[Sender],
    receivers: Sequence[Receiver],
    metric: Metric,
    sender_pos: Tensor | None,
    freeze_mlps: bool,
) -> Tensor:
    reached = [r for r in receivers if any(r.reads(s) for s in senders)]
    if not reached:
        raise ValueError(f"no receiver reads any of senders {list(senders)}: every receiver sits before them")
    step2 = _step2_hooks(model, runs.clean, runs.corrupted, senders, sender_pos, freeze_mlps)
    names = sorted({r.hook_name() for r in reached})
    patched = _cache(model, clean_tokens, names, step2)
    deltas: dict[str, Tensor] = {}
    for r in reached:  # receivers sharing a hook point add up in one delta
        name = r.hook_name()
        change = patched[name] - runs.clean[name]
        mask = _where(change.shape, r.pos, r.head, change.ndim == 4)
        deltas[name] = deltas.get(name, 0) + change * mask
    step3 = [(name, functools.partial(add_hook, delta=delta)) for name, delta in deltas.items()]
    with input_hooks(model):
        logits = model.run_with_hooks(clean_tokens, fwd_hooks=step3)
    return metric(logits)


def path_patch(
    model: HookedTransformer,
    clean_tokens: Int[Tensor, "batch pos"],
    corrupted_tokens: Int[Tensor, "batch pos"],
    senders: Sequence[Sender],
    receivers: Sequence[Receiver],
    metric: Metric,
    sender_pos: Int[Tensor, " batch"] | None = None,
    freeze_mlps: bool = True,
) -> Float[Tensor, ""]:
    """metric after patching the paths senders -> receivers with the corrupted senders' outputs.

    `senders` are patched together (e.g. every name mover); `sender_pos` restricts their
    corrupted output to one position per prompt. `freeze_mlps=True` freezes MLPs like heads,
    so a path through an MLP is not direct; False recomputes them (Wang et al.'s choice for
    GPT-2, where MLPs count as part of the direct path). Receivers before every sender raise.
    """
    _check_senders(model, senders)
    _check_receivers(model, receivers, clean_tokens.shape[0])
    runs = _runs(model, clean_tokens, corrupted_tokens, receivers)
    return _path_patch(model, clean_tokens, runs, senders, receivers, metric, sender_pos, freeze_mlps)


def _grid(
    model: HookedTransformer,
    clean_tokens: Tensor,
    corrupted_tokens: Tensor,
    receivers: Sequence[Receiver],
    metric: Metric,
    senders: list[Sender],
    sender_pos: Tensor | None,
    freeze_mlps: bool,
) -> Tensor:
    _check_receivers(model, receivers, clean_tokens.shape[0])
    runs = _runs(model, clean_tokens, corrupted_tokens, receivers)
    out = torch.full((len(senders),), float("nan"))
    for i, sender in enumerate(senders):
        if any(r.reads(sender) for r in receivers):
            out[i] = _path_patch(model, clean_tokens, runs, [sender], receivers, metric, sender_pos, freeze_mlps)
    return out


def path_patch_all_heads(
    model: HookedTransformer,
    clean_tokens: Int[Tensor, "batch pos"],
    corrupted_tokens: Int[Tensor, "batch pos"],
    receivers: Sequence[Receiver],
    metric: Metric,
    sender_pos: Int[Tensor, " batch"] | None = None,
    freeze_mlps: bool = True,
) -> Float[Tensor, "layer head_index"]:
    """path_patch from each head alone into `receivers`; NaN where no receiver reads the head.

    Clean and corrupted outputs are cached once; each head then costs two forwards.
    """
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    senders: list[Sender] = [(l, h) for l in range(n_layers) for h in range(n_heads)]
    out = _grid(model, clean_tokens, corrupted_tokens, receivers, metric, senders, sender_pos, freeze_mlps)
    return out.view(n_layers, n_heads)


def path_patch_heads(
    model: HookedTransformer,
    clean_tokens: Int[Tensor, "batch pos"],
    corrupted_tokens: Int[Tensor, "batch pos"],
    heads: Sequence[tuple[int, int]],
    receivers: Sequence[Receiver],
    metric: Metric,
    sender_pos: Int[Tensor, " batch"] | None = None,
    freeze_mlps: bool = True,
) -> Float[Tensor, " sender"]:
    """`path_patch_all_heads` for chosen heads only (a 270-head model cannot afford every sender)."""
    _check_senders(model, list(heads))
    return _grid(model, clean_tokens, corrupted_tokens, receivers, metric, list(heads), sender_pos, freeze_mlps)


def path_patch_all_mlps(
    model: HookedTransformer,
    clean_tokens: Int[Tensor, "batch pos"],
    corrupted_tokens: Int[Tensor, "batch pos"],
    receivers: Sequence[Receiver],
    metric: Metric,
    sender_pos: Int[Tensor, " batch"] | None = None,
    freeze_mlps: bool = True,
) -> Float[Tensor, " layer"]:
    """path_patch from each MLP alone into `receivers`; NaN where no receiver reads the MLP."""
    layers = range(model.cfg.n_layers)
    return path_patch_mlps(model, clean_tokens, corrupted_tokens, layers, receivers, metric, sender_pos, freeze_mlps)


def path_patch_mlps(
    model: HookedTransformer,
    clean_tokens: Int[Tensor, "batch pos"],
    corrupted_tokens: Int[Tensor, "batch pos"],
    layers: Sequence[int],
    receivers: Sequence[Receiver],
    metric: Metric,
    sender_pos: Int[Tensor, " batch"] | None = None,
    freeze_mlps: bool = True,
) -> Float[Tensor, " sender"]:
    """`path_patch_all_mlps` for the MLPs of chosen layers only, in that order (NaN where no receiver reads one)."""
    senders: list[Sender] = [(l, None) for l in layers]
    _check_senders(model, senders)
    return _grid(model, clean_tokens, corrupted_tokens, receivers, metric, senders, sender_pos, freeze_mlps)


# --------------------------------------------------------------------------------------
# Role evidence: attention and copying
# --------------------------------------------------------------------------------------

# (query role, key role, key offset): the attention each role of Wang et al. is defined by.
ATTENTION_SCORES = {
    "END->IO": ("END", "IO", 0),  # name mover
    "END->S1": ("END", "S1", 0),
    "END->S2": ("END", "S2", 0),  # S-inhibition attends here in GPT-2
    "S2->S1": ("S2", "S1", 0),  # duplicate-token
    "S2->S1+1": ("S2", "S1", 1),  # induction
    "S1+1->S1": ("S1", "S1", 0),  # previous-token (query at S1+1, see `_query`)
}


def _query(score: str, ds: ioi.IOIDataset) -> Int[Tensor, " batch"]:
    query, _, _ = ATTENTION_SCORES[score]
    return ds.positions[query] + (1 if score == "S1+1->S1" else 0)


@torch.no_grad()
def ioi_attention_scores(
    model: HookedTransformer, ds: ioi.IOIDataset, fwd_hooks: list | None = None
) -> dict[str, Float[Tensor, "layer head_index"]]:
    """Mean attention of every head between IOI roles (keys of ATTENTION_SCORES), over prompts."""
    with model.hooks(fwd_hooks=fwd_hooks or []):
        _, cache = model.run_with_cache(ds.tokens, names_filter=lambda n: n.endswith("attn.hook_pattern"))
    rows = torch.arange(len(ds))
    out = {}
    for score, (_, key, offset) in ATTENTION_SCORES.items():
        q, k = _query(score, ds), ds.positions[key] + offset
        out[score] = torch.stack(
            [cache[f"blocks.{l}.attn.hook_pattern"][rows, :, q, k].mean(0) for l in range(model.cfg.n_layers)]
        )
    return out


@torch.no_grad()
def three_name_attention(
    model: HookedTransformer, ds: ioi.ThreeNameDataset
) -> dict[str, Float[Tensor, "layer head_index"]]:
    """Mean attention of every head from END to the names of three-name prompts.

    Keys: "answer" (the name said once), "repeated, first mentions" (both repeated names where
    they were introduced, summed), "earlier repeat" and "last repeat" (their second mentions,
    {x} and {y} of the template). A head that avoids only the most recent name looks at
    "last repeat"; one that tracks every name said again looks at both repeats.
    """
    _, cache = model.run_with_cache(ds.tokens, names_filter=lambda n: n.endswith("attn.hook_pattern"))
    rows = torch.arange(len(ds))
    first = ds.name_pos.gather(1, ds.repeated_slots)  # batch 2
    keys = {
        "answer": ds.name_pos[rows, ds.answer_slot][:, None],
        "repeated, first mentions": first,
        "earlier repeat": ds.repeat_pos[:, :1],
        "last repeat": ds.repeat_pos[:, 1:],
    }
    out = {}
    for name, pos in keys.items():
        grids = []
        for l in range(model.cfg.n_layers):
            pattern = cache[f"blocks.{l}.attn.hook_pattern"][rows, :, ds.end]  # batch head_index key_pos
            grids.append(pattern.gather(-1, pos[:, None, :].expand(-1, pattern.shape[1], -1)).sum(-1).mean(0))
        out[name] = torch.stack(grids)
    return out


@torch.no_grad()
def three_name_test(model: HookedTransformer, n_per_slot: int, seed: int = 0) -> dict[str, list[float] | float]:
    """Three-name prompts (`ioi.THREE_NAME_TEMPLATE`) and their split twins (`ioi.SPLIT_THREE_NAME_TEMPLATE`).

    Returns the accuracy by the answer's introduced slot on both, how often the model picks
    the name said last (a recency rule never does) and, on split prompts, how often it picks
    the repeated name said in the middle clause: a model that tracks repetition avoids it, one
    that avoids the names of the final clause takes it.
    """
    out: dict[str, list[float] | float] = {}
    for key, template in (("", ioi.THREE_NAME_TEMPLATE), ("split_", ioi.SPLIT_THREE_NAME_TEMPLATE)):
        ds = ioi.three_name_dataset(model.tokenizer, n_per_slot, seed, template)
        logits = model(ds.tokens)
        choice = ioi.three_name_choice(logits, ds)
        out[f"{key}accuracy_by_slot"] = ioi.three_name_accuracy(logits, ds)
        out[f"{key}picks_earlier_repeat"] = (choice == ds.repeated_slots[:, 0]).float().mean().item()
        out[f"{key}picks_last_repeat"] = (choice == ds.repeated_slots[:, 1]).float().mean().item()
    return out


def name_tokens(tok: PreTrainedTokenizerFast) -> Int[Tensor, " name"]:
    """Token ids of the corpus names as they appear mid-sentence (" Mary"), those that are single tokens."""
    usable = ioi.usable_names(tok)
    return torch.tensor([ioi._single_token(tok, name) for name in corpus.NAMES if name in usable])


@dataclass(frozen=True)
class NameCopying:
    raw: circuits.CopyingScores  # W_E W_OV W_U restricted to names (circuits.copying_scores)
    top_k: Float[Tensor, "layer head_index"]  # Wang et al.: names whose own logit is in the top k, through MLP0
    negative_top_k: Float[Tensor, "layer head_index"]  # the same for the negated OV (suppression)


@torch.no_grad()
def name_copy_scores(model: HookedTransformer, names: Int[Tensor, " name"], k: int = 5) -> NameCopying:
    """How much each head's OV circuit copies (or suppresses) the name it attends to.

    Wang et al.'s copy score takes a name's residual after MLP0 (embedding + MLP0 of it,
    no attention), applies the head's OV, then ln_final and the unembedding restricted to
    names, and counts names that rank themselves in the top k. In a model whose MLPs write
    the answer this can stay low for a head that moves names: it only reads the direct path.
    """
    check_range("k", k, 1, len(names))
    embed = model.W_E[names]  # name d_model
    resid = embed if model.cfg.attn_only else embed + model.blocks[0].mlp(model.blocks[0].ln2(embed[None]))[0]
    resid = model.blocks[0].ln1(resid[None])[0]  # heads read through ln1; the scale makes the OV output comparable
    ov = einops.einsum(
        resid, model.OV.AB, "name d_model, layer head_index d_model d_out -> layer head_index name d_out"
    )

    def top_k(sign: float) -> Tensor:
        logits = model.unembed(model.ln_final(sign * ov.flatten(0, 1)))[..., names]  # heads name name
        own = logits.diagonal(dim1=-2, dim2=-1)
        return ((logits > own[..., None]).sum(-1) < k).float().mean(-1).view(model.cfg.n_layers, model.cfg.n_heads)

    return NameCopying(circuits.copying_scores(model, k, vocab=names), top_k(1.0), top_k(-1.0))


# Thresholds of `classify_heads`: attention is a mean probability, path damages are
# fractions of the corruption's effect, direct and total effects are fractions of the
# clean logit difference. They are Wang et al.'s qualitative criteria made explicit.
ATTENTION_MIN = 0.3  # "attends mostly to": at least this much of the query's attention
SPREAD_MIN = 0.1  # "attends to every name": at least this much to each of IO, S1, S2
PATH_MIN = 0.1  # a path that carries at least this fraction of the corruption's effect
EFFECT_MIN = 0.05  # a head whose mean ablation moves the logit difference by 5% is causal


def classify_heads(
    evidence: dict[str, Float[Tensor, "layer head_index"]], logit_diff: float
) -> list[dict[str, object]]:
    """Roles of every head with at least one, from attention, copying, paths and effects.

    evidence: `ioi_attention_scores` keys, plus "direct" (direct logit attribution),
    "total" (drop in logit difference when the head alone is mean-ablated, e.g.
    `knockout(..., heads=[]).head_total`), "copying" (positive = the OV copies names),
    "to_mlps" and "to_queries" (path damage, 1 - path_patch value, into every MLP input
    and into every later head's query at END). Roles:

        name mover            END->IO, writes IO directly (direct >= 10% of the logit diff)
        negative name mover   END->IO, writes against IO (direct <= -10%)
        S-inhibition          END->S2, and its output changes later heads' queries at END
        recent-name mover     END->S2, and its output reaches the MLPs at END (not queries)
        all-names mover       END attends to IO, S1 and S2 alike, copies names, reaches the MLPs
        duplicate-token       S2->S1
        induction             S2->S1+1
        previous-token        S1+1->S1

    `causal` says whether the head's mean ablation moves the logit difference by at least
    EFFECT_MIN of it: a role read from attention alone, without an effect, is a pattern.
    """
    rows = []
    n_layers, n_heads = evidence["END->IO"].shape
    big = lambda key, l, h: float(evidence[key][l, h]) >= ATTENTION_MIN  # noqa: E731
    for l in range(n_layers):
        for h in range(n_heads):
            value = {key: float(v[l, h]) for key, v in evidence.items()}
            to_mlps, to_queries = value.get("to_mlps", float("nan")), value.get("to_queries", float("nan"))
            roles = []
            if big("END->IO", l, h) and value["direct"] >= 0.1 * logit_diff:
                roles.append("name mover")
            if big("END->IO", l, h) and value["direct"] <= -0.1 * logit_diff:
                roles.append("negative name mover")
            if big("END->S2", l, h) and to_queries >= PATH_MIN:
                roles.append("S-inhibition")
            if big("END->S2", l, h) and to_mlps >= PATH_MIN:
                roles.append("recent-name mover")
            spread = min(value["END->IO"], value["END->S1"], value["END->S2"])
            if spread >= SPREAD_MIN and value["copying"] > 0 and to_mlps >= PATH_MIN:
                roles.append("all-names mover")
            for key, role in (("S2->S1", "duplicate-token"), ("S2->S1+1", "induction"), ("S1+1->S1", "previous-token")):
                if big(key, l, h):
                    roles.append(role)
            if roles:
                rows.append(
                    {
                        "head": f"L{l}H{h}",
                        "roles": ", ".join(roles),
                        "causal": abs(value["total"]) >= EFFECT_MIN * abs(logit_diff),
                        **value,
                    }
                )
    return rows


@torch.no_grad()
def slot_preference(model: HookedTransformer, ds: ioi.IOIDataset) -> dict[str, float]:
    """Which of a prompt's three name slots the model prefers at END, by the names that fill them.

    On ABC prompts (three different names) nothing is repeated, so a model that finds the
    repeated name has no reason to prefer any slot, while one that avoids the most recent
    name puts the S2-slot name last. Returns the mean logit gaps IO-slot - S2-slot and
    S1-slot - S2-slot, and the fraction of prompts where each slot's name is the top of the three.
    """
    rows = torch.arange(len(ds))
    logits = model(ds.tokens)[rows, ds.end]  # batch d_vocab
    slot = {role: logits[rows, ds.tokens[rows, ds.positions[role]]] for role in ("IO", "S1", "S2")}
    top = torch.stack(list(slot.values()), dim=-1).argmax(-1)
    return {
        "IO_slot_minus_S2_slot": (slot["IO"] - slot["S2"]).mean().item(),
        "S1_slot_minus_S2_slot": (slot["S1"] - slot["S2"]).mean().item(),
        **{f"top_is_{role}_slot": (top == i).float().mean().item() for i, role in enumerate(slot)},
    }


# --------------------------------------------------------------------------------------
# Mean ablation: faithfulness and knockouts
# --------------------------------------------------------------------------------------


def _layout(ds: ioi.IOIDataset) -> list[tuple[int, ...]]:
    """A row's group for mean ablation: template and every role's position, so positions line up."""
    return [(t, *(int(ds.positions[r][i]) for r in ioi.ROLES)) for i, t in enumerate(ds.templates.tolist())]


@torch.no_grad()
def template_means(
    model: HookedTransformer, clean: ioi.IOIDataset, reference: ioi.IOIDataset | Sequence[ioi.IOIDataset]
) -> dict[str, Tensor]:
    """For each clean row, every head's z and MLP's output averaged over the reference rows with its layout.

    Layout = template + role positions, so every averaged row has the same words at the same
    positions. Several reference sets (e.g. ABC sets of several seeds) pool their rows.
    """
    refs = [reference] if isinstance(reference, ioi.IOIDataset) else list(reference)
    names = _output_names(model)
    sums: dict[tuple, dict[str, Tensor]] = {}
    counts: dict[tuple, int] = {}
    for ref in refs:
        if ref.tokens.shape[1] != clean.tokens.shape[1]:
            raise ValueError(
                f"parameter reference has {ref.tokens.shape[1]} positions; clean has {clean.tokens.shape[1]}"
            )
        cache = _cache(model, ref.tokens, names)
        for i, key in enumerate(_layout(ref)):
            group = sums.setdefault(key, {n: torch.zeros_like(cache[n][0]) for n in names})
            for n in names:
                group[n] += cache[n][i]
            counts[key] = counts.get(key, 0) + 1
    keys = _layout(clean)
    missing = [k for k in keys if k not in counts]
    if missing:
        raise ValueError(f"parameter reference has no row with the layout of clean rows {missing[:3]}...")
    return {n: torch.stack([sums[k][n] / counts[k] for k in keys]) for n in names}


def mean_ablation_hooks(
    model: HookedTransformer, means: dict[str, Tensor], heads: Sequence[tuple[int, int]], mlps: Sequence[int] = ()
) -> list:
    """Hooks that set exactly these heads' z and these MLPs' outputs to `means` (from `template_means`)."""
    hooks = []
    for layer in range(model.cfg.n_layers):
        ablate = sorted(h for l, h in heads if l == layer)
        if ablate:
            mask = torch.zeros(1, 1, model.cfg.n_heads, 1, dtype=torch.bool)
            mask[:, :, ablate] = True
            hooks.append((_z(layer), functools.partial(patching.patch_hook, mask=mask, clean=means[_z(layer)])))
        if layer in mlps:
            everywhere = torch.ones(1, 1, 1, dtype=torch.bool)
            hooks.append(
                (_mlp_out(layer), functools.partial(patching.patch_hook, mask=everywhere, clean=means[_mlp_out(layer)]))
            )
    return hooks


def outside(
    model: HookedTransformer, heads: Sequence[tuple[int, int]], mlps: Sequence[int] = ()
) -> tuple[list[tuple[int, int]], list[int]]:
    """Every head and MLP of the model that is not in the given circuit."""
    inside = {tuple(h) for h in heads}
    all_heads = [(l, h) for l in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)]
    all_mlps = [] if model.cfg.attn_only else list(range(model.cfg.n_layers))
    return [h for h in all_heads if h not in inside], [l for l in all_mlps if l not in set(mlps)]


@torch.no_grad()
def _ld(model: HookedTransformer, ds: ioi.IOIDataset, hooks: list) -> float:
    return ioi.logit_diff(model.run_with_hooks(ds.tokens, fwd_hooks=hooks), ds).item()


@dataclass(frozen=True)
class Faithfulness:
    model: float  # logit difference of the whole model
    circuit: float  # with everything outside the circuit mean-ablated
    empty: float  # with every head and MLP mean-ablated (embeddings stay)

    @property
    def fraction(self) -> float:
        """circuit / model, Wang et al.'s faithfulness (GPT-2 small: 87%)."""
        return self.circuit / self.model

    @property
    def above_empty(self) -> float:
        """(circuit - empty) / (model - empty): the share of what the components add that the circuit keeps."""
        return (self.circuit - self.empty) / (self.model - self.empty)


def faithfulness(
    model: HookedTransformer,
    clean: ioi.IOIDataset,
    abc: ioi.IOIDataset | Sequence[ioi.IOIDataset],
    circuit_heads: Sequence[tuple[int, int]],
    circuit_mlps: Sequence[int] = (),
) -> Faithfulness:
    """Logit difference with every head and MLP outside the circuit set to its ABC mean (per template layout)."""
    means = template_means(model, clean, abc)
    return Faithfulness(
        _ld(model, clean, []),
        _ld(model, clean, mean_ablation_hooks(model, means, *outside(model, circuit_heads, circuit_mlps))),
        _ld(model, clean, mean_ablation_hooks(model, means, *outside(model, []))),
    )


@dataclass(frozen=True)
class Knockout:
    """Each component's effect before and after knocking out `heads`; backups are the ones that grow."""

    heads: tuple[tuple[int, int], ...]
    logit_diff: float  # intact model
    knocked_logit_diff: float  # with `heads` mean-ablated
    head_total: Float[Tensor, "layer head_index"]  # drop in logit diff when each head alone is mean-ablated
    head_total_after: Float[Tensor, "layer head_index"]  # the same with `heads` knocked out (NaN for them)
    mlp_total: Float[Tensor, " layer"]
    mlp_total_after: Float[Tensor, " layer"]
    direct: dict[str, float]  # ioi.component_attribution means (embed, L{l} attn, L{l} mlp, ...)
    direct_after: dict[str, float]
    head_direct: Float[Tensor, "layer head_index"]
    head_direct_after: Float[Tensor, "layer head_index"]

    @property
    def head_growth(self) -> Float[Tensor, "layer head_index"]:
        return self.head_total_after - self.head_total

    @property
    def mlp_growth(self) -> Float[Tensor, " layer"]:
        return self.mlp_total_after - self.mlp_total

    def summary(self) -> dict[str, object]:
        """One row for a table: what was knocked out, what survives, and the largest growth of another head.

        Growth of a head's total effect (it matters more without the knocked-out heads) and of its
        direct effect (it writes more of the answer itself: Wang et al.'s backup name movers, whose
        direct effect grows by at least 10% of the logit difference).
        """
        n_heads = self.head_total.shape[1]
        name = lambda i: f"L{i // n_heads}H{i % n_heads}"  # noqa: E731
        knocked = torch.zeros_like(self.head_total, dtype=torch.bool)
        for l, h in self.heads:
            knocked[l, h] = True
        total = self.head_growth.masked_fill(knocked, float("-inf")).flatten()
        direct = (self.head_direct_after - self.head_direct).masked_fill(knocked, float("-inf")).flatten()
        backups = (direct >= 0.1 * abs(self.logit_diff)).nonzero().flatten().tolist()
        return {
            "knocked out": ", ".join(f"L{l}H{h}" for l, h in self.heads),
            "logit diff": self.logit_diff,
            "after": self.knocked_logit_diff,
            "survives": self.knocked_logit_diff / self.logit_diff,
            "largest total-effect growth": f"{name(int(total.argmax()))} {float(total.max()):+.2f}",
            "largest direct-effect growth": f"{name(int(direct.argmax()))} {float(direct.max()):+.2f}",
            "backup name movers (direct +10%)": ", ".join(map(name, backups)) or "none",
        }


@torch.no_grad()
def knockout(
    model: HookedTransformer,
    clean: ioi.IOIDataset,
    abc: ioi.IOIDataset | Sequence[ioi.IOIDataset],
    heads: Sequence[tuple[int, int]],
    mlps: Sequence[int] = (),
) -> Knockout:
    """Mean-ablate `heads` (and `mlps`) and measure every other component's effect with and without them."""
    means = template_means(model, clean, abc)
    base = mean_ablation_hooks(model, means, heads, mlps)
    knocked = {tuple(h) for h in heads}
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    out = {}
    for tag, hooks in (("", []), ("_after", base)):
        ld = _ld(model, clean, hooks)
        head_total = torch.full((n_layers, n_heads), float("nan"))
        for l in range(n_layers):
            for h in range(n_heads):
                if not (tag and (l, h) in knocked):
                    head_total[l, h] = ld - _ld(model, clean, hooks + mean_ablation_hooks(model, means, [(l, h)]))
        mlp_total = torch.full((n_layers,), float("nan"))
        for l in range(0 if model.cfg.attn_only else n_layers):
            if not (tag and l in mlps):
                mlp_total[l] = ld - _ld(model, clean, hooks + mean_ablation_hooks(model, means, [], [l]))
        with model.hooks(fwd_hooks=hooks):
            direct = {k: v.mean().item() for k, v in ioi.component_attribution(model, clean).items()}
        out[tag] = (ld, head_total, mlp_total, direct, ioi.head_logit_diff_attribution(model, clean, hooks))
    (ld0, ht0, mt0, d0, hd0), (ld1, ht1, mt1, d1, hd1) = out[""], out["_after"]
    return Knockout(tuple(map(tuple, heads)), ld0, ld1, ht0, ht1, mt0, mt1, d0, d1, hd0, hd1)


@dataclass(frozen=True)
class TotalEffects:
    """Each component's total effect: the logit difference lost when it alone is mean-ablated (NaN: not measured)."""

    logit_diff: float
    head_total: Float[Tensor, "layer head_index"]
    mlp_total: Float[Tensor, " layer"]


@torch.no_grad()
def total_effects(
    model: HookedTransformer,
    clean: ioi.IOIDataset,
    abc: ioi.IOIDataset | Sequence[ioi.IOIDataset],
    layers: Sequence[int] | None = None,
    progress: bool = True,
) -> TotalEffects:
    """`knockout(..., heads=[])`'s head_total and mlp_total by stacked patching, for the heads and MLPs of `layers`.

    Mean-ablating one component is patching its output from a "clean cache" that holds the
    ABC means (`template_means`) into the clean run, so `patching.patch_sites` does every
    component in a few stacked forwards, each starting at its component's layer, where
    `knockout` runs two full forwards per component (600 on a 30-layer model). Components
    outside `layers` (default: all) are NaN.
    """
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    chosen = list(range(n_layers)) if layers is None else sorted(set(layers))
    for layer in chosen:
        check_range("layers[]", layer, 0, n_layers - 1)
    means = template_means(model, clean, abc)
    metric = patching.logit_diff_metric(torch.stack([clean.io_token, clean.s_token], dim=-1), clean.end)
    mlps = [] if model.cfg.attn_only else chosen
    sites = [patching.Site(_z(l), head=h) for l in chosen for h in range(n_heads)]
    sites += [patching.Site(_mlp_out(l)) for l in mlps]
    ablated = patching.patch_sites(model, clean.tokens, means, metric, sites, progress=progress)
    ld = _ld(model, clean, [])
    head_total = torch.full((n_layers, n_heads), float("nan"))
    head_total[chosen] = ld - ablated[: len(chosen) * n_heads].view(len(chosen), n_heads)
    mlp_total = torch.full((n_layers,), float("nan"))
    mlp_total[mlps] = ld - ablated[len(chosen) * n_heads :]
    return TotalEffects(ld, head_total, mlp_total)


def name_movers(
    end_to_io: Float[Tensor, "layer head_index"],
    direct: Float[Tensor, "layer head_index"],
    logit_diff: float,
    negative: bool = False,
) -> list[tuple[int, int]]:
    """Wang et al.'s name movers: heads that attend END -> IO and write IO into the logits directly.

    A head qualifies with attention END -> IO of at least ATTENTION_MIN and a direct logit
    attribution of at least 10% of the logit difference (at most -10% for `negative` name
    movers, which write against IO). Sorted by the size of the direct effect, largest first.
    """
    sign = -1.0 if negative else 1.0
    found = ((end_to_io >= ATTENTION_MIN) & (sign * direct >= 0.1 * abs(logit_diff))).nonzero().tolist()
    return sorted(((l, h) for l, h in found), key=lambda lh: -sign * float(direct[lh]))


@torch.no_grad()
def key_head(
    model: HookedTransformer,
    clean: ioi.IOIDataset,
    abc: ioi.IOIDataset | Sequence[ioi.IOIDataset],
    effects: Knockout | TotalEffects | None = None,
) -> tuple[int, int]:
    """The head a backup experiment knocks out: the top name mover, or, without name movers, the head
    whose mean ablation costs the most logit difference (`effects`: a `knockout(..., heads=[])` or
    `total_effects`, whose unmeasured heads (NaN) are passed over; computed when None).
    """
    logit_diff = ioi.logit_diff(model(clean.tokens), clean).item()
    direct = ioi.head_logit_diff_attribution(model, clean)
    movers = name_movers(ioi_attention_scores(model, clean)["END->IO"], direct, logit_diff)
    if movers:
        return movers[0]
    total = (effects or knockout(model, clean, abc, [])).head_total.nan_to_num(float("-inf"))
    return divmod(int(total.flatten().argmax()), model.cfg.n_heads)


@dataclass(frozen=True)
class Backup:
    """Direct effects of every head before and after `heads` are mean-ablated (Wang et al. section 3.4)."""

    heads: tuple[tuple[int, int], ...]
    logit_diff: float
    knocked_logit_diff: float
    head_direct: Float[Tensor, "layer head_index"]
    head_direct_after: Float[Tensor, "layer head_index"]  # NaN for the knocked-out heads

    @property
    def growth(self) -> Float[Tensor, "layer head_index"]:
        """How much each head's direct effect grew once `heads` were gone (backups grow)."""
        return self.head_direct_after - self.head_direct


@torch.no_grad()
def backup_direct(
    model: HookedTransformer,
    clean: ioi.IOIDataset,
    abc: ioi.IOIDataset | Sequence[ioi.IOIDataset],
    heads: Sequence[tuple[int, int]],
) -> Backup:
    """Mean-ablate `heads` (ABC means per layout) and measure every other head's direct logit attribution.

    The cheap half of `knockout`: three forwards instead of two per component, which a
    30-layer model needs. A backup name mover is a head whose direct effect grows.
    """
    hooks = mean_ablation_hooks(model, template_means(model, clean, abc), heads)
    after = ioi.head_logit_diff_attribution(model, clean, hooks)
    for l, h in heads:
        after[l, h] = float("nan")
    return Backup(
        tuple(map(tuple, heads)),
        _ld(model, clean, []),
        _ld(model, clean, hooks),
        ioi.head_logit_diff_attribution(model, clean),
        after,
    )


__all__ = [
    "ATTENTION_SCORES",
    "Backup",
    "TotalEffects",
    "backup_direct",
    "path_patch_mlps",
    "total_effects",
    "name_movers",
    "key_head",
    "three_name_attention",
    "three_name_test",
    "classify_heads",
    "slot_preference",
    "RECEIVER_KINDS",
    "Faithfulness",
    "Knockout",
    "NameCopying",
    "Receiver",
    "mean_ablation_hooks",
    "outside",
    "add_hook",
    "downstream_receivers",
    "faithfulness",
    "final_resid",
    "head_receivers",
    "input_hooks",
    "ioi_attention_scores",
    "ioi_metric",
    "knockout",
    "name_copy_scores",
    "name_tokens",
    "path_patch",
    "path_patch_all_heads",
    "path_patch_heads",
    "path_patch_all_mlps",
    "template_means",
]
