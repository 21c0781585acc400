"""The autoscaling rule against the HorizontalPodAutoscaler documentation's own examples
(kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/, "Algorithm details"
and "Configurable scaling behavior"): the formula, the tolerance, min and max, the
scale-up limit and the scale-down stabilization window."""

from __future__ import annotations

import pytest

from service_loadbalancer.autoscale.rule import (
    Bounds,
    History,
    decide,
    raw_recommendation,
    scale_up_limit,
)

WIDE = Bounds(1, 100)


@pytest.mark.parametrize(
    ("current", "observed", "target", "expected"),
    [
        # "if the current metric value is 200m, and the desired value is 100m, the number
        # of replicas will be doubled, since 200.0 / 100.0 == 2.0"
        (4, 200, 100, 8),
        # "If the current value is instead 50m, you'll halve the number of replicas"
        (4, 50, 100, 2),
        # "the control plane skips any scaling action if the ratio is sufficiently close
        # to 1.0 (within a globally-configurable tolerance, 0.1 by default)"
        (4, 110, 100, 4),
        (4, 90, 100, 4),
        (4, 111, 100, 5),  # ceil(4.44)
        (4, 89, 100, 4),  # ceil(3.56)
        (3, 0, 10, 0),  # no traffic at all: as few as allowed
        (1, 25, 10, 3),
    ],
)
def test_formula_and_tolerance(current: int, observed: float, target: float, expected: int) -> None:
    assert raw_recommendation(current, observed, target) == expected


@pytest.mark.parametrize(("current", "limit"), [(1, 5), (2, 6), (4, 8), (5, 10), (30, 60)])
def test_scale_up_limit_is_double_or_four_more(current: int, limit: int) -> None:
    assert scale_up_limit(current) == limit


def one(
    current: int,
    observed: float,
    *,
    target: float = 10,
    bounds: Bounds = WIDE,
    history: History | None = None,
    now: float = 1000.0,
    window: float = 300,
    complete: bool = True,
) -> int:
    return decide(
        current=current,
        observed=observed,
        target=target,
        bounds=bounds,
        history=history if history is not None else History(),
        now=now,
        window=window,
        complete=complete,
    ).desired


@pytest.mark.parametrize(
    ("current", "observed", "bounds", "expected"),
    [
        (2, 100, Bounds(1, 5), 5),  # wants 20, at most 5
        (2, 0, Bounds(3, 5), 3),  # wants 0, at least 3
        (8, 10, Bounds(1, 5), 5),  # above max already: down to max, as the HPA does
        (1, 10, Bounds(2, 5), 2),  # below min: up to min
    ],
)
def test_min_and_max(current: int, observed: float, bounds: Bounds, expected: int) -> None:
    assert one(current, observed, bounds=bounds) == expected


@pytest.mark.parametrize(
    ("current", "observed", "expected"),
    [
        (1, 1000, 5),  # wants 100: +4 this round
        (10, 1000, 20),  # wants 1000: double this round
        (3, 20, 6),  # wants 6: within the limit (6 = double, 7 = +4)
    ],
)
def test_scale_up_is_immediate_but_limited_per_round(
    current: int, observed: float, expected: int
) -> None:
    assert one(current, observed) == expected


def test_scale_down_waits_for_the_highest_recommendation_of_the_window() -> None:
    # The docs' example: recommendations over the window were 5, 4, 3 -> stays at 5.
    history = History(((800.0, 5), (900.0, 4)))
    assert one(5, 6, history=history) == 5  # now wants 3; 5 within the window
    # Once the 5 is older than the window, the highest is 4.
    assert one(5, 6, history=history, now=1101.0) == 4
    # And once everything is older, it goes to what the figures ask.
    assert one(5, 6, history=history, now=1300.0) == 3


def test_a_fresh_start_counts_the_current_replicas_as_a_recommendation() -> None:
    first = decide(current=6, observed=0, target=10, bounds=WIDE, history=None,
                   now=0.0, window=300)  # fmt: skip
    assert first.desired == 6 and first.recommended == 0
    later = decide(current=6, observed=0, target=10, bounds=WIDE, history=first.history,
                   now=301.0, window=300)  # fmt: skip
    assert later.desired == 1


def test_the_window_does_not_hold_back_a_scale_up() -> None:
    history = History(((990.0, 2),))
    assert one(4, 40, history=history) == 8  # wants 16: double


def test_incomplete_figures_scale_up_but_never_down() -> None:
    assert one(4, 0, complete=False, window=0) == 4
    assert one(4, 40, complete=False) == 8
    d = decide(current=4, observed=0, target=10, bounds=WIDE, history=History(),
               now=1.0, window=0, complete=False)  # fmt: skip
    assert d.history == History(((1.0, 4),))  # "at least as many as now"


def test_a_scale_up_on_incomplete_figures_is_held_by_the_window_too() -> None:
    up = decide(current=2, observed=40, target=10, bounds=WIDE, history=History(),
                now=0.0, window=30, complete=False)  # fmt: skip
    assert up.desired == 6
    later = decide(current=6, observed=0, target=10, bounds=WIDE, history=up.history,
                   now=10.0, window=30)  # fmt: skip
    assert later.desired == 6  # not straight back down


def test_scaled_to_zero_is_left_alone() -> None:
    assert one(0, 500) == 0


def test_a_flapping_load_within_the_window_writes_once_per_direction() -> None:
    """Load on and off every 10 s for 100 s at 1 s rounds, window 30 s: up at once (two
    rounds: +4, then the rest), and no scale-down until 30 s after the last busy round."""
    history: History | None = None
    current = 2
    changes = []
    for second in range(160):
        busy = second < 100 and (second // 10) % 2 == 0
        d = decide(current=current, observed=(40 if busy else 0) * 2 / current, target=10,
                   bounds=Bounds(2, 8), history=history, now=float(second),
                   window=30)  # fmt: skip
        history = d.history
        if d.desired != current:
            changes.append((second, current, d.desired))
            current = d.desired
    assert changes == [(0, 2, 6), (1, 6, 8), (120, 8, 2)]
