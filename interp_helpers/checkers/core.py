"""What an exercise is, how it is checked, and how a notebook goes on without it.

An `Exercise` pairs a reference implementation with a `check(fn)` that calls the
student's function on small inputs, edge cases included, and raises `Wrong` with one
line the student can act on ("a perfect previous-token head scored 0.5: are you
dividing by every query?"), not a tensor diff. `Exercises.check` runs it and returns
the function the rest of the notebook should use: the student's when it passes, the
reference otherwise, saying so. A notebook whose exercises are all untouched therefore
still runs to the end and reports "0 of N exercises solved".
"""

from __future__ import annotations

import html
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

SOLVED, NOT_ATTEMPTED, WRONG, ERROR = "solved", "not attempted", "wrong", "error"


class Wrong(AssertionError):
    """A student's answer is wrong; the message says how, in one line."""


@dataclass(frozen=True)
class Exercise:
    number: str  # "2.1": notebook and position, as in the notebook's heading
    title: str
    reference: Callable[..., Any]
    check: Callable[[Callable[..., Any]], None]  # raises Wrong, or lets the stub's NotImplementedError through

    def __post_init__(self) -> None:
        if not callable(self.reference) or not callable(self.check):
            raise TypeError(f"exercise {self.number}: reference and check must be callable")

    @property
    def label(self) -> str:
        return f"Exercise {self.number} · {self.title}"


def assert_close(got: Any, expected: torch.Tensor, what: str, *, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Raise Wrong unless `got` is a tensor of `expected`'s shape and values (within tolerance)."""
    if not isinstance(got, torch.Tensor):
        raise Wrong(f"{what}: expected a torch.Tensor, got {type(got).__name__}")
    if tuple(got.shape) != tuple(expected.shape):
        raise Wrong(f"{what}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}")
    got_f, expected_f = got.detach().double(), expected.detach().double()
    if not torch.allclose(got_f, expected_f, atol=atol, rtol=rtol, equal_nan=True):
        index = tuple(int(i) for i in torch.nonzero(~torch.isclose(got_f, expected_f, atol=atol, rtol=rtol))[0])
        where = f" at index {list(index)}" if index else ""
        raise Wrong(f"{what}: expected {expected_f[index].item():.4g}{where}, got {got_f[index].item():.4g}")


def as_number(got: Any, what: str) -> float:
    """A Python number or a one-element tensor as a float; anything else is Wrong."""
    if isinstance(got, torch.Tensor):
        if got.numel() != 1:
            raise Wrong(f"{what}: expected one number, got a tensor of shape {tuple(got.shape)}")
        return float(got.detach())
    if isinstance(got, numbers.Real) and not isinstance(got, bool):
        return float(got)
    raise Wrong(f"{what}: expected a float, got {type(got).__name__}")


def run_check(exercise: Exercise, fn: Callable[..., Any]) -> tuple[str, str]:
    """(status, one-line message) of checking `fn` against `exercise`."""
    try:
        exercise.check(fn)
    except NotImplementedError:
        return NOT_ATTEMPTED, "not attempted yet (the stub raises NotImplementedError)"
    except Wrong as err:
        return WRONG, str(err).splitlines()[0] if str(err) else "wrong answer"
    except Exception as err:  # the student's code crashed: say where, in one line
        return ERROR, f"your function raised {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return SOLVED, "solved"


@dataclass
class Exercises:
    """The exercises of one notebook run: what was checked, and with what outcome."""

    notebook: str
    outcomes: dict[str, str] = field(default_factory=dict)  # label -> status

    def check(self, exercise: Exercise, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Check `fn`; return it when it passes, else the reference (and say so)."""
        status, message = run_check(exercise, fn)
        self.outcomes[exercise.label] = status
        if status == SOLVED:
            _show(f"✔ {exercise.label}: solved.", ok=True)
            return fn
        _show(f"✘ {exercise.label}: {message}. The notebook goes on with the reference implementation.", ok=False)
        return exercise.reference

    @property
    def solved(self) -> int:
        return sum(status == SOLVED for status in self.outcomes.values())

    def summary(self) -> int:
        """Show 'k of n exercises solved' with each exercise's outcome; return k."""
        lines = [f"{self.solved} of {len(self.outcomes)} exercises solved in notebook {self.notebook}"]
        lines += [f"  {'✔' if s == SOLVED else '✘'} {label}: {s}" for label, s in self.outcomes.items()]
        _show("\n".join(lines), ok=self.solved == len(self.outcomes))
        return self.solved


def _show(text: str, ok: bool) -> None:
    """Plain text for terminals and exports; a coloured box in JupyterLab."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython ships with the workbook
        print(text)
        return
    if get_ipython() is None:
        print(text)
        return
    colour = "#e6f4ea" if ok else "#fdecea"
    body = html.escape(text).replace("\n", "<br>")
    display(
        {
            "text/plain": text,
            "text/html": f'<div style="background:{colour};padding:6px 10px;border-radius:4px;'
            f'font-family:monospace">{body}</div>',
        },
        raw=True,
    )
