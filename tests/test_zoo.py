"""Zoo specs, data packing, a deterministic smoke training run, and the shipped models' acceptance checks."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pytest
import torch

from interp_helpers.modelzoo import train_cli, zoo
from interp_helpers.modelzoo.models import ZOO_DIR, load_model, read_card
from interp_helpers.modelzoo.tokenizer import load_tokenizer, ordinary_tokens


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    train_cli.add_train_zoo_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["train-zoo", *argv])


# --------------------------------------------------------------------------------------
# Specs and data
# --------------------------------------------------------------------------------------


def test_zoo_specs_are_valid_and_round_trip():
    assert set(zoo.ZOO) == {
        "zoo-attn-only-2l",
        "zoo-gelu-1l-a",
        "zoo-gelu-1l-b",
        "zoo-gelu-4l",
        "zoo-gelu-4l-dup",
        "zoo-gelu-4l-dup-dropout",
    }
    for name, spec in zoo.ZOO.items():
        assert spec.name == name
        assert zoo.ZooSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_duplicate_ioi_model_differs_from_the_recency_model_only_in_its_data():
    base, dup = zoo.ZOO["zoo-gelu-4l"], zoo.ZOO["zoo-gelu-4l-dup"]
    same = dataclasses.replace(
        dup, name=base.name, corpus_overrides={}, checks=base.checks, notes=base.notes, steps=base.steps
    )
    assert same == base
    assert dup.corpus().three_name_fraction > 0 and base.corpus().three_name_fraction == 0


def test_one_layer_pair_differs_only_in_seed():
    a, b = zoo.ZOO["zoo-gelu-1l-a"], zoo.ZOO["zoo-gelu-1l-b"]
    assert a.seed != b.seed and a.d_mlp == 512 and a.d_model == 128 and a.n_layers == 1
    assert dataclasses.replace(b, name=a.name, seed=a.seed, notes=a.notes) == a


@pytest.mark.parametrize(
    "change, message",
    [
        ({"name": "attn-2l"}, "must start with 'zoo-'"),
        ({"d_model": 100, "n_heads": 3}, "divisible by n_heads"),
        ({"lr": 0.0}, "parameter lr=0.0 is out of range"),
        ({"warmup": 10**6}, "parameter warmup"),
        ({"checks": ("ioi", "grokking")}, "parameter checks='grokking' is not allowed"),
        ({"genre_weights": {"poetry": 1.0}}, "genre_weights key"),
        ({"corpus_overrides": {"repeat_filler": (5, 1)}}, r"repeat_filler\[1\]"),
        ({"positional_embedding_type": "alibi"}, "positional_embedding_type"),
        ({"random_repeat_frac": 1.0}, "parameter random_repeat_frac=1.0 is out of range"),
    ],
)
def test_spec_validation_names_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(zoo.ZOO["zoo-attn-only-2l"], **change)


def test_packed_batches_are_deterministic_and_start_with_bos():
    tok = load_tokenizer()
    corpus = zoo.ZOO["zoo-attn-only-2l"].corpus()
    a, b = zoo.packed_batches(corpus, tok, 3, 40), zoo.packed_batches(corpus, tok, 3, 40)
    first, second = next(a), next(a)
    assert torch.equal(first, next(b)) and torch.equal(second, next(b))
    assert first.shape == (3, 40) and (first[:, 0] == tok.bos_token_id).all()
    head = [t for _, t in zip(range(39 * 2), zoo.token_stream(corpus, tok))]
    assert first[0, 1:].tolist() + first[1, 1:].tolist() == head  # rows continue the stream


def test_training_batches_mix_corpus_rows_and_whole_vocabulary_repeats():
    tok = load_tokenizer()
    spec = dataclasses.replace(zoo.ZOO["zoo-attn-only-2l"], random_repeat_frac=0.5, n_ctx=40)
    a, b = zoo.training_batches(spec, tok, 8), zoo.training_batches(spec, tok, 8)
    first = next(a)
    assert torch.equal(first, next(b)), "same spec, same batches"
    assert first.shape == (8, 40) and (first[:, 0] == tok.bos_token_id).all()
    corpus_rows = next(zoo.packed_batches(spec.corpus(), tok, 4, 40))
    assert torch.equal(first[:4], corpus_rows), "the first rows are the corpus stream, unchanged"
    pool = set(ordinary_tokens(tok).tolist())
    for row in first[4:].tolist():
        assert set(row[1:]) <= pool and len(set(row[1:])) < len(row) - 1, "random tokens with a repeated segment"
    # Over many rows the repeats draw from the whole vocabulary, not from the corpus' 630 repeat words.
    seen = {t for _ in range(20) for t in next(a)[4:, 1:].flatten().tolist()}
    assert len(seen) > 1500 and not seen <= set(zoo.token_pool(tok).tolist())


def test_ordinary_tokens_leave_out_only_special_tokens():
    tok = load_tokenizer()
    pool = ordinary_tokens(tok)
    assert tok.bos_token_id not in pool.tolist() and len(pool) == len(tok) - len(set(tok.all_special_ids))


def test_lr_schedule_warms_up_and_floors_at_ten_percent():
    f = [zoo._lr_factor(s, 10, 100) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0) and f[10] == pytest.approx(1.0)
    assert f[-1] == pytest.approx(0.1, abs=1e-3) and all(x >= y for x, y in zip(f[10:], f[11:]))


# --------------------------------------------------------------------------------------
# A short training run: writes everything, into a temp dir, deterministically
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory) -> tuple[Path, Path]:
    """`train-zoo zoo-attn-only-2l --steps 50 --batch 2` twice, into two temp dirs."""
    data_before = sorted(p.name for p in ZOO_DIR.glob("*")) if ZOO_DIR.exists() else []
    outs = []
    for run in ("a", "b"):
        out = tmp_path_factory.mktemp(f"zoo-{run}")
        args = _parse(["zoo-attn-only-2l", "--steps", "50", "--batch", "2", "--out", str(out), "--no-progress"])
        assert train_cli.run_train_zoo(args) == 0  # a smoke run never fails on acceptance
        outs.append(out / "zoo-attn-only-2l")
    assert (sorted(p.name for p in ZOO_DIR.glob("*")) if ZOO_DIR.exists() else []) == data_before
    return outs[0], outs[1]


def test_smoke_run_writes_model_card_and_metrics(smoke_runs):
    out, _ = smoke_runs
    spec = zoo.ZOO["zoo-attn-only-2l"]
    for name in ("model.safetensors", "config.json", "tokenizer.json", "card.json", "metrics.csv"):
        assert (out / name).exists(), name
    card = json.loads((out / "card.json").read_text())
    assert card["steps"] == 50 and card["batch"] == 2 and not card["full_run"]
    assert card["tokens_seen"] == 50 * 2 * spec.n_ctx and card["wall_time_s"] > 0
    assert set(card["eval_loss_per_genre"]) == {"story", "topic", "senses", "base64", "repeat"}
    assert [c["metric"] for c in card["acceptance"]["checks"]] == [
        "loss_second_repeat",
        "loss_first_repeat",
        "induction_score",
        "prev_token_score",
        "ablation_increase",
    ]
    rows = zoo.read_metrics(out / "metrics.csv")
    assert [r["step"] for r in rows] == list(range(51))
    assert rows[0]["loss"] > rows[49]["loss"]  # it learns something in 50 steps
    assert "loss_second_repeat" in rows[0] and "loss_second_repeat" in rows[-1]
    model = load_model("zoo-attn-only-2l", zoo_dir=out.parent)
    assert model.cfg.n_layers == 2 and model.cfg.attn_only


def test_smoke_run_is_deterministic(smoke_runs):
    a, b = smoke_runs
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "metrics.csv").read_text() == (b / "metrics.csv").read_text()
    card_a, card_b = (json.loads((d / "card.json").read_text()) for d in (a, b))
    card_a.pop("wall_time_s"), card_b.pop("wall_time_s")
    assert card_a == card_b


def test_unknown_name_is_a_usage_error(capsys):
    assert train_cli.run_train_zoo(_parse(["zoo-nope", "--steps", "1"])) == 2
    assert "unknown zoo model 'zoo-nope'" in capsys.readouterr().err


def test_cli_wires_train_zoo(cli):
    result = cli("train-zoo", "--help", timeout=60)
    assert result.returncode == 0 and "--steps" in result.stdout


# --------------------------------------------------------------------------------------
# Shipped checkpoints: recompute every acceptance metric
# --------------------------------------------------------------------------------------


def _shipped_or_skip(name: str) -> None:
    if not (ZOO_DIR / name / "model.safetensors").exists():
        pytest.skip(f"{name} is not shipped yet (train it with `workbook train-zoo {name}`)")


@pytest.mark.parametrize("name", [n for n, s in zoo.ZOO.items() if s.checks])
def test_shipped_model_meets_acceptance(name):
    _shipped_or_skip(name)
    spec, model = zoo.ZOO[name], load_model(name)
    result = zoo.acceptance(spec, model)
    card = read_card(name)
    for check, recorded in zip(result["checks"], card["acceptance"]["checks"]):
        assert check["metric"] == recorded["metric"]
        assert check["value"] == pytest.approx(recorded["value"], abs=1e-3), "card disagrees with the weights"
    failed = [
        f"{c['metric']}={c['value']:.3f} (need {c['op']} {c['threshold']:.3f})"
        for c in result["checks"]
        if not c["passed"]
    ]
    assert not failed, f"{name} misses acceptance: {failed}"


@pytest.mark.parametrize("name", list(zoo.ZOO))
def test_shipped_card_matches_weights(name):
    """The card's per-genre held-out loss is what the shipped weights measure."""
    _shipped_or_skip(name)
    spec, model, card = zoo.ZOO[name], load_model(name), read_card(name)
    assert zoo.ZooSpec.from_dict(card["spec"]) == spec, "spec changed since the model was trained: retrain it"
    assert card["full_run"]
    measured = zoo.loss_per_genre(model, spec)
    for genre, loss in card["eval_loss_per_genre"].items():
        assert measured[genre] == pytest.approx(loss, abs=1e-3), genre
    rows = zoo.read_metrics(ZOO_DIR / name / "metrics.csv")
    assert len(rows) == spec.steps + 1 and sum("loss_second_repeat" in r for r in rows) >= 2


