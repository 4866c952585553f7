from pathlib import Path

import pytest
from pydantic import ValidationError

from ablab.trainer.config import files as F
from ablab.trainer.config import schema as C
from ablab.trainer.errors import ConfigError

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "experiments" / "configs").glob("*.yaml"))


def test_defaults_are_the_seed_baseline():
    cfg = C.Config()
    assert (cfg.model.layers, cfg.model.d_model, cfg.model.heads) == (3, 256, 4)
    assert cfg.loss.label_smoothing == 0.1
    assert cfg.optim.name == "adamw" and cfg.optim.clip_norm == 1.0


def test_config_is_frozen():
    cfg = C.Config()
    with pytest.raises(ValidationError):
        cfg.model.heads = 8  # type: ignore[misc]


def test_sweepable_keys_exist_with_exact_names():
    keys = set(C.valid_keys())
    for key in [
        "model.arch",
        "model.layers",
        "model.d_model",
        "model.heads",
        "model.ff_dim",
        "model.dropout",
        "model.norm",
        "loss.label_smoothing",
        "schedule.name",
        "schedule.warmup_steps",
        "optim.lr",
        "train.seed",
        "train.epochs",
        "train.max_steps",
        "train.max_minutes",
        "train.precision",
        "data.train_subset",
        "data.max_tokens",
        "data.vocab_size",
    ]:
        assert key in keys, key
        assert describe_key(key), f"{key} has no docstring"


def describe_key(key: str) -> str:
    """The docstring of a dotted config key."""
    section, _, name = key.partition(".")
    return C.SECTIONS[section].model_fields[name].description or ""


def test_every_key_is_documented():
    undocumented = [k for k in C.valid_keys() if not describe_key(k)]
    assert undocumented == []


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ({"model": {"head": 8}}, "unknown key 'model.head' (did you mean model.heads?)"),
        ({"modle": {}}, "unknown section 'modle' (did you mean 'model'?)"),
        ({"model": {"heads": "8"}}, "model.heads: expected an integer"),
        ({"model": {"heads": 3}}, "must be divisible by model.heads (3)"),
        ({"model": {"dropout": True}}, "model.dropout"),
        ({"model": {"dropout": 1.5}}, "model.dropout"),
        ({"model": 3}, "section 'model' must be a mapping"),
        ({"schedule": {"name": "cosine"}}, "valid names are noam, warmup_cosine"),
        ({"train": {"epochs": None}}, "training needs a limit"),
        ({"optim": {"lr": -1}}, "optim.lr: Input should be greater than 0"),
        ({"train": {"seed": -3}}, "train.seed: Input should be greater than or equal to 0"),
        ({"optim": {"betas": [0.9, 1.2]}}, "optim.betas"),
        ({"data": {"joint_vocab": False}}, "tie_embeddings 'all' needs data.joint_vocab"),
        ({"data": {"src_lang": "de", "tgt_lang": "de"}}, "must differ"),
        ({"eval": {"test_sets": ["test_2019"]}}, "unknown test set"),
        ({"train": {"precision": "fp16", "device": "cpu"}}, "fp16"),
        ([1, 2], "must be a mapping of sections"),
    ],
)
def test_invalid_configs_name_the_problem(raw, fragment):
    with pytest.raises(ConfigError) as err:
        C.from_dict(raw)
    assert fragment in str(err.value)


def test_unknown_key_lists_the_valid_ones():
    with pytest.raises(ConfigError) as err:
        C.from_dict({"optim": {"learning_rate": 1e-3}})
    for key in C.OptimConfig.model_fields:
        assert key in str(err.value)


def test_overrides_parse_yaml_values_and_reject_unknown_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: {heads: 4}\n")
    cfg = F.load(path, dict(F.parse_override(s) for s in ["model.heads=8", "optim.betas=[0.9, 0.99]"]))
    assert cfg.model.heads == 8 and cfg.optim.betas == (0.9, 0.99)
    with pytest.raises(ConfigError, match="did you mean 'model.heads'"):
        F.load(path, {"model.head": 8})
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        F.parse_override("model.heads")


