"""The notebook build: one source per notebook, two generated notebooks, stable ids."""

import json

import nbformat
import pytest

from interp_helpers.workbook.build import (
    DEFAULT_STUB,
    BuildError,
    build_text,
    list_sources,
    split_solution,
    stale,
    targets,
)

SOURCE = '''# %% [markdown]
# # 99 · A tiny source

# %% tags=["parameters"]
seed: int = 0  # 0 <= seed < 2**32; unused
fast: bool = False  # unused

# %%
def double(x):
    """Twice x."""
    # BEGIN SOLUTION
    return 2 * x
    # END SOLUTION


def triple(x):
    # BEGIN SOLUTION
    y = 3 * x
    return y
    # END SOLUTION
    # BEGIN STUB
    # y = ...  # three times x
    # return y
    # END STUB

# %%
print(double(2))
'''


def test_split_solution_complete_and_stub():
    complete, exercise, blocks = split_solution("def f(x):\n    # BEGIN SOLUTION\n    return x\n    # END SOLUTION\n")
    assert blocks == 1
    assert complete == "def f(x):\n    return x"
    assert exercise == f"def f(x):\n    {DEFAULT_STUB}"


def test_stub_block_replaces_the_default_stub_and_is_uncommented():
    built = build_text(SOURCE)
    exercises = nbformat.reads(built.exercises, as_version=4)
    code = exercises.cells[2].source
    assert "return 2 * x" not in code and "y = 3 * x" not in code
    assert "    y = ...  # three times x\n    return y" in code
    assert code.count("NotImplementedError") == 1  # double's default stub; triple has its own
    complete = nbformat.reads(built.complete, as_version=4).cells[2].source
    assert "BEGIN" not in complete and "STUB" not in complete and "y = ..." not in complete
    compile(complete, "complete", "exec")
    compile(code, "exercise", "exec")


def test_exercises_copy_gets_the_solution_collapsed_after_the_cell():
    built = build_text(SOURCE)
    exercises = nbformat.reads(built.exercises, as_version=4)
    assert built.n_exercises == 1
    solution = exercises.cells[3]
    assert solution.cell_type == "markdown" and solution.source.startswith("<details><summary>Solution")
    assert "return 2 * x" in solution.source
    assert len(exercises.cells) == len(nbformat.reads(built.complete, as_version=4).cells) + 1


def test_cell_ids_come_from_content_and_are_stable():
    first, second = build_text(SOURCE), build_text(SOURCE)
    assert first == second
    nb = nbformat.reads(first.complete, as_version=4)
    edited = nbformat.reads(build_text(SOURCE.replace("print(double(2))", "print(double(3))")).complete, 4)
    changed = [a.id for a, b in zip(nb.cells, edited.cells) if a.id != b.id]
    assert changed == [nb.cells[-1].id]  # one edited cell, one new id
    assert nb.cells[1].metadata["tags"] == ["parameters"]
    assert nb.metadata["kernelspec"]["name"] == "interp-workbook"
    nbformat.validate(nb)


@pytest.mark.parametrize(
    "source, message",
    [
        ("x = 1\n# BEGIN SOLUTION\ny = 2\n", "not closed"),
        ("x = 1\n# END SOLUTION\n", "unexpected"),
        ("# BEGIN STUB\n# y\n# END STUB\n", "unexpected"),
        ("# BEGIN SOLUTION\ny = 2\n# END SOLUTION\n# BEGIN STUB\ny = 3\n# END STUB\n", "commented out"),
    ],
)
def test_malformed_markers_are_errors(source, message):
    with pytest.raises(BuildError, match=message):
        split_solution(source)


@pytest.mark.parametrize("source", list_sources(), ids=lambda p: p.stem)
def test_committed_notebooks_are_built_from_their_source(source):
    assert not stale(source), (
        f"{[str(p) for p in stale(source)]} differ from {source.name}: run `make notebooks` and commit the result"
    )


@pytest.mark.parametrize("source", list_sources(), ids=lambda p: p.stem)
def test_every_notebook_has_a_source_and_an_exercises_copy(source):
    complete, exercises = targets(source)
    assert complete.exists() and exercises.exists()
    json.loads(exercises.read_text())


def test_no_notebook_without_a_source():
    from interp_helpers.workbook.build import EXERCISE_DIR, NOTEBOOK_DIR

    sources = {p.stem for p in list_sources()}
    orphans = [p.name for d in (NOTEBOOK_DIR, EXERCISE_DIR) for p in d.glob("*.ipynb") if p.stem not in sources]
    assert not orphans, f"notebooks without a source in sources/: {orphans}"
