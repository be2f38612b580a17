"""Shared fixtures: paths and a helper that runs the `workbook` CLI as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
TINY = FIXTURES / "tiny.ipynb"


def run_cli(*args: str, timeout: float = 300, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run `workbook ARGS...` with this interpreter; capture output."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "interp_helpers.workbook.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def one_thread():
    """One torch thread: training is bit-identical only then, and tiny matmuls on two threads
    crawl when the other core is busy (a 2-core machine often is)."""
    from interp_helpers.core.validation import torch_threads

    with torch_threads(1):
        yield
