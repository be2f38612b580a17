"""Reading one latent (or neuron): the feature dashboard.

A dashboard answers "what is this unit?" from four angles, each a plain function so the
notebook, the widget and the tests share them:

    top_contexts     the tokens where it fires hardest, with the text around them
    logit_effects    the output tokens its decoder direction boosts and suppresses
                     (direction -> W_out when the hook is an MLP's hook_post -> ln_final's
                     weight -> W_U)
    auto_label       a label read off the top tokens, the cheapest automatic interpretation
    best labels      the ground truth it matches (recovery.unit_labels), which real-text
                     dashboards cannot show

`dashboard_html` renders them as self-contained HTML (inline styles and an inline SVG
histogram, no scripts), so a dashboard survives HTML export; `feature_dashboard` wires it
to an ipywidgets latent picker.
"""

from __future__ import annotations

import functools
import html
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import ipywidgets as widgets
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from interp_helpers.core.validation import check_range
from interp_helpers.transformer_circuits.attention_view import InlineHTML, str_tokens


@dataclass(frozen=True)
class Context:
    """`window` tokens either side of one firing; `values` are the unit's activations on them."""

    tokens: list[str]
    values: list[float]
    center: int  # index of the firing token in `tokens`
    value: float


@dataclass(frozen=True)
class FeatureCard:
    """Everything the dashboard shows for one unit."""

    unit: int
    density: float  # fraction of tokens where the unit is > 0
    contexts: list[Context]
    nonzero_values: Float[Tensor, " n"]  # the unit's activations where > 0 (the histogram)
    boosted: list[tuple[str, float]]
    suppressed: list[tuple[str, float]]
    auto_label: str
    best_labels: list[tuple[str, float]]  # (ground-truth label, F1), best first


def token_positions(keep: Tensor) -> Int[Tensor, "token 2"]:
    """(row, pos) of each kept token, in the order `collect_activations(..., keep=keep)` returns them."""
    return keep.nonzero()


def top_contexts(
    acts: Float[Tensor, " token"],
    tokens: Int[Tensor, "batch pos"],
    where: Int[Tensor, "token 2"],
    to_str: Callable[[Tensor], list[str]],
    k: int = 8,
    window: int = 8,
) -> list[Context]:
    """The `k` strongest firings of one unit, each with `window` tokens either side (same row only).

    acts: the unit's activation on each kept token; where: their (row, pos), from
    `token_positions`; to_str: token ids -> strings (`attention_view.str_tokens`).
    """
    check_range("k", k, 1)
    check_range("window", window, 0)
    values, order = acts.topk(min(k, acts.shape[0]))
    # Every kept token's activation, laid back out as [batch, pos], to colour the neighbours.
    grid = torch.zeros(tokens.shape, dtype=acts.dtype)
    grid[where[:, 0], where[:, 1]] = acts
    out = []
    for value, index in zip(values.tolist(), order.tolist()):
        if value <= 0:
            break
        row, pos = where[index].tolist()
        lo, hi = max(0, pos - window), min(tokens.shape[1], pos + window + 1)
        out.append(
            Context(tokens=to_str(tokens[row, lo:hi]), values=grid[row, lo:hi].tolist(), center=pos - lo, value=value)
        )
    return out


def output_direction(
    model: HookedTransformer, hook_name: str, direction: Float[Tensor, "*unit d_in"]
) -> Float[Tensor, "*unit d_model"]:
    """Where `direction` (in the hook's space; or a stack of them) lands in the residual stream.

    An MLP's hook_post is read through that layer's W_out; residual-stream hooks are
    already there. Other hooks (hook_z, keys, ...) would need their own map: refused.
    """
    parts = hook_name.split(".")
    if hook_name.endswith("mlp.hook_post"):
        return direction @ model.blocks[int(parts[1])].mlp.W_out
    if direction.shape[-1] == model.cfg.d_model and (
        "resid" in hook_name or hook_name.endswith(("hook_mlp_out", "hook_attn_out"))
    ):
        return direction
    raise ValueError(
        f"parameter hook_name={hook_name!r}: logit effects are defined for mlp.hook_post and residual-stream hooks"
    )


def logit_effects(
    model: HookedTransformer, hook_name: str, direction: Float[Tensor, " d_in"], k: int = 8
) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """The `k` output tokens whose logits `direction` raises most, and the `k` it lowers most.

    The direct path only: residual direction, times ln_final's weight (when the model has
    one), times W_U, centred over the vocabulary (LayerNorm removes any common shift).
    """
    check_range("k", k, 1)
    with torch.no_grad():
        return _logit_effects(model, hook_name, direction, k)


