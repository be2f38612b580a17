"""`workbook sweep --cluster`: the grid runs on a real Dask cluster (a scheduler and two
worker processes started here), with the local sweep's folders, results.csv, resume and
failure reporting."""

from __future__ import annotations

import csv
import json

import pytest
from conftest import TINY, run_cli


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as local:
        yield local.scheduler_address


def test_sweep_on_a_cluster_writes_what_a_local_sweep_writes(cluster, tmp_path):
    out = tmp_path / "sweep"
    done = run_cli(
        "sweep",
        str(TINY),
        "-p",
        "count",
        "1,2",
        "-p",
        "fail",
        "false,true",
        "--cluster",
        cluster,
        "--out",
        str(out),
        timeout=600,
    )
    assert done.returncode == 1, done.stderr  # the fail=true points fail, and are reported
    assert "2/4 points ok" in done.stdout
    with (out / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4
    by_point = {(r["count"], r["fail"]): r for r in rows}
    assert by_point[("1", "False")]["status"] == "ok" and by_point[("1", "False")]["total"] == "6.0"
    assert by_point[("2", "False")]["total"] == "12.0"
    assert by_point[("2", "True")]["status"] == "failed"
    assert "asked to fail" in by_point[("2", "True")]["error"]
    point = out / "count=2__fail=false"
    assert (point / "tiny.ipynb").exists() and (point / "tiny.html").exists()
    assert json.loads((point / "result.json").read_text())["status"] == "ok"

    marker = (point / "result.json").read_text()
    again = run_cli(
        "sweep",
        str(TINY),
        "-p",
        "count",
        "1,2",
        "-p",
        "fail",
        "false",
        "--cluster",
        cluster,
        "--out",
        str(out),
        timeout=300,
    )
    assert again.returncode == 0 and "2/2 points ok" in again.stdout
    assert (point / "result.json").read_text() == marker, "a finished point must not run again"


def test_unreachable_scheduler_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBOOK_CONNECT_TIMEOUT_S", "2")  # nothing listens on port 9; no need to wait 10 s
    done = run_cli(
        "sweep",
        str(TINY),
        "-p",
        "count",
        "1",
        "--cluster",
        "tcp://127.0.0.1:9",
        "--out",
        str(tmp_path / "out"),
        timeout=120,
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.startswith("workbook: ")]
    assert len(lines) == 1 and "cannot reach a Dask scheduler" in lines[0], done.stderr
    assert "Traceback" not in done.stderr
