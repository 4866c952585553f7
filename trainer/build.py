"""The edge between config and objects: data, vocabularies and the model, built once.

Everything here may fail on bad input (missing data, an attention sentence out of range);
it runs before any run is created or any file is written, so such a failure leaves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from ablab.trainer.config.schema import EvalConfig, ModelConfig
from ablab.trainer.data.batching import EncodedSplit
from ablab.trainer.data.config import DataConfig
from ablab.trainer.data.corpus import split_files
from ablab.trainer.data.multi30k import cache_root
from ablab.trainer.data.prepare import prepare_training
from ablab.trainer.data.text_files import Parallel, read_parallel
from ablab.trainer.data.tokenizer import Vocabularies
from ablab.trainer.errors import ConfigError
from ablab.trainer.evaluation.evaluate import EvalSet, bleu_tokenizer
from ablab.trainer.model.seq2seq import Seq2Seq
from ablab.trainer.model.transformer import Transformer

ARCHITECTURES: dict[str, type[nn.Module]] = {"transformer": Transformer, "seq2seq": Seq2Seq}


@dataclass(frozen=True)
class Corpus:
    vocabs: Vocabularies
    train: EncodedSplit
    val: EvalSet
    tests: dict[str, EvalSet]
    train_pairs_dropped: int
    """Training pairs left out for exceeding data.max_len."""


def _eval_set(split: Parallel, vocabs: Vocabularies, bleu_tokenize: str) -> EvalSet:
    encoded = EncodedSplit(vocabs.encode_src(split.src), vocabs.encode_tgt(split.tgt))
    return EvalSet(split.name, encoded, split.src, split.tgt, bleu_tokenize)


def build_corpus(data: DataConfig, evaluation: EvalConfig) -> Corpus:
    """Find the splits, prepare (or load) the training split, encode and filter."""
    bleu_tokenize = bleu_tokenizer(data.tgt_lang, evaluation.bleu_tokenize)
    files = split_files(data, evaluation.test_sets)
    held_out = {name: read_parallel(name, f.src, f.tgt) for name, f in files.items() if name != "train"}
    headline = held_out[evaluation.test_sets[0]]
    evaluated = min(len(headline), evaluation.test_sentences or len(headline))
    if evaluation.attention_sentence >= evaluated:
        raise ConfigError(
            f"eval.attention_sentence is {evaluation.attention_sentence} but {evaluated} sentences "
            f"of {headline.name} are evaluated; choose an index below {evaluated}."
        )
    vocabs, encoded = prepare_training(
        files["train"], data.vocab_size, data.joint_vocab, cache_root(data.cache_dir)
    )
    n = len(encoded) if data.train_subset is None else min(data.train_subset, len(encoded))
    if n < len(encoded):
        encoded = encoded.subset(np.arange(n))
    keep = np.flatnonzero((encoded.src_lens <= data.max_len) & (encoded.tgt_lens <= data.max_len))
    if len(keep) == 0:
        raise ConfigError(
            f"data.max_len is {data.max_len} tokens but every one of the {n} training pairs is longer on "
            "one side; raise data.max_len (the default keeps all of Multi30k)."
        )
    return Corpus(
        vocabs=vocabs,
        train=encoded if len(keep) == n else encoded.subset(keep),
        val=_eval_set(held_out["val"], vocabs, bleu_tokenize),
        tests={
            name: _eval_set(held_out[name], vocabs, bleu_tokenize).head(evaluation.test_sentences)
            for name in evaluation.test_sets
        },
        train_pairs_dropped=n - len(keep),
    )


def build_model(cfg: ModelConfig, vocabs: Vocabularies) -> nn.Module:
    return ARCHITECTURES[cfg.arch](cfg, vocabs.src_size, vocabs.tgt_size)


def count_parameters(model: nn.Module) -> int:
    """Exact trainable parameter count; a tied matrix counts once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
