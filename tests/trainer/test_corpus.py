"""A corpus from the user's files: found, checked, prepared once, cached by content, scored with the
target language's BLEU tokenizer."""

import gzip
import json
import shutil
import subprocess

import numpy as np
import pytest
import sacrebleu
import yaml
from mlflow import MlflowClient

from ablab.trainer.config.schema import config_hash, from_dict
from ablab.trainer.data import prepare
from ablab.trainer.data.corpus import WORKDIR_ENV, SplitFiles, split_files
from ablab.trainer.data.text_files import read_lines
from ablab.trainer.errors import ConfigError, DataError
from ablab.trainer.evaluation.evaluate import bleu_metrics, bleu_tokenizer
from tests.conftest import script, tiny_dict

CJK = [chr(0x4E00 + i) for i in range(400)]


def synthetic_pairs(n: int, seed: int) -> tuple[list[str], list[str]]:
    """Source sentences of made-up words, and a 'Chinese' target: each word becomes two fixed
    characters, with a full stop. Learnt in seconds, and scored with BLEU's zh tokenizer."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(200)]
    src, tgt = [], []
    for _ in range(n):
        chosen = rng.integers(0, len(words), size=rng.integers(3, 9))
        src.append(" ".join(words[i] for i in chosen) + " .")
        tgt.append("".join(CJK[2 * i] + CJK[2 * i + 1] for i in chosen) + "。")
    return src, tgt


def write(path, lines: list[str], gz: bool) -> None:
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if gz else data)


def make_corpus(folder, sizes=(("train", 1200), ("dev", 100), ("heldout", 80), ("other", 60))) -> dict:
    """Files of a small xx→zh corpus in ``folder`` (training gzipped, the rest plain text), and
    the data.files mapping naming them relative to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for seed, (split, n) in enumerate(sizes):
        src, tgt = synthetic_pairs(n, seed)
        suffix = ".gz" if split == "train" else ""
        write(folder / f"{split}.xx{suffix}", src, gz=bool(suffix))
        write(folder / f"{split}.zh{suffix}", tgt, gz=bool(suffix))
        files[split] = {"src": f"{split}.xx{suffix}", "tgt": f"{split}.zh{suffix}"}
    return {
        "train": files["train"],
        "val": files["dev"],
        "tests": {"heldout": files["heldout"], "other": files["other"]},
    }


def files_config(files: dict, root=None, **eval_):
    data = {"corpus": "files", "src_lang": "xx", "tgt_lang": "zh", "files": {**files, "root": root}}
    return tiny_dict(data={**data, "vocab_size": 600, "train_subset": None}, eval=eval_)


def test_the_tests_default_to_every_named_test_set_in_order(tmp_path):
    config = from_dict(files_config(make_corpus(tmp_path)))
    assert config.eval.test_sets == ("heldout", "other")
    assert from_dict(files_config(make_corpus(tmp_path), test_sets=["other"])).eval.test_sets == ("other",)


@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda d: d["data"]["files"].pop("val"), "data.files.val: Field required"),
        (
            lambda d: d["eval"].update(test_sets=["newstest"]),
            "unknown test set(s) ['newstest']; data.files.tests'",
        ),
        (lambda d: d["data"]["files"]["tests"].update({"a b": {"src": "x", "tgt": "y"}}), "names ['a b']"),
        (lambda d: d["data"].update(corpus="multi30k"), "data.files is set but data.corpus is 'multi30k'"),
        (lambda d: d["data"].update(tgt_lang="Chinese"), "data.tgt_lang"),
        (lambda d: d["data"].pop("files"), "data.files is missing"),
    ],
)
def test_a_malformed_files_corpus_is_refused_by_name(tmp_path, change, fragment):
    raw = files_config(make_corpus(tmp_path))
    change(raw)
    with pytest.raises(ConfigError) as err:
        from_dict(raw)
    assert fragment in str(err.value)


def test_multi30k_keeps_its_languages():
    with pytest.raises(ConfigError, match=r"Multi30k is read in en and de, not \['fr'\]"):
        from_dict({"data": {"tgt_lang": "fr"}})


