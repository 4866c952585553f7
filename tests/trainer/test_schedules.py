import math

import pytest

from ablab.trainer.errors import ConfigError
from ablab.trainer.optim.schedules import (
    NEEDS_TOTAL,
    SCHEDULES,
    constant,
    constant_cooldown,
    inverse_sqrt,
    make_schedule,
    noam,
    polynomial,
    warmup_cosine,
    warmup_linear,
)


def test_noam_peaks_at_warmup_and_halves_at_four_warmups():
    w, d = 4000, 512
    peak = noam(w, d_model=d, warmup=w)
    assert peak == pytest.approx(d**-0.5 * w**-0.5)
    assert all(noam(s, d_model=d, warmup=w) < peak for s in (1, w - 1, w + 1, 10 * w))
    assert noam(4 * w, d_model=d, warmup=w) == pytest.approx(peak / 2)
    assert noam(w // 2, d_model=d, warmup=w) == pytest.approx(peak / 2)  # linear warmup


def test_noam_scale_and_no_warmup():
    assert noam(100, d_model=256, warmup=10, scale=2.0) == pytest.approx(
        2 * noam(100, d_model=256, warmup=10)
    )
    assert noam(1, d_model=256, warmup=0) == pytest.approx(256**-0.5)
    assert noam(9, d_model=256, warmup=0) == pytest.approx(256**-0.5 / 3)
    assert noam(0, d_model=256, warmup=10) == 0.0


def test_warmup_cosine_closed_form():
    kw = dict(lr_max=3e-4, warmup=2000, total=100_000, lr_min=1e-5)
    assert warmup_cosine(1000, **kw) == pytest.approx(1.5e-4)
    assert warmup_cosine(2000, **kw) == pytest.approx(3e-4)
    mid = 2000 + (100_000 - 2000) // 2
    assert warmup_cosine(mid, **kw) == pytest.approx((3e-4 + 1e-5) / 2)
    assert warmup_cosine(100_000, **kw) == pytest.approx(1e-5)
    assert warmup_cosine(200_000, **kw) == pytest.approx(1e-5)
    quarter = 2000 + (100_000 - 2000) // 4
    expected = 1e-5 + (3e-4 - 1e-5) * 0.5 * (1 + math.cos(math.pi / 4))
    assert warmup_cosine(quarter, **kw) == pytest.approx(expected)


def test_warmup_linear_and_polynomial():
    kw = dict(lr_max=1.0, warmup=10, total=110)
    assert warmup_linear(60, **kw) == pytest.approx(0.5)
    assert warmup_linear(110, **kw) == pytest.approx(0.0)
    assert polynomial(60, power=2.0, **kw) == pytest.approx(0.25)
    assert polynomial(60, power=1.0, **kw) == warmup_linear(60, **kw)


def test_constant_and_inverse_sqrt():
    assert constant(5, lr_max=2.0, warmup=10) == pytest.approx(1.0)
    assert constant(10_000, lr_max=2.0, warmup=10) == 2.0
    assert inverse_sqrt(100, lr_max=1.0, warmup=100) == 1.0
    assert inverse_sqrt(400, lr_max=1.0, warmup=100) == pytest.approx(0.5)
    assert inverse_sqrt(4, lr_max=1.0, warmup=0) == pytest.approx(0.5)


def test_constant_cooldown():
    kw = dict(lr_max=1.0, warmup=10, total=100, cooldown_fraction=0.2)
    assert constant_cooldown(50, **kw) == 1.0
    assert constant_cooldown(80, **kw) == 1.0
    assert constant_cooldown(90, **kw) == pytest.approx(0.5)
    assert constant_cooldown(100, **kw) == pytest.approx(0.0)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_zero_warmup_means_full_rate_from_the_first_update(name):
    lr = make_schedule(name, lr_max=1e-3, warmup=0, total=1000, d_model=256)
    if name == "noam":
        assert lr(1) == pytest.approx(256**-0.5)
    else:
        assert lr(1) == pytest.approx(1e-3, rel=1e-2)


@pytest.mark.parametrize("name", sorted(set(SCHEDULES) - {"noam"}))
def test_warmup_is_linear_and_peaks_at_lr_max(name):
    lr = make_schedule(name, lr_max=1e-3, warmup=100, total=1000)
    assert lr(50) == pytest.approx(5e-4)
    assert lr(100) == pytest.approx(1e-3)
    assert max(lr(s) for s in range(1, 1001)) == pytest.approx(1e-3)


def test_registry_errors_list_valid_names():
    with pytest.raises(ConfigError, match="warmup_cosine"):
        make_schedule("cosine", lr_max=1.0, warmup=10)


def test_make_schedule_requires_total_for_decaying_schedules():
    assert NEEDS_TOTAL == {"warmup_cosine", "warmup_linear", "polynomial", "constant_cooldown"}
    with pytest.raises(ConfigError, match="total"):
        make_schedule("warmup_cosine", lr_max=1.0, warmup=10)
    assert make_schedule("constant", lr_max=1.0, warmup=0, total=None)(5) == 1.0


def test_a_schedule_whose_total_comes_later_takes_it_at_each_call():
    """A run that ends with its minutes learns its last update as it goes (ablab.trainer.optim.run_length)."""
    lr = make_schedule("warmup_cosine", total_later=True, lr_max=1.0, warmup=10, lr_min=0.1)
    for step, total in ((5, 100), (55, 100), (55, 200), (100, 100)):
        assert lr(step, total) == warmup_cosine(step, lr_max=1.0, warmup=10, total=total, lr_min=0.1)
    assert lr(55, 100) == pytest.approx(0.55)  # the decay's midpoint: (max + min) / 2
    fixed = make_schedule("warmup_cosine", lr_max=1.0, warmup=10, total=100, lr_min=0.1)
    assert fixed(55) == fixed(55, None) == lr(55, 100)