def test_three_name_metric_exposes_the_recency_model():
    """zoo-gelu-4l solves IOI by recency; on three-name prompts (the answer in any introduced slot, unseen wording)
    it fails whichever slot recency does not point at, so the three-name acceptance check separates the two."""
    _shipped_or_skip("zoo-gelu-4l")
    m = zoo.three_name_metrics(load_model("zoo-gelu-4l"), n_per_slot=30)
    by_slot = m["three_name_accuracy_by_slot"]
    assert len(by_slot) == 3 and all(0 <= a <= 1 for a in by_slot)
    assert min(by_slot) < 0.5, by_slot  # measured 0.04, 0.30, 0.34 (50 per slot)


def test_duplicate_model_gives_to_the_name_said_once_in_wordings_it_never_read():
    """zoo-gelu-4l-dup, trained on sentences composed from parts, on `ioi.NOVEL_*` wordings (corpus words in
    arrangements no training sentence has; tests/test_corpus.py checks the corpus cannot say them).

    Measured (60 prompts per wording): IOI 1.00 on all six; three names 1.00 / 0.98 / 0.95 / 0.98 / 0.92. The
    model trained on fixed templates alone scored 0.86 and 0.52; zoo-gelu-4l (recency) 0.97 and 0.07.
    Bars set after measuring: a model that learned the wordings rather than the rule falls below them.
    """
    _shipped_or_skip("zoo-gelu-4l-dup")
    m = zoo.novel_wording_metrics(load_model("zoo-gelu-4l-dup"))
    assert min(m["novel_ioi_accuracy_by_wording"]) >= 0.9, m
    assert m["novel_three_name_accuracy"] >= 0.9 and min(m["novel_three_name_accuracy_by_wording"]) >= 0.8, m


