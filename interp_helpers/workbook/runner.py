"""Execute notebooks with papermill and collect what they recorded.

One run writes, into its output folder, the executed notebook (trusted), an HTML
copy with its figures, and `results.json`. A sweep runs the grid of all parameter
combinations, one folder per point, and keeps `results.csv` up to date so an
interrupted sweep can be resumed and read at any time.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat
from tqdm.auto import tqdm

from interp_helpers.workbook.catalog import NotebookInfo
from interp_helpers.workbook.export import write_executed
from interp_helpers.workbook.results import read_results

# The kernel of the Python that runs the runner, i.e. the workbook's venv, whatever
# kernels the user has registered elsewhere.
KERNEL_NAME = "python3"


@dataclass
class RunResult:
    notebook: str
    parameters: dict[str, Any]
    status: str  # "ok" or "failed"
    seconds: float
    results: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    executed: str = ""
    html: str = ""

    def summary(self) -> str:
        """One line: notebook, status, time and the recorded key numbers."""
        numbers = ", ".join(f"{k}={_short(v)}" for k, v in self.results.items())
        head = f"{Path(self.notebook).stem:<34} {self.status:<6} {self.seconds:6.1f}s"
        return f"{head}  {self.error.splitlines()[0] if self.error else numbers}"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):  # short lists in full, long ones by length, to keep one line
        return f"[{', '.join(_short(v) for v in value)}]" if len(value) <= 6 else f"[{len(value)} values]"
    return str(value)


def timestamp_dir(root: Path = Path("runs"), prefix: str = "") -> Path:
    """A new folder name under `root`, e.g. runs/20261125-143000."""
    return root / (prefix + datetime.now().strftime("%Y%m%d-%H%M%S"))


def _error_text(err: BaseException) -> str:
    """Papermill errors carry the notebook's own traceback; keep its last line first."""
    ename, evalue = getattr(err, "ename", None), getattr(err, "evalue", None)
    if ename:
        return f"{ename}: {evalue}"
    return "".join(traceback.format_exception_only(type(err), err)).strip()


def run_notebook(
    info: NotebookInfo,
    parameters: dict[str, Any],
    out_dir: Path,
    *,
    fast: bool = False,
    cell_timeout: int | None = None,
    progress: bool = True,
    keep_widget_state: bool = True,
) -> RunResult:
    """Execute one notebook into `out_dir`; never raises for a failing notebook.

    Saved widget state lets JupyterLab redraw widgets when the executed copy is
    opened; it is small (the explorer keeps its figure as JSON in an Output widget, not
    plotly.js in a FigureWidget), but sweeps, which write one copy per point and are
    read through results.csv, still drop it. `write_executed` keeps one compressed copy
    of each JavaScript bundle and writes the offline HTML copy.
    """
    import papermill as pm

    # papermill re-reads the parameters cell with a regex that takes the `<=` of our declared
    # conditions for assignments and warns about every line; the catalog has already parsed
    # and validated every parameter, so its warnings are noise here.
    logging.getLogger("papermill").setLevel(logging.ERROR)
    out_dir.mkdir(parents=True, exist_ok=True)
    params = dict(parameters)
    if fast:
        params["fast"] = True
    executed_path = out_dir / info.path.name
    start = time.perf_counter()
    error = ""
    try:
        pm.execute_notebook(
            str(info.path),
            str(executed_path),
            parameters=params,
            kernel_name=KERNEL_NAME,
            cwd=str(out_dir),
            progress_bar=progress,
            execution_timeout=cell_timeout,
            # The kernel warns at every start that its local TCP sockets are unencrypted; users
            # cannot act on it; nor on the traceback it logs when Ctrl-C stops the runner first.
            extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
        )
    except Exception as err:  # a failing notebook is a result, not a crash
        error = _error_text(err)
    seconds = time.perf_counter() - start
    result = RunResult(str(info.path.name), params, "failed" if error else "ok", seconds, error=error)
    if executed_path.exists():
        nb = nbformat.read(executed_path, as_version=4)
        if not keep_widget_state:
            nb.metadata.pop("widgets", None)
        result.results = read_results(nb)
        result.html = str(write_executed(nb, executed_path))
        result.executed = str(executed_path)
    return result


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and a rename, so Ctrl-C never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_results_json(results: list[RunResult], path: Path) -> None:
    write_atomic(path, json.dumps([asdict(r) for r in results], indent=2))