def test_paths_resolve_against_root_then_the_working_folder(tmp_path, monkeypatch):
    files = make_corpus(tmp_path / "corpus")
    config = from_dict(files_config(files, root=str(tmp_path / "corpus")))
    found = split_files(config.data, config.eval.test_sets)
    assert list(found) == ["train", "val", "heldout", "other"]
    assert found["val"] == SplitFiles("val", tmp_path / "corpus" / "dev.xx", tmp_path / "corpus" / "dev.zh")

    monkeypatch.setenv("CORPORA", str(tmp_path))
    config = from_dict(files_config(files, root="$CORPORA/corpus"))
    assert split_files(config.data, ("other",))["other"].src == tmp_path / "corpus" / "other.xx"

    relative = {k: v for k, v in files.items()}
    relative["train"] = {"src": "corpus/train.xx.gz", "tgt": "corpus/train.zh.gz"}
    config = from_dict(files_config({**relative, "val": {"src": "corpus/dev.xx", "tgt": "corpus/dev.zh"}}))
    monkeypatch.setenv(WORKDIR_ENV, str(tmp_path))  # a trial worker told where the driver runs
    assert split_files(config.data, ())["train"].tgt == tmp_path / "corpus" / "train.zh.gz"


def test_a_missing_file_or_variable_names_the_key(tmp_path, monkeypatch):
    files = make_corpus(tmp_path)
    (tmp_path / "other.zh").unlink()
    config = from_dict(files_config(files, root=str(tmp_path)))
    with pytest.raises(DataError, match=r"no such file: data.files.tests.other.tgt \(.*other.zh\)"):
        split_files(config.data, config.eval.test_sets)
    split_files(config.data, ("heldout",))  # only the splits a run reads are needed
    monkeypatch.delenv("NO_SUCH_VARIABLE", raising=False)
    config = from_dict(files_config(files, root="$NO_SUCH_VARIABLE/x"))
    with pytest.raises(DataError, match="data.files.root is .* variable NO_SUCH_VARIABLE is not set"):
        split_files(config.data, ())


