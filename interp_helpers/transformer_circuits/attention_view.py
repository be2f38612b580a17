"""circuitsvis attention views that always render from the bundled JavaScript, never a CDN.

circuitsvis returns a `RenderedHTML` holding two versions of each view: one with its
JavaScript bundle inlined (`local_src`, about 1.3 MB) and one that imports it from
unpkg.com (`cdn_src`). Its `_repr_html_` pings google.com and picks the CDN version
when online, so the same notebook renders differently online and offline, and an
exported HTML file breaks as soon as it is opened without a network. `InlineHTML`
keeps only the inlined version.

Each view carries the bundle in a marked `<script data-workbook-bundle="circuitsvis">`
and draws from a separate script that waits for it, so a saved notebook or HTML copy
needs the bundle only once: `interp_helpers.workbook.export` keeps the first copy (compressed)
and drops the others.
"""

from __future__ import annotations

import json
import re

import torch
from circuitsvis.attention import attention_heads as cv_attention_heads
from circuitsvis.utils.render import RenderedHTML
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from interp_helpers.core.bundles import register_script, when_ready
from interp_helpers.core.validation import check_range

EXTERNAL_SCRIPT = re.compile(r"<script[^>]*\ssrc\s*=", re.IGNORECASE)
# circuitsvis' render_local:
#   <div id=ID .../> <script type="module"> BUNDLE CircuitsVis.render("ID", CircuitsVis.NAME, PROPS) </script>
_LOCAL_VIEW = re.compile(
    r'^\s*<div id="(?P<id>[^"]+)"[^>]*>\s*<script[^>]*>(?P<bundle>.*)\n\s*CircuitsVis\.render\(\s*"(?P=id)",\s*'
    r"CircuitsVis\.(?P<name>\w+),\s*(?P<props>.*?)\s*\)\s*</script>\s*$",
    re.DOTALL,
)


class InlineHTML:
    """HTML shown by Jupyter as is: `_repr_html_`, `__html__` and `str` all give the same source."""

    def __init__(self, html: str) -> None:
        self.html = html

    def _repr_html_(self) -> str:
        return self.html

    def __html__(self) -> str:
        return self.html

    def __str__(self) -> str:
        return self.html


def inline(rendered: RenderedHTML) -> InlineHTML:
    """The self-contained version of a circuitsvis view (raises if it would still load a script)."""
    html = rendered.local_src
    if EXTERNAL_SCRIPT.search(html):
        raise ValueError("circuitsvis' local source loads an external <script src=...>; it would not render offline")
    view = _LOCAL_VIEW.match(html)
    if view is None:  # not a circuitsvis view: shown as is
        return InlineHTML(html)
    draw = f"CircuitsVis.render({json.dumps(view['id'])}, CircuitsVis.{view['name']}, {view['props']});"
    return InlineHTML(
        f'<div id="{view["id"]}" style="margin: 15px 0;"></div>\n'
        '<script type="text/javascript" data-workbook-bundle="circuitsvis">'
        f"{view['bundle']}{register_script('circuitsvis')}</script>\n"
        f'<script type="text/javascript">\n{when_ready("circuitsvis", draw, view["id"])}\n</script>'
    )


def str_tokens(model: HookedTransformer, tokens: Int[Tensor, " pos"]) -> list[str]:
    """Token strings for the view; token ids as text when the model has no tokenizer."""
    if model.tokenizer is None:
        return [f"<{t}>" for t in tokens.tolist()]
    return [str(s) for s in model.to_str_tokens(tokens)]


def _as_tokens(
    model: HookedTransformer, tokens_or_text: str | Int[Tensor, " pos"] | Int[Tensor, "1 pos"]
) -> Int[Tensor, " pos"]:
    if isinstance(tokens_or_text, str):
        if model.tokenizer is None:
            raise ValueError("text needs a model with a tokenizer; pass token ids instead")
        return model.to_tokens(tokens_or_text)[0]  # prepends BOS as the model was trained
    if tokens_or_text.ndim == 2:
        if tokens_or_text.shape[0] != 1:
            raise ValueError(f"parameter tokens has batch {tokens_or_text.shape[0]}; pass one sequence")
        return tokens_or_text[0]
    return tokens_or_text


@torch.no_grad()
def layer_pattern(
    model: HookedTransformer, tokens: Int[Tensor, " pos"], layer: int
) -> Float[Tensor, "head_index query_pos key_pos"]:
    """Attention pattern of every head of `layer` on one sequence."""
    check_range("layer", layer, 0, model.cfg.n_layers - 1)
    name = f"blocks.{layer}.attn.hook_pattern"
    _, cache = model.run_with_cache(tokens[None], names_filter=lambda n: n == name)
    return cache[name][0]


def attention_heads(
    model: HookedTransformer,
    tokens_or_text: str | Int[Tensor, " pos"] | Int[Tensor, "1 pos"],
    layer: int,
    heads: list[int] | None = None,
) -> InlineHTML:
    """Inline circuitsvis view of the heads of `layer` on one sequence, labelled "L{layer}H{head}".

    One thumbnail per head and a large view of the selected one; hovering a token shows
    where it attends. Text is tokenized with BOS prepended, as the zoo models were trained.
    """
    tokens = _as_tokens(model, tokens_or_text)
    heads = list(range(model.cfg.n_heads)) if heads is None else heads
    for head in heads:
        check_range("head", head, 0, model.cfg.n_heads - 1)
    pattern = layer_pattern(model, tokens, layer)[heads]
    labels = str_tokens(model, tokens)
    names = [f"L{layer}H{h}" for h in heads]
    return inline(cv_attention_heads(attention=pattern, tokens=labels, attention_head_names=names))
