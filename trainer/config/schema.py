"""Typed, frozen trainer configuration, read once at the edge.

A config is a YAML mapping of sections (``data``, ``model``, ``loss``, ``schedule``, ``optim``,
``train``, ``eval``); every key is a field below, documented where it is declared. Unknown
keys, wrong types and inconsistent values raise :class:`~ablab.trainer.errors.ConfigError` with a
message that names the dotted key and the fix. Sweeps address fields by dotted key
(``model.heads``), and :func:`flatten` (and ``ablab.trainer.config.files.apply_overrides``) work in
those terms.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import warnings
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from ablab.trainer.config import validation_errors
from ablab.trainer.config.section import NEUTRAL
from ablab.trainer.config.section import Section as _Section
from ablab.trainer.data.config import TEST_SETS, DataConfig
from ablab.trainer.data.corpus import content_fingerprint
from ablab.trainer.errors import ConfigError, short_repr
from ablab.trainer.optim.schedules import NEEDS_TOTAL, SCHEDULES

BLEU_TOKENIZERS = (
    "13a",
    "intl",
    "zh",
    "ja-mecab",
    "ko-mecab",
    "char",
    "none",
    "flores101",
    "flores200",
    "spm",
)
"""sacreBLEU's tokenizers (``ja-mecab``/``ko-mecab`` need ``sacrebleu[ja]``/``[ko]``; ``spm`` and
``flores*`` download their SentencePiece model on first use)."""


class ModelConfig(_Section):
    arch: Literal["transformer", "seq2seq"] = "transformer"
    """'transformer' (encoder-decoder) or 'seq2seq' (GRU with attention, same hidden size)."""
    layers: int = Field(default=3, ge=1, le=48)
    """Layers in the encoder and in the decoder (GRU layers for seq2seq)."""
    d_model: int = Field(default=256, ge=8)
    """Model width; the GRU hidden size for seq2seq."""
    heads: int = Field(default=4, ge=1)
    """Attention heads (transformer only); must divide d_model."""
    ff_dim: int = Field(default=512, ge=1)
    """Inner width of the position-wise feed-forward block."""
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    """Dropout on the embeddings and on every sublayer output before its residual add."""
    attn_dropout: float | None = Field(default=None, ge=0.0, lt=1.0)
    """Dropout on attention probabilities; None: model.dropout."""
    act_dropout: float | None = Field(default=None, ge=0.0, lt=1.0)
    """Dropout after the feed-forward activation; None: model.dropout."""
    norm: Literal["post", "pre"] = "post"
    """'post': LayerNorm after each residual add (Vaswani et al.); 'pre': before each sublayer."""
    activation: Literal["relu", "gelu"] = "relu"
    """Feed-forward activation."""
    tie_embeddings: Literal["none", "decoder", "all"] = "all"
    """'decoder': output projection = decoder embedding; 'all': also the encoder's (joint vocab)."""


class LossConfig(_Section):
    label_smoothing: float = Field(default=0.1, ge=0.0, lt=1.0)
    """Label smoothing epsilon: target = (1 - eps) * one-hot + eps / K over all K classes."""


class ScheduleConfig(_Section):
    name: str = "warmup_linear"
    """Learning-rate schedule: one of ablab.trainer.optim.schedules.SCHEDULES."""
    warmup_steps: int = Field(default=1000, ge=0)
    """Linear warmup updates; 0 means no warmup."""
    lr_min: float = Field(default=0.0, ge=0.0)
    """Floor that decaying schedules reach at total_steps."""
    total_steps: int | None = Field(default=None, ge=1)
    """Last update of decaying schedules; None: train.max_steps, else epochs * steps per epoch,
    else (minutes only) the update where train.max_minutes ends, estimated as the run goes."""
    scale: float = Field(default=1.0, gt=0.0)
    """'noam' only: the factor in front of d_model**-0.5."""
    power: float = Field(default=1.0, gt=0.0)
    """'polynomial' only: the decay exponent."""
    cooldown_fraction: float = Field(default=0.2, gt=0.0, le=1.0)
    """'constant_cooldown' only: the share of total_steps spent in the final linear cooldown."""

    @model_validator(mode="after")
    def _known_name(self) -> ScheduleConfig:
        if self.name not in SCHEDULES:
            raise ValueError(
                f"schedule.name {self.name!r} is not a schedule; valid names are {', '.join(SCHEDULES)}"
            )
        return self


