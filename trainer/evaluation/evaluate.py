"""Evaluation: translations, sacreBLEU scores, teacher-forced loss and calibration, attention.

BLEU follows GUIDE.md: sacreBLEU on detokenized, cased hypotheses against the raw
references with its default ``13a`` tokenizer for Multi30k, or the one the target language
needs (:func:`bleu_tokenizer`; signature logged), plus lowercased BLEU (the convention of the
multimodal-MT papers) and chrF. Calibration is computed on the same
teacher-forced pass that gives the loss (see :mod:`ablab.trainer.evaluation.calibration`).

Per test sentence, :func:`sentence_statistics` keeps the sufficient statistics of every corpus
metric, so that a corpus score can be recomputed for any resample of the sentences (the
artifact ``statistics/<test set>.npz`` the report's bootstrap reads). Arrays, one row per
sentence in test-set order:

- ``bleu``, ``bleu_lc`` ``(n, 10)``: sacreBLEU's own sentence statistics, hypothesis length,
  reference length, matches of 1..4-grams, totals of 1..4-grams (cased; lowercased);
- ``chrf`` ``(n, 18)``: sacreBLEU chrF's hypothesis, reference and matching character n-gram
  counts for orders 1..6;
- ``nll`` ``(n, 2)``: summed teacher-forced negative log-likelihood (nats) and target tokens;
- ``calibration`` ``(n, 3, bins)``: tokens, summed confidence and summed correctness per bin.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np
import sacrebleu
import torch
from torch import nn

from ablab.trainer.config.schema import EvalConfig
from ablab.trainer.data.batching import EncodedSplit, sorted_batches
from ablab.trainer.data.tokenizer import PAD, Vocabularies
from ablab.trainer.errors import ConfigError
from ablab.trainer.evaluation.calibration import ReliabilityBins, bins_from_sums, sentence_bin_sums
from ablab.trainer.evaluation.decode import beam_search, greedy, max_lengths
from ablab.trainer.hardware.precision import compute_context


@dataclass(frozen=True)
class EvalSet:
    """A validation or test split: token ids plus the raw text that BLEU is scored against."""

    name: str
    encoded: EncodedSplit
    sources: list[str]
    references: list[str]
    bleu_tokenize: str = "13a"
    """sacreBLEU's tokenizer for BLEU on these references (:func:`bleu_tokenizer`)."""

    def head(self, n: int | None) -> EvalSet:
        if n is None or n >= len(self.sources):
            return self
        return EvalSet(
            self.name,
            self.encoded.subset(np.arange(n)),
            self.sources[:n],
            self.references[:n],
            self.bleu_tokenize,
        )


@dataclass(frozen=True)
class TeacherForced:
    nll_per_token: float
    tokens: int
    bins: ReliabilityBins
    sentence_nll: np.ndarray  # (n,) summed NLL of each sentence's target tokens
    sentence_tokens: np.ndarray  # (n,)
    sentence_bins: np.ndarray  # (n, 3, bins), see ablab.trainer.evaluation.calibration.sentence_bin_sums


@torch.no_grad()
def translate(
    model: nn.Module,
    data: EvalSet,
    vocabs: Vocabularies,
    cfg: EvalConfig,
    device: torch.device,
    precision: str,
    beam: int,
) -> list[str]:
    """Detokenized translations of ``data``'s sources, in input order."""
    model.eval()
    out: list[list[int]] = [[] for _ in range(len(data.sources))]
    with compute_context(device, precision):
        for index in sorted_batches(data.encoded.src_lens, cfg.batch_sentences):
            batch = data.encoded.collate(index).to(device)
            limits = max_lengths(batch.src_lens, cfg.max_len_a, cfg.max_len_b)
            if beam == 1:
                ids = greedy(model, batch.src, batch.src_lens, limits)
            else:
                ids = beam_search(model, batch.src, batch.src_lens, limits, beam, cfg.length_penalty)
            for i, seq in zip(index.tolist(), ids, strict=True):
                out[i] = seq
    return vocabs.decode_tgt(out)


CHARACTER_SCRIPTS = {"th", "lo", "km", "my"}
"""Languages written without spaces between words, whose BLEU is taken on characters."""
OWN_PUNCTUATION = {
    "ar",
    "fa",
    "ur",
    "ps",
    "ckb",
    "hi",
    "mr",
    "ne",
    "bn",
    "gu",
    "pa",
    "ta",
    "te",
    "kn",
    "ml",
    "si",
    "hy",
    "am",
}
"""Languages whose scripts have punctuation of their own (Arabic comma, Devanagari danda, the
Armenian and Ethiopic stops), which 13a leaves glued to words and ``intl`` splits off."""


@functools.cache
def _available(tokenize: str) -> bool:
    try:
        sacrebleu.BLEU(tokenize=tokenize)
    except (RuntimeError, ImportError, ModuleNotFoundError):
        return False
    return True