def _logit_effects(
    model: HookedTransformer, hook_name: str, direction: Float[Tensor, " d_in"], k: int
) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    resid = output_direction(model, hook_name, direction)
    weight = getattr(model.ln_final, "w", None)
    logits = (resid * weight if weight is not None else resid) @ model.W_U
    logits = logits - logits.mean()

    def named(values: Tensor, ids: Tensor) -> list[tuple[str, float]]:
        return list(zip(str_tokens(model, ids), values.tolist()))

    up, down = logits.topk(k), logits.topk(k, largest=False)
    return named(up.values, up.indices), named(down.values, down.indices)


def auto_label(contexts: Sequence[Context], top: int = 3) -> str:
    """The firing tokens that recur most among the top contexts, e.g. "' raven' x5, ' eagle' x2".

    Deliberately naive: it shows what a label read off the top examples says, and where
    that falls short of the ground truth (a topic feature fires on every word of a
    paragraph, so its top tokens look like a grab bag).
    """
    check_range("top", top, 1)
    counts = Counter(c.tokens[c.center] for c in contexts)
    if not counts:
        return "(never fires)"
    return ", ".join(f"{t!r} x{n}" for t, n in counts.most_common(top))


def feature_card(
    unit: int,
    acts: Float[Tensor, "token unit"],
    tokens: Int[Tensor, "batch pos"],
    where: Int[Tensor, "token 2"],
    model: HookedTransformer,
    hook_name: str,
    directions: Float[Tensor, "unit d_in"],
    best_labels: Sequence[Sequence[tuple[str, float]]] = (),
    k: int = 8,
    window: int = 8,
) -> FeatureCard:
    """Collect one unit's dashboard. directions: decoder rows (W_dec) or, for neurons, the identity."""
    check_range("unit", unit, 0, acts.shape[1] - 1)
    column = acts[:, unit]
    contexts = top_contexts(column, tokens, where, functools.partial(str_tokens, model), k=k, window=window)
    boosted, suppressed = logit_effects(model, hook_name, directions[unit], k=k)
    return FeatureCard(
        unit=unit,
        density=float((column > 0).float().mean()),
        contexts=contexts,
        nonzero_values=column[column > 0],
        boosted=boosted,
        suppressed=suppressed,
        auto_label=auto_label(contexts),
        best_labels=list(best_labels[unit]) if best_labels else [],
    )


# ------------------------------------------------------------------------------- rendering


def _shade(value: float, top: float) -> str:
    alpha = 0.0 if top <= 0 else max(0.0, min(1.0, value / top))
    return f"rgba(255,127,14,{alpha:.2f})"


def _context_html(context: Context, top: float) -> str:
    spans = []
    for i, (text, value) in enumerate(zip(context.tokens, context.values)):
        border = "border-bottom:2px solid #000;" if i == context.center else ""
        shown = html.escape(text).replace("\n", "&#8629;")
        spans.append(
            f'<span title="{value:.3f}" style="background:{_shade(value, top)};{border}white-space:pre">{shown}</span>'
        )
    return (
        f"<div style='font-family:monospace;font-size:12px;margin:1px 0;white-space:nowrap'>"
        f"{context.value:6.2f} | {''.join(spans)}</div>"
    )


def histogram_svg(values: Float[Tensor, " n"], bins: int = 30, width: int = 260, height: int = 80) -> str:
    """Inline SVG bar chart of the nonzero activations (no scripts, so it survives export)."""
    if values.numel() == 0:
        return "<div>(no activations)</div>"
    counts = torch.histc(values.float(), bins=bins, min=0.0, max=float(values.max()))
    bar_w = width / bins
    bars = "".join(
        f"<rect x='{i * bar_w:.1f}' y='{height - h:.1f}' width='{bar_w - 1:.1f}' height='{h:.1f}' fill='#ff7f0e'/>"
        for i, h in enumerate((counts / counts.max() * (height - 2)).tolist())
    )
    return (
        f"<svg width='{width}' height='{height + 14}' style='display:block'>{bars}"
        f"<text x='0' y='{height + 12}' font-size='10'>0</text>"
        f"<text x='{width}' y='{height + 12}' font-size='10' text-anchor='end'>{float(values.max()):.2f}</text></svg>"
    )


def _token_list(items: Sequence[tuple[str, float]], color: str) -> str:
    return "".join(
        f"<div style='font-family:monospace;font-size:12px'><span style='background:{color}'>"
        f"{html.escape(repr(t))}</span> {v:+.2f}</div>"
        for t, v in items
    )


