"""The HorizontalPodAutoscaler's rule, as a pure function, so operators get what they
already expect from `kubectl autoscale` (kubernetes.io/docs/tasks/run-application/
horizontal-pod-autoscale/, "Algorithm details" and "Configurable scaling behavior"):

- desired = ceil(current * observed / target), where observed is per pod;
- no change while |observed / target - 1| <= tolerance (0.1, the HPA's default);
- scale-up at once, but by at most max(double, +4) pods per interval (the HPA's default
  scale-up policies: 100 % or 4 pods per 15 s, whichever allows more);
- scale-down only to the highest recommendation of the last stabilization window (300 s
  by default): a dip in traffic shorter than the window never removes pods. Like the
  HPA, a fresh start counts the current replicas as a recommendation made at start, so
  a restarted autoscaler (or a replica that just became the leader, which starts with
  no history) does not scale down at once either;
- the result is kept within min and max;
- figures that are known to be incomplete (a load-balancer replica could not be read, or
  restarted between two reads) are a lower bound of the real load: they may scale up,
  never down (their recommendation is at least the current replicas).

The state is one immutable value (`History`): a decision returns the next one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

TOLERANCE = 0.1
#: The HPA's default scale-up policies: 100 % or 4 pods per period.
SCALE_UP_FACTOR = 2
SCALE_UP_PODS = 4


@dataclass(frozen=True, slots=True)
class Bounds:
    minimum: int
    maximum: int


@dataclass(frozen=True, slots=True)
class History:
    """Recommendations (time, replicas) made within the scale-down window, oldest first."""

    recommendations: tuple[tuple[float, int], ...] = ()

    def within(self, now: float, window: float) -> History:
        return History(tuple((t, r) for t, r in self.recommendations if now - t <= window))

    def added(self, now: float, replicas: int) -> History:
        return History((*self.recommendations, (now, replicas)))

    def highest(self) -> int:
        return max((r for _, r in self.recommendations), default=0)


@dataclass(frozen=True, slots=True)
class Decision:
    current: int
    #: What the figures alone ask for (before the window, the limits and the bounds).
    recommended: int
    desired: int
    reason: str
    history: History


def raw_recommendation(
    current: int, observed: float, target: float, *, tolerance: float = TOLERANCE
) -> int:
    """ceil(current * observed / target), or `current` within the tolerance."""
    ratio = observed / target
    # 110 / 100 is 1.1000000000000000888 in binary: a 10 % deviation is within 10 %.
    if abs(ratio - 1.0) <= tolerance + 1e-9:
        return current
    # A hair of float error (3 * 1.0000000001) must not add a pod.
    return max(0, math.ceil(round(current * ratio, 9)))


def scale_up_limit(current: int) -> int:
    return max(current * SCALE_UP_FACTOR, current + SCALE_UP_PODS)


def decide(
    *,
    current: int,
    observed: float,
    target: float,
    bounds: Bounds,
    history: History | None,
    now: float,
    window: float,
    complete: bool = True,
) -> Decision:
    """One round for one workload. `observed` and `target` are per pod; `history` is None
    on the first round for this workload (the current replicas then count as a
    recommendation made now)."""
    past = History(((now, current),)) if history is None else history.within(now, window)
    if current <= 0:
        # Scaled to zero by hand: the HPA leaves it alone too.
        return Decision(current, current, current, "scaled to zero: left alone", past)
    recommended = raw_recommendation(current, observed, target)
    if not complete and recommended < current:
        recommended = current  # a lower bound never asks for fewer pods
    # Remembered either way: a scale-up on a lower bound must be held by the window like
    # any other, and "keep current" is what an incomplete round can vouch for.
    remembered = past.added(now, recommended)
    desired = recommended
    reason = f"{observed:.4g} per pod against a target of {target:g}"
    if desired < current:
        highest = max(remembered.highest(), desired)
        if highest > desired:
            desired = min(highest, current)
            reason += f"; held at {desired} by the {window:g} s scale-down window"
    elif desired > current and desired > (limit := scale_up_limit(current)):
        desired = limit
        reason += f"; scale-up limited to {limit} this round"
    if desired > bounds.maximum:
        desired = bounds.maximum
        reason += f"; at most {bounds.maximum}"
    elif desired < bounds.minimum:
        desired = bounds.minimum
        reason += f"; at least {bounds.minimum}"
    return Decision(current, recommended, desired, reason, remembered)
