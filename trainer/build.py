"""The edge between config and objects: data, vocabularies and the model, built once.

Everything here may fail on bad input (missing data, an attention sentence out of range);
it runs before any run is created or any file is written, so such a failure leaves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from trainer.batching import EncodedSplit
from trainer.config import DataConfig, EvalConfig, ModelConfig
from trainer.data import Parallel, cache_root, load_splits
from trainer.errors import ConfigError
from trainer.evaluate import EvalSet
from trainer.model import Transformer
from trainer.seq2seq import Seq2Seq
from trainer.tokenizer import Vocabularies, build_vocabularies

ARCHITECTURES: dict[str, type[nn.Module]] = {"transformer": Transformer, "seq2seq": Seq2Seq}


@dataclass(frozen=True)
class Corpus:
    vocabs: Vocabularies
    train: EncodedSplit
    val: EvalSet
    tests: dict[str, EvalSet]
    train_pairs_dropped: int
    """Training pairs left out for exceeding data.max_len."""


def _eval_set(split: Parallel, vocabs: Vocabularies) -> EvalSet:
    encoded = EncodedSplit.from_ids(vocabs.encode_src(split.src), vocabs.encode_tgt(split.tgt))
    return EvalSet(split.name, encoded, split.src, split.tgt)


def build_corpus(data: DataConfig, evaluation: EvalConfig) -> Corpus:
    """Read the splits, build (or load) the BPE vocabularies, encode and filter."""
    raw = load_splits(
        ["train", "val", *evaluation.test_sets],
        data.src_lang,
        data.tgt_lang,
        explicit_dir=data.dir,
        cache_dir=data.cache_dir,
    )
    headline = raw[evaluation.test_sets[0]]
    evaluated = min(len(headline), evaluation.test_sentences or len(headline))
    if evaluation.attention_sentence >= evaluated:
        raise ConfigError(
            f"eval.attention_sentence is {evaluation.attention_sentence} but {evaluated} sentences "
            f"of {headline.name} are evaluated; choose an index below {evaluated}."
        )
    train = raw["train"]
    vocabs = build_vocabularies(
        train.src, train.tgt, data.vocab_size, data.joint_vocab, cache_root(data.cache_dir) / "tokenizers"
    )
    n = len(train) if data.train_subset is None else min(data.train_subset, len(train))
    encoded = EncodedSplit.from_ids(vocabs.encode_src(train.src[:n]), vocabs.encode_tgt(train.tgt[:n]))
    keep = np.flatnonzero((encoded.src_lens <= data.max_len) & (encoded.tgt_lens <= data.max_len))
    if len(keep) == 0:
        raise ConfigError(
            f"data.max_len is {data.max_len} tokens but every one of the {n} training pairs is longer on "
            "one side; raise data.max_len (the default keeps all of Multi30k)."
        )
    return Corpus(
        vocabs=vocabs,
        train=encoded.subset(keep),
        val=_eval_set(raw["val"], vocabs),
        tests={
            name: _eval_set(raw[name], vocabs).head(evaluation.test_sentences)
            for name in evaluation.test_sets
        },
        train_pairs_dropped=n - len(keep),
    )


def build_model(cfg: ModelConfig, vocabs: Vocabularies) -> nn.Module:
    return ARCHITECTURES[cfg.arch](cfg, vocabs.src_size, vocabs.tgt_size)


def count_parameters(model: nn.Module) -> int:
    """Exact trainable parameter count; a tied matrix counts once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