class OptimConfig(_Section):
    name: Literal["adamw", "adam", "lion", "adafactor", "sgd", "adamw8bit"] = "adamw"
    """'adamw': Adam with decoupled weight decay; 'adam': Vaswani et al.'s, no decay; 'lion':
    sign updates (Chen et al. 2023), one state per weight, usually at a 3-10x smaller lr and a
    larger weight_decay; 'adafactor': factored second moments (Shazeer & Stern 2018,
    torch.optim.Adafactor), the schedule's lr capping its relative step; 'sgd': momentum SGD,
    the control of every optimizer study; 'adamw8bit': AdamW with 8-bit states
    (bitsandbytes), CUDA only. Weight decay is decoupled and skips biases and norm weights for
    all but 'adam'."""
    lr: float = Field(default=7e-4, gt=0.0)
    """Peak learning rate: where the schedule's warmup ends ('noam' sets its own peak by formula)."""
    betas: tuple[float, float] = Field(default=(0.9, 0.98), strict=False)
    """Adam betas; (0.9, 0.98) as in Vaswani et al."""
    eps: float = Field(default=1e-9, gt=0.0)
    """Adam epsilon."""
    weight_decay: float = Field(default=0.01, ge=0.0)
    """Decoupled weight decay λ (θ ← θ − lr·λ·θ each update) of every optimizer but 'adam'."""
    clip_norm: float = Field(default=1.0, ge=0.0)
    """Clip the global gradient norm to this; 0 disables clipping (the norm is still logged)."""
    lion_betas: tuple[float, float] = Field(default=(0.9, 0.99), strict=False, json_schema_extra=NEUTRAL)
    """Lion's (β1, β2): β1 interpolates the update's direction, β2 the momentum; the paper's (0.9, 0.99)."""
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0, json_schema_extra=NEUTRAL)
    """SGD's momentum."""
    nesterov: bool = Field(default=False, json_schema_extra=NEUTRAL)
    """SGD with Nesterov momentum."""
    adafactor_beta2_decay: float = Field(default=-0.8, le=0.0, json_schema_extra=NEUTRAL)
    """Adafactor's second-moment decay: β2 at update t is 1 − t^decay (the paper's −0.8)."""
    adafactor_eps: float = Field(default=1e-3, ge=0.0, json_schema_extra=NEUTRAL)
    """Adafactor's ε2: the relative step is scaled by max(ε2, RMS(θ))."""
    adafactor_clip: float = Field(default=1.0, ge=1.0, json_schema_extra=NEUTRAL)
    """Adafactor's update clipping threshold d: an update whose RMS exceeds d is scaled to d."""

    @model_validator(mode="after")
    def _betas_in_range(self) -> OptimConfig:
        for key in ("betas", "lion_betas"):
            if not all(0.0 <= b < 1.0 for b in getattr(self, key)):
                raise ValueError(f"optim.{key} must both lie in [0, 1), got {list(getattr(self, key))}")
        if self.nesterov and self.momentum == 0.0:
            raise ValueError("optim.nesterov needs optim.momentum > 0")
        return self


