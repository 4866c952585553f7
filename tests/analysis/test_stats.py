import math

import numpy as np
import pandas as pd
import pytest

from ablab.analysis.stats import aggregate, format_p, summarize


def test_summarize_is_mean_sd_and_students_t_interval():
    values = np.array([20.0, 22.0, 24.0])
    mean, sd, half = summarize(values)
    assert (mean, sd) == (22.0, 2.0)
    assert half == pytest.approx(4.302652729911275 * 2.0 / math.sqrt(3))  # t(0.975, 2)
    assert math.isnan(summarize(np.array([5.0]))[1]) and math.isnan(summarize(np.array([]))[0])


def test_aggregate_per_setting_skips_missing_values():
    table = pd.DataFrame(
        {
            "setting": ["a", "a", "b", "b", "b"],
            "bleu": [10.0, 12.0, 20.0, None, 22.0],
        }
    )
    out = aggregate(table, "setting", ["bleu"]).set_index("setting")
    assert out.loc["a", "n"] == 2 and out.loc["a", "bleu_mean"] == 11.0
    assert out.loc["b", "n"] == 3 and out.loc["b", "bleu_mean"] == 21.0
    assert out.loc["b", "bleu_sd"] == pytest.approx(math.sqrt(2))


def test_format_p_writes_a_resampling_floor_and_the_shown_floor_as_bounds():
    assert format_p(0.0004) == "p = 4.0e-04"
    assert format_p(1e-52) == "p < 0.0001" and format_p(0.99e-4, name="") == "< 0.0001"
    assert format_p(0.004) == "p = 0.004"
    assert format_p(0.0504, name="") == "0.0504" and format_p(0.0496) == "p = 0.0496"  # not "0.05"
    assert format_p(0.05) == "p = 0.05" and format_p(0.054) == "p = 0.0540"
    assert format_p(0.2345) == "p = 0.23"
    assert format_p(math.nan) == "-" and format_p(None) == "-"
    assert format_p(1 / 10001, floor=1 / 10001) == "p ≤ 1/10,001"
    assert format_p(2 / 10001, floor=1 / 10001) == "p = 2.0e-04"
    assert format_p(0.92, name="") == "0.92" and format_p(1 / 1001, 1 / 1001, "") == "≤ 1/1,001"
