"""Checkers for the exercises of notebook 06 (does it transfer? a real model).

6.1 every query head's output z from the attention pattern and the values under grouped-query
attention (query head h reads key-value head h // (n_heads // n_key_value_heads)), 6.2 the
three-name prompt ("A, B and C went to the park. B and C gave a ball to"), 6.3 name movers
from attention END -> IO and direct logit attribution (Wang et al. 2022's criteria).

Every check runs on hand-made inputs from a fixed torch.Generator and names the likely
mistake (tiling the key-value heads instead of grouping them, the wrong name left out,
absolute values that let negative name movers in, ...) before the comparison with the reference.
"""

from __future__ import annotations

import einops
import torch
from jaxtyping import Float
from torch import Tensor

from interp_helpers.checkers.core import Exercise, Wrong, assert_close
from interp_helpers.transformer_circuits import ioi, ioi_circuit

__all__ = ["gqa_head_z", "three_name_text", "name_movers"]


# --------------------------------------------------------------------------------------
# 6.1 Head outputs under grouped-query attention
# --------------------------------------------------------------------------------------


def _reference_gqa_head_z(
    pattern: Float[Tensor, "batch head_index query_pos key_pos"], v: Float[Tensor, "batch key_pos kv_head d_head"]
) -> Float[Tensor, "batch query_pos head_index d_head"]:
    group = pattern.shape[1] // v.shape[2]
    v = v.repeat_interleave(group, dim=2)  # batch key_pos head_index d_head
    return einops.einsum(
        pattern,
        v,
        "batch head_index query_pos key_pos, batch key_pos head_index d_head -> batch query_pos head_index d_head",
    )


def _check_gqa_head_z(fn):
    generator = torch.Generator().manual_seed(61)
    pattern = torch.rand(2, 6, 5, 5, generator=generator).tril().softmax(-1)  # 6 query heads
    v = torch.randn(2, 5, 3, 4, generator=generator)  # 3 key-value heads: groups of 2
    got = fn(pattern.clone(), v.clone())
    if not isinstance(got, Tensor):
        raise Wrong(f"expected a torch.Tensor, got {type(got).__name__}")
    if tuple(got.shape) != (2, 5, 6, 4):
        raise Wrong(f"shape {tuple(got.shape)}: z is [batch query_pos head_index d_head] = (2, 5, 6, 4)")
    tiled = einops.einsum(pattern, v.repeat(1, 1, 2, 1), "b h q k, b k h d -> b q h d")
    if torch.allclose(got, tiled, atol=1e-5):
        raise Wrong(
            "query head h read key-value head h % n_kv: heads are grouped, h // (n_heads // n_kv) "
            "(repeat_interleave, not repeat)"
        )
    transposed = einops.einsum(pattern.transpose(-1, -2), v.repeat_interleave(2, 2), "b h q k, b k h d -> b q h d")
    if torch.allclose(got, transposed, atol=1e-5):
        raise Wrong("the pattern is [query_pos key_pos]: sum over the key axis (the last), not the query axis")
    assert_close(got, _reference_gqa_head_z(pattern, v), "z of every query head")
    # Without grouping (n_kv = n_heads) it is ordinary attention.
    plain = torch.randn(2, 5, 6, 4, generator=generator)
    assert_close(fn(pattern, plain), _reference_gqa_head_z(pattern, plain), "z when every head has its own values")


gqa_head_z = Exercise(
    "6.1", "Head outputs under grouped-query attention", reference=_reference_gqa_head_z, check=_check_gqa_head_z
)


# --------------------------------------------------------------------------------------
# 6.2 The three-name prompt
# --------------------------------------------------------------------------------------


def _check_three_name_text(fn):
    cases = [(("Mary", "John", "Anna"), slot, "park", "ball") for slot in (0, 1, 2)]
    cases.append((("Peter", "Alice", "Sam"), 1, "school", "book"))
    for introduced, slot, place, obj in cases:
        got = fn(introduced, slot, place, obj)
        if not isinstance(got, str):
            raise Wrong(f"expected a str, got {type(got).__name__}")
        expected = ioi.three_name_text(introduced, slot, place, obj)
        second = got.split(". ")[-1]
        if introduced[slot] in second:
            raise Wrong(
                f"answer_slot={slot}: {introduced[slot]!r} appears in the second sentence; "
                "the answer is the one name NOT repeated"
            )
        if got.rstrip() != got or got.endswith((".", " to ", "to.")):
            raise Wrong("end the prompt at '... gave a ball to', no space or full stop: the model predicts the name")
        if got != expected:
            raise Wrong(f"for {introduced}, answer_slot={slot}: expected {expected!r}, got {got!r}")


three_name_text = Exercise("6.2", "Three-name prompts", reference=ioi.three_name_text, check=_check_three_name_text)


# --------------------------------------------------------------------------------------
# 6.3 Which heads are name movers?
# --------------------------------------------------------------------------------------


def _check_name_movers(fn):
    attention = torch.tensor([[0.9, 0.9, 0.1, 0.5], [0.5, 0.35, 0.9, 0.29]])
    direct = torch.tensor([[0.5, -0.6, 2.0, 0.3], [1.0, 0.05, -2.0, 0.9]])
    got = fn(attention, direct, 2.0)
    if not isinstance(got, list):
        raise Wrong(f"expected a list of (layer, head) tuples, got {type(got).__name__}")
    got = [tuple(int(x) for x in lh) for lh in got]
    if (1, 2) in got or (0, 1) in got:
        raise Wrong("a head that writes AGAINST IO (negative direct effect) is a negative name mover, not a name mover")
    if (0, 2) in got:
        raise Wrong("L0H2 writes IO but attends END -> IO with 0.1: a name mover must also attend to IO (>= 0.3)")
    if (1, 3) in got:
        raise Wrong("L1H3 attends END -> IO with 0.29, below the 0.3 bar")
    expected = ioi_circuit.name_movers(attention, direct, 2.0)
    if sorted(got) == sorted(expected) and got != expected:
        raise Wrong("the right heads in the wrong order: sort by direct effect, largest first")
    if got != expected:
        raise Wrong(f"expected {expected}, got {got}")
    if [tuple(int(x) for x in lh) for lh in fn(attention, direct, 20.0)] != []:
        raise Wrong("the direct-effect bar scales with the logit difference: 10% of it")


name_movers = Exercise(
    "6.3",
    "Name movers from attention and direct attribution",
    reference=lambda end_to_io, direct, logit_diff: ioi_circuit.name_movers(end_to_io, direct, logit_diff),
    check=_check_name_movers,
)