class TrainConfig(_Section):
    seed: int = Field(default=1, ge=0)
    """Seed of parameter init, dropout and batch order."""
    epochs: int | None = Field(default=10, ge=1)
    """Stop after this many epochs (None: no epoch limit)."""
    max_steps: int | None = Field(default=None, ge=1)
    """Stop after this many optimizer updates (None: no step limit)."""
    max_minutes: float | None = Field(default=None, gt=0.0)
    """Stop training after this many wall-clock minutes (None: no time limit)."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """Autocast precision. 'auto': the fastest that is safe on the device the run gets (bf16 on
    CUDA >= 8.0 and on CPUs with native bf16, fp16 with a GradScaler on older CUDA, else fp32;
    ablab.trainer.hardware.precision), recorded on the run. 'fp16' needs a CUDA device (it uses a GradScaler);
    'bf16' on a CPU without native bf16 runs, 10-20x slower than fp32."""
    accum_steps: int = Field(default=1, ge=1)
    """Batches accumulated into one update; the loss is normalized by their target tokens."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """'auto': CUDA when available, else CPU."""
    threads: int | None = Field(default=None, ge=1)
    """CPU threads for torch (None: torch's default)."""
    compile: bool = False
    """Compile the model with torch.compile."""
    grad_checkpointing: bool = False
    """Recompute layer activations in the backward pass to save memory."""
    early_stopping: int | None = Field(default=None, ge=1)
    """Stop when validation BLEU has not improved for this many epochs (None: never)."""
    divergence_factor: float | None = Field(default=10.0, gt=1.0)
    """Besides a NaN or inf loss, a training loss above this multiple of log(vocabulary size),
    the loss of a uniform guess, ends the run as diverged (None: only NaN and inf)."""
    log_every: int = Field(default=10, ge=1)
    """Log step metrics (loss, lr, grad norm, tokens/s) every this many updates."""
    checkpoint_every: int | None = Field(default=None, ge=1)
    """Also checkpoint every this many updates (a checkpoint is always written each epoch)."""

    @model_validator(mode="after")
    def _has_a_limit(self) -> TrainConfig:
        if not limited(self.epochs, self.max_steps, self.max_minutes):
            raise ValueError("training needs a limit: set train.epochs, train.max_steps or train.max_minutes")
        return self


def limited(epochs: int | None, max_steps: int | None, max_minutes: float | None) -> bool:
    """The rule every run obeys (and a spec's budget with it): it ends after a number of epochs,
    of updates or of minutes, whichever comes first, and at least one of them is set."""
    return any(limit is not None for limit in (epochs, max_steps, max_minutes))


class EvalConfig(_Section):
    beam_size: int = Field(default=5, ge=1, le=64)
    """Beam size for the final test translations (1: greedy)."""
    length_penalty: float = Field(default=1.0, ge=0.0)
    """Beam hypotheses are ranked by sum log-prob / length**length_penalty."""
    max_len_a: float = Field(default=1.5, ge=0.0)
    """Decode at most max_len_a * source length + max_len_b tokens."""
    max_len_b: int = Field(default=10, ge=1)
    """See max_len_a."""
    batch_sentences: int = Field(default=256, ge=1)
    """Sentences decoded per batch."""
    val_sentences: int | None = Field(default=None, ge=1)
    """Validation BLEU on the first N validation sentences only (None: all 1,014)."""
    test_sentences: int | None = Field(default=None, ge=1)
    """Evaluate on the first N sentences of each test set only (None: all), for quick runs;
    scores on a prefix are not comparable to published numbers."""
    test_sets: tuple[str, ...] = Field(default=("test_2016_flickr",), strict=False, min_length=1)
    """Test sets evaluated at the end with the best checkpoint; the first is the headline
    (a corpus 'files': names in data.files.tests; unset, all of them in the order given)."""
    bleu_tokenize: Literal[BLEU_TOKENIZERS] | None = Field(default=None, json_schema_extra=NEUTRAL)  # type: ignore[valid-type]
    """sacreBLEU's tokenizer for BLEU (None: chosen by data.tgt_lang, see
    ablab.trainer.evaluation.evaluate.bleu_tokenizer; '13a' for Multi30k). Its signature is logged
    with the score."""
    calibration_bins: int = Field(default=15, ge=1)
    """Equal-width confidence bins of the reliability diagram and ECE."""
    attention_sentence: int = Field(default=0, ge=0)
    """Index in the headline test set of the sentence whose attention maps are saved."""


class Config(_Section):
    """One training run: every field that changes the result, and nothing else."""

    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()

    @model_validator(mode="before")
    @classmethod
    def _tests_of_the_files(cls, raw: Any) -> Any:
        """A corpus from files evaluates all its named tests unless eval.test_sets says otherwise."""
        data, evaluation = (raw.get(k) if isinstance(raw, dict) else None for k in ("data", "eval"))
        if not (isinstance(data, dict) and data.get("corpus") == "files"):
            return raw
        tests = (data.get("files") or {}).get("tests") if isinstance(data.get("files"), dict) else None
        if isinstance(tests, dict) and tests and "test_sets" not in (evaluation or {}):
            if evaluation is None or isinstance(evaluation, dict):
                return {**raw, "eval": {**(evaluation or {}), "test_sets": list(tests)}}
        return raw

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        known = TEST_SETS if self.data.files is None else tuple(self.data.files.tests)
        unknown = [t for t in self.eval.test_sets if t not in known]
        if unknown:
            where = "Multi30k's" if self.data.files is None else "data.files.tests'"
            raise ValueError(f"eval.test_sets: unknown test set(s) {unknown}; {where} are {', '.join(known)}")
        m = self.model
        if m.arch == "transformer" and m.d_model % m.heads:
            raise ValueError(
                f"model.d_model ({m.d_model}) must be divisible by model.heads ({m.heads}); "
                f"choose heads among {[h for h in range(1, m.d_model + 1) if m.d_model % h == 0][:12]}"
            )
        if m.arch == "seq2seq" and m.d_model % 2:
            raise ValueError(f"model.d_model ({m.d_model}) must be even for seq2seq (bidirectional encoder)")
        if m.tie_embeddings == "all" and not self.data.joint_vocab:
            raise ValueError(
                "model.tie_embeddings 'all' needs data.joint_vocab: true; set one of them differently"
            )
        if (
            self.schedule.name in NEEDS_TOTAL
            and self.schedule.total_steps is None
            and self.train.max_steps is None
            and self.train.epochs is None
            and self.train.max_minutes is None
        ):
            raise ValueError(
                f"schedule {self.schedule.name!r} decays to a last update: set "
                "schedule.total_steps (or train.max_steps, train.epochs or train.max_minutes)"
            )
        if self.optim.name == "adamw8bit" and self.train.device == "cpu":
            raise ValueError("optim.name 'adamw8bit' needs CUDA (bitsandbytes); use 'adamw' on CPU")
        if self.train.precision == "fp16" and self.train.device == "cpu":
            raise ValueError("train.precision 'fp16' needs CUDA; use 'auto' or 'fp32' on CPU")
        return self


SECTIONS: dict[str, type[_Section]] = {name: field.annotation for name, field in Config.model_fields.items()}
RETIRED = {"schedule.lr_max": "optim.lr"}
"""Keys of older configs -> the key that holds their value now (``schedule.lr_max`` was a second
key for the peak learning rate, and won over ``optim.lr``). Still read, with a warning; each counts
in :func:`config_hash` at its old default, None, so that finished trials keep their identity."""


def valid_keys() -> list[str]:
    """Every dotted config key, in declaration order."""
    return [f"{s}.{k}" for s, cls in SECTIONS.items() for k in cls.model_fields]


def _unknown_key(err: dict[str, Any]) -> str:
    """An unknown section or key, with the closest valid one."""
    loc = ".".join(str(p) for p in err["loc"])
    section = str(err["loc"][0]) if len(err["loc"]) > 1 else None
    if section in SECTIONS:
        valid = list(SECTIONS[section].model_fields)
        close = difflib.get_close_matches(str(err["loc"][-1]), valid, n=1)
        hint = f" (did you mean {section}.{close[0]}?)" if close else ""
        return f"unknown key {loc!r}{hint}; valid keys in {section}: {', '.join(valid)}"
    close = difflib.get_close_matches(loc, list(SECTIONS), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown section {loc!r}{hint}; valid sections: {', '.join(SECTIONS)}"


def from_dict(raw: Any, *, source: str = "config") -> Config:
    """Validate a nested mapping into a :class:`Config`; ``source`` names it in errors."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: a trainer config must be a mapping of sections "
            f"({', '.join(SECTIONS)}), got {type(raw).__name__}."
        )
    for section, body in raw.items():
        if section in SECTIONS and not isinstance(body, dict):
            raise ConfigError(
                f"{source}: section {section!r} must be a mapping of keys, got "
                f"{type(body).__name__} {short_repr(body)}; valid keys: "
                f"{', '.join(SECTIONS[section].model_fields)}."
            )
    try:
        return Config.model_validate(_without_retired_keys(raw, source))
    except ValidationError as exc:
        problems = validation_errors.describe(exc.errors(), unknown=_unknown_key, values=True)
        raise ConfigError(f"{source}: invalid config: {problems}.") from None


def _without_retired_keys(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """``raw`` with each :data:`RETIRED` key's value moved to the key that holds it now."""
    for old, new in RETIRED.items():
        section, name = old.split(".")
        if not isinstance(raw.get(section), dict) or name not in raw[section]:
            continue
        value = raw[section][name]
        warnings.warn(
            f"{source}: {old} is deprecated, {new} is the one key for it; read as {new} = {value!r}.",
            FutureWarning,
            stacklevel=3,
        )
        raw = {**raw, section: {k: v for k, v in raw[section].items() if k != name}}
        if value is not None:
            new_section, new_name = new.split(".")
            raw[new_section] = {**raw.get(new_section, {}), new_name: value}
    return raw


def to_dict(config: Config) -> dict[str, dict[str, Any]]:
    """The config as a nested plain mapping (tuples become lists), YAML/JSON ready."""
    return json.loads(config.model_dump_json())


def flatten(config: Config) -> dict[str, Any]:
    """The config as one flat mapping of dotted keys (``{'model.heads': 4, ...}``)."""
    return {
        f"{section}.{key}": value for section, body in to_dict(config).items() for key, value in body.items()
    }


def config_hash(config: Config) -> str:
    """A content hash of the resolved config: equal configs hash equal, whatever the spelling.
    Every field counts, except a :data:`NEUTRAL` one at its default."""
    kept = counted_fields(config)
    canonical = json.dumps(kept, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def counted_fields(config: Config) -> dict[str, Any]:
    """The flat config without its :data:`NEUTRAL` fields at their defaults: what the hash covers.
    A corpus from files counts by the SHA-256 of its files' contents instead of their paths."""
    neutral = neutral_defaults()
    kept = {k: v for k, v in flatten(config).items() if k not in neutral or neutral[k] != v}
    kept |= dict.fromkeys(RETIRED)  # at their old default: the hashes of before they retired
    if (content := content_fingerprint(config.data)) is not None:
        kept["data.files"] = {"content": content}  # a corpus's text counts, not where it lies
    return kept


def neutral_defaults() -> dict[str, Any]:
    """Every :data:`NEUTRAL` field's dotted key and default (JSON form): what a run recorded
    before the field existed trained with."""
    return {
        f"{section}.{name}": json.loads(json.dumps(field.default))
        for section, cls in SECTIONS.items()
        for name, field in cls.model_fields.items()
        if (field.json_schema_extra or {}).get("neutral", False)
    }