def test_novel_wordings_expose_the_recency_model():
    _shipped_or_skip("zoo-gelu-4l")
    m = zoo.novel_wording_metrics(load_model("zoo-gelu-4l"), n=30)
    assert m["novel_three_name_accuracy"] < 0.4, m  # measured 0.07: recency picks the wrong name


@pytest.mark.parametrize("name", ["zoo-gelu-1l-a", "zoo-gelu-1l-b"])
def test_one_layer_models_predict_ascii_base64_better_than_random_bytes(name):
    """The alien base64 feature pays: base64 of ASCII text is predictable (7-bit bytes), of random bytes it is not.

    Mean next-token loss on held-out base64 documents, over the predicted tokens of each blob kind
    (measured: about 1.8 nats on ASCII blobs, 5.6 on random-byte blobs, for both seeds).
    """
    _shipped_or_skip(name)
    from interp_helpers.dictionaries.activations import labelled_rows
    from interp_helpers.modelzoo.corpus import CorpusConfig

    model = load_model(name)
    rows = labelled_rows(
        CorpusConfig(seed=zoo.EVAL_SEED, split="eval", genre_weights={"base64": 1.0}), model.tokenizer, 32, 128
    )
    with torch.no_grad():
        logits = model(rows.tokens)
    loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1), rows.tokens[:, 1:].flatten(), reduction="none"
    )
    kind = rows.labels["b64_ascii"][:, 1:].flatten()  # the blob of the token being predicted
    ascii_loss, random_loss = loss[kind == 1].mean().item(), loss[kind == 0].mean().item()
    assert (kind == 1).sum() > 300 and (kind == 0).sum() > 300
    assert ascii_loss <= random_loss - 2.0, (ascii_loss, random_loss)


def test_dropout_hooks_drop_fresh_entries_each_step_and_only_where_asked():
    spec = zoo.ZOO["zoo-gelu-4l-dup-dropout"]
    assert spec.dropout == 0.1 and zoo.dropout_hooks(zoo.ZOO["zoo-gelu-4l-dup"], 4) == []
    hooks = zoo.dropout_hooks(dataclasses.replace(spec, dropout=0.5), spec.n_layers)
    names = {name for name, _ in hooks}
    assert names == {
        f"blocks.{l}.{h}" for l in range(4) for h in ("attn.hook_pattern", "hook_attn_out", "hook_mlp_out")
    }
    act = torch.ones(4, 16, 128)
    first, second = hooks[0][1](act, None), hooks[0][1](act, None)
    assert set(first.unique().tolist()) == {0.0, 2.0} and 0.4 < (first == 0).float().mean() < 0.6
    assert not torch.equal(first, second), "the mask must change from step to step"
    again = zoo.dropout_hooks(dataclasses.replace(spec, dropout=0.5), spec.n_layers)[0][1](act, None)
    assert torch.equal(again, first), "a run's dropout stream is reproducible from its seed"
