"""`load_model`: shipped zoo models, the hub path (offline, on a hand-made HF cache), error cases."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp_helpers.modelzoo.models import ZOO_DIR, CheckpointError, list_zoo, load_model, read_card, save_zoo_model
from interp_helpers.modelzoo.tokenizer import DEFAULT_TOKENIZER_DIR, load_tokenizer
from interp_helpers.modelzoo.zoo import ZOO

ROOT = Path(__file__).resolve().parent.parent
# We pin transformer-lens<4 on purpose (see interp_helpers/__init__.py).


def _shipped(name: str) -> bool:
    return (ZOO_DIR / name / "model.safetensors").exists()


@pytest.mark.parametrize("name", list(ZOO))
def test_every_shipped_zoo_model_loads(name):
    if not _shipped(name):
        pytest.skip(f"{name} is not shipped yet (train it with `workbook train-zoo {name}`)")
    model = load_model(name)
    assert isinstance(model, HookedTransformer)
    assert model.tokenizer is not None and len(model.tokenizer) == model.cfg.d_vocab
    tokens = model.to_tokens("When Mary and John went to the store, John gave a drink to")
    assert tokens[0, 0] == model.tokenizer.bos_token_id
    logits = model(tokens)
    assert logits.shape == (1, tokens.shape[1], model.cfg.d_vocab) and torch.isfinite(logits).all()
    assert read_card(name)["name"] == name
    assert name in list_zoo()


# --------------------------------------------------------------------------------------
# A tiny hand-made zoo checkpoint for the error cases
# --------------------------------------------------------------------------------------

TINY = {
    "n_layers": 1,
    "d_model": 16,
    "n_heads": 2,
    "d_head": 8,
    "d_mlp": None,
    "n_ctx": 32,
    "d_vocab": 4096,
    "attn_only": True,
    "normalization_type": "LN",
    "seed": 0,
}


@pytest.fixture
def zoo(tmp_path) -> Path:
    """tmp/zoo-tiny/: config, weights, tokenizer and card, as the trainer writes them."""
    model = HookedTransformer(HookedTransformerConfig(**TINY))
    directory = tmp_path / "zoo-tiny"
    save_zoo_model(model, TINY, directory, card={"name": "zoo-tiny"})
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(DEFAULT_TOKENIZER_DIR / name, directory / name)
    return tmp_path


def test_tiny_checkpoint_round_trips(zoo):
    model = load_model("zoo-tiny", zoo_dir=zoo)
    reference = HookedTransformer(HookedTransformerConfig(**TINY))  # same seed, same weights
    tokens = torch.tensor([[0, 5, 17, 300]])
    torch.testing.assert_close(model(tokens), reference(tokens))
    assert model.to_tokens("Mary")[0, 0] == 0  # BOS from our tokenizer


def test_unknown_zoo_name_lists_available(zoo):
    with pytest.raises(CheckpointError, match=r"unknown zoo model 'zoo-nope'.*zoo-tiny"):
        load_model("zoo-nope", zoo_dir=zoo)


@pytest.mark.parametrize("missing", ["config.json", "model.safetensors", "tokenizer.json"])
def test_missing_file_is_named(zoo, missing):
    (zoo / "zoo-tiny" / missing).unlink()
    with pytest.raises(CheckpointError, match=rf"zoo-tiny/{missing}: missing"):
        load_model("zoo-tiny", zoo_dir=zoo)


def test_truncated_weights_are_named(zoo):
    path = zoo / "zoo-tiny" / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: cannot read weights, the file is truncated"):
        load_model("zoo-tiny", zoo_dir=zoo)


def test_shape_mismatch_names_tensor_and_shapes(zoo):
    config = zoo / "zoo-tiny" / "config.json"
    config.write_text(json.dumps({**TINY, "d_model": 32, "d_head": 16}))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: tensor \S+ has shape .*config\.json implies"):
        load_model("zoo-tiny", zoo_dir=zoo)


def test_missing_tensors_are_listed(zoo):
    config = zoo / "zoo-tiny" / "config.json"
    config.write_text(json.dumps({**TINY, "n_layers": 2}))
    with pytest.raises(CheckpointError, match=r"does not match config\.json: missing tensors \['blocks\.1\."):
        load_model("zoo-tiny", zoo_dir=zoo)


def test_vocabulary_mismatch_names_tokenizer(zoo):
    (zoo / "zoo-tiny" / "config.json").write_text(json.dumps({**TINY, "d_vocab": 5000}))
    with pytest.raises(CheckpointError, match=r"tokenizer\.json: vocabulary of 4096 does not match d_vocab=5000"):
        load_model("zoo-tiny", zoo_dir=zoo)


@pytest.mark.parametrize("text", ["{not json", json.dumps({**TINY, "no_such_field": 1})])
def test_invalid_config_is_named(zoo, text):
    (zoo / "zoo-tiny" / "config.json").write_text(text)
    with pytest.raises(CheckpointError, match=r"config\.json: invalid config"):
        load_model("zoo-tiny", zoo_dir=zoo)


def test_corrupt_tokenizer_is_named(zoo):
    (zoo / "zoo-tiny" / "tokenizer.json").write_text("{}")
    with pytest.raises(CheckpointError, match=r"tokenizer\.json: cannot read tokenizer"):
        load_model("zoo-tiny", zoo_dir=zoo)


# --------------------------------------------------------------------------------------
# The hub path, offline: a tiny GPT-2 laid out as the Hugging Face cache entry for "gpt2"
# --------------------------------------------------------------------------------------


def _fake_gpt2_cache(hf_home: Path) -> Path:
    """HF_HOME/hub/models--gpt2 with refs/main -> a snapshot holding a 2-layer GPT-2 and a tokenizer.

    The real gpt2 config.json carries n_ctx (which TransformerLens reads), so ours does too.
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    tok = load_tokenizer()
    hf = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tok),
            n_positions=64,
            n_ctx=64,
            n_embd=32,
            n_layer=2,
            n_head=4,
            bos_token_id=0,
            eos_token_id=0,
        )
    )
    commit = "0" * 39 + "1"
    repo = hf_home / "hub" / "models--gpt2"
    snapshot = repo / "snapshots" / commit
    hf.save_pretrained(snapshot)
    tok.save_pretrained(snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def test_hub_name_goes_through_from_pretrained_offline(tmp_path):
    """load_model("gpt2") runs TransformerLens' real from_pretrained path against the local cache.

    A subprocess, because huggingface_hub reads HF_HOME and HF_HUB_OFFLINE at import time.
    The converted model must agree with the Hugging Face model it was converted from
    (log-probabilities: from_pretrained folds LayerNorm and centres the unembedding).
    """
    snapshot = _fake_gpt2_cache(tmp_path / "hf")
    script = textwrap.dedent(f"""
        import torch
        from transformers import GPT2LMHeadModel
        from interp_helpers.modelzoo.models import load_model
        model = load_model("gpt2")
        hf = GPT2LMHeadModel.from_pretrained({str(snapshot)!r})
        tokens = torch.tensor([[0, 11, 250, 7, 999, 3]])
        ours = model(tokens).log_softmax(-1)
        theirs = hf(tokens).logits.log_softmax(-1)
        torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
        assert model.cfg.n_layers == 2 and model.cfg.d_model == 32
        print("OK", model.cfg.model_name)
    """)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    env.pop("HUGGINGFACE_HUB_CACHE", None)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK gpt2" in result.stdout
