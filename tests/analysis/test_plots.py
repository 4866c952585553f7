import pandas as pd

from analysis.plots import plot_schedules


def test_schedule_plot_has_one_line_per_schedule_and_marked_peaks():
    table = pd.DataFrame(
        {
            "step": [1, 2, 3] * 3,
            "schedule": ["a"] * 3 + ["b"] * 3 + ["c"] * 3,
            "lr": [1, 3, 2, 2, 1, 0, 1, 3, 2],
        }
    )
    fig = plot_schedules(table)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "update step" and ax.get_ylabel() == "learning rate"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b", "c"]
    labels = sorted(t.get_text() for t in ax.texts)
    assert labels == ["a, c: peak 3.00e+00\nat step 2", "b: peak 2.00e+00\nat step 1"]
