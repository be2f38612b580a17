"""Exercise checkers: compare a student's function with the reference, explain a failure
in one line, and let the notebook go on with the reference when an exercise is skipped.

`core` holds the machinery (`Exercise`, `Exercises`, `Wrong`); one module per notebook
holds its exercises, each an `Exercise` with a reference implementation and a check.
"""

from interp_helpers.checkers.core import Exercise, Exercises, Wrong, assert_close

__all__ = ["Exercise", "Exercises", "Wrong", "assert_close"]
