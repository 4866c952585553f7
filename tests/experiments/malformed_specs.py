"""Malformed specs and the fragment each error message must contain.

Each entry is (id, YAML text of the spec, fragment). ``{tiny}`` in the text is replaced by an
inline tiny trainer config, so that only the defect under test is wrong.
"""

TINY = (
    "{data: {train_subset: 300, max_tokens: 512, vocab_size: 300}, "
    "model: {layers: 1, d_model: 16, heads: 2, ff_dim: 16}, train: {epochs: 1}, "
    "eval: {val_sentences: 10, test_sentences: 10, beam_size: 1}}"
)

MALFORMED = [
    (
        "cache-dir-escapes-upwards",
        "baseline: {config: {tiny}, overrides: {data.cache_dir: ../../elsewhere}}\n",
        "data.cache_dir is '../../elsewhere': a spec may only name a relative folder",
    ),
    (
        "cache-dir-absolute",
        "baseline: {config: {tiny}}\nablations: {x: {data.cache_dir: /etc/ablab}}\n",
        "data.cache_dir is '/etc/ablab'",
    ),
    ("yaml-syntax", "baseline: {config: [}", "invalid YAML at line 1"),
    ("top-level-list", "- baseline\n- x\n", "a spec must be a mapping"),
    ("empty-file", "", "the spec is empty"),
    ("missing-baseline", "ablations: {x: {model.heads: 1}}\n", "baseline: Field required"),
    ("unknown-top-level-key", "baseline: {config: {tiny}}\nseed: [1]\n", "seed: unknown key"),
    ("primary-metric-unknown", "baseline: {config: {tiny}}\nprimary_metric: sacrebleu\n", "primary_metric: "),
    (
        "group-primary-metric-unknown",
        "baseline: {config: {tiny}}\nablations: {x: {arms: {a: {model.heads: 1}}, primary_metric: ECE}}\n",
        "ablations.x.primary_metric",
    ),
    ("baseline-file-missing", "baseline: {config: nowhere.yaml}\n", "no such file"),
    ("baseline-not-mapping", "baseline: {config: 42}\n", "baseline.config"),
    ("baseline-unknown-config-key", "baseline: {config: {model: {head: 4}}}\n", "unknown key 'model.head'"),
    (
        "baseline-bad-override",
        "baseline: {config: {tiny}, overrides: {model.hedas: 2}}\n",
        "unknown key 'model.hedas'",
    ),
    (
        "arm-unknown-key",
        "baseline: {config: {tiny}}\nablations: {x: {model.head: 1}}\n",
        "unknown key 'model.head'",
    ),
    (
        "arm-wrong-type",
        "baseline: {config: {tiny}}\nablations: {x: {model.heads: four}}\n",
        "model.heads: expected an integer",
    ),
    (
        "arm-out-of-range",
        "baseline: {config: {tiny}}\nablations: {x: {model.dropout: 1.5}}\n",
        "model.dropout",
    ),
    (
        "arm-heads-not-dividing",
        "baseline: {config: {tiny}}\nablations: {x: {model.heads: 3}}\n",
        "divisible by model.heads (3)",
    ),
    (
        "arm-bad-schedule",
        "baseline: {config: {tiny}}\nablations: {x: {schedule.name: cosine}}\n",
        "valid names are",
    ),
    (
        "arm-bad-test-set",
        "baseline: {config: {tiny}}\nablations: {x: {eval.test_sets: [test_2099]}}\n",
        "unknown test set",
    ),
    (
        "grid-empty-axis",
        "baseline: {config: {tiny}}\nablations: {g: {grid: {model.heads: []}}}\n",
        "has no values",
    ),
    (
        "grid-not-a-list",
        "baseline: {config: {tiny}}\nablations: {g: {grid: {model.heads: 4}}}\n",
        "expected a list",
    ),
    (
        "grid-repeats",
        "baseline: {config: {tiny}}\nablations: {g: {grid: {model.heads: [1, 1]}}}\n",
        "repeats a value",
    ),
    (
        "grid-invalid-value",
        "baseline: {config: {tiny}}\nablations: {g: {grid: {model.layers: [1, 0]}}}\n",
        "model.layers",
    ),
    (
        "zip-unequal",
        "baseline: {config: {tiny}}\nablations: {g: {zip: {model.layers: [1, 2], optim.lr: [0.1]}}}\n",
        "equal lengths",
    ),
    (
        "grid-and-zip-same-key",
        "baseline: {config: {tiny}}\nablations: {g: {grid: {model.heads: [1]}, zip: {model.heads: [2]}}}\n",
        "both a grid and a zip axis",
    ),
    (
        "group-unknown-key",
        "baseline: {config: {tiny}}\nablations: {g: {grids: {model.heads: [1]}}}\n",
        "unknown key(s) ['grids']",
    ),
    ("group-empty", "baseline: {config: {tiny}}\nablations: {g: {}}\n", "needs arms, grid, zip or overrides"),
    ("group-not-mapping", "baseline: {config: {tiny}}\nablations: {g: 3}\n", "ablations.g"),
    (
        "group-named-baseline",
        "baseline: {config: {tiny}}\nablations: {baseline: {model.heads: 1}}\n",
        "and not 'baseline'",
    ),
    (
        "arm-name-with-space",
        "baseline: {config: {tiny}}\nablations: {g: {arms: {'a b': {model.heads: 1}}}}\n",
        "arm name 'a b'",
    ),
    (
        "duplicate-trial-names",
        "baseline: {config: {tiny}}\nablations: {g1: {arms: {x: {model.heads: 1}}}, g2: {arms: {x: {model.ff_dim: 8}}}}\n",
        "share the name",
    ),
    ("seeds-empty", "baseline: {config: {tiny}}\nseeds: []\n", "seeds"),
    ("seeds-repeat", "baseline: {config: {tiny}}\nseeds: [1, 1]\n", "seeds repeat"),
    ("seeds-wrong-type", "baseline: {config: {tiny}}\nseeds: [one]\n", "seeds[0]"),
    (
        "seeds-negative",
        "baseline: {config: {tiny}}\nseeds: [1, -1]\n",
        "seeds[1]: Input should be greater than or equal to 0",
    ),
    ("resources-negative", "baseline: {config: {tiny}}\nresources: {cpus: -1}\n", "resources.cpus"),
    ("resources-absurd-gpus", "baseline: {config: {tiny}}\nresources: {gpus: 1000}\n", "resources.gpus"),
    (
        "resources-unknown-key",
        "baseline: {config: {tiny}}\nresources: {tpus: 1}\n",
        "resources.tpus: unknown key",
    ),
    ("max-concurrent-zero", "baseline: {config: {tiny}}\nmax_concurrent: 0\n", "max_concurrent"),
    ("budget-empty", "baseline: {config: {tiny}}\nbudget: {}\n", "at least one of epochs, steps, minutes"),
    ("budget-unknown-key", "baseline: {config: {tiny}}\nbudget: {hours: 1}\n", "budget.hours: unknown key"),
    ("retries-negative", "baseline: {config: {tiny}}\nretries: -1\n", "retries"),
    ("mode-invalid", "baseline: {config: {tiny}}\nmode: maximize\n", "mode"),
    ("name-invalid", "name: 'my spec!'\nbaseline: {config: {tiny}}\n", "name 'my spec!'"),
    (
        "search-without-trials",
        "baseline: {config: {tiny}}\nsearch: {space: {optim.lr: {loguniform: [0.0001, 0.01]}}}\n",
        "search.trials: Field required",
    ),
    (
        "search-two-kinds",
        "baseline: {config: {tiny}}\nsearch: {trials: 2, space: {optim.lr: {loguniform: [0.0001, 0.01], uniform: [0.1, 0.2]}}}\n",
        "exactly one of",
    ),
    (
        "search-nonpositive-log",
        "baseline: {config: {tiny}}\nsearch: {trials: 2, space: {optim.lr: {loguniform: [0, 0.01]}}}\n",
        "positive low bound",
    ),
    (
        "search-unknown-key",
        "baseline: {config: {tiny}}\nsearch: {trials: 2, space: {optim.lrr: {uniform: [0.1, 0.2]}}}\n",
        "unknown key 'optim.lrr'",
    ),
    (
        "search-invalid-edge",
        "baseline: {config: {tiny}}\nsearch: {trials: 2, space: {model.dropout: {uniform: [0.5, 1.5]}}}\n",
        "search.space[model.dropout]",
    ),
    ("non-utf8", b"baseline: {config: caf\xe9}\n", "not UTF-8"),
    ("yaml-python-tag", "baseline: !!python/object/apply:os.system ['true']\n", "invalid YAML"),
    ("yaml-nested-too-deeply", "baseline: " + "[" * 5000 + "\n", "nested too deeply"),
]


def spec_text(text):
    if isinstance(text, bytes):
        return text
    return text.replace("{tiny}", TINY).encode()
