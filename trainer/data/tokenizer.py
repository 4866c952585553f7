"""Subword BPE (HF ``tokenizers``) trained on the training split, cached on disk.

Pre-tokenization is SentencePiece-style: every space becomes ``▁`` attached to the following
word, and punctuation is split off. Decoding concatenates the pieces and turns ``▁`` back into
spaces, so ``decode(encode(s)) == s`` for any sentence made of characters seen in training;
hypotheses come out detokenized, ready for sacreBLEU against the raw references.

Ids 0-3 are the specials in every vocabulary: ``<pad>``, ``<unk>``, ``<s>``, ``</s>``.
The cache key is a hash of the training text and every setting that changes the merges, so
two runs with equal data settings share one tokenizer file, written atomically.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from ablab.trainer.checkpoint import atomic_write
from ablab.trainer.data.ragged import Ragged

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]
TOKENIZER_VERSION = 1
"""Bump when the pipeline below changes, so that cached tokenizers are rebuilt."""


def _new_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"),
            pre_tokenizers.Punctuation(),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    return tok


def train_bpe(texts: list[str], vocab_size: int) -> Tokenizer:
    """A BPE tokenizer with ``vocab_size`` entries (specials first) learnt from ``texts``."""
    tok = _new_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, min_frequency=2, show_progress=False
    )
    tok.train_from_iterator(texts, trainer)
    return tok


def _cache_key(texts: list[str], vocab_size: int) -> str:
    """SHA-256 of the pipeline version, the size and the training text (lines, each ended by
    ``\n``): the content decides, not the files' names."""
    digest = hashlib.sha256(f"v{TOKENIZER_VERSION}|{vocab_size}|".encode())
    if texts:
        digest.update("\n".join(texts).encode())
        digest.update(b"\n")
    return digest.hexdigest()[:20]


def cached_bpe(texts: list[str], vocab_size: int, cache: Path) -> Tokenizer:
    """:func:`train_bpe`, loaded from ``cache`` when an equal one was trained before."""
    path = cache / f"bpe-{_cache_key(texts, vocab_size)}.json"
    if path.is_file():
        return Tokenizer.from_file(str(path))
    tok = train_bpe(texts, vocab_size)
    atomic_write(path, tok.to_str().encode())
    return tok


ENCODE_CHUNK = 65536
"""Sentences encoded per call: the tokenizer's per-sentence objects of one chunk at a time."""


def encode(tok: Tokenizer, lines: list[str]) -> Ragged:
    """Token ids of ``lines`` (no specials), batched and parallel in the tokenizer, in chunks
    so that a corpus of millions never holds more than one chunk's encodings."""
    chunks = [
        Ragged.from_lists(
            [e.ids for e in tok.encode_batch(lines[i : i + ENCODE_CHUNK], add_special_tokens=False)]
        )
        for i in range(0, len(lines), ENCODE_CHUNK)
    ]
    return Ragged.concat(chunks)


@dataclass(frozen=True)
class Vocabularies:
    """The source and target tokenizers (one object twice when the vocabulary is joint)."""

    src: Tokenizer
    tgt: Tokenizer

    @property
    def joint(self) -> bool:
        return self.src is self.tgt

    @property
    def src_size(self) -> int:
        return self.src.get_vocab_size()

    @property
    def tgt_size(self) -> int:
        return self.tgt.get_vocab_size()

    def encode_src(self, lines: list[str]) -> Ragged:
        return encode(self.src, lines)

    def encode_tgt(self, lines: list[str]) -> Ragged:
        return encode(self.tgt, lines)

    def decode_tgt(self, ids: list[list[int]]) -> list[str]:
        """Detokenized target sentences; specials (and anything after ``</s>``) dropped."""
        cut = [seq[: seq.index(EOS)] if EOS in seq else seq for seq in ids]
        return self.tgt.decode_batch(cut, skip_special_tokens=True)

    def src_pieces(self, ids: list[int]) -> list[str]:
        return [self.src.id_to_token(i) for i in ids]

    def tgt_pieces(self, ids: list[int]) -> list[str]:
        return [self.tgt.id_to_token(i) for i in ids]


def build_vocabularies(
    src_train: list[str], tgt_train: list[str], vocab_size: int, joint: bool, cache: Path
) -> Vocabularies:
    """BPE vocabularies from the full training split (joint: one over both languages)."""
    if joint:
        tok = cached_bpe(src_train + tgt_train, vocab_size, cache)
        return Vocabularies(tok, tok)
    return Vocabularies(cached_bpe(src_train, vocab_size, cache), cached_bpe(tgt_train, vocab_size, cache))