def test_a_runs_identity_is_the_corpus_content_not_its_place(tmp_path):
    files = make_corpus(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    here, there = (from_dict(files_config(files, root=str(tmp_path / d))) for d in "ab")
    assert config_hash(here) == config_hash(there)
    again = tmp_path / "b" / "train.zh.gz"  # the same sentences gzipped again (another header)
    again.write_bytes(gzip.compress(gzip.decompress(again.read_bytes()), mtime=12345))
    assert config_hash(from_dict(files_config(files, root=str(tmp_path / "b")))) == config_hash(here)
    write(tmp_path / "b" / "other.zh", synthetic_pairs(60, 9)[1], gz=False)
    assert config_hash(from_dict(files_config(files, root=str(tmp_path / "b")))) != config_hash(here)


def test_plain_crlf_and_misnamed_files_are_read_or_refused(tmp_path):
    (tmp_path / "crlf.txt").write_bytes("\ufeffeins\r\nzwei\r\n\r\n".encode())
    assert read_lines(tmp_path / "crlf.txt") == ["eins", "zwei", ""]  # no BOM; an empty line kept
    (tmp_path / "gz_without_suffix").write_bytes(gzip.compress(b"a\nb"))
    assert read_lines(tmp_path / "gz_without_suffix") == ["a", "b"]
    (tmp_path / "fake.gz").write_bytes(b"plain\n")
    with pytest.raises(DataError, match="fake.gz: cannot read it as gzip"):
        read_lines(tmp_path / "fake.gz")
    (tmp_path / "bad.txt").write_bytes(b"fine\nfine\nbro\xc3ken\n")
    with pytest.raises(DataError, match=r"bad.txt, line 3: invalid UTF-8 .* at byte 3 of the line"):
        read_lines(tmp_path / "bad.txt")


def test_preparation_is_cached_by_content_not_by_name(tmp_path, monkeypatch):
    make_corpus(tmp_path / "a")
    train = SplitFiles("train", tmp_path / "a" / "train.xx.gz", tmp_path / "a" / "train.zh.gz")
    vocabs, encoded = prepare.prepare_training(train, 600, True, tmp_path / "cache")
    assert (
        len(encoded) == 1200 and vocabs.joint and len(list((tmp_path / "cache" / "prepared").iterdir())) == 1
    )

    def must_not_train(*args, **kwargs):
        raise AssertionError("prepared again although the content was prepared before")

    shutil.copytree(tmp_path / "a", tmp_path / "b")
    (tmp_path / "b" / "train.xx.gz").rename(tmp_path / "b" / "renamed.gz")
    monkeypatch.setattr(prepare, "build_vocabularies", must_not_train)
    renamed = SplitFiles("train", tmp_path / "b" / "renamed.gz", tmp_path / "b" / "train.zh.gz")
    vocabs2, encoded2 = prepare.prepare_training(renamed, 600, True, tmp_path / "cache")
    assert vocabs2.src.to_str() == vocabs.src.to_str()
    assert np.array_equal(encoded2.src.values, encoded.src.values)
    assert np.array_equal(encoded2.tgt.offsets, encoded.tgt.offsets)

    src, tgt = synthetic_pairs(1200, 0)
    write(tmp_path / "b" / "renamed.gz", src[:-1] + [src[-1] + " w1"], gz=True)  # one word more
    with pytest.raises(AssertionError, match="prepared again"):
        prepare.prepare_training(renamed, 600, True, tmp_path / "cache")
    with pytest.raises(AssertionError, match="prepared again"):
        prepare.prepare_training(train, 700, True, tmp_path / "cache")  # other settings: other entry


def test_an_unreadable_cache_entry_is_prepared_again(tmp_path, capsys):
    make_corpus(tmp_path)
    train = SplitFiles("train", tmp_path / "train.xx.gz", tmp_path / "train.zh.gz")
    _, encoded = prepare.prepare_training(train, 600, False, tmp_path / "cache")
    (entry,) = (tmp_path / "cache" / "prepared").iterdir()
    entry.write_bytes(entry.read_bytes()[:100])
    vocabs, again = prepare.prepare_training(train, 600, False, tmp_path / "cache")
    assert "unreadable" in capsys.readouterr().err and not vocabs.joint
    assert np.array_equal(again.tgt.values, encoded.tgt.values)


@pytest.mark.parametrize(
    "language, tokenizer",
    [
        ("de", "13a"),
        ("en", "13a"),
        ("zh", "zh"),
        ("zh-Hant", "zh"),
        ("ar", "intl"),
        ("hi", "intl"),
        ("th", "char"),
    ],
)
def test_bleu_tokenizer_follows_the_target_language(language, tokenizer):
    assert bleu_tokenizer(language) == tokenizer


def test_an_explicit_tokenizer_wins_and_an_uninstalled_one_is_refused():
    assert bleu_tokenizer("de", "intl") == "intl"
    ja = bleu_tokenizer("ja")
    try:
        sacrebleu.BLEU(tokenize="ja-mecab")
        assert ja == "ja-mecab"
    except RuntimeError:
        assert ja == "char"
        with pytest.raises(ConfigError, match=r"eval.bleu_tokenize is 'ja-mecab'.*sacrebleu\[ja\]"):
            bleu_tokenizer("ja", "ja-mecab")


def test_the_zh_tokenizer_scores_what_sacrebleu_scores():
    src, refs = synthetic_pairs(30, 3)
    hyps = [r[: max(1, len(r) - 3)] + "。" for r in refs]
    ours = bleu_metrics(hyps, refs, "zh")
    assert ours["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs], tokenize="zh").score)
    assert "tok:zh" in ours["bleu_signature"]
    assert ours["bleu"] != pytest.approx(
        bleu_metrics(hyps, refs, "13a")["bleu"]
    )  # 13a sees one word per line


@pytest.mark.integration
def test_training_on_files_through_the_cli_logs_every_named_test(tmp_path):
    files = make_corpus(tmp_path / "corpus")
    config = files_config(files, root="corpus")
    config["train"]["epochs"] = 6
    (tmp_path / "xx_zh.yaml").write_text(yaml.safe_dump(config))
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    out = subprocess.run(
        [script("ablab"), "train", "xx_zh.yaml", "--tracking-uri", uri, "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    metrics = json.loads(out.stdout.strip().splitlines()[-1])
    assert metrics["bleu"] == metrics["heldout/bleu"] > 0 and "other/bleu" in metrics
    run = MlflowClient(uri).get_run(metrics["run_id"])
    assert "tok:zh" in run.data.tags["ablab.bleu_signature"]
    assert run.data.params["data.corpus"] == "files" and run.data.params["data.tgt_lang"] == "zh"

    (tmp_path / "corpus" / "dev.zh").write_text("one line only\n")
    out = subprocess.run(
        [script("ablab"), "train", "xx_zh.yaml", "--tracking-uri", f"sqlite:///{tmp_path}/other/mlflow.db"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 2 and "dev.xx has 100 lines but" in out.stderr and "'val'" in out.stderr
    assert not (tmp_path / "other").exists()
