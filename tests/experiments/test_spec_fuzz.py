"""Mutated specs end in a plan or a clear SpecError (exit code 2), never a traceback or a hang."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ablab.experiments.planning.cost import estimate, plan_records
from ablab.experiments.spec.expand import SpecError, load_plan

VALID = {
    "description": "fuzzed",
    "baseline": {
        "config": {
            "data": {"train_subset": 1000, "max_tokens": 1024, "vocab_size": 400},
            "model": {"layers": 1, "d_model": 16, "heads": 2, "ff_dim": 16},
            "schedule": {"name": "constant", "warmup_steps": 5},
            "train": {"epochs": 1},
        },
        "overrides": {"optim.lr": 0.003},
    },
    "ablations": {
        "no_warmup": {"schedule.warmup_steps": 0},
        "heads": {"grid": {"model.heads": [1, 2]}},
        "depth": {"zip": {"model.layers": [1, 2], "optim.lr": [0.003, 0.002]}},
    },
    "seeds": [1, 2],
    "resources": {"cpus": 1, "gpus": 0},
    "budget": {"epochs": 1},
    "retries": 1,
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["model.heads", "noam", "../../etc/passwd", "seed=1", "", "1e309", "!!python/none"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def paths(node, prefix=()):
    """Every path into the nested spec (dict keys and list indices)."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from paths(v, (*prefix, i))


def mutate(spec: dict, where: tuple, how: str, value):
    spec = copy.deepcopy(spec)
    if not where:
        return value if how == "replace" else spec
    parent = spec
    for step in where[:-1]:
        parent = parent[step]
    last = where[-1]
    if how == "replace":
        parent[last] = value
    elif how == "delete":
        del parent[last]
    elif how == "add" and isinstance(parent, dict):
        parent[f"unknown_{len(parent)}"] = value
    elif how == "nest":
        parent[last] = {"deeper": {"and": [parent[last]] * 3}}
    elif how == "huge":
        parent[last] = list(range(5000))
    return spec


def assert_plan_or_clear_error(path: Path) -> None:
    try:
        plan = load_plan(path)
    except SpecError as exc:
        message = str(exc)
        assert exc.exit_code == 2 and str(path) in message and "Traceback" not in message
        assert len(message) < 5000, message[:300]
        return
    records = plan_records(plan, estimate(plan, probe_budget=0.0))
    assert len(records) == len(plan.trials) >= 1


@settings(max_examples=150, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_specs_plan_or_fail_clearly(tmp_path, data):
    where = data.draw(st.sampled_from(list(paths(VALID))))
    how = data.draw(st.sampled_from(["replace", "delete", "add", "nest", "huge"]))
    spec = mutate(VALID, where, how, data.draw(values))
    path = tmp_path / "fuzzed.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
    assert_plan_or_clear_error(path)


@settings(max_examples=60, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.binary(max_size=300), cut=st.integers(min_value=0, max_value=400))
def test_broken_bytes_fail_clearly(tmp_path, garbage, cut):
    text = yaml.safe_dump(VALID, sort_keys=False).encode()
    path = tmp_path / "broken.yaml"
    path.write_bytes(text[:cut] + garbage + text[cut:])
    assert_plan_or_clear_error(path)


def test_non_utf8_bytes_name_the_file(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("description: Übersetzung\n".encode("latin-1") + yaml.safe_dump(VALID).encode())
    assert_plan_or_clear_error(path)


def test_alias_bombs_fail_clearly_and_fast(tmp_path):
    lines = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, 10):
        prev = chr(ord("a") + i - 1)
        lines.append(f"{chr(ord('a') + i)}: &{chr(ord('a') + i)} [{', '.join(['*' + prev] * 9)}]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\nbaseline: {config: {train: {epochs: *j}}}\n")
    assert_plan_or_clear_error(path)


def test_aliases_that_stay_small_are_fine(tmp_path):
    text = yaml.safe_dump(VALID, sort_keys=False).replace("seeds:\n- 1\n- 2\n", "seeds: &seeds [1, 2]\n")
    path = tmp_path / "anchored.yaml"
    path.write_text(text + "x_notes: *seeds\n")
    assert_plan_or_clear_error(path)


def test_a_very_large_file_fails_clearly(tmp_path):
    path = tmp_path / "large.yaml"
    spec = copy.deepcopy(VALID)
    spec["ablations"]["many"] = {"grid": {"optim.lr": [0.001 + i * 1e-9 for i in range(200_000)]}}
    path.write_text(yaml.dump(spec, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False))
    assert_plan_or_clear_error(path)
