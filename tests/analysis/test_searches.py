import pandas as pd

from ablab.analysis.searches import search_rows


def test_each_point_lists_its_samples_best_first_and_the_values_its_seeds_ran_with():
    def run(setting, seed, role, lr, bleu, status="finished"):
        return {"setting": setting, "seed": seed, "role": role, "values": {"optim.lr": lr},
                "metric": "val_bleu", "mode": "max", "score": bleu, "status": status,
                "run_id": f"{setting}{seed}{lr}"}  # fmt: skip

    searched = pd.DataFrame(
        [
            run("lion", 1, "search", 0.0001, 8.5),
            run("lion", 1, "search", 0.00031622, 10.25),
            run("lion", 1, "search", 0.002, None, "diverged"),
            run("lion", 3, "confirm", 0.00031622, 9.9),
            run("lion", 2, "confirm", 0.00031622, 10.1),
            run("sgd", 1, "search", 0.5, None, "failed"),
            *(run("adafactor", 1, "search", lr, b) for lr, b in ((0.01, 5.0), (0.005, 4.0), (0.002, 3.0))),
            run("adafactor", 1, "search", 0.05, None, "failed"),  # a crash: says nothing of 0.05
            run("adafactor", 2, "confirm", 0.01, 5.5),
            run("adamw", 1, "search", 0.002, 9.0),
        ]
    )
    lion, sgd, adafactor, adamw = search_rows(searched)
    # a diverged sample still counts as tried: a larger learning rate than the chosen one was
    assert lion["point"] == "lion" and lion["chosen"] == "optim.lr 0.0003162"
    assert adafactor["chosen"] == "optim.lr 0.01, the largest tried"  # the best may lie beyond
    assert lion["samples (seed 1; value: val_bleu, best first)"] == (
        "optim.lr 0.0003162: 10.25; optim.lr 0.0001: 8.50; optim.lr 0.002: - (diverged)"
    )
    assert lion["confirmed with seeds"] == "2, 3"
    assert sgd["chosen"] == "none (no sample finished)" and sgd["confirmed with seeds"] == "-"
    assert adamw["chosen"] == "not confirmed (no other seed ran)"  # a spec with one seed
    assert search_rows(pd.DataFrame()) == []
