"""A byte-level BPE tokenizer trained on the synthetic corpus.

GPT-2 style: byte-level pre-tokenization (a word carries its leading space, " Mary"),
one special token `<|endoftext|>` that serves as BOS, EOS and PAD, no automatic BOS.
Every IOI name is forced to be a single token both with and without the leading space,
because IOI analyses compare the logits of two name tokens and a split name would
make "the name's logit" ill-defined.

The tokenizer is saved as a directory (tokenizer.json + tokenizer_config.json) because
TransformerLens reloads the tokenizer from its path to make a BOS-prepending copy;
training.json beside them records how it was made.

    python -m interp_helpers.modelzoo.tokenizer            # rebuild data/tokenizer/
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tokenizers
import torch
from jaxtyping import Int
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from torch import Tensor
from transformers import PreTrainedTokenizerFast

from interp_helpers.core.validation import check_range
from interp_helpers.modelzoo.corpus import NAMES, CorpusConfig, Document, iter_documents, token_labels

BOS = "<|endoftext|>"
DEFAULT_TOKENIZER_DIR = Path(__file__).resolve().parents[2] / "data" / "tokenizer"


@dataclass(frozen=True)
class TokenizerConfig:
    vocab_size: int = 4096
    # Corpus documents [0, n_docs) the merges are learned from. None: 2.5 per vocabulary
    # entry, enough for every size in range (the corpus has only ~1,000 distinct words, so
    # large vocabularies are filled by base64 fragments, which need many documents).
    n_docs: int | None = None
    min_frequency: int = 2  # a pair must occur this often to be merged
    corpus: CorpusConfig = field(default_factory=CorpusConfig)

    def __post_init__(self) -> None:
        check_range("vocab_size", self.vocab_size, 2048, 8192)
        if self.n_docs is not None:
            check_range("n_docs", self.n_docs, 100, 200_000)
        check_range("min_frequency", self.min_frequency, 1, 1000)

    @property
    def sample_docs(self) -> int:
        return self.n_docs if self.n_docs is not None else self.vocab_size * 5 // 2

    def to_dict(self) -> dict:
        return {
            "vocab_size": self.vocab_size,
            "n_docs": self.n_docs,
            "min_frequency": self.min_frequency,
            "corpus": self.corpus.to_dict(),
        }


def forced_single_tokens() -> list[str]:
    """Strings that must each encode to exactly one token: every name, with and without a space."""
    return [f" {n}" for n in NAMES] + list(NAMES)


def _new_bpe() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    # Offsets then exclude the leading space: " Mary" maps to the characters of "Mary".
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=True)
    return tok


def _train_bpe(texts: list[str], vocab_size: int, min_frequency: int) -> Tokenizer:
    tok = _new_bpe()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[BOS],  # id 0
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer, length=len(texts))
    return tok


def _force_merges(tok: Tokenizer, words: list[str]) -> tuple[Tokenizer, int]:
    """Append merges until each word is one token; returns the tokenizer and tokens added.

    Merges appended at the end have the lowest priority, so they only fire once the
    existing merges are exhausted: other words keep their pieces except where they
    contain a forced word's final pieces, and BPE stays a pure merge list. Chains from
    different words can interfere, hence the re-check until every word is whole.
    """
    added = 0
    while split := [p for w in words if len(p := tok.encode(w, add_special_tokens=False).tokens) > 1]:
        state = json.loads(tok.to_str())
        vocab, merges = state["model"]["vocab"], state["model"]["merges"]
        known = {tuple(m) for m in merges}
        for pieces in split:
            left = pieces[0]
            for right in pieces[1:]:
                if (left, right) not in known:
                    merges.append([left, right])
                    known.add((left, right))
                if left + right not in vocab:
                    vocab[left + right] = max(vocab.values()) + 1
                    added += 1
                left += right
        tok = Tokenizer.from_str(json.dumps(state))
    return tok, added


def train_tokenizer(cfg: TokenizerConfig = TokenizerConfig()) -> PreTrainedTokenizerFast:
    """Train on the corpus sample, force single-token names, and hit cfg.vocab_size exactly.

    Forcing a name may add a token, so training is repeated with a smaller budget until
    the total comes out at vocab_size (one pass when the names already merged).
    """
    texts = [d.text for d in iter_documents(cfg.corpus, 0, cfg.sample_docs)]
    words = forced_single_tokens()
    budget = cfg.vocab_size
    for _ in range(5):
        tok, _ = _force_merges(_train_bpe(texts, budget, cfg.min_frequency), words)
        excess = tok.get_vocab_size() - cfg.vocab_size
        if excess <= 0:
            break
        budget -= excess
    if tok.get_vocab_size() != cfg.vocab_size:
        raise ValueError(
            f"trained {tok.get_vocab_size()} tokens, not vocab_size={cfg.vocab_size}: "
            f"the {cfg.sample_docs}-document sample is too small; raise n_docs or lower min_frequency"
        )
    return _wrap(tok)


def _wrap(tok: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=BOS, pad_token=BOS)


def save_tokenizer(tok: PreTrainedTokenizerFast, directory: str | Path, cfg: TokenizerConfig) -> Path:
    """Write tokenizer.json, tokenizer_config.json and training.json (the recipe) to `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(directory))
    recipe = {
        "tokenizer_config": cfg.to_dict(),
        "sample_docs": cfg.sample_docs,
        "tokenizers_version": tokenizers.__version__,
        "vocab_size": len(tok),
    }
    (directory / "training.json").write_text(json.dumps(recipe, indent=2) + "\n")
    return directory


def load_tokenizer(path: str | Path = DEFAULT_TOKENIZER_DIR) -> PreTrainedTokenizerFast:
    """Load a saved tokenizer (its directory, or the tokenizer.json inside it)."""
    path = Path(path)
    directory = path.parent if path.name == "tokenizer.json" else path
    if not (directory / "tokenizer.json").is_file():
        raise FileNotFoundError(
            f"no tokenizer.json in {directory}; build one with `python -m interp_helpers.modelzoo.tokenizer`"
        )
    tok = PreTrainedTokenizerFast.from_pretrained(str(directory), local_files_only=True)
    tok.bos_token = tok.eos_token = tok.pad_token = BOS  # also for directories saved elsewhere
    return tok


def encode_document(
    doc: Document, tok: PreTrainedTokenizerFast, prepend_bos: bool = True
) -> tuple[Int[np.ndarray, " tokens"], dict[str, Int[np.ndarray, " tokens"]]]:
    """Token ids of `doc` and the per-token labels (BOS, if prepended, is labelled -1)."""
    enc = tok.backend_tokenizer.encode(doc.text, add_special_tokens=False)
    ids = np.array(enc.ids, dtype=np.int64)
    offsets = np.array(enc.offsets, dtype=np.int64).reshape(-1, 2)
    if prepend_bos:
        ids = np.concatenate([[tok.bos_token_id], ids]).astype(np.int64)
        offsets = np.concatenate([np.zeros((1, 2), dtype=np.int64), offsets])
    return ids, token_labels(doc, offsets)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the corpus BPE tokenizer.")
    parser.add_argument("--out", default=str(DEFAULT_TOKENIZER_DIR))
    parser.add_argument("--vocab-size", type=int, default=TokenizerConfig.vocab_size)
    parser.add_argument("--n-docs", type=int, default=None, help="default: 2.5 per vocabulary entry")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed of the training sample")
    args = parser.parse_args(argv)
    cfg = TokenizerConfig(vocab_size=args.vocab_size, n_docs=args.n_docs, corpus=CorpusConfig(seed=args.seed))
    tok = train_tokenizer(cfg)
    out = save_tokenizer(tok, args.out, cfg)
    print(f"saved {len(tok)}-token tokenizer to {out}")


if __name__ == "__main__":
    main()


def ordinary_tokens(tokenizer: PreTrainedTokenizerFast) -> Int[Tensor, " pool"]:
    """Every token id except the special ones (BOS/EOS/padding, chat and code markers).

    The pool for repeated random tokens "from the whole vocabulary": an induction head is
    defined by copying *any* token that followed an earlier occurrence of the current one
    (Olsson et al. 2022), BPE fragments and rare tokens included. Special tokens would test
    how a model treats document and turn boundaries instead. Some tokenizers (SmolLM2's)
    list only a few of their added special tokens in `all_special_ids`, hence both sets.
    """
    special = set(tokenizer.added_tokens_decoder) | set(tokenizer.all_special_ids)
    return torch.tensor([i for i in range(len(tokenizer)) if i not in special])
