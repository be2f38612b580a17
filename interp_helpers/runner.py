"""Execute notebooks with papermill and collect what they recorded.

One run writes, into its output folder, the executed notebook (trusted), an HTML
copy with its figures, and `results.json`. A sweep runs the grid of all parameter
combinations, one folder per point, and keeps `results.csv` up to date so an
interrupted sweep can be resumed and read at any time.
"""

from __future__ import annotations

import csv
import itertools
import json
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat
from tqdm.auto import tqdm

from interp_helpers.catalog import NotebookInfo
from interp_helpers.export import write_executed
from interp_helpers.results import read_results

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
    opened, but a plotly FigureWidget stores the whole plotly.js bundle in it (about
    5 MB); sweeps, which write one copy per point, drop it.
    """
    import papermill as pm

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


def write_results_json(results: list[RunResult], path: Path) -> None:
    path.write_text(json.dumps([asdict(r) for r in results], indent=2))


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
    (point_dir / "result.json").write_text(json.dumps(asdict(result), indent=2))
    return result


def _load_finished(point_dir: Path) -> RunResult | None:
    marker = point_dir / "result.json"
    if not marker.exists():
        return None
    result = RunResult(**json.loads(marker.read_text()))
    return result if result.status == "ok" else None


def write_results_csv(rows: list[tuple[dict[str, Any], RunResult]], path: Path) -> None:
    """One row per finished point: its parameters, status, and every recorded number."""
    param_names = sorted({k for point, _ in rows for k in point})
    result_names = sorted({k for _, r in rows for k in r.results})
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*param_names, "status", "seconds", *result_names, "error"])
        for point, result in rows:
            writer.writerow(
                [json.dumps(point.get(n)) if isinstance(point.get(n), list) else point.get(n) for n in param_names]
                + [result.status, f"{result.seconds:.2f}"]
                + [json.dumps(result.results.get(n)) if isinstance(result.results.get(n), list)
                   else result.results.get(n, "") for n in result_names]
                + [result.error]
            )


def run_sweep(
    info: NotebookInfo,
    grid: dict[str, list[Any]],
    out_dir: Path,
    *,
    fixed: dict[str, Any] | None = None,
    fast: bool = False,
    jobs: int = 1,
) -> list[tuple[dict[str, Any], RunResult]]:
    """Run every grid point not already finished in `out_dir`; return all rows."""
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

    if jobs <= 1:
        for index in todo:
            finish(index, _run_point(info, points[index], out_dir / point_dir_name(points[index]), fast))
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {
                pool.submit(_run_point, info, points[i], out_dir / point_dir_name(points[i]), fast): i
                for i in todo
            }
            for future in as_completed(futures):
                finish(futures[future], future.result())
    bar.close()
    write_results_csv([rows[i] for i in sorted(rows)], csv_path)
    return [rows[i] for i in sorted(rows)]