def bleu_tokenizer(tgt_lang: str, setting: str | None = None) -> str:
    """sacreBLEU's tokenizer for BLEU into ``tgt_lang``: ``setting`` when given (an error when its
    extra is not installed); else ``zh`` for Chinese, ``ja-mecab``/``ko-mecab`` for Japanese and
    Korean where installed (else ``char`` and ``intl``), ``char`` for :data:`CHARACTER_SCRIPTS`,
    ``intl`` for :data:`OWN_PUNCTUATION`, and ``13a`` (sacreBLEU's default, WMT's) otherwise.
    The fallback depends on what the machine has installed: on a cluster, install the extra on
    every node or set ``eval.bleu_tokenize``; each run's signature says which tokenizer scored it."""
    if setting is not None:
        if not _available(setting):
            raise ConfigError(
                f"eval.bleu_tokenize is {setting!r}, whose dependencies are not installed "
                f"(pip install 'sacrebleu[{setting.split('-')[0]}]'), or choose another tokenizer."
            )
        return setting
    language = re.split(r"[-_]", tgt_lang)[0]
    if language == "zh":
        return "zh"
    if language in ("ja", "ko"):
        mecab = f"{language}-mecab"
        return mecab if _available(mecab) else ("char" if language == "ja" else "intl")
    if language in CHARACTER_SCRIPTS:
        return "char"
    return "intl" if language in OWN_PUNCTUATION else "13a"


def _bleus(tokenize: str) -> tuple[sacrebleu.BLEU, sacrebleu.BLEU]:
    """Cased and lowercased BLEU with ``tokenize``: what every BLEU of a run is scored with."""
    return sacrebleu.BLEU(tokenize=tokenize), sacrebleu.BLEU(tokenize=tokenize, lowercase=True)


def bleu_metrics(
    hypotheses: list[str], references: list[str], tokenize: str = "13a"
) -> dict[str, float | str]:
    """Cased BLEU, lowercased BLEU and chrF of detokenized text, with sacreBLEU signatures."""
    (bleu, bleu_lc), chrf = _bleus(tokenize), sacrebleu.CHRF()
    return {
        "bleu": bleu.corpus_score(hypotheses, [references]).score,
        "bleu_lc": bleu_lc.corpus_score(hypotheses, [references]).score,
        "chrf": chrf.corpus_score(hypotheses, [references]).score,
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }


@torch.no_grad()
def teacher_forced(
    model: nn.Module,
    data: EvalSet,
    cfg: EvalConfig,
    device: torch.device,
    precision: str,
) -> TeacherForced:
    """NLL per target token and token-level reliability bins under teacher forcing, in all and
    per sentence."""
    model.eval()
    n = len(data.sources)
    sentences, nlls, confidences, corrects = [], [], [], []
    with compute_context(device, precision):
        for index in sorted_batches(data.encoded.src_lens, cfg.batch_sentences):
            batch = data.encoded.collate(index).to(device)
            hidden = model(batch.src, batch.src_lens, batch.tgt_in, batch.tgt_lens)
            real = batch.tgt_out != PAD  # (B, T)
            gold = batch.tgt_out[real]
            lprobs = model.logits(hidden[real]).float().log_softmax(-1)  # (N, V)
            nlls.append(-lprobs.gather(-1, gold[:, None])[:, 0].double().cpu().numpy())
            top_lprob, top = lprobs.max(-1)
            confidences.append(top_lprob.exp().cpu().numpy())
            corrects.append((top == gold).cpu().numpy())
            rows = torch.as_tensor(index, device=real.device)[:, None].expand_as(real)
            sentences.append(rows[real].cpu().numpy())
    sentence = np.concatenate(sentences)
    nll = np.bincount(sentence, weights=np.concatenate(nlls), minlength=n)
    tokens = np.bincount(sentence, minlength=n)
    per_sentence = sentence_bin_sums(
        np.concatenate(confidences), np.concatenate(corrects), sentence, n, cfg.calibration_bins
    )
    total = int(tokens.sum())
    return TeacherForced(
        float(nll.sum()) / max(total, 1),
        total,
        bins_from_sums(per_sentence.sum(0)),
        nll,
        tokens,
        per_sentence,
    )


def sentence_statistics(
    hypotheses: list[str], references: list[str], tf: TeacherForced, tokenize: str = "13a"
) -> dict[str, np.ndarray]:
    """Per test sentence, the sufficient statistics of BLEU, lowercased BLEU, chrF, test NLL and
    ECE (layout in the module docstring). Their column sums give the corpus scores exactly."""
    refs = [references]
    bleu, bleu_lc = _bleus(tokenize)
    return {
        "bleu": np.array(bleu._extract_corpus_statistics(hypotheses, refs), dtype=np.float64),
        "bleu_lc": np.array(bleu_lc._extract_corpus_statistics(hypotheses, refs), dtype=np.float64),
        "chrf": np.array(sacrebleu.CHRF()._extract_corpus_statistics(hypotheses, refs), dtype=np.float64),
        "nll": np.stack([tf.sentence_nll, tf.sentence_tokens.astype(np.float64)], axis=1),
        "calibration": tf.sentence_bins,
    }


@torch.no_grad()
def attention_record(
    model: nn.Module, data: EvalSet, index: int, vocabs: Vocabularies, device: torch.device
) -> dict:
    """Attention maps of sentence ``index`` (teacher-forced on its reference), JSON-ready.

    Rows are target positions (the decoder input ``<s> y_1 .. y_n``, labelled by the token
    each position predicts), columns source positions (``x_1 .. x_m </s>``).
    """
    model.eval()
    batch = data.encoded.collate(np.array([index])).to(device)
    maps = model.attention_maps(batch.src, batch.src_lens, batch.tgt_in)
    src_ids = batch.src[0].tolist()
    tgt_ids = batch.tgt_out[0].tolist()
    return {
        "sentence_index": index,
        "source": data.sources[index],
        "reference": data.references[index],
        "source_tokens": vocabs.src_pieces(src_ids),
        "target_tokens": vocabs.tgt_pieces(tgt_ids),
        "maps": {name: weights.cpu().numpy().round(5).tolist() for name, weights in maps.items()},
    }