# ---------------------------------------------------------------- sweeps


def sweep_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """All combinations of the grid, in a stable order."""
    names = list(grid)
    return [dict(zip(names, values)) for values in itertools.product(*(grid[n] for n in names))]


def point_dir_name(point: dict[str, Any]) -> str:
    """A readable, filesystem-safe folder name that identifies a grid point."""

    def clean(value: Any) -> str:
        return json.dumps(value).replace('"', "").replace(" ", "").replace("/", "_")

    return "__".join(f"{name}={clean(value)}" for name, value in sorted(point.items()))


def _run_point(info: NotebookInfo, point: dict[str, Any], point_dir: Path, fast: bool) -> RunResult:
    result = run_notebook(info, point, point_dir, fast=fast, progress=False, keep_widget_state=False)
    write_atomic(point_dir / "result.json", json.dumps(asdict(result), indent=2))  # the "done" marker
    return result


def _load_finished(point_dir: Path) -> RunResult | None:
    marker = point_dir / "result.json"
    if not marker.exists():
        return None
    try:
        result = RunResult(**json.loads(marker.read_text()))
    except (json.JSONDecodeError, TypeError, UnicodeDecodeError):  # not ours, or damaged: run the point again
        return None
    return result if result.status == "ok" else None


def write_results_csv(rows: list[tuple[dict[str, Any], RunResult]], path: Path) -> None:
    """One row per finished point: its parameters, status, and every recorded number."""
    param_names = sorted({k for point, _ in rows for k in point})
    result_names = sorted({k for _, r in rows for k in r.results})

    def cell(value: Any) -> Any:
        return json.dumps(value) if isinstance(value, list) else value

    handle = io.StringIO(newline="")
    writer = csv.writer(handle)
    writer.writerow([*param_names, "status", "seconds", *result_names, "error"])
    for point, result in rows:
        writer.writerow(
            [cell(point.get(n)) for n in param_names]
            + [result.status, f"{result.seconds:.2f}"]
            + [cell(result.results.get(n, "")) for n in result_names]
            + [result.error]
        )
    write_atomic(path, handle.getvalue())


def run_sweep(
    info: NotebookInfo,
    grid: dict[str, list[Any]],
    out_dir: Path,
    *,
    fixed: dict[str, Any] | None = None,
    fast: bool = False,
    jobs: int = 1,
    cluster: str | None = None,
) -> list[tuple[dict[str, Any], RunResult]]:
    """Run every grid point not already finished in `out_dir`; return all rows.

    With `cluster` (a Dask scheduler address) the points run on its workers instead of
    here; folders, markers and results.csv are written here all the same.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    points = [{**(fixed or {}), **p} for p in sweep_points(grid)]
    rows: dict[int, tuple[dict[str, Any], RunResult]] = {}
    todo = []
    for index, point in enumerate(points):
        finished = _load_finished(out_dir / point_dir_name(point))
        if finished is not None:
            rows[index] = (point, finished)
        else:
            todo.append(index)
    csv_path = out_dir / "results.csv"
    bar = tqdm(total=len(points), initial=len(points) - len(todo), desc=f"sweep {info.path.stem}", unit="point")

    def finish(index: int, result: RunResult) -> None:
        rows[index] = (points[index], result)
        if result.status != "ok":
            tqdm.write(f"point {points[index]} failed: {result.error}")
        bar.update(1)
        write_results_csv([rows[i] for i in sorted(rows)], csv_path)

    if cluster:
        from interp_helpers.workbook.cluster import run_points

        jobs_list = [(i, points[i], out_dir / point_dir_name(points[i])) for i in todo]
        run_points(cluster, info.path, jobs_list, fast, finish)
    elif jobs <= 1:
        for index in todo:
            finish(index, _run_point(info, points[index], out_dir / point_dir_name(points[index]), fast))
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {
                pool.submit(_run_point, info, points[i], out_dir / point_dir_name(points[i]), fast): i for i in todo
            }
            for future in as_completed(futures):
                finish(futures[future], future.result())
    bar.close()
    write_results_csv([rows[i] for i in sorted(rows)], csv_path)
    return [rows[i] for i in sorted(rows)]
