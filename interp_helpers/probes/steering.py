"""The causal test of a probe direction: add it to the residual stream and watch the model's answer.

A probe shows that a label is linearly *decodable*; whether the model *uses* that direction is
a separate question (Ravichander et al. 2021; Marks & Tegmark 2023 steer with truth
directions). `add_direction` is a pure TransformerLens hook, bound with functools.partial;
`judgement_logit_diff` reads the model's own verdict, logit(" True") - logit(" False") after
"True or false: <statement>\\nAnswer:", with any hooks attached.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint

from interp_helpers.probes.statements import JUDGEMENT


def add_direction(
    act: Float[Tensor, "batch pos d_model"],
    hook: HookPoint | None,
    direction: Float[Tensor, " d_model"],
    alpha: float,
    start: int,
) -> Float[Tensor, "batch pos d_model"]:
    """act + alpha * direction at every position >= start (a new tensor; earlier positions unchanged)."""
    out = act.clone()
    out[:, start:] += alpha * direction
    return out


def answer_ids(model: HookedTransformer) -> tuple[int, int]:
    """Token ids of " True" and " False" (single tokens for the model's tokenizer, else an error)."""
    ids = [model.to_tokens(word, prepend_bos=False)[0] for word in (" True", " False")]
    if any(len(i) != 1 for i in ids):
        raise ValueError("judgement_logit_diff: ' True' and ' False' must be single tokens for this tokenizer")
    return int(ids[0][0]), int(ids[1][0])


def statement_end(model: HookedTransformer, statement: str) -> int:
    """Position of the statement's last token inside the judgement prompt (BOS included)."""
    return model.to_tokens(JUDGEMENT.format(statement=statement)).shape[1] - 1


@torch.no_grad()
def judgement_logit_diff(
    model: HookedTransformer,
    statements: Sequence[str],
    fwd_hooks_for: Callable[[int], list] | None = None,
    batch_size: int = 64,
) -> Float[Tensor, " sample"]:
    """logit(" True") - logit(" False") after each judgement prompt; prompts batched by length.

    `fwd_hooks_for(start)` gives the hooks for a batch whose statements end at position
    `start` (prompts of equal length share it); None runs the model as it is.
    """
    true_id, false_id = answer_ids(model)
    prompts = [JUDGEMENT.format(statement=s) + "\nAnswer:" for s in statements]
    rows = [model.to_tokens(p)[0] for p in prompts]
    by_length: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, (row, s) in enumerate(zip(rows, statements)):
        by_length[(len(row), statement_end(model, s))].append(i)
    out = torch.empty(len(prompts))
    for (_, start), indices in by_length.items():
        for b in range(0, len(indices), batch_size):
            chunk = indices[b : b + batch_size]
            hooks = fwd_hooks_for(start) if fwd_hooks_for else []
            logits = model.run_with_hooks(torch.stack([rows[i] for i in chunk]), fwd_hooks=hooks)[:, -1]
            out[chunk] = logits[:, true_id] - logits[:, false_id]
    return out
