"""`workbook`: list, run, sweep and run-all the workbook's notebooks; build them from their sources.

Every failure ends in one line on stderr, never a traceback: bad input (unknown
notebook or parameter, a value that does not parse as the parameter's declared type or
breaks its declared condition, an output folder that is a file or cannot be created)
exits 2 before any kernel starts; a run that failed exits 1; Ctrl-C exits 130 and says
how to resume. Set WORKBOOK_DEBUG=1 to see the traceback of an unexpected error.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from interp_helpers.core.validation import OneLineParser as _Parser
from interp_helpers.core.validation import UsageError
from interp_helpers.workbook.catalog import (
    CatalogError,
    NotebookInfo,
    find_notebook,
    list_notebooks,
    read_notebook_info,
)

USAGE_ERROR = 2
RUN_FAILED = 1
INTERRUPTED = 130


def check_out_dir(out: Path, flag: str = "--out") -> Path:
    """Create `out` (a folder) or fail in one line: a file, or a place we cannot write."""
    if out.exists() and not out.is_dir():
        raise CatalogError(f"{flag} {out} is a file; give a folder (it is created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{uuid.uuid4().hex}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise CatalogError(f"{flag} {out}: cannot write there ({err.strerror or err})") from None
    return out


def _parameter_args(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"), help=help_text
    )


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="workbook", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="notebooks, what they show, and their parameters")

    run = sub.add_parser("run", help="execute one notebook (papermill) with parameters")
    run.add_argument("notebook", help="'01', a file name, or a path")
    _parameter_args(run, "set a parameter (typed as the notebook declares it); repeatable")
    run.add_argument("--fast", action="store_true", help="set fast=True (the test-suite mode)")
    run.add_argument("--out", type=Path, help="output folder (default: runs/<timestamp>)")

    run_all = sub.add_parser("run-all", help="execute every notebook with its defaults")
    run_all.add_argument("--fast", action="store_true", help="set fast=True in every notebook")
    run_all.add_argument("--out", type=Path, help="output folder (default: runs/<timestamp>)")

    sweep = sub.add_parser("sweep", help="run the grid of all parameter combinations")
    sweep.add_argument("notebook", help="'01', a file name, or a path")
    _parameter_args(
        sweep,
        "values to sweep, comma-separated (v1,v2,...); for list-typed parameters separate "
        "the lists with ';' (1,2;3,4). Repeat -p to add grid axes",
    )
    sweep.add_argument("--fast", action="store_true", help="set fast=True at every point")
    sweep.add_argument(
        "--out", type=Path, help="output folder (default: runs/sweep-<timestamp>); rerun with the same folder to resume"
    )
    sweep.add_argument("--jobs", type=int, default=1, help="points run at once (default 1)")
    sweep.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="run the points on a Dask distributed scheduler, e.g. tcp://10.0.0.5:8786 "
        "(workers need the workbook installed, not the output folder); --jobs is then "
        "the cluster's business",
    )

    build = sub.add_parser("build", help="write notebooks/ and exercises/ from sources/ (make notebooks)")
    build.add_argument("only", nargs="*", metavar="NN", help="build only these sources ('02'); default: all")
    build.add_argument("--check", action="store_true", help="write nothing; exit 1 if a notebook is stale")

    # Declared here only for --help; `python -m interp_helpers.modelzoo.train_cli` parses the rest.
    train = sub.add_parser("train-zoo", help="retrain zoo models from their seeds (see train-zoo -h)", add_help=False)
    train.add_argument("zoo_args", nargs=argparse.REMAINDER)
    return parser


def _cmd_list() -> int:
    for path in list_notebooks():
        info = read_notebook_info(path)
        print(f"{info.key}  {path.name}\n    {info.title}")
        for p in info.parameters.values():
            allowed = f"  [{p.condition}]" if p.condition else ""
            print(f"    -p {p.name:<22} {p.type:<11} default {p.default!r:<10} {p.help}{allowed}")
    return 0


def _cmd_build(check: bool, only: list[str]) -> int:
    from interp_helpers.workbook.build import ROOT, BuildError, build_all

    try:
        paths = build_all(check=check, only=only)
    except BuildError as err:
        raise CatalogError(str(err)) from None
    for path in paths:
        print(f"{'stale' if check else 'wrote'} {path.relative_to(ROOT)}")
    if check and paths:
        print("workbook: error: notebooks differ from their sources; run `make notebooks`", file=sys.stderr)
        return 1
    if not paths:
        print("every notebook is up to date with its source")
    return 0


def _cmd_run(info: NotebookInfo, raw: list[tuple[str, str]], fast: bool, out: Path | None) -> int:
    from interp_helpers.workbook.runner import run_notebook, timestamp_dir, write_results_json

    params = info.parse_parameters(raw)
    info.validate({**params, **({"fast": True} if fast else {})})
    out_dir = check_out_dir(out or timestamp_dir())
    result = run_notebook(info, params, out_dir, fast=fast)
    write_results_json([result], out_dir / "results.json")
    print(result.summary())
    print(f"wrote {out_dir}/ ({info.path.stem}.ipynb, .html, results.json)")
    return 0 if result.status == "ok" else 1


def _cmd_run_all(fast: bool, out: Path | None) -> int:
    from interp_helpers.workbook.runner import run_notebook, timestamp_dir, write_results_json

    out_dir = check_out_dir(out or timestamp_dir())
    results = []
    for path in list_notebooks():
        result = run_notebook(read_notebook_info(path), {}, out_dir, fast=fast)
        results.append(result)
        write_results_json(results, out_dir / "results.json")
        print(result.summary(), flush=True)
    print(f"wrote {out_dir}/")
    return 0 if all(r.status == "ok" for r in results) else 1


def _split_sweep_values(info: NotebookInfo, name: str, text: str) -> list[Any]:
    if name not in info.parameters:
        info.parse_parameters([(name, text)])  # raises the standard unknown-parameter error
    separator = ";" if info.parameters[name].type.startswith("list") else ","
    values = [info.parameters[name].parse(v) for v in text.split(separator) if v.strip()]
    if not values:
        raise CatalogError(f"parameter {name}: no values given to sweep")
    return values


def _cmd_sweep(
    info: NotebookInfo, raw: list[tuple[str, str]], fast: bool, out: Path | None, jobs: int, cluster: str | None = None
) -> int:
    from interp_helpers.workbook.runner import run_sweep, sweep_points, timestamp_dir

    if not raw:
        raise CatalogError("sweep needs at least one -p NAME v1,v2,...")
    if jobs < 1:
        raise CatalogError(f"--jobs must be >= 1, got {jobs}")
    grid = {name: _split_sweep_values(info, name, text) for name, text in raw}
    for point in sweep_points(grid):  # every point, before the first kernel starts
        info.validate({**point, **({"fast": True} if fast else {})})
    if cluster:
        from interp_helpers.workbook.cluster import ClusterError, connect

        try:  # fail before any folder is written if the scheduler is not there
            connect(cluster).close()
        except ClusterError as err:
            raise CatalogError(str(err)) from None
    out_dir = check_out_dir(out or timestamp_dir(prefix="sweep-"))
    rows = run_sweep(info, grid, out_dir, fast=fast, jobs=jobs, cluster=cluster)
    failed = [point for point, result in rows if result.status != "ok"]
    print(f"{len(rows) - len(failed)}/{len(rows)} points ok; wrote {out_dir}/results.csv")
    return 0 if not failed else 1


def _cmd_train_zoo(zoo_args: list[str]) -> int:
    """The zoo has its own command line; run it as a program so the runner imports no science."""
    import subprocess

    return subprocess.run(
        [sys.executable, "-m", "interp_helpers.modelzoo.train_cli", "train-zoo", *zoo_args]
    ).returncode


def _dispatch(args: argparse.Namespace, unknown: list[str]) -> int:
    if args.command == "train-zoo":
        return _cmd_train_zoo([*unknown, *args.zoo_args])
    if unknown:
        raise CatalogError(f"unrecognized arguments: {' '.join(unknown)} (see `workbook --help`)")
    if args.command == "list":
        return _cmd_list()
    if args.command == "build":
        return _cmd_build(args.check, args.only)
    if args.command == "run-all":
        return _cmd_run_all(args.fast, args.out)
    info = find_notebook(args.notebook)
    raw = [tuple(p) for p in args.parameter]
    if args.command == "run":
        return _cmd_run(info, raw, args.fast, args.out)
    return _cmd_sweep(info, raw, args.fast, args.out, args.jobs, args.cluster)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args, unknown = _build_parser().parse_known_args(argv)
        return _dispatch(args, unknown)
    except (CatalogError, UsageError) as err:
        print(f"workbook: error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print(
            "\nworkbook: interrupted; finished results are kept, and rerunning the same command resumes a sweep",
            file=sys.stderr,
        )
        return INTERRUPTED
    except BrokenPipeError:  # `workbook list | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return 0
    except Exception as err:  # an unexpected failure is still one line; WORKBOOK_DEBUG=1 shows where
        if os.environ.get("WORKBOOK_DEBUG"):
            raise
        first = str(err).splitlines()[0] if str(err) else ""
        print(f"workbook: error: {type(err).__name__}: {first} (WORKBOOK_DEBUG=1 shows the traceback)", file=sys.stderr)
        return RUN_FAILED


if __name__ == "__main__":
    sys.exit(main())
