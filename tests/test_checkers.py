"""Every exercise checker: the reference passes, a stub is 'not attempted', junk is rejected,
and a notebook goes on with the reference. Each notebook's own wrong answers are tested in
tests/test_checkers_<topic>.py."""

import importlib
import pkgutil

import pytest
import torch

import interp_helpers.checkers as checkers_pkg
from interp_helpers.checkers import Exercise, Exercises, Wrong, assert_close
from interp_helpers.checkers.core import ERROR, NOT_ATTEMPTED, SOLVED, WRONG, run_check


def all_exercises() -> list[Exercise]:
    found = []
    for info in pkgutil.iter_modules(checkers_pkg.__path__):
        module = importlib.import_module(f"interp_helpers.checkers.{info.name}")
        found += [v for v in vars(module).values() if isinstance(v, Exercise)]
    return sorted(found, key=lambda e: tuple(int(x) for x in e.number.split(".")))


EXERCISES = all_exercises()


def _stub(*args, **kwargs):
    raise NotImplementedError("exercise: replace this line with your code")


def test_exercise_numbers_are_unique():
    numbers = [e.number for e in EXERCISES]
    assert len(numbers) == len(set(numbers))


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.number)
def test_reference_passes(exercise):
    assert run_check(exercise, exercise.reference) == (SOLVED, "solved")


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.number)
def test_checker_leaves_the_global_rng_alone(exercise):
    """Checkers draw from their own torch.Generator: running one never changes a notebook's random stream."""
    state = torch.random.get_rng_state()
    run_check(exercise, exercise.reference)
    assert torch.equal(state, torch.random.get_rng_state())


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.number)
def test_stub_is_not_attempted(exercise):
    assert run_check(exercise, _stub)[0] == NOT_ATTEMPTED


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.number)
def test_a_function_that_returns_nothing_is_rejected(exercise):
    status, message = run_check(exercise, lambda *args, **kwargs: None)
    assert status in (WRONG, ERROR) and message


def _toy() -> Exercise:
    def check(fn):
        assert_close(fn(torch.tensor([1.0, 2.0])), torch.tensor([2.0, 4.0]), "double([1, 2])")
        if fn(torch.zeros(0)).shape != (0,):
            raise Wrong("an empty input must give an empty output")

    return Exercise("9.1", "double", reference=lambda x: 2 * x, check=check)


def test_exercises_fall_back_to_the_reference_and_count(capsys):
    ex = Exercises("99")
    toy = _toy()
    assert ex.check(toy, lambda x: x + x) is not toy.reference
    assert ex.check(toy, _stub) is toy.reference
    assert ex.check(toy, lambda x: 3 * x) is toy.reference
    assert ex.check(toy, lambda x: x.foo()) is toy.reference
    out = capsys.readouterr().out
    assert "✔ Exercise 9.1 · double: solved." in out
    assert "not attempted yet" in out and "goes on with the reference implementation" in out
    assert "double([1, 2]): expected 2 at index [0], got 3" in out
    assert "your function raised AttributeError" in out
    assert ex.summary() == 0  # one label, the last outcome (an error) wins
    assert "0 of 1 exercises solved in notebook 99" in capsys.readouterr().out


def test_assert_close_messages():
    with pytest.raises(Wrong, match=r"x: expected shape \(2,\), got \(3,\)"):
        assert_close(torch.zeros(3), torch.zeros(2), "x")
    with pytest.raises(Wrong, match="expected a torch.Tensor, got list"):
        assert_close([0.0, 0.0], torch.zeros(2), "x")
    assert_close(torch.ones(2) + 1e-7, torch.ones(2), "x")
