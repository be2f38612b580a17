"""Parameter validation and seeding for a notebook's first cell.

A bad parameter must fail before any expensive work, with a message that names the
parameter and the allowed values, whether the notebook runs in JupyterLab or
through `workbook run -p ...`.
"""

from __future__ import annotations

import argparse
import hashlib
import random
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    import torch


class UsageError(ValueError):
    """A command line that cannot be run; the message is one line."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (argparse prints the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def check_range(
    name: str,
    value: int | float,
    low: int | float | None = None,
    high: int | float | None = None,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> None:
    """Raise ValueError naming `name` unless `low <= value <= high` (bounds optional)."""
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if too_low or too_high:
        left = "-inf" if low is None else f"{'[' if low_inclusive else '('}{low}"
        right = "inf" if high is None else f"{high}{']' if high_inclusive else ')'}"
        lb = "(" if low is None else ""
        rb = ")" if high is None else ""
        raise ValueError(f"parameter {name}={value!r} is out of range; allowed: {lb}{left}, {right}{rb}")


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    """Raise ValueError naming `name` unless `value` is one of `choices`."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"parameter {name}={value!r} is not allowed; choose one of {choices}")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch, and return a torch Generator for explicit use."""
    # Imported here so that `workbook list` and bad-input errors need no torch import.
    import numpy as np
    import torch

    check_range("seed", seed, 0, 2**32 - 1)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def stream_seed(seed: int, purpose: str) -> int:
    """A 63-bit seed for one random stream, hashed from (seed, purpose).

    Two streams drawn from the same integer seed are the same numbers: SAELens'
    `FeatureDictionary(seed=s)` draws `torch.randn(n, d)` from `manual_seed(s)`, exactly as an
    SAE initialised from `manual_seed(s)` would, so with equal seeds the SAE would start on
    the answer. Hashing the purpose in keeps every stream (an SAE's init, its batch order,
    another library's draws) apart while staying reproducible for a seed.
    """
    check_range("seed", seed, 0, 2**64 - 1)
    digest = hashlib.blake2b(f"{seed}/{purpose}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1  # manual_seed takes a signed 64-bit value


def stream_generator(seed: int, purpose: str) -> torch.Generator:
    """A torch Generator seeded with `stream_seed(seed, purpose)`."""
    import torch

    return torch.Generator().manual_seed(stream_seed(seed, purpose))


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run a block with `n` intra-op threads, then restore the previous setting."""
    import torch

    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
