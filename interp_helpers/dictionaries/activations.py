"""Where SAE training data comes from: labelled token rows, activations, a mixing buffer, a disk cache.

Four ways to get activations, from the smallest to the largest run:

    labelled_rows        token rows packed exactly as the zoo models were trained
                         (`zoo.packed_batches`), with the corpus's ground-truth labels
                         carried along per token, so latents can be scored later
                         (`recovery.py`)
    collect_activations  one tensor of [token, d_in] activations for those rows, BOS
                         dropped, aligned with `flatten_labels(labels, keep)`
    ActivationBuffer     a streaming, shuffling source for training on more tokens than
                         fit in memory: the mixing buffer of Anthropic's and SAELens'
                         pipelines
    cache_activations    shards on disk (safetensors, never pickle) for activations that
                         are reused across many SAE runs; `CachedActivations` reads them

BOS positions are dropped everywhere: the residual stream at BOS is a huge-norm
constant (an attention sink) that an SAE would spend a latent and much of its loss on,
and it carries no information about any document. That includes the BOS tokens that
separate documents inside a packed row.

The model only runs up to the hooked layer (`stop_at_layer`), so collecting layer-0
activations of a deep model costs one block, not the whole forward pass.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import einops
import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer
from transformers import PreTrainedTokenizerFast

from interp_helpers.core.validation import check_range
from interp_helpers.modelzoo import corpus
from interp_helpers.modelzoo.corpus import CorpusConfig, iter_documents
from interp_helpers.modelzoo.models import CheckpointError

MANIFEST_FILE = "manifest.json"
SHARD_KEY = "activations"
CACHE_FORMAT = "interp_helpers.activations/1"
# Hooks whose activations are not [batch, pos, ...] (attention patterns are [batch, head, q, k]).
_NOT_PER_TOKEN = ("hook_pattern", "hook_attn_scores")
_SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}

# --------------------------------------------------------------------------------------
# Labelled token rows
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelledTokens:
    """Packed token rows and, for every token, the corpus labels that produced it.

    `labels` has one entry per corpus label field (`corpus.LABEL_FIELDS`, plus
    `node_l0..node_l2`): the integer label of each token, -1 where the field does not
    apply, and -1 in every field on BOS tokens. `doc_index` is the corpus index of the
    document each token came from (-1 on BOS), so per-document questions ("is the genre
    constant within a document?") need no re-tokenization.
    """

    tokens: Int[Tensor, "batch pos"]
    labels: dict[str, Int[Tensor, "batch pos"]]
    doc_index: Int[Tensor, "batch pos"]

    @property
    def keep(self) -> Bool[Tensor, "batch pos"]:
        """Positions that belong to a document: every token except the BOS ones."""
        return self.doc_index >= 0


def _labelled_documents(
    cfg: CorpusConfig, tok: PreTrainedTokenizerFast, start_doc: int
) -> Iterator[tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]]:
    """(token ids, document index, labels) of each document, followed by its BOS separator.

    The token ids are those of `zoo.token_stream`: documents are tokenized one at a time
    here (the offsets are needed for the labels), and BPE without padding gives the
    same ids one at a time as in `encode_batch`; the tests check the packed rows.
    """
    for doc in iter_documents(cfg, start_doc):
        enc = tok.backend_tokenizer.encode(doc.text, add_special_tokens=False)
        labels = corpus.token_labels(doc, enc.offsets)
        n = len(enc.ids)
        ids = np.append(np.asarray(enc.ids, dtype=np.int64), tok.bos_token_id)
        index = np.append(np.full(n, doc.index, dtype=np.int64), -1)
        yield ids, index, {name: np.append(values, -1).astype(np.int64) for name, values in labels.items()}


def labelled_batches(
    cfg: CorpusConfig, tokenizer: PreTrainedTokenizerFast, batch: int, n_ctx: int, start_doc: int = 0
) -> Iterator[LabelledTokens]:
    """`zoo.packed_batches` with labels: rows of BOS + the next n_ctx - 1 stream tokens, forever.

    Documents follow each other separated by BOS and continue into the next row, as
    in training; successive batches continue the same stream. Deterministic for a
    config, like the corpus.
    """
    check_range("batch", batch, 1)
    check_range("n_ctx", n_ctx, 2)
    check_range("start_doc", start_doc, 0)
    documents = _labelled_documents(cfg, tokenizer, start_doc)
    ids, index, labels = next(documents)
    offset = 0  # tokens of the current document already placed
    while True:
        tokens = np.full((batch, n_ctx), tokenizer.bos_token_id, dtype=np.int64)
        doc_index = np.full((batch, n_ctx), -1, dtype=np.int64)
        row_labels = {name: np.full((batch, n_ctx), -1, dtype=np.int64) for name in labels}
        for row in range(batch):
            pos = 1
            while pos < n_ctx:
                if offset == len(ids):
                    ids, index, labels = next(documents)
                    offset = 0
                take = min(n_ctx - pos, len(ids) - offset)
                tokens[row, pos : pos + take] = ids[offset : offset + take]
                doc_index[row, pos : pos + take] = index[offset : offset + take]
                for name, values in labels.items():
                    row_labels[name][row, pos : pos + take] = values[offset : offset + take]
                pos += take
                offset += take
        yield LabelledTokens(
            torch.from_numpy(tokens),
            {k: torch.from_numpy(v) for k, v in row_labels.items()},
            torch.from_numpy(doc_index),
        )


def labelled_rows(
    cfg: CorpusConfig, tokenizer: PreTrainedTokenizerFast, n_rows: int, n_ctx: int, start_doc: int = 0
) -> LabelledTokens:
    """The first `n_rows` rows of `labelled_batches`: the same tokens as `next(zoo.packed_batches(...))`."""
    check_range("n_rows", n_rows, 1)
    return next(labelled_batches(cfg, tokenizer, n_rows, n_ctx, start_doc))


def flatten_labels(
    labels: dict[str, Int[Tensor, "batch pos"]], keep: Bool[Tensor, "batch pos"]
) -> dict[str, Int[Tensor, " token"]]:
    """Labels of the kept tokens, row by row: aligned with `collect_activations(..., keep=keep)`."""
    return {name: values[keep] for name, values in labels.items()}


# --------------------------------------------------------------------------------------
# Running the model up to a hook
# --------------------------------------------------------------------------------------


def stop_layer(hook_name: str) -> int | None:
    """The `stop_at_layer` that still runs `hook_name`: L + 1 for `blocks.L.*`, 0 for the embeddings.

    None (the whole model) for hooks after the last block (`ln_final.*`, `unembed.*`).
    """
    match = re.match(r"blocks\.(\d+)\.", hook_name)
    if match:
        return int(match.group(1)) + 1
    if hook_name in ("hook_embed", "hook_pos_embed"):
        return 0
    return None


def non_bos(tokens: Int[Tensor, "batch pos"], bos_token_id: int) -> Bool[Tensor, "batch pos"]:
    """Every position except BOS: the row starts and the separators between documents."""
    return tokens != bos_token_id


def _check_hook(model: HookedTransformer, hook_name: str) -> None:
    if hook_name not in model.hook_dict:
        raise ValueError(
            f"parameter hook_name={hook_name!r} is not a hook of this model; choose one of {list(model.hook_dict)}"
        )
    if hook_name.endswith(_NOT_PER_TOKEN):
        raise ValueError(
            f"parameter hook_name={hook_name!r}: attention patterns are [batch, head, query, key], "
            "not one vector per token; hook hook_z or hook_result instead"
        )


@torch.no_grad()
def collect_activations(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    hook_name: str,
    keep: Bool[Tensor, "batch pos"] | None = None,
    batch_size: int = 16,
    progress: bool = True,
) -> Float[Tensor, "token d_in"]:
    """Activations at `hook_name` of the kept tokens, one row per token, in row-major order.

    `keep` defaults to every non-BOS position (`non_bos` with the model tokenizer's BOS),
    so the result lines up with `flatten_labels(labels, keep)` and with
    `LabelledTokens.keep`. Trailing dimensions are flattened (hook_z's heads are
    concatenated, [head_index d_head] -> d_in). Rows are run `batch_size` at a time;
    only the kept rows of each chunk are kept, so memory is the output plus one chunk.
    """
    _check_hook(model, hook_name)
    check_range("batch_size", batch_size, 1)
    if keep is None:
        if model.tokenizer is None:
            raise ValueError("collect_activations: the model has no tokenizer to find BOS; pass keep=")
        keep = non_bos(tokens, model.tokenizer.bos_token_id)
    if keep.shape != tokens.shape:
        raise ValueError(f"parameter keep has shape {tuple(keep.shape)}, tokens have {tuple(tokens.shape)}")
    out: Tensor | None = None
    written = 0
    stop = stop_layer(hook_name)
    bar = tqdm(
        range(0, tokens.shape[0], batch_size), desc=f"activations {hook_name}", leave=False, disable=not progress
    )
    for start in bar:
        rows = tokens[start : start + batch_size]
        _, cache = model.run_with_cache(rows, names_filter=hook_name, stop_at_layer=stop)
        act = cache[hook_name]
        if act.shape[:2] != rows.shape:
            raise ValueError(
                f"hook {hook_name!r} gives activations of shape {tuple(act.shape)}, "
                f"not [batch, pos, ...] for tokens of shape {tuple(rows.shape)}"
            )
        flat = einops.rearrange(act, "batch pos ... -> (batch pos) (...)")
        kept = flat[keep[start : start + batch_size].flatten()]
        if out is None:  # d_in is only known once the hook has run
            out = torch.empty(int(keep.sum()), flat.shape[1], dtype=flat.dtype)
        out[written : written + kept.shape[0]] = kept
        written += kept.shape[0]
    assert out is not None  # tokens has at least one row (the annotation's batch axis)
    return out


def hook_width(model: HookedTransformer, hook_name: str) -> int:
    """d_in of the rows `collect_activations` returns at `hook_name` (one 1-token forward up to the hook)."""
    one = torch.zeros(1, 1, dtype=torch.long)
    return collect_activations(model, one, hook_name, keep=torch.ones(1, 1, dtype=torch.bool), progress=False).shape[1]


def iter_activations(
    model: HookedTransformer, token_batches: Iterable[Int[Tensor, "batch pos"]], hook_name: str, batch_size: int = 16
) -> Iterator[Float[Tensor, "token d_in"]]:
    """`collect_activations` of each token batch in turn (BOS dropped): the source for caches and buffers.

    The hook name is checked now, not at the first batch, so a typo fails before any work.
    """
    _check_hook(model, hook_name)
    check_range("batch_size", batch_size, 1)
    return (
        collect_activations(model, tokens, hook_name, batch_size=batch_size, progress=False) for tokens in token_batches
    )


# --------------------------------------------------------------------------------------
# Streaming: a shuffling buffer of bounded size
# --------------------------------------------------------------------------------------


class ActivationBuffer:
    """Shuffled batches of activations from an endless token stream, in bounded memory.

    Consecutive tokens of a document have strongly correlated activations, so an SAE
    trained on them in stream order sees batches from a handful of documents. The fix
    in Anthropic's and SAELens' pipelines is a mixing buffer: hold many tokens' worth
    of activations and draw each batch at random from all of them. Here the buffer is
    one preallocated [buffer_tokens, d_in] tensor. Each batch is `batch_size` rows
    drawn uniformly without replacement from the buffered rows; the holes are filled by
    moving rows from the end, so nothing is ever copied wholesale. When the buffer is
    half empty it is refilled from `token_batches` (run through the model up to the
    hook, BOS dropped), so old and new rows mix.

    Memory: the buffer, plus the activations of one token batch that did not fit yet
    (they go in first at the next refill, so no token is skipped). Iteration stops when
    `token_batches` runs out and fewer than `batch_size` rows remain. All randomness
    comes from `generator`: the same seed and token stream give the same batches.
    """

    def __init__(
        self,
        model: HookedTransformer,
        hook_name: str,
        token_batches: Iterable[Int[Tensor, "batch pos"]],
        *,
        generator: torch.Generator,
        buffer_tokens: int = 65_536,
        batch_size: int = 1024,
        model_batch_size: int = 16,
    ) -> None:
        check_range("buffer_tokens", buffer_tokens, 2)
        check_range("batch_size", batch_size, 1, buffer_tokens // 2)
        check_range("model_batch_size", model_batch_size, 1)
        self.buffer_tokens = buffer_tokens
        self.batch_size = batch_size
        self.generator = generator
        self._source = iter_activations(model, token_batches, hook_name, model_batch_size)
        self._pending: Tensor | None = None  # activations pulled from the source that did not fit
        self._exhausted = False
        self.buffer: Tensor | None = None  # allocated at the first refill, when d_in is known
        self.n_buffered = 0  # rows [0, n_buffered) of `buffer` are live

    def __iter__(self) -> ActivationBuffer:
        return self

    def __next__(self) -> Float[Tensor, "batch d_in"]:
        if self.n_buffered < self.buffer_tokens // 2:
            self._refill()
        if self.n_buffered < self.batch_size:
            raise StopIteration
        return self._draw(self.batch_size)

    def _refill(self) -> None:
        while not self._exhausted and (self.buffer is None or self.n_buffered < self.buffer_tokens):
            if self._pending is None or len(self._pending) == 0:
                try:
                    self._pending = next(self._source)
                except StopIteration:
                    self._exhausted = True
                    break
            if self.buffer is None:
                self.buffer = torch.empty(self.buffer_tokens, self._pending.shape[1], dtype=self._pending.dtype)
            take = min(len(self._pending), self.buffer_tokens - self.n_buffered)
            self.buffer[self.n_buffered : self.n_buffered + take] = self._pending[:take]
            self.n_buffered += take
            self._pending = self._pending[take:].clone() if take < len(self._pending) else None

    def _draw(self, k: int) -> Tensor:
        """k rows drawn without replacement; the rows from the end fill the holes they leave."""
        assert self.buffer is not None
        n = self.n_buffered
        picked = torch.randperm(n, generator=self.generator)[:k]
        batch = self.buffer[picked]  # advanced indexing copies, so moving rows below is safe
        tail_start = n - k
        holes = picked[picked < tail_start]
        tail_free = torch.ones(k, dtype=torch.bool)
        tail_free[picked[picked >= tail_start] - tail_start] = False
        movers = torch.arange(tail_start, n)[tail_free]  # as many as there are holes
        self.buffer[holes] = self.buffer[movers]
        self.n_buffered = tail_start
        return batch


# --------------------------------------------------------------------------------------
# Disk cache
# --------------------------------------------------------------------------------------


def _shard_name(i: int) -> str:
    return f"shard_{i:05d}.safetensors"


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def cache_activations(
    source_batches: Iterable[Float[Tensor, "token d_in"]],
    directory: str | Path,
    n_tokens: int,
    shard_tokens: int,
    *,
    hook_name: str | None = None,
    dtype: torch.dtype | None = None,
    progress: bool = True,
) -> CachedActivations:
    """Write the first `n_tokens` rows of `source_batches` to safetensors shards, in order.

    `source_batches` yields [token, d_in] activations (e.g. `iter_activations`). Shards
    hold `shard_tokens` rows each (the last one fewer) under the key "activations";
    `manifest.json` records d_in, n_tokens, the shard files and sizes, dtype and
    `hook_name`. It is written last, so an interrupted run leaves no readable cache
    rather than a short one. If the source ends first, the cache holds what it gave.
    `dtype` (e.g. torch.float16) stores at lower precision to halve the disk; reading
    always returns float32. Memory: one shard plus one source batch.
    """
    check_range("n_tokens", n_tokens, 1)
    check_range("shard_tokens", shard_tokens, 1)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MANIFEST_FILE).unlink(missing_ok=True)  # the old cache is invalid from here on
    shards: list[dict[str, Any]] = []
    shard: Tensor | None = None
    filled = written = 0
    d_in: int | None = None

    def flush() -> None:
        nonlocal filled
        assert shard is not None
        name = _shard_name(len(shards))
        save_file({SHARD_KEY: shard[:filled].contiguous()}, str(directory / name))
        shards.append({"file": name, "n_tokens": filled})
        filled = 0

    bar = tqdm(total=n_tokens, desc=f"caching to {directory.name}", unit="tok", leave=False, disable=not progress)
    for batch in source_batches:
        if batch.ndim != 2 or (d_in is not None and batch.shape[1] != d_in):
            raise ValueError(
                f"cache_activations: a source batch has shape {tuple(batch.shape)}, "
                f"expected [token, {d_in if d_in is not None else 'd_in'}]"
            )
        if shard is None:
            d_in = batch.shape[1]
            dtype = batch.dtype if dtype is None else dtype
            shard = torch.empty(min(shard_tokens, n_tokens), d_in, dtype=dtype)
        batch = batch[: n_tokens - written]
        while len(batch):
            take = min(len(batch), shard.shape[0] - filled)
            shard[filled : filled + take] = batch[:take]
            filled += take
            written += take
            batch = batch[take:]
            bar.update(take)
            if filled == shard.shape[0]:
                flush()
        if written == n_tokens:
            break
    bar.close()
    if filled:
        flush()
    if not written:
        raise ValueError("cache_activations: source_batches gave no activations")
    for stale in sorted(directory.glob("shard_*.safetensors")):
        if stale.name not in {s["file"] for s in shards}:
            stale.unlink()  # left over from an earlier, larger cache in the same folder
    assert shard is not None
    manifest = {
        "format": CACHE_FORMAT,
        "d_in": d_in,
        "n_tokens": written,
        "shard_tokens": shard_tokens,
        "dtype": _dtype_name(shard.dtype),
        "hook_name": hook_name,
        "shards": shards,
    }
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    return CachedActivations(directory)


class CachedActivations:
    """Activations written by `cache_activations`, read back shard by shard.

    Opening checks the manifest and every shard's header (key, shape, dtype), not the
    data, so a truncated or mismatched cache fails here with the file named, rather than
    hours into training. Rows come back as float32 whatever the stored dtype.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        path = self.directory / MANIFEST_FILE
        if not path.exists():
            raise CheckpointError(f"{path}: missing (not an activation cache, or cache_activations did not finish)")
        try:
            manifest = json.loads(path.read_text())
            self.d_in = int(manifest["d_in"])
            self.n_tokens = int(manifest["n_tokens"])
            self.dtype_name = str(manifest["dtype"])
            self.hook_name: str | None = manifest.get("hook_name")
            self.shards: list[tuple[str, int]] = [(str(s["file"]), int(s["n_tokens"])) for s in manifest["shards"]]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{path}: invalid manifest ({type(err).__name__}: {err})") from None
        total = sum(n for _, n in self.shards)
        if total != self.n_tokens:
            raise CheckpointError(f"{path}: shard sizes add up to {total} tokens, n_tokens says {self.n_tokens}")
        for name, n in self.shards:
            self._check_header(name, n)

    def _check_header(self, name: str, n: int) -> None:
        shard_path = self.directory / name
        if not shard_path.exists():
            raise CheckpointError(f"{shard_path}: missing (listed in {MANIFEST_FILE})")
        try:
            with safe_open(str(shard_path), framework="pt") as f:
                if SHARD_KEY not in f.keys():
                    raise CheckpointError(f"{shard_path}: no tensor {SHARD_KEY!r} (has {list(f.keys())})")
                tensor = f.get_slice(SHARD_KEY)
                shape, dtype = list(tensor.get_shape()), tensor.get_dtype()
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f"{shard_path}: cannot read ({err})") from None
        if shape != [n, self.d_in]:
            raise CheckpointError(
                f"{shard_path}: shard size mismatch: holds shape {shape}, {MANIFEST_FILE} says [{n}, {self.d_in}]"
            )
        # safetensors spells dtypes F32/F16/BF16; compare through torch to be sure
        expected = getattr(torch, self.dtype_name, None)
        if not isinstance(expected, torch.dtype) or _SAFETENSORS_DTYPES.get(dtype) != expected:
            raise CheckpointError(f"{shard_path}: stored dtype {dtype}, {MANIFEST_FILE} says {self.dtype_name}")

    def __len__(self) -> int:
        return self.n_tokens

    def __repr__(self) -> str:
        return (
            f"CachedActivations({str(self.directory)!r}: {self.n_tokens} x {self.d_in} {self.dtype_name}, "
            f"{len(self.shards)} shards, hook {self.hook_name})"
        )

    def load_shard(self, i: int) -> Float[Tensor, "token d_in"]:
        check_range("i", i, 0, len(self.shards) - 1)
        name, n = self.shards[i]
        shard_path = self.directory / name
        try:
            tensor = load_file(str(shard_path))[SHARD_KEY]
        except (SafetensorError, OSError, KeyError) as err:
            raise CheckpointError(f"{shard_path}: cannot read ({err})") from None
        if tensor.shape != (n, self.d_in):
            raise CheckpointError(
                f"{shard_path}: shard size mismatch: holds shape {list(tensor.shape)}, "
                f"{MANIFEST_FILE} says [{n}, {self.d_in}]"
            )
        return tensor.float()

    def load_all(self) -> Float[Tensor, "token d_in"]:
        """Every row in stored order, as one tensor (for caches that fit in memory)."""
        out = torch.empty(self.n_tokens, self.d_in)
        start = 0
        for i, (_, n) in enumerate(self.shards):
            out[start : start + n] = self.load_shard(i)
            start += n
        return out

    def iter_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[Float[Tensor, "batch d_in"]]:
        """Shuffled batches forever; each epoch visits every row exactly once.

        Each epoch takes the shards in a random order and each shard's rows in a random
        order, holding one shard at a time. A batch that straddles two shards (or two
        epochs) takes the previous one's last rows first, so the rows, read in order,
        are one permutation of the cache after another and no row is dropped. Rows of a
        shard are neighbours in the token stream, so batches mix only within a shard:
        make shards much larger than a batch (tens of thousands of tokens).
        """
        check_range("batch_size", batch_size, 1)
        carry = torch.empty(0, self.d_in)
        while True:
            for i in torch.randperm(len(self.shards), generator=generator).tolist():
                shard = self.load_shard(i)
                shard = shard[torch.randperm(len(shard), generator=generator)]  # the unshuffled copy is freed
                start = 0
                if len(carry):
                    start = batch_size - len(carry)
                    if start > len(shard):  # a shard smaller than what the carried rows still need
                        carry = torch.cat([carry, shard])
                        continue
                    yield torch.cat([carry, shard[:start]])
                while start + batch_size <= len(shard):
                    yield shard[start : start + batch_size].clone()  # a view would keep the whole shard alive
                    start += batch_size
                carry = shard[start:].clone()
