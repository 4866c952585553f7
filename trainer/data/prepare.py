"""The training split made ready once (read, checked, BPE learnt, encoded) and cached by content.

The cache key is the SHA-256 of :data:`PREPARED_VERSION`, the vocabulary settings (size, joint)
and the contents of the two training files (after gunzip): the same text under another name or
in another folder hits, one changed byte misses. A hit reads one ``.npz`` (the encoded pairs as
:class:`~ablab.trainer.data.ragged.Ragged` arrays and the tokenizers as JSON) and nothing else; the text
it came from passed every check when it was written. BPE itself is cached by its training
text too (:func:`ablab.trainer.data.tokenizer.cached_bpe`), so settings that share a tokenizer share it.
"""

from __future__ import annotations

import hashlib
import io
import sys
import zipfile
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from ablab.trainer.checkpoint import atomic_write
from ablab.trainer.data.batching import EncodedSplit
from ablab.trainer.data.corpus import SplitFiles
from ablab.trainer.data.ragged import Ragged
from ablab.trainer.data.text_files import aligned, read_bytes, split_lines
from ablab.trainer.data.tokenizer import Vocabularies, build_vocabularies

PREPARED_VERSION = 1
"""Bump when reading, BPE or encoding change, so that prepared splits are made again."""


def _key(src: bytes, tgt: bytes, vocab_size: int, joint: bool) -> str:
    digest = hashlib.sha256(f"v{PREPARED_VERSION}|{vocab_size}|{joint}|".encode())
    for content in (src, tgt):
        digest.update(hashlib.sha256(content).digest())
    return digest.hexdigest()[:24]


def _text(tok: Tokenizer) -> np.ndarray:
    return np.frombuffer(tok.to_str().encode(), dtype=np.uint8)


def _save(path: Path, vocabs: Vocabularies, encoded: EncodedSplit) -> None:
    arrays = {
        "src_values": encoded.src.values,
        "src_offsets": encoded.src.offsets,
        "tgt_values": encoded.tgt.values,
        "tgt_offsets": encoded.tgt.offsets,
        "src_tokenizer": _text(vocabs.src),
    }
    if not vocabs.joint:
        arrays["tgt_tokenizer"] = _text(vocabs.tgt)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write(path, buffer.getbuffer())


def _load(path: Path) -> tuple[Vocabularies, EncodedSplit]:
    with np.load(path) as f:
        src = Tokenizer.from_str(f["src_tokenizer"].tobytes().decode())
        tgt = Tokenizer.from_str(f["tgt_tokenizer"].tobytes().decode()) if "tgt_tokenizer" in f else src
        encoded = EncodedSplit(
            Ragged(f["src_values"], f["src_offsets"]), Ragged(f["tgt_values"], f["tgt_offsets"])
        )
    return Vocabularies(src, tgt), encoded


def prepare_training(
    train: SplitFiles, vocab_size: int, joint: bool, cache: Path
) -> tuple[Vocabularies, EncodedSplit]:
    """The vocabularies learnt on the whole training split and every pair encoded, from the
    cache under ``cache`` when these files were prepared before with these settings."""
    raw_src, raw_tgt = read_bytes(train.src), read_bytes(train.tgt)
    path = cache / "prepared" / f"train-{_key(raw_src, raw_tgt, vocab_size, joint)}.npz"
    if path.is_file():
        try:
            return _load(path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            print(
                f"ablab: the prepared corpus {path} is unreadable ({exc}); preparing it again",
                file=sys.stderr,
            )
    pairs = aligned(
        "train", train.src, split_lines(raw_src, train.src), train.tgt, split_lines(raw_tgt, train.tgt)
    )
    del raw_src, raw_tgt
    vocabs = build_vocabularies(pairs.src, pairs.tgt, vocab_size, joint, cache / "tokenizers")
    encoded = EncodedSplit(vocabs.encode_src(pairs.src), vocabs.encode_tgt(pairs.tgt))
    _save(path, vocabs, encoded)
    return vocabs, encoded
