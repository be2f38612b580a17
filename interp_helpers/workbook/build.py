"""Build the complete and the exercises notebook from one source per notebook.

Each numbered notebook is written once, as a jupytext percent-format script in
`sources/NN_name.py` (cells start with `# %%`, markdown cells with `# %% [markdown]`,
cell tags go on the marker line: `# %% tags=["parameters"]`). Inside a code cell,

    # BEGIN SOLUTION
    ...the reference answer...
    # END SOLUTION

marks what the student writes. An optional

    # BEGIN STUB
    # scores = ...  # the lines a student starts from, commented out
    # END STUB

right after it replaces the default stub (`raise NotImplementedError`). From each
source the build writes

- `notebooks/NN_name.ipynb`: the complete notebook (markers and stubs removed), the one
  `workbook run`, sweeps and the notebook tests execute;
- `exercises/NN_name.ipynb`: the student's copy, with stubs where the solutions were and
  the solution itself in a collapsed `<details>` block after the exercise cell.

Cell ids are derived from each cell's content, so rebuilding an unchanged source gives
byte-identical files and editing one cell changes one id. The test suite rebuilds every
source in memory and fails when a committed notebook is stale.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIR = ROOT / "sources"
NOTEBOOK_DIR = ROOT / "notebooks"
EXERCISE_DIR = ROOT / "exercises"

KERNELSPEC = {"display_name": "Python (interp-workbook)", "language": "python", "name": "interp-workbook"}
_MARKER = re.compile(r"^(?P<indent>\s*)# (?P<edge>BEGIN|END) (?P<kind>SOLUTION|STUB)\s*$")
DEFAULT_STUB = 'raise NotImplementedError("exercise: replace this line with your code")'


class BuildError(ValueError):
    """A source that does not follow the markup (unbalanced or misplaced markers)."""


@dataclass(frozen=True)
class Built:
    complete: str  # the notebooks/ file's text
    exercises: str  # the exercises/ file's text
    n_exercises: int  # code cells with a SOLUTION block


def split_solution(source: str, where: str = "cell") -> tuple[str, str, int]:
    """Return (complete, exercise, number of SOLUTION blocks) for one code cell's source."""
    lines = source.splitlines()
    complete: list[str] = []
    exercise: list[str] = []
    state, indent, blocks = "code", "", 0
    for number, line in enumerate(lines, 1):
        match = _MARKER.match(line)
        if match is None:
            if state == "code":
                complete.append(line)
                exercise.append(line)
            elif state == "solution":
                complete.append(line)
            else:  # a stub line: "# code" in the source, "code" in the exercise
                text = line.strip()
                if text and not text.startswith("#"):
                    raise BuildError(f"{where} line {number}: lines inside a STUB block must be commented out")
                exercise.append(indent + text[2:] if text.startswith("# ") else indent + text[1:])
            continue
        edge, kind = match["edge"], match["kind"]
        if edge == "BEGIN" and kind == "SOLUTION" and state == "code":
            state, indent, blocks = "solution", match["indent"], blocks + 1
        elif edge == "END" and kind == "SOLUTION" and state == "solution":
            state = "code"
            following = next((rest for rest in lines[number:] if rest.strip()), "")
            stub = _MARKER.match(following)
            if not (stub and stub["edge"] == "BEGIN" and stub["kind"] == "STUB"):
                exercise.append(indent + DEFAULT_STUB)  # right where the solution was
        elif edge == "BEGIN" and kind == "STUB" and state == "code" and _after_solution(lines, number):
            state, indent = "stub", match["indent"]
        elif edge == "END" and kind == "STUB" and state == "stub":
            state = "code"
        else:
            raise BuildError(
                f"{where} line {number}: unexpected '{line.strip()}' (blocks are "
                "BEGIN/END SOLUTION, optionally followed by BEGIN/END STUB)"
            )
    if state != "code":
        raise BuildError(f"{where}: a {state.upper()} block is not closed")
    return "\n".join(complete), "\n".join(exercise), blocks


