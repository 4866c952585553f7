"""The ``data`` section of the config: which corpus, in which languages, tokenized how.

A corpus is Multi30k task 1 (``corpus: multi30k``, found as :mod:`ablab.trainer.data.multi30k` describes) or
the user's own parallel files (``corpus: files``): a training, a validation and any number of
named test splits, each a source and a target file (:mod:`ablab.trainer.data.corpus` finds and reads them).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from ablab.trainer.config.section import NEUTRAL, Section

SPLITS = (
    "train",
    "val",
    "test_2016_flickr",
    "test_2017_flickr",
    "test_2017_mscoco",
    "test_2018_flickr",
)
TEST_SETS = SPLITS[2:]
MULTI30K_LANGUAGES = ("en", "de")
LANGUAGE_CODE = r"^[a-z]{2,3}([_-][A-Za-z0-9]{2,8})*$"
"""A language code: ISO 639-1/3, optionally with a script or region (``pt-BR``, ``zh_Hant``)."""
SPLIT_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
"""A test set's name: it becomes part of metric names (``test_2016_flickr/bleu``)."""


class PairFiles(Section):
    """One split of a corpus from files: the source and the target side."""

    src: str
    """Source-language file: one sentence per line, UTF-8, plain or gzip."""
    tgt: str
    """Target-language file, aligned line by line with src."""


class FileCorpus(Section):
    """A parallel corpus from the user's files (``data.corpus: files``). Paths may use ``~`` and
    ``$VARIABLES``; a relative path is taken relative to ``root``, and a relative ``root`` (or a
    relative path without one) relative to the folder ``ablab`` runs in."""

    root: str | None = None
    """Folder the relative paths below are relative to (None: the folder ablab runs in)."""
    train: PairFiles
    """Training pairs: BPE is learnt on them."""
    val: PairFiles
    """Validation pairs: validation BLEU and NLL each epoch, and the best checkpoint."""
    tests: dict[str, PairFiles] = Field(min_length=1)
    """Named test sets, evaluated at the end (``{newstest2014: {src: ..., tgt: ...}}``)."""

    @model_validator(mode="after")
    def _names(self) -> FileCorpus:
        bad = [n for n in self.tests if not re.match(SPLIT_NAME, n) or n in ("train", "val")]
        if bad:
            raise ValueError(
                f"data.files.tests: names {bad} are not usable; a test set's name is letters, digits, "
                "'_', '.' or '-' (it names metrics), and not 'train' or 'val'"
            )
        return self


class DataConfig(Section):
    corpus: Literal["multi30k", "files"] = Field(default="multi30k", json_schema_extra=NEUTRAL)
    """'multi30k': Multi30k task 1 (found through dir, $MULTI30K_DIR, the cache or a download);
    'files': the user's parallel corpus named in data.files."""
    files: FileCorpus | None = Field(default=None, json_schema_extra=NEUTRAL)
    """The files of a corpus 'files': train, val and named tests, each {src, tgt}."""
    dir: str | None = None
    """Folder with the Multi30k task-1 raw files; None: $MULTI30K_DIR, then the user cache,
    then a verified download."""
    src_lang: str = Field(default="en", pattern=LANGUAGE_CODE)
    """Source language code (Multi30k: 'en' or 'de')."""
    tgt_lang: str = Field(default="de", pattern=LANGUAGE_CODE)
    """Target language code (Multi30k: 'en' or 'de'); it chooses BLEU's tokenizer."""
    train_subset: int | None = Field(default=None, ge=1)
    """Train on the first N training pairs only (None: all 29,000)."""
    max_tokens: int = Field(default=4096, ge=16)
    """Token budget per batch, padding included: sentences * max(src, tgt length) <= this."""
    vocab_size: int = Field(default=8000, ge=64, le=64000)
    """BPE vocabulary size (per language when vocabularies are separate)."""
    joint_vocab: bool = True
    """One BPE vocabulary for both languages (required by model.tie_embeddings 'all')."""
    max_len: int = Field(default=256, ge=4)
    """Training pairs longer than this many BPE tokens on either side are left out."""
    cache_dir: str | None = None
    """Cache for downloads and tokenizers; None: $XDG_CACHE_HOME/ablab or ~/.cache/ablab."""

    @model_validator(mode="after")
    def _corpus(self) -> DataConfig:
        if self.src_lang == self.tgt_lang:
            raise ValueError("data.src_lang and data.tgt_lang must differ")
        if self.corpus == "files" and self.files is None:
            raise ValueError(
                "data.corpus is 'files' but data.files is missing; name the train, val and tests "
                "files ({train: {src: ..., tgt: ...}, val: ..., tests: {name: ...}})"
            )
        if self.corpus == "multi30k" and self.files is not None:
            raise ValueError("data.files is set but data.corpus is 'multi30k'; set data.corpus: files")
        if self.corpus == "multi30k":
            other = [x for x in (self.src_lang, self.tgt_lang) if x not in MULTI30K_LANGUAGES]
            if other:
                raise ValueError(
                    f"Multi30k is read in {' and '.join(MULTI30K_LANGUAGES)}, not {other}; for other "
                    "languages name your files (data.corpus: files)"
                )
        if self.corpus == "files" and self.dir is not None:
            raise ValueError("data.dir is Multi30k's folder; with data.corpus 'files' use data.files.root")
        return self
