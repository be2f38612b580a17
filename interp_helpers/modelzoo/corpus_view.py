"""See the corpus as the model sees it: tokens, each coloured by its ground-truth label.

The corpus labels character spans; a model reads BPE tokens. Rendering the two
together shows a student, before any technique is run, what "the truth" a probe or
an SAE feature will be scored against actually is, token by token. The HTML is
self-contained (inline styles, no scripts), so it survives export and offline use.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
from transformers import PreTrainedTokenizerFast

from interp_helpers.core.validation import check_choice
from interp_helpers.modelzoo.corpus import (
    LABEL_FIELDS,
    LEAVES,
    LEVEL_FIELDS,
    NODE_VOCAB,
    TOPIC_LEVEL_FIELDS,
    Document,
    label_name,
)
from interp_helpers.modelzoo.tokenizer import encode_document
from interp_helpers.transformer_circuits.attention_view import InlineHTML

# Light qualitative colours (ColorBrewer Set3 and Pastel2), most distinct first; black text stays readable.
PALETTE = (
    "#b3e2cd",
    "#fdb462",
    "#80b1d3",
    "#fccde5",
    "#ffed6f",
    "#bebada",
    "#fb8072",
    "#b3de69",
    "#fdcdac",
    "#cbd5e8",
    "#f4cae4",
    "#e6f5c9",
    "#fff2ae",
    "#f1e2cc",
    "#8dd3c7",
    "#ffffb3",
    "#bc80bd",
    "#ccebc5",
    "#66c5cc",
    "#f6cf71",
)
UNLABELLED = "#f0f0f0"
_ALPHA_RUN = re.compile(r"[A-Za-z]+")


class TokenLabel(NamedTuple):
    """One token of a document: its text (leading space included), its label, and the word it sits in."""

    text: str
    label: str | int | None  # None where the field does not apply
    word: str  # the alphabetic run around the token's first non-space character ("" if none)


# The field that says the most about each genre, for label_field="auto".
GENRE_FIELDS = MappingProxyType(
    {"story": "ioi_role", "topic": "node", "senses": "sense", "base64": "b64_class", "repeat": "repeat_occ"}
)


def label_fields() -> list[str]:
    """Every per-token field a view can colour by (the corpus fields plus node_l0..node_l2)."""
    return [*LABEL_FIELDS, *LEVEL_FIELDS, *TOPIC_LEVEL_FIELDS]


def _word_at(text: str, i: int) -> str:
    for m in _ALPHA_RUN.finditer(text):
        if m.start() <= i < m.end():
            return m.group()
    return ""


def token_table(doc: Document, tok: PreTrainedTokenizerFast, field: str = "node") -> list[TokenLabel]:
    """Per-token text, readable `field` label and surrounding word, exactly as `encode_document` labels them.

    The word is what a label claims about: BPE may split "mitochondria" into pieces,
    and every piece carries the label of the word it belongs to.
    """
    check_choice("field", field, label_fields())
    ids, labels = encode_document(doc, tok, prepend_bos=False)
    offsets = tok.backend_tokenizer.encode(doc.text, add_special_tokens=False).offsets
    rows = []
    for token_id, value, (start, end) in zip(ids.tolist(), labels[field].tolist(), offsets):
        solid = next((i for i in range(start, end) if not doc.text[i].isspace()), start)
        rows.append(TokenLabel(tok.decode([token_id]), label_name(field, value), _word_at(doc.text, solid)))
    return rows


def leaf_misalignments(doc: Document, tok: PreTrainedTokenizerFast) -> list[TokenLabel]:
    """Tokens whose `node` label is a hierarchy leaf but whose word is not in that leaf's vocabulary.

    An empty list means the labels line up with the text: the check the notebook asserts.
    """
    return [r for r in token_table(doc, tok, "node") if r.label in LEAVES and r.word not in NODE_VOCAB[r.label]]


def label_colors(labels: Sequence[Any]) -> dict[Any, str]:
    """A colour per distinct non-None label, in order of first appearance (stable across calls)."""
    distinct = list(dict.fromkeys(v for v in labels if v is not None))
    return {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(distinct)}


def _token_span(text: str, label: Any, color: str) -> str:
    shown = html.escape(text).replace("\n", "&#8629;<br>")  # a visible return arrow, then the break
    tip = html.escape(f"{text!r}: {label}")
    style = f"background:{color};border-radius:3px;padding:1px 0;margin:0 1px;white-space:pre-wrap"
    return f'<span title="{tip}" style="{style}">{shown}</span>'


def render_tokens(tokens: Sequence[str], labels: Sequence[Any], title: str = "", legend: bool = True) -> InlineHTML:
    """Tokens as coloured boxes (hover shows the label), with a legend of the labels present."""
    if len(tokens) != len(labels):
        raise ValueError(f"{len(tokens)} tokens but {len(labels)} labels")
    colors = label_colors(labels)
    body = "".join(_token_span(t, v, colors.get(v, UNLABELLED)) for t, v in zip(tokens, labels))
    parts = [f"<div style='font-weight:bold;margin:6px 0 2px'>{html.escape(title)}</div>" if title else ""]
    parts.append(f"<div style='font-family:monospace;font-size:13px;line-height:1.9'>{body}</div>")
    if legend:
        keys = "".join(_token_span(str(v), v, c) + " " for v, c in colors.items())
        parts.append(
            f"<div style='font-size:12px;margin:2px 0 10px'>labels: {keys or '(none in this document)'}"
            f" {_token_span('grey', 'not applicable', UNLABELLED)} = not applicable</div>"
        )
    return InlineHTML("<div>" + "".join(parts) + "</div>")


def document_html(
    doc: Document, tok: PreTrainedTokenizerFast, field: str = "node", max_tokens: int = 200
) -> InlineHTML:
    """One document rendered token by token, coloured by `field` (cut after max_tokens tokens).

    field="auto" picks the genre's own field (GENRE_FIELDS): ioi_role for stories, sense for senses, ...
    """
    field = GENRE_FIELDS[doc.genre] if field == "auto" else field
    rows = token_table(doc, tok, field)
    shown = rows[:max_tokens]
    cut = f", first {max_tokens} of {len(rows)} tokens" if len(rows) > max_tokens else f", {len(rows)} tokens"
    return render_tokens([r.text for r in shown], [r.label for r in shown], f"{doc.genre} #{doc.index} ({field}{cut})")


def html_table(rows: Sequence[dict[str, Any]], transpose: bool = False) -> InlineHTML:
    """A plain HTML table of dicts (columns from the first row); floats shown to 3 decimals.

    transpose=True puts one dict per column, which reads better for a few wide records (model cards).
    """
    if not rows:
        return InlineHTML("<p>(no rows)</p>")
    cols = list(rows[0])
    cell = lambda v: f"{v:.3f}" if isinstance(v, (float, np.floating)) else html.escape(str(v))  # noqa: E731
    if transpose:  # first row of the table: the first field of each record (e.g. the model name)
        cols, rows = (
            [cols[0], *(str(r[cols[0]]) for r in rows)],
            [{cols[0]: c, **{str(r[cols[0]]): r.get(c, "") for r in rows}} for c in cols[1:]],
        )
    td = "padding:2px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:top"
    head = "".join(f"<th style='{td}'>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td style='{td}'>{cell(r.get(c, ''))}</td>" for c in cols) + "</tr>" for r in rows
    )
    return InlineHTML(f"<table style='border-collapse:collapse;font-size:12px'><tr>{head}</tr>{body}</table>")


def card_summary(card: dict[str, Any]) -> dict[str, Any]:
    """One zoo-table row from a model card: architecture, budget, per-genre loss, acceptance."""
    spec, checks = card["spec"], card["acceptance"]["checks"]
    verdicts = [
        f"{'pass' if c['passed'] else 'FAIL'}: {c['metric']} = {c['value']:.2f} (need {c['op']} {c['threshold']:.2f})"
        for c in checks
    ]
    return {
        "model": card["name"],
        "status": "shipped" if card.get("full_run") else "smoke run",
        "layers": spec["n_layers"],
        "d_model": spec["d_model"],
        "heads": spec["n_heads"],
        "d_mlp": spec["d_mlp"] or "attn-only",
        "n_ctx": spec["n_ctx"],
        "pos": spec["positional_embedding_type"],
        "tokens seen": f"{card['tokens_seen']:,}",
        "wall time": f"{card['wall_time_s'] / 60:.1f} min",
        **{f"loss {g}": v for g, v in card["eval_loss_per_genre"].items()},
        "acceptance": "; ".join(verdicts) or "none (no checks in its spec)",
    }


def missing_summary(name: str) -> dict[str, Any]:
    """A zoo-table row for a model that is specified but not (yet) in data/models/."""
    return {"model": name, "status": "not shipped", "train it with": f"workbook train-zoo {name}"}
