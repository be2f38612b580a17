"""Per-layer activations for probes: final tokens of short texts, and labelled corpus tokens.

`final_token_resid` runs texts of equal token length together, so no padding (and no
attention mask) ever enters a batch: a statement's activations are exactly those of the text
alone. `labelled_resid` keeps the corpus tokens that carry one label field, with their word
type (token id) for control tasks and their row for a split that never puts one document's
tokens on both sides. `random_twin` is the baseline every probe result needs: the same
architecture, never trained.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from interp_helpers.core.validation import check_range
from interp_helpers.dictionaries.activations import LabelledTokens, labelled_rows, stop_layer
from interp_helpers.modelzoo.corpus import CorpusConfig
from interp_helpers.modelzoo.specs import EVAL_SEED, get_spec


def resid_hook_names(n_layers: int) -> list[str]:
    """The embedding (resid_pre of block 0) and every block's resid_post: n_layers + 1 probe sites."""
    return ["blocks.0.hook_resid_pre"] + [f"blocks.{layer}.hook_resid_post" for layer in range(n_layers)]


@torch.no_grad()
def final_token_resid(
    model: HookedTransformer, texts: Sequence[str], hook_names: Sequence[str], batch_size: int = 64
) -> Float[Tensor, "sample layer d_model"]:
    """Activations at each hook of each text's last token (BOS prepended), texts batched by length."""
    check_range("batch_size", batch_size, 1)
    rows = [model.to_tokens(text)[0] for text in texts]
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        by_length[len(row)].append(i)
    stops = [stop_layer(name) for name in hook_names]
    stop = None if None in stops else max(s for s in stops if s is not None)
    out = torch.empty(len(texts), len(hook_names), model.cfg.d_model)
    names = set(hook_names)
    for indices in by_length.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            _, cache = model.run_with_cache(
                torch.stack([rows[i] for i in chunk]), names_filter=lambda n: n in names, stop_at_layer=stop
            )
            out[chunk] = torch.stack([cache[name][:, -1] for name in hook_names], dim=1)
    return out


def genre_rows(model_name: str, tokenizer, genre: str, n_rows: int, seed: int = EVAL_SEED) -> LabelledTokens:
    """Held-out rows (eval split) of one genre, packed as the zoo model `model_name` was trained."""
    spec = get_spec(model_name)
    cfg = CorpusConfig.from_dict(
        {**spec.corpus_overrides, "seed": seed, "split": "eval", "genre_weights": {genre: 1.0}}
    )
    return labelled_rows(cfg, tokenizer, n_rows, spec.n_ctx)


@dataclass(frozen=True)
class LabelledActivations:
    """Activations at every probe site of the tokens that carry a label, and what a split needs."""

    acts: Float[Tensor, "sample layer d_model"]
    labels: Int[Tensor, " sample"]  # 0 .. n_classes - 1
    class_names: list[str]
    word_types: Int[Tensor, " sample"]  # the token id: Hewitt & Liang's word type
    row: Int[Tensor, " sample"]  # which packed row the token came from

    def row_split(self, test_fraction: float = 0.25) -> Bool[Tensor, " sample"]:
        """True for tokens of the first (1 - test_fraction) of the rows: no row on both sides."""
        check_range("test_fraction", test_fraction, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
        cut = int(self.row.max()) + 1 - max(1, round((int(self.row.max()) + 1) * test_fraction))
        return self.row < cut


@torch.no_grad()
def labelled_resid(
    model: HookedTransformer,
    rows: LabelledTokens,
    field: str,
    hook_names: Sequence[str],
    class_names: Sequence[str],
    keep_values: Sequence[int] | None = None,
    batch_size: int = 16,
) -> LabelledActivations:
    """Activations at `hook_names` of every token whose `field` label is set (or in `keep_values`).

    Classes are renumbered 0.. in the order of the label values present; `class_names[value]`
    names the original value.
    """
    values = rows.labels[field]
    mask = values >= 0 if keep_values is None else torch.isin(values, torch.tensor(list(keep_values)))
    if not mask.any():
        raise ValueError(f"labelled_resid: no token of these rows has a {field!r} label; draw rows of its genre")
    present, labels = torch.unique(values[mask], return_inverse=True)
    names = set(hook_names)
    chunks = []
    for start in range(0, rows.tokens.shape[0], batch_size):  # a second or two: no progress bar
        _, cache = model.run_with_cache(rows.tokens[start : start + batch_size], names_filter=lambda n: n in names)
        chunk_mask = mask[start : start + batch_size]
        chunks.append(torch.stack([cache[name][chunk_mask] for name in hook_names], dim=1))
    row_index = torch.arange(rows.tokens.shape[0])[:, None].expand_as(values)
    return LabelledActivations(
        torch.cat(chunks),
        labels,
        [str(class_names[int(v)]) for v in present],
        rows.tokens[mask],
        row_index[mask],
    )


def random_twin(model: HookedTransformer, seed: int) -> HookedTransformer:
    """The same architecture and tokenizer, weights drawn as at initialisation (GPT-2 init), never trained.

    Drawn from its own generator: TransformerLens' own init reseeds the global RNG from cfg.seed.
    """
    cfg = dataclasses.replace(model.cfg, seed=None, init_weights=False)
    twin = HookedTransformer(cfg, tokenizer=model.tokenizer)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in twin.named_parameters():
            if "W_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * cfg.initializer_range)
    return twin.eval()
