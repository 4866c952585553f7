"""Runs that computed differently (other precisions, or kinds of device that round differently)
are not compared as if they were alike: the comparison is confounded by hardware, leaves the Holm
family, and the group says so. fp32 runs on CPUs of different instruction sets compute alike."""

import math

import pandas as pd
import pytest

from ablab.analysis import hardware, report
from ablab.analysis.verdicts import CONFOUNDED, DIFFERS, decide
from tests.analysis.test_report import statistics, sweep, trial
from tests.analysis.test_verdicts import comparison

NATIVE, AVX2 = "AMD EPYC (AVX512-BF16)", "AMD EPYC (AVX2)"
H100, A100 = "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB"


def rows(*pairs):
    return pd.DataFrame([{"precision": p, "device_kind": d} for p, d in pairs])


def test_a_mix_is_a_known_difference_in_precision_or_device_and_an_unrecorded_part_is_none():
    assert not hardware.mixed(rows(("bf16", NATIVE), ("bf16", NATIVE)))
    assert hardware.mixed(rows(("bf16", NATIVE), ("fp32", NATIVE)))
    assert hardware.mixed(rows(("fp32", NATIVE), ("fp32", AVX2)))
    assert hardware.mixed(rows(("bf16", NATIVE), ("bf16 + fp32", NATIVE)))  # resumed in another
    # a run recorded before the tags: its precision where its config named one, no device kind
    assert not hardware.mixed(rows(("bf16", None), ("bf16", NATIVE)))
    assert not hardware.mixed(rows((None, None), ("fp32", AVX2)))
    assert not hardware.mixed(pd.DataFrame({"run_id": ["a", "b"]}))  # a table without the columns
    assert hardware.label(None, None) == "? on unrecorded hardware"


def test_runs_are_confounded_where_they_computed_differently_and_fp32_on_any_cpu_is_alike():
    assert not hardware.confounded(rows(("fp32", NATIVE), ("fp32", AVX2), ("fp32", "Intel Xeon (AMX)")))
    assert not hardware.confounded(rows(("fp32", AVX2), ("fp32", f"{AVX2} + {NATIVE}")))  # resumed elsewhere
    assert hardware.confounded(rows(("bf16", NATIVE), ("bf16", AVX2)))  # native and emulated bf16
    assert hardware.confounded(rows(("bf16", NATIVE), ("fp32", NATIVE)))
    assert hardware.confounded(rows(("fp32", AVX2), ("fp32", H100)))
    assert hardware.confounded(rows(("fp32", H100), ("fp32", A100)))  # TF32 and fused kernels differ
    assert not hardware.confounded(rows(("bf16", H100), ("bf16", H100)))
    assert not hardware.confounded(rows((None, None), ("fp32", H100), ("fp32", None)))  # unknown parts
    assert not hardware.confounded(pd.DataFrame({"run_id": ["a", "b"]}))
    assert hardware.confounded(pd.DataFrame({"precision": ["bf16", "fp32"]}))  # no device kinds logged
    assert not hardware.confounded(
        pd.DataFrame({"precision": ["fp32", float("nan")], "device_kind": [AVX2, NATIVE]})
    )
    assert hardware.confounded(
        pd.DataFrame({"precision": [float("nan"), "fp32"], "device_kind": [AVX2, H100]})
    )


def test_a_confounded_comparison_gets_no_verdict_and_leaves_the_holm_family():
    strong, null = comparison(3.0, 0.5), comparison(0.0, 0.5, p=1.0)
    alone = decide([("a", strong), ("b", null)])
    mixed = decide([("a", strong), ("b", null), ("c", strong)], confounded=[False, False, True])
    assert mixed[0].family == alone[0].family == 2 and mixed[0].p_adjusted == alone[0].p_adjusted
    assert mixed[0].word == DIFFERS and mixed[2].word == CONFOUNDED
    assert math.isnan(mixed[2].p_adjusted) and mixed[2].detectable is None and mixed[2].seeds_needed is None


