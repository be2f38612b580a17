"""Sweep points on a Dask distributed cluster (`workbook sweep ... --cluster ADDRESS`).

A researcher's grid (seeds x sizes x densities) outgrows one laptop; Dask's scheduler is
the common way to spread Python work over machines and needs nothing but `pip install
distributed` on each. The client sends each point the notebook's text, the worker runs
it in a scratch folder and sends back the files it wrote, and the client writes them
into the sweep's folder exactly as a local sweep does (one folder per point,
`result.json` as the "done" marker, `results.csv`). Workers therefore need the workbook
installed but no shared filesystem, and resume and failure reporting are the local
sweep's own.

Start a cluster with `dask scheduler` on one machine and `dask worker ADDRESS
--nthreads 1` on each of the others (one thread per worker: each point is a notebook
with its own kernel, and torch uses the cores it is given).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

# A scheduler that is down is reported after this long; WORKBOOK_CONNECT_TIMEOUT_S overrides it
# (a slow network may need longer; the tests need less).
CONNECT_TIMEOUT_S = float(os.environ.get("WORKBOOK_CONNECT_TIMEOUT_S", "10"))


class ClusterError(RuntimeError):
    """The scheduler cannot be reached, or has no workers."""


def run_point_remote(
    notebook_name: str, notebook_text: str, point: dict[str, Any], fast: bool
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """On a worker: run one point in a scratch folder; return its RunResult and files."""
    from interp_helpers.workbook.catalog import read_notebook_info
    from interp_helpers.workbook.runner import run_notebook

    with tempfile.TemporaryDirectory(prefix="workbook-point-") as scratch:
        source = Path(scratch) / "source" / notebook_name
        source.parent.mkdir()
        source.write_text(notebook_text)
        out_dir = Path(scratch) / "out"
        result = run_notebook(
            read_notebook_info(source), point, out_dir, fast=fast, progress=False, keep_widget_state=False
        )
        files = {p.name: p.read_bytes() for p in out_dir.iterdir() if p.is_file()}
    result.executed = result.html = ""  # scratch paths mean nothing to the client
    return asdict(result), files


def connect(address: str):
    """A Dask client for `address`, or a one-line ClusterError."""
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - distributed is a workbook dependency
        raise ClusterError("--cluster needs the `distributed` package (pip install distributed)") from None
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as err:
        raise ClusterError(
            f"--cluster {address}: cannot reach a Dask scheduler there "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'no answer'})"
        ) from None
    if not client.scheduler_info().get("workers"):
        client.close()
        raise ClusterError(
            f"--cluster {address}: the scheduler has no workers; start some with `dask worker {address} --nthreads 1`"
        )
    return client


def run_points(
    address: str,
    notebook_path: Path,
    jobs: Iterable[tuple[int, dict[str, Any], Path]],
    fast: bool,
    finish: Callable[[int, Any], None],
) -> None:
    """Submit every (index, point, folder) to the cluster; write each point's files and call
    `finish(index, RunResult)` as points complete, in completion order."""
    from distributed import as_completed

    from interp_helpers.workbook.runner import RunResult, write_atomic

    client = connect(address)
    try:
        text = notebook_path.read_text()
        futures = {}
        for index, point, point_dir in jobs:
            future = client.submit(run_point_remote, notebook_path.name, text, point, fast, pure=False)
            futures[future] = (index, point, point_dir)
        for future in as_completed(futures):
            index, point, point_dir = futures[future]
            try:
                fields, files = future.result()
            except Exception as err:  # the worker died or the task could not run: a failed point
                result = RunResult(
                    notebook_path.name, dict(point), "failed", 0.0, error=f"cluster: {type(err).__name__}: {err}"
                )
                finish(index, result)
                continue
            point_dir.mkdir(parents=True, exist_ok=True)
            for name, data in files.items():
                (point_dir / name).write_bytes(data)
            result = RunResult(**fields)
            if (point_dir / notebook_path.name).exists():
                result.executed = str(point_dir / notebook_path.name)
                result.html = str((point_dir / notebook_path.name).with_suffix(".html"))
            write_atomic(point_dir / "result.json", _json(result))  # the "done" marker, last
            finish(index, result)
    finally:
        client.close()


def _json(result: Any) -> str:
    import json

    return json.dumps(asdict(result), indent=2)