def _after_solution(lines: list[str], number: int) -> bool:
    """Whether the last non-blank line before line `number` (1-based) ends a SOLUTION block."""
    previous = next((line for line in reversed(lines[: number - 1]) if line.strip()), "")
    marker = _MARKER.match(previous)
    return bool(marker and marker["edge"] == "END" and marker["kind"] == "SOLUTION")


def _cell_ids(cells: list[nbformat.NotebookNode]) -> None:
    """Ids from content (type + source), numbered apart when two cells are identical."""
    seen: dict[str, int] = {}
    for cell in cells:
        digest = hashlib.sha1(f"{cell.cell_type}\n{cell.source}".encode()).hexdigest()[:8]
        seen[digest] = seen.get(digest, 0) + 1
        cell.id = digest if seen[digest] == 1 else f"{digest}-{seen[digest]}"


def _new_cell(cell_type: str, source: str, tags: list[str]) -> nbformat.NotebookNode:
    metadata = {"tags": tags} if tags else {}
    if cell_type == "markdown":
        return nbformat.v4.new_markdown_cell(source, metadata=metadata)
    return nbformat.v4.new_code_cell(source, metadata=metadata)


def _solution_cell(source: str) -> nbformat.NotebookNode:
    body = f"<details><summary>Solution</summary>\n\n```python\n{source}\n```\n\n</details>"
    return nbformat.v4.new_markdown_cell(body)


def _notebook(cells: list[nbformat.NotebookNode]) -> str:
    _cell_ids(cells)
    nb = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": KERNELSPEC, "language_info": {"name": "python"}})
    nb.nbformat_minor = 5
    return nbformat.writes(nb) + "\n"


def read_source_cells(text: str) -> list[tuple[str, str, list[str]]]:
    """(cell_type, source, tags) per cell of a percent-format script, via jupytext."""
    import jupytext

    nb = jupytext.reads(text, fmt="py:percent")
    cells = []
    for cell in nb.cells:
        if cell.cell_type == "raw":
            raise BuildError("raw cells are not used in the workbook; write markdown or code")
        cells.append((cell.cell_type, cell.source, list(cell.metadata.get("tags", []))))
    return cells


def build_text(text: str, name: str = "source") -> Built:
    """Build both notebooks from a source's text (nothing is written)."""
    complete, exercises, count = [], [], 0
    for index, (cell_type, source, tags) in enumerate(read_source_cells(text)):
        if cell_type == "markdown":
            complete.append(_new_cell("markdown", source, tags))
            exercises.append(_new_cell("markdown", source, tags))
            continue
        full, stub, blocks = split_solution(source, f"{name} cell {index}")
        complete.append(_new_cell("code", full, tags))
        exercises.append(_new_cell("code", stub, tags))
        if blocks:
            count += 1
            exercises.append(_solution_cell(full))
    return Built(_notebook(complete), _notebook(exercises), count)


def list_sources(source_dir: Path = SOURCE_DIR) -> list[Path]:
    return sorted(source_dir.glob("[0-9][0-9]_*.py"))


def targets(source: Path) -> tuple[Path, Path]:
    """Where a source's complete and exercises notebooks live."""
    name = source.with_suffix(".ipynb").name
    return NOTEBOOK_DIR / name, EXERCISE_DIR / name


def stale(source: Path) -> list[Path]:
    """The committed notebooks that differ from what `source` builds."""
    built = build_text(source.read_text(), source.name)
    out = []
    for path, text in zip(targets(source), (built.complete, built.exercises)):
        if not path.exists() or path.read_text() != text:
            out.append(path)
    return out


def build_all(check: bool = False, only: list[str] | None = None) -> list[Path]:
    """Write every notebook built from `sources/` (or, with check, list stale ones).

    `only` restricts the build to sources whose name starts with one of its entries ("02").
    """
    changed = []
    sources = [s for s in list_sources() if not only or any(s.name.startswith(o) for o in only)]
    if only and not sources:
        raise BuildError(f"no source in sources/ matches {only}; available: {[s.stem for s in list_sources()]}")
    for source in sources:
        if check:
            changed += stale(source)
            continue
        built = build_text(source.read_text(), source.name)
        for path, text in zip(targets(source), (built.complete, built.exercises)):
            if not path.exists() or path.read_text() != text:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
                changed.append(path)
    return changed