def worse_arm_report(tmp_path, baseline_on: tuple[str, str], arm_on: tuple[str, str]):
    """A report of 3 baseline seeds and 3 seeds of a clearly worse arm, each side trained in the
    (precision, device kind) given."""
    rows = [trial("baseline", s, precision=baseline_on[0], device_kind=baseline_on[1]) for s in (1, 2, 3)]
    rows += [
        trial("no_label_smoothing", s, ls=0.0, precision=arm_on[0], device_kind=arm_on[1]) for s in (1, 2, 3)
    ]
    stats = {f"baseline-{s}": statistics(9, s) for s in (1, 2, 3)}
    stats |= {f"no_label_smoothing-{s}": statistics(5, 10 + s) for s in (1, 2, 3)}
    return report.build(sweep(rows, stats), tmp_path, n_resamples=1000)


def test_a_report_of_arms_on_different_hardware_says_so_in_table_finding_and_intro(tmp_path):
    """The baseline trained in bf16 on a CPU with native bf16, the arm (much worse) in fp32 on an
    AVX2-only CPU: a clear difference, yet no verdict, since hardware differs with the ablation."""
    made = worse_arm_report(tmp_path, baseline_on=("bf16", NATIVE), arm_on=("fp32", AVX2))
    (section,) = made.sections
    base, arm = section.rows
    assert (
        base["trained on"] == f"bf16 on {NATIVE} (3 runs)" and arm["trained on"] == f"fp32 on {AVX2} (3 runs)"
    )
    assert arm["verdict"] == CONFOUNDED
    assert all(c["verdict"] == CONFOUNDED and c["p (Holm)"] == "-" for c in section.comparisons)
    assert "confounded by hardware" in section.finding and f"fp32 on {AVX2} (3 runs)" in section.finding
    assert section.to_resolve == []
    (line,) = [t for t in made.method if t.startswith("Hardware:")]
    assert f"bf16 on {NATIVE} (3 runs)" in line and "confounded by hardware" in line


def test_fp32_runs_on_cpus_of_two_instruction_sets_are_compared_and_their_kinds_named(tmp_path):
    """A sweep carried on across machines: the baseline in fp32 on a CPU with native bf16, the arm
    in fp32 on an AVX2-only one. Verdicts stand; the table and finding say where each trained."""
    made = worse_arm_report(tmp_path, baseline_on=("fp32", NATIVE), arm_on=("fp32", AVX2))
    (section,) = made.sections
    base, arm = section.rows
    assert base["trained on"] == f"fp32 on {NATIVE} (3 runs)" and arm["verdict"] == "differs (lower)"
    assert "compute alike" in section.finding and "confounded" not in section.finding
    (line,) = [t for t in made.method if t.startswith("Hardware:")]
    assert "compute alike, so comparisons stand" in line and "confounded" not in line


def test_runs_on_one_kind_of_hardware_are_compared_as_before(tmp_path):
    made = worse_arm_report(tmp_path, baseline_on=("fp32", AVX2), arm_on=("fp32", AVX2))
    (section,) = made.sections
    assert "trained on" not in section.rows[0] and section.rows[1]["verdict"] == "differs (lower)"
    assert "hardware" not in section.finding
    assert f"Hardware: fp32 on {AVX2} (6 runs)." in made.method


@pytest.mark.parametrize("mix", ["precision", "device_kind"])
def test_one_seed_on_other_hardware_confounds_only_the_comparisons_that_use_it(tmp_path, mix):
    """A fourth seed run later on another machine: the comparisons at all four seeds mix."""
    other = (
        {"precision": "fp32", "device_kind": NATIVE}
        if mix == "precision"
        else {"precision": "bf16", "device_kind": AVX2}
    )
    same = {"precision": "bf16", "device_kind": NATIVE}
    rows = [trial("baseline", s, **(other if s == 4 else same)) for s in (1, 2, 3, 4)]
    rows += [trial("no_label_smoothing", s, ls=0.0, **same) for s in (1, 2, 3, 4)]
    stats = {f"baseline-{s}": statistics(9, s) for s in (1, 2, 3, 4)}
    stats |= {f"no_label_smoothing-{s}": statistics(5, 10 + s) for s in (1, 2, 3, 4)}
    made = report.build(sweep(rows, stats), tmp_path, n_resamples=1000)
    assert made.sections[0].rows[1]["verdict"] == CONFOUNDED
