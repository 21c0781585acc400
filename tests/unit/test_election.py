"""The election state machine (election.py) as plain data: acquire, renew, wait,
take over after expiry on our own clock, lose on conflict or after the renew deadline,
release."""

from __future__ import annotations

from service_loadbalancer import election as e
from service_loadbalancer.election import Action, Decision, Record, State, Timings

T = Timings()  # 15 s lease, 10 s renew deadline, 2 s retry


def read(state: State, record: Record | None, now: float) -> tuple[State, Decision]:
    state = e.observe(state, record, now)
    return state, e.decide(state, record, "7", now, f"stamp-{now}")


def test_acquire_a_missing_lease() -> None:
    state, decision = read(State("me"), None, 0.0)
    assert decision == Decision(Action.CREATE, Record("me", 15, "stamp-0.0", "stamp-0.0", 0))
    assert not e.is_leader(state, 0.0)
    assert decision.record is not None
    state = e.succeeded(state, decision.record, sent_at=0.0, now=0.1)
    assert e.is_leader(state, 0.1)
    assert e.is_leader(state, 9.9) and not e.is_leader(state, 10.0)  # the renew deadline


def test_renew_keeps_acquire_time_and_transitions() -> None:
    mine = Record("me", 15, "t0", "t0", 3)
    _, decision = read(State("me"), mine, 5.0)
    assert decision == Decision(Action.UPDATE, Record("me", 15, "t0", "stamp-5.0", 3), "7")


def test_a_valid_lease_of_another_is_waited_out_on_our_clock() -> None:
    theirs = Record("other", 15, "t0", "t0", 1)
    state, decision = read(State("me"), theirs, 100.0)
    assert decision.action is Action.WAIT
    state, decision = read(state, theirs, 114.9)  # unchanged for 14.9 s
    assert decision.action is Action.WAIT
    state, decision = read(state, theirs, 115.0)  # expired: take it over
    assert decision == Decision(
        Action.UPDATE, Record("me", 15, "stamp-115.0", "stamp-115.0", 2), "7"
    )


def test_a_renewal_by_the_holder_restarts_our_clock() -> None:
    state, _ = read(State("me"), Record("other", 15, "t0", "t0", 1), 100.0)
    state, decision = read(state, Record("other", 15, "t0", "t1", 1), 110.0)
    assert decision.action is Action.WAIT
    state, decision = read(state, Record("other", 15, "t0", "t1", 1), 124.0)
    assert decision.action is Action.WAIT  # 14 s since the renewal was seen


def test_a_released_lease_is_taken_at_once() -> None:
    released = Record("", 1, "t0", "t0", 4)
    _, decision = read(State("me"), released, 0.0)
    assert decision.action is Action.UPDATE
    assert decision.record == Record("me", 15, "stamp-0.0", "stamp-0.0", 5)


def test_lose_on_conflict() -> None:
    state = e.succeeded(State("me"), Record("me", 15, "t", "t", 0), sent_at=0.0, now=0.0)
    assert e.is_leader(e.failed(state, 2.0), 2.0)  # a network error: still leading
    assert not e.is_leader(e.conflicted(state), 2.0)  # 409: someone else wrote


def test_lose_after_the_renew_deadline_without_success() -> None:
    state = e.succeeded(State("me"), Record("me", 15, "t", "t", 0), sent_at=0.0, now=0.0)
    state = e.failed(state, 10.0)
    assert not state.leading
    assert not e.is_leader(state, 10.0)


def test_release() -> None:
    state = e.succeeded(State("me"), Record("me", 15, "t", "t", 2), sent_at=0.0, now=0.0)
    assert e.release(state, "now") == Record("", 1, "now", "now", 2)
    assert e.release(e.conflicted(state), "now") is None  # not ours to release
    assert e.release(State("me"), "now") is None


def test_record_round_trip() -> None:
    record = Record("me", 15, "a", "b", 2)
    assert e.record_of({"spec": record.spec()}) == record
    assert e.record_of({}) == Record()
    assert (
        e.record_of({"spec": {"leaseDurationSeconds": "x", "leaseTransitions": None}}) == Record()
    )
