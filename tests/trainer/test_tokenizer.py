import pytest

from ablab.trainer.data.tokenizer import BOS, EOS, PAD, SPECIALS, UNK, build_vocabularies, cached_bpe
from tests.conftest import multi30k_split


@pytest.fixture(scope="module")
def train_split(multi30k_dir):
    return multi30k_split(multi30k_dir, "train")


def test_specials_have_fixed_ids(train_split, tmp_path):
    vocabs = build_vocabularies(train_split.src[:3000], train_split.tgt[:3000], 1000, True, tmp_path)
    assert [vocabs.src.token_to_id(t) for t in SPECIALS] == [PAD, UNK, BOS, EOS]
    assert vocabs.joint and vocabs.src_size == vocabs.tgt_size == 1000


def test_round_trip_is_lossless(train_split, multi30k_dir, tmp_path):
    vocabs = build_vocabularies(train_split.src, train_split.tgt, 4000, True, tmp_path)
    test = multi30k_split(multi30k_dir, "test_2016_flickr")
    for lines in (train_split.tgt[:5000], test.tgt, test.src):
        assert vocabs.decode_tgt(vocabs.encode_tgt(lines).tolist()) == lines


def test_decoding_stops_at_end_of_sentence(train_split, tmp_path):
    vocabs = build_vocabularies(train_split.src[:2000], train_split.tgt[:2000], 800, True, tmp_path)
    ids = vocabs.encode_tgt(["Ein Hund läuft."]).tolist()[0]
    assert vocabs.decode_tgt([ids + [EOS] + ids]) == ["Ein Hund läuft."]


def test_separate_vocabularies(train_split, tmp_path):
    vocabs = build_vocabularies(train_split.src[:3000], train_split.tgt[:3000], 900, False, tmp_path)
    assert not vocabs.joint
    assert vocabs.src.get_vocab() != vocabs.tgt.get_vocab()


def test_cache_is_keyed_by_data_and_size(train_split, tmp_path):
    texts = train_split.src[:2000]
    first = cached_bpe(texts, 700, tmp_path)
    assert len(list(tmp_path.glob("bpe-*.json"))) == 1
    again = cached_bpe(texts, 700, tmp_path)
    assert again.get_vocab() == first.get_vocab()
    assert len(list(tmp_path.glob("bpe-*.json"))) == 1
    cached_bpe(texts, 600, tmp_path)
    cached_bpe(texts[:1000], 700, tmp_path)
    assert len(list(tmp_path.glob("bpe-*.json"))) == 3
