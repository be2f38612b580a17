"""The checkers of notebook 06's exercises: references and the notebook's solutions pass, plausible
mistakes are rejected with a diagnosis the student can act on."""

import einops
import pytest

from interp_helpers.checkers import real_model as checks
from interp_helpers.checkers.core import SOLVED, run_check


def _rejected(exercise, fn, *words):
    status, message = run_check(exercise, fn)
    assert status != SOLVED, f"{exercise.label}: a wrong answer passed"
    for word in words:
        assert word in message, f"{exercise.label}: expected {word!r} in {message!r}"


@pytest.mark.parametrize("name", checks.__all__)
def test_reference_passes(name):
    exercise = getattr(checks, name)
    assert run_check(exercise, exercise.reference) == (SOLVED, "solved")


# 6.1 ------------------------------------------------------------------------------------


def solution_gqa_head_z(pattern, v):  # as in the notebook
    v = v.repeat_interleave(pattern.shape[1] // v.shape[2], dim=2)
    return einops.einsum(pattern, v, "b h q k, b k h d -> b q h d")


def test_gqa_solution_passes_and_mistakes_are_named():
    assert run_check(checks.gqa_head_z, solution_gqa_head_z) == (SOLVED, "solved")
    tiled = lambda p, v: einops.einsum(p, v.repeat(1, 1, p.shape[1] // v.shape[2], 1), "b h q k, b k h d -> b q h d")  # noqa: E731
    _rejected(checks.gqa_head_z, tiled, "repeat_interleave")
    transposed = lambda p, v: solution_gqa_head_z(p.transpose(-1, -2), v)  # noqa: E731
    _rejected(checks.gqa_head_z, transposed, "key axis")
    head_first = lambda p, v: solution_gqa_head_z(p, v).transpose(1, 2)  # noqa: E731
    _rejected(checks.gqa_head_z, head_first, "shape")


# 6.2 ------------------------------------------------------------------------------------


def solution_three_name_text(introduced, answer_slot, place, obj):  # as in the notebook
    x, y = (name for i, name in enumerate(introduced) if i != answer_slot)
    return f"{introduced[0]}, {introduced[1]} and {introduced[2]} went to the {place}. {x} and {y} gave a {obj} to"


def test_three_name_solution_passes_and_mistakes_are_named():
    assert run_check(checks.three_name_text, solution_three_name_text) == (SOLVED, "solved")

    def repeats_the_answer(introduced, answer_slot, place, obj):
        others = [n for i, n in enumerate(introduced) if i != (answer_slot + 1) % 3]
        first = f"{introduced[0]}, {introduced[1]} and {introduced[2]} went to the {place}."
        return f"{first} {others[0]} and {others[1]} gave a {obj} to"

    _rejected(checks.three_name_text, repeats_the_answer, "NOT repeated")
    trailing = lambda *args: solution_three_name_text(*args) + " "  # noqa: E731
    _rejected(checks.three_name_text, trailing, "no space")

    def reversed_order(introduced, answer_slot, place, obj):
        x, y = (name for i, name in enumerate(introduced) if i != answer_slot)
        return f"{introduced[0]}, {introduced[1]} and {introduced[2]} went to the {place}. {y} and {x} gave a {obj} to"

    _rejected(checks.three_name_text, reversed_order, "expected")


# 6.3 ------------------------------------------------------------------------------------


def solution_name_movers(end_to_io, direct, logit_diff):  # as in the notebook
    found = ((end_to_io >= 0.3) & (direct >= 0.1 * abs(logit_diff))).nonzero().tolist()
    return sorted((tuple(lh) for lh in found), key=lambda lh: -float(direct[lh]))


def test_name_movers_solution_passes_and_mistakes_are_named():
    assert run_check(checks.name_movers, solution_name_movers) == (SOLVED, "solved")

    def absolute(end_to_io, direct, logit_diff):
        found = ((end_to_io >= 0.3) & (direct.abs() >= 0.1 * logit_diff)).nonzero().tolist()
        return sorted((tuple(lh) for lh in found), key=lambda lh: -float(direct[lh].abs()))

    _rejected(checks.name_movers, absolute, "negative name mover")

    def no_attention(end_to_io, direct, logit_diff):
        found = (direct >= 0.1 * logit_diff).nonzero().tolist()
        return sorted((tuple(lh) for lh in found), key=lambda lh: -float(direct[lh]))

    _rejected(checks.name_movers, no_attention, "attend")
    unsorted = lambda *args: sorted(solution_name_movers(*args))  # noqa: E731
    _rejected(checks.name_movers, unsorted, "order")

    def fixed_bar(end_to_io, direct, logit_diff):
        found = ((end_to_io >= 0.3) & (direct >= 0.2)).nonzero().tolist()
        return sorted((tuple(lh) for lh in found), key=lambda lh: -float(direct[lh]))

    _rejected(checks.name_movers, fixed_bar, "10%")