def dashboard_html(card: FeatureCard, title: str = "latent") -> InlineHTML:
    """One unit's dashboard as self-contained HTML."""
    top = max((c.value for c in card.contexts), default=0.0)
    labels = ", ".join(f"{html.escape(name)} (F1 {f1:.2f})" for name, f1 in card.best_labels) or "none above F1 0"
    head = (
        f"<div style='font-weight:bold'>{html.escape(title)} {card.unit}</div>"
        f"<div style='font-size:12px'>fires on {card.density:.2%} of tokens; "
        f"automatic label from top tokens: <b>{html.escape(card.auto_label)}</b>; "
        f"best ground-truth labels: <b>{labels}</b></div>"
    )
    contexts = "".join(_context_html(c, top) for c in card.contexts) or "<div>(never fires)</div>"
    # The side panel keeps its width; long contexts scroll inside their own column instead of squeezing it.
    side = (
        f"<div style='margin-left:16px;flex:none;width:300px'>"
        f"<div style='font-size:12px'>activation histogram (where &gt; 0)</div>"
        f"{histogram_svg(card.nonzero_values)}"
        f"<div style='display:flex;gap:12px;font-size:12px'><div>boosts{_token_list(card.boosted, '#c6e5c6')}</div>"
        f"<div>suppresses{_token_list(card.suppressed, '#f5c6c6')}</div></div></div>"
    )
    return InlineHTML(
        f"<div style='border:1px solid #ddd;padding:6px;margin:4px 0'>{head}"
        f"<div style='display:flex'><div style='flex:1;min-width:0;overflow-x:auto'>{contexts}</div>"
        f"{side}</div></div>"
    )


def feature_dashboard(
    make_card: Callable[[int], FeatureCard], n_units: int, start: int = 0, title: str = "latent"
) -> widgets.VBox:
    """A latent picker that redraws `dashboard_html(make_card(unit))`; display the returned box."""
    check_range("start", start, 0, n_units - 1)
    picker = widgets.BoundedIntText(value=start, min=0, max=n_units - 1, description=title)
    view = widgets.HTML()

    def redraw(_change: object = None) -> None:
        view.value = dashboard_html(make_card(picker.value), title).html

    picker.observe(redraw, names="value")
    redraw()
    return widgets.VBox([picker, view])


# ----------------------------------------------------------------- polysemantic neurons


def polysemantic_units(
    unit_labels: Sequence[Sequence[tuple[str, float]]], min_f1: float = 0.1, fields: Sequence[str] | None = None
) -> list[tuple[int, list[tuple[str, float]]]]:
    """Units ranked by how many unrelated labels they match at F1 >= min_f1 (ties: larger F1 sum).

    unit_labels: from `recovery.unit_labels`; fields: only labels of these fields count
    (e.g. "topic" and "sense", so that one broad label such as a hierarchy root does not
    count as a meaning). Labels are unrelated when they differ in field and in the first
    part of their value ("topic=sport/water/rowing" and "topic=sport/winter/skating" are
    both "topic=sport": one meaning, "sport", not two).
    """
    check_range("min_f1", min_f1, 0.0, 1.0)
    ranked = []
    for unit, labels in enumerate(unit_labels):
        kept = [(n, f) for n, f in labels if f >= min_f1 and (fields is None or n.split("=", 1)[0] in fields)]
        groups = {n.split("/", 1)[0] for n, _ in kept}
        ranked.append((len(groups), sum(f for _, f in kept), unit, kept))
    ranked.sort(key=lambda r: (-r[0], -r[1], r[2]))
    return [(unit, kept) for _, _, unit, kept in ranked]


def split_of_neuron(
    neuron: int, neuron_labels: Sequence[tuple[str, float]], latent_table, W_dec: Float[Tensor, "d_sae d_in"]
) -> list[dict[str, object]]:
    """For each label a neuron matches, the latent that matches it best, and whether it writes to the neuron.

    latent_table: `recovery.best_f1` of the SAE's codes over the same labels. A latent
    "splits" the neuron for a label when its F1 beats the neuron's and its decoder row
    has a positive weight on the neuron (it is one of the directions the neuron mixes);
    `weight_rank` is that weight's rank among all latents (0 = the largest).
    """
    index = {name: i for i, name in enumerate(latent_table.labels)}
    weights = W_dec[:, neuron]
    order = weights.argsort(descending=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel())
    rows = []
    for name, f1 in neuron_labels:
        i = index[name]
        latent = int(latent_table.best_unit[i])
        rows.append(
            {
                "label": name,
                "neuron_f1": float(f1),
                "latent": latent,
                "latent_f1": float(latent_table.f1[i]),
                "weight_on_neuron": float(weights[latent]),
                "weight_rank": int(rank[latent]),
            }
        )
    return rows


@torch.no_grad()
def logit_vectors(
    model: HookedTransformer, hook_name: str, directions: Float[Tensor, "unit d_in"]
) -> Float[Tensor, "unit d_vocab"]:
    """Every direction's direct effect on the logits (as in `logit_effects`), centred over the vocabulary.

    Two models' residual streams live in unrelated bases, but their vocabularies are the
    same: these vectors let latents of different models be compared by what they predict.
    """
    resid = output_direction(model, hook_name, directions)
    weight = getattr(model.ln_final, "w", None)
    logits = (resid * weight if weight is not None else resid) @ model.W_U
    return logits - logits.mean(dim=-1, keepdim=True)
