"""Leader election on a coordination.k8s.io/v1 Lease, as a pure state machine.

Data in (what the Lease says, when we saw it, our clock), a decision out (create,
update, or wait); the I/O is leases.py's. The rules are client-go's leaderelection
package, so our replicas behave as every Kubernetes controller does:

- **Acquire** when there is no Lease, when it is released (no holder), or when the
  holder's record has not changed for its leaseDurationSeconds *as measured on our own
  clock* from when we first saw that record (never comparing our clock with the
  renewTime another node wrote: clocks differ between nodes).
- **Renew** every retry period while we hold it; the write carries the resourceVersion
  we read (optimistic concurrency), so of two replicas trying at once one gets 409.
- **Lose** at once on a conflict (someone else wrote the Lease), and when no renewal
  has succeeded for the renew deadline (10 s < the lease's 15 s: we stop writing status
  before anyone else may start).
- **Release** on a clean stop: holder emptied, duration 1 s, so another replica takes
  over on its next try instead of waiting out the lease.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class Timings:
    """client-go's defaults: lease 15 s, renew deadline 10 s, retry every 2 s."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


@dataclass(frozen=True, slots=True)
class Record:
    """A Lease's spec, as the election reads and writes it."""

    holder: str = ""
    duration: int = 15
    acquire_time: str = ""
    renew_time: str = ""
    transitions: int = 0

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.duration,
            "leaseTransitions": self.transitions,
        }
        if self.acquire_time:
            spec["acquireTime"] = self.acquire_time
        if self.renew_time:
            spec["renewTime"] = self.renew_time
        return spec


def record_of(lease: Mapping[str, Any]) -> Record:
    """The record in a Lease object (missing fields: empty, as a fresh Lease has)."""
    spec = lease.get("spec") or {}
    duration = spec.get("leaseDurationSeconds")
    transitions = spec.get("leaseTransitions")
    return Record(
        holder=str(spec.get("holderIdentity") or ""),
        duration=duration if isinstance(duration, int) and duration > 0 else 15,
        acquire_time=str(spec.get("acquireTime") or ""),
        renew_time=str(spec.get("renewTime") or ""),
        transitions=transitions if isinstance(transitions, int) else 0,
    )


class Action(enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    WAIT = "wait"


@dataclass(frozen=True, slots=True)
class State:
    identity: str
    timings: Timings = Timings()
    #: The record last observed, and when (our monotonic clock) it was first seen.
    seen: Record | None = None
    seen_at: float = 0.0
    leading: bool = False
    #: When the request of our last successful acquire or renew was sent.
    renewed_at: float | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    #: The record to write (CREATE, UPDATE), and the version it replaces (UPDATE).
    record: Record | None = None
    version: str = ""


def is_leader(state: State, now: float) -> bool:
    """Whether we may act as leader now: we hold the Lease and renewed it within the
    renew deadline (measured from when the renewal was sent)."""
    if not state.leading or state.renewed_at is None:
        return False
    return now - state.renewed_at < state.timings.renew_deadline


def observe(state: State, record: Record | None, now: float) -> State:
    """Note what the Lease says; the clock of a record starts when its content changes."""
    if record != state.seen:
        return replace(state, seen=record, seen_at=now)
    return state


def decide(state: State, record: Record | None, version: str, now: float, stamp: str) -> Decision:
    """What to do with the Lease as just read (`record` None: there is none). `state`
    must already have observed it; `stamp` is the wall-clock time for the record."""
    duration = int(state.timings.lease_duration)
    if record is None:
        return Decision(Action.CREATE, Record(state.identity, duration, stamp, stamp, 0))
    if record.holder == state.identity:
        return Decision(
            Action.UPDATE, replace(record, duration=duration, renew_time=stamp), version
        )
    if record.holder and now < state.seen_at + record.duration:
        return Decision(Action.WAIT)  # held by another, and not expired on our clock
    taken = Record(state.identity, duration, stamp, stamp, record.transitions + 1)
    return Decision(Action.UPDATE, taken, version)


def succeeded(state: State, written: Record, sent_at: float, now: float) -> State:
    """Our write went through: we lead, from when it was sent."""
    return replace(state, seen=written, seen_at=now, leading=True, renewed_at=sent_at)


def conflicted(state: State) -> State:
    """409: someone else wrote the Lease. We do not lead (the next read says who does)."""
    return replace(state, leading=False)


def failed(state: State, now: float) -> State:
    """A failed request (network, 5xx): we lead on until the renew deadline."""
    return replace(state, leading=is_leader(state, now))


def waited(state: State) -> State:
    """Another replica holds a valid Lease."""
    return replace(state, leading=False)


def release(state: State, stamp: str) -> Record | None:
    """The record that hands the Lease over on a clean stop (None: we do not hold it)."""
    if not state.leading or state.seen is None or state.seen.holder != state.identity:
        return None
    return Record("", 1, stamp, stamp, state.seen.transitions)
