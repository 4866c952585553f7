import subprocess
import sys

import numpy as np
import pytest
import sacrebleu
import torch

from ablab.trainer.config.schema import EvalConfig, ModelConfig
from ablab.trainer.data.batching import EncodedSplit
from ablab.trainer.data.tokenizer import build_vocabularies
from ablab.trainer.evaluation.evaluate import (
    EvalSet,
    attention_record,
    bleu_metrics,
    sentence_statistics,
    teacher_forced,
    translate,
)
from ablab.trainer.model.transformer import Transformer
from tests.conftest import multi30k_split


def sacrebleu_cli(refs, hyps, tmp_path, *args) -> float:
    (tmp_path / "ref.txt").write_text("\n".join(refs) + "\n")
    (tmp_path / "hyp.txt").write_text("\n".join(hyps) + "\n")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "sacrebleu",
            str(tmp_path / "ref.txt"),
            "-i",
            str(tmp_path / "hyp.txt"),
            "-b",
            "-w",
            "6",
            *args,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip())


def test_bleu_chrf_and_lowercase_match_the_sacrebleu_cli(multi30k_dir, tmp_path):
    refs = multi30k_split(multi30k_dir, "test_2016_flickr").tgt
    rng = np.random.default_rng(0)
    hyps = []
    for ref in refs:  # a plausible system: drop and lowercase some words
        words = [w.lower() if rng.uniform() < 0.2 else w for w in ref.split() if rng.uniform() > 0.15]
        hyps.append(" ".join(words))
    ours = bleu_metrics(hyps, refs)
    assert ours["bleu"] == pytest.approx(sacrebleu_cli(refs, hyps, tmp_path), abs=1e-5)
    assert ours["bleu_lc"] == pytest.approx(sacrebleu_cli(refs, hyps, tmp_path, "-lc"), abs=1e-5)
    assert ours["chrf"] == pytest.approx(sacrebleu_cli(refs, hyps, tmp_path, "-m", "chrf"), abs=1e-5)
    assert ours["bleu_lc"] > ours["bleu"]
    assert "tok:13a" in ours["bleu_signature"] and "case:mixed" in ours["bleu_signature"]


@pytest.fixture(scope="module")
def small_eval(multi30k_dir, tmp_path_factory):
    train = multi30k_split(multi30k_dir, "train")
    vocabs = build_vocabularies(train.src[:2000], train.tgt[:2000], 600, True, tmp_path_factory.mktemp("tok"))
    test = multi30k_split(multi30k_dir, "test_2016_flickr")
    src, tgt = test.src[:30], test.tgt[:30]
    data = EvalSet("test_2016_flickr", EncodedSplit(vocabs.encode_src(src), vocabs.encode_tgt(tgt)), src, tgt)
    torch.manual_seed(0)
    model = Transformer(
        ModelConfig(layers=1, d_model=32, heads=2, ff_dim=64), vocabs.src_size, vocabs.tgt_size
    )
    return model, data, vocabs


def test_translate_keeps_input_order(small_eval):
    model, data, vocabs = small_eval
    cfg = EvalConfig(batch_sentences=7, max_len_a=0.0, max_len_b=5)
    hyps = translate(model, data, vocabs, cfg, torch.device("cpu"), "fp32", beam=1)
    one_by_one = [
        translate(model, data.head(i + 1), vocabs, cfg, torch.device("cpu"), "fp32", beam=1)[i]
        for i in (0, 11, 29)
    ]
    assert len(hyps) == 30 and [hyps[0], hyps[11], hyps[29]] == one_by_one


def test_teacher_forced_counts_every_target_token(small_eval):
    model, data, _ = small_eval
    result = teacher_forced(model, data, EvalConfig(batch_sentences=8), torch.device("cpu"), "fp32")
    assert result.tokens == int(data.encoded.tgt_lens.sum()) == int(result.bins.count.sum())
    assert result.nll_per_token == pytest.approx(np.log(600), rel=0.2)  # an untrained model is near uniform
    assert 0.0 <= result.bins.ece <= 1.0


def test_attention_record_is_labelled(small_eval):
    model, data, vocabs = small_eval
    record = attention_record(model, data, 3, vocabs, torch.device("cpu"))
    n_src, n_tgt = int(data.encoded.src_lens[3]), int(data.encoded.tgt_lens[3])
    assert record["source"] == data.sources[3] and len(record["source_tokens"]) == n_src
    assert record["target_tokens"][-1] == "</s>" and len(record["target_tokens"]) == n_tgt
    assert np.array(record["maps"]["cross"]).shape == (1, 2, n_tgt, n_src)


def test_sentence_statistics_sum_to_the_corpus_scores(small_eval):
    model, data, vocabs = small_eval
    cfg = EvalConfig(batch_sentences=8, max_len_a=0.0, max_len_b=8)
    hyps = translate(model, data, vocabs, cfg, torch.device("cpu"), "fp32", beam=1)
    tf = teacher_forced(model, data, cfg, torch.device("cpu"), "fp32")
    stats = sentence_statistics(hyps, data.references, tf)
    n = len(data.sources)
    assert {k: v.shape for k, v in stats.items()} == {
        "bleu": (n, 10),
        "bleu_lc": (n, 10),
        "chrf": (n, 18),
        "nll": (n, 2),
        "calibration": (n, 3, 15),
    }
    scores = bleu_metrics(hyps, data.references)
    bleu, bleu_lc, chrf = sacrebleu.BLEU(), sacrebleu.BLEU(lowercase=True), sacrebleu.CHRF()
    assert bleu._compute_score_from_stats(list(stats["bleu"].sum(0))).score == pytest.approx(scores["bleu"])
    assert bleu_lc._compute_score_from_stats(list(stats["bleu_lc"].sum(0))).score == pytest.approx(
        scores["bleu_lc"]
    )
    assert chrf._compute_score_from_stats(list(stats["chrf"].sum(0))).score == pytest.approx(scores["chrf"])
    assert stats["nll"][:, 0].sum() / stats["nll"][:, 1].sum() == pytest.approx(tf.nll_per_token)
    assert np.array_equal(stats["nll"][:, 1], data.encoded.tgt_lens)  # every sentence's own tokens
    assert np.array_equal(stats["calibration"][:, 0].sum(1), data.encoded.tgt_lens)
