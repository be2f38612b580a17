"""Saving and loading SAEs: `config.json` (the SAEConfig fields) beside `sae.safetensors` (parameters and buffers).

safetensors holds plain tensors only, never pickled code, so a checkpoint from elsewhere
cannot run anything when loaded; `load_sae` checks the names and shapes of the tensors
against those the config implies and raises CheckpointError when they differ.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from interp_helpers.dictionaries.sae.base import SAE, SAEConfig
from interp_helpers.modelzoo.models import CheckpointError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "sae.safetensors"


def save_sae(sae: SAE, cfg: SAEConfig, directory: str | Path) -> None:
    """Write `config.json` (the SAEConfig fields) and `sae.safetensors` (parameters and buffers)."""
    if cfg != sae.cfg:
        raise ValueError("save_sae: cfg differs from the config the SAE was built with (sae.cfg)")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().contiguous() for name, tensor in sae.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE))
    (directory / CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(cfg), indent=2, sort_keys=True))


def load_sae(directory: str | Path) -> SAE:
    """Rebuild the SAE written by `save_sae` (eval mode); its config is `sae.cfg`."""
    directory = Path(directory)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (directory / name).exists():
            raise CheckpointError(f"{directory / name}: missing")
    try:
        fields: dict[str, Any] = json.loads((directory / CONFIG_FILE).read_text())
        cfg = SAEConfig(**fields)
    except (json.JSONDecodeError, TypeError, ValueError) as err:
        raise CheckpointError(f"{directory / CONFIG_FILE}: invalid SAE config ({err})") from None
    try:
        weights = load_file(str(directory / WEIGHTS_FILE))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{directory / WEIGHTS_FILE}: cannot read weights ({err})") from None
    sae = SAE(cfg)
    expected = sae.state_dict()
    if set(weights) != set(expected):
        raise CheckpointError(
            f"{directory / WEIGHTS_FILE}: tensors {sorted(weights)} do not match the config's {sorted(expected)}"
        )
    for name, tensor in weights.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(
                f"{directory / WEIGHTS_FILE}: {name} has shape {tuple(tensor.shape)}, "
                f"config.json implies {tuple(expected[name].shape)}"
            )
    sae.load_state_dict(weights)
    sae.eval()
    return sae