@pytest.mark.parametrize(
    "text, fragment",
    [("model: {heads: [}", "invalid YAML at line 1"), ("- 1\n- 2\n", "must be a mapping")],
)
def test_bad_files_name_the_file(tmp_path, text, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        F.load(path)
    assert str(path) in str(err.value) and fragment in str(err.value)


@pytest.mark.parametrize("text", ["", "# nothing but a comment\n", "{}\n"])
def test_an_empty_config_is_refused_not_trained_as_the_defaults(tmp_path, text):
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="the config is empty") as err:
        F.load(path)
    assert str(path) in str(err.value) and "train: {}" in str(err.value)
    path.write_text("train: {}\n")  # the defaults, asked for on purpose
    assert F.load(path).train.epochs == C.Config().train.epochs


def test_missing_and_non_utf8_files(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        F.load(tmp_path / "nope.yaml")
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("model: {norm: pr\xe9}".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        F.load(bad)


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("model: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        F.load(path)


def test_flatten_and_hash_are_canonical():
    a = C.from_dict({"model": {"heads": 8}})
    b = C.from_dict({"model": {"heads": 8, "d_model": 256}})  # default spelled out
    assert C.flatten(a)["model.heads"] == 8
    assert C.config_hash(a) == C.config_hash(b)
    assert C.config_hash(a) != C.config_hash(C.Config())
    assert set(C.flatten(a)) == set(C.valid_keys())


def test_the_retired_peak_lr_key_is_read_as_optim_lr_with_a_warning():
    """schedule.lr_max was a second key for the peak learning rate that won over optim.lr; an
    older config (file or override) still reads, as the optim.lr it meant."""
    with pytest.warns(FutureWarning, match="schedule.lr_max is deprecated, optim.lr is the one key"):
        old = C.from_dict({"optim": {"lr": 1e-3}, "schedule": {"lr_max": 3e-4, "warmup_steps": 10}})
    assert old == C.from_dict({"optim": {"lr": 3e-4}, "schedule": {"warmup_steps": 10}})
    with pytest.warns(FutureWarning, match="spec: schedule.lr_max"):
        overridden = C.from_dict(F.apply_overrides({}, {"schedule.lr_max": 5e-4}), source="spec")
    assert overridden.optim.lr == 5e-4 and "schedule.lr_max" not in C.valid_keys()
    assert C.counted_fields(C.Config())["schedule.lr_max"] is None  # hashed at its old default


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_loads(path):
    cfg = F.load(path)
    assert cfg.data.dir is None, "shipped configs must find data through MULTI30K_DIR or the cache"


def test_huge_bad_values_are_cut_in_the_message():
    with pytest.raises(ConfigError) as err:
        C.from_dict({"data": list(range(100_000))})
    assert "section 'data' must be a mapping of keys, got list [0, 1, 2" in str(err.value)
    assert "chars)" in str(err.value) and len(str(err.value)) < 400
    with pytest.raises(ConfigError) as err:
        C.from_dict({"model": {f"key{i}": i for i in range(50)}})
    assert str(err.value).count("unknown key") == 8 and "and 42 more" in str(err.value)


def test_an_option_added_later_keeps_finished_trials_identity(monkeypatch):
    """A field marked NEUTRAL is left out of the hash at its default, so a config hashes as it
    did before the field existed; set to anything else, it counts."""
    import hashlib
    import json

    before = {k: v for k, v in C.counted_fields(C.Config()).items() if k != "train.checkpoint_every"}
    expected = hashlib.sha256(json.dumps(before, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert C.config_hash(C.Config()) != expected[:16]  # today the field counts
    monkeypatch.setattr(C.SECTIONS["train"].model_fields["checkpoint_every"], "json_schema_extra", C.NEUTRAL)
    assert C.config_hash(C.Config()) == expected[:16]  # as if it had not existed
    changed = C.Config(train=C.TrainConfig(checkpoint_every=5))
    assert C.config_hash(changed) != C.config_hash(C.Config())


def test_the_default_config_keeps_the_hash_its_finished_runs_were_recorded_under():
    """Every trial of a stored sweep is found again by this hash: an option added to the config
    must be NEUTRAL at its default (or this hash, and every stored trial's, changes). The default
    train.precision became 'auto' (it was 'bf16'): a config that says bf16 keeps the old hash."""
    assert C.config_hash(C.Config()) == "7aa6eb8b88e9fae6"
    assert C.config_hash(C.Config(train=C.TrainConfig(precision="bf16"))) == "ac91ccaa9bdf08a9"
