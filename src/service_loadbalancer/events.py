"""Kubernetes Events for problems on API objects, so `kubectl describe service X` says why
X is not exposed.

- **One Event per (object, reason).** The Event's name is derived from both, so a problem
  seen again (after a restart, or after it went away and came back) bumps the `count` of
  the same Event with a PATCH instead of creating a new one; create answers 409 then.
- **On the object itself.** involvedObject carries kind, namespace, name, apiVersion and
  uid (kubectl describe matches Events by uid), taken from the store's copy.
- **Rate limited.** A token bucket: a bad rollout that breaks a thousand Services must not
  turn into a thousand requests a second against the API server. Problems beyond the budget
  wait; if they are gone by then, they are dropped.
- **Only API objects.** A problem whose subject is a file or a flag has nothing to attach an
  Event to; it stays a log line and a metric.

Needs `create` and `patch` on `events` (core group), nothing else.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import aiohttp

from service_loadbalancer.kube.client import request_json
from service_loadbalancer.kube.objects import (
    CLUSTER_SCOPED_KINDS,
    KNOWN_KINDS,
    ObjectKey,
    RawObject,
)
from service_loadbalancer.model import Problem

if TYPE_CHECKING:
    from kubernetes_asyncio.client import ApiClient

_LOG = logging.getLogger(__name__)

COMPONENT: Final = "service-loadbalancer"
REASON: Final = "NotExposed"
#: Kinds that are API objects we read (anything else, e.g. "File", gets no Event). Not
#: the cluster-scoped ones: an Event lives in its object's namespace.
API_KINDS: Final = frozenset(KNOWN_KINDS) - CLUSTER_SCOPED_KINDS
MAX_MESSAGE: Final = 1024


def event_name(subject: ObjectKey, reason: str) -> str:
    """Stable per (object, reason): `<object name>.<hash>`, a valid DNS subdomain."""
    digest = hashlib.sha256(f"{subject.kind}\0{subject.name}\0{reason}".encode()).hexdigest()
    return f"{subject.name[:230]}.{digest[:16]}"


def event_body(
    problem: Problem, obj: Mapping[str, Any] | None, *, host: str, now: datetime.datetime
) -> dict[str, Any]:
    """The core/v1 Event for one problem (`obj` is the store's copy, for uid and apiVersion)."""
    subject = problem.subject
    meta = (obj or {}).get("metadata") or {}
    involved: dict[str, Any] = {
        "kind": subject.kind,
        "namespace": subject.namespace,
        "name": subject.name,
    }
    if obj is not None:
        involved["apiVersion"] = obj.get("apiVersion", "v1")
        if meta.get("uid"):
            involved["uid"] = meta["uid"]
        if meta.get("resourceVersion"):
            involved["resourceVersion"] = meta["resourceVersion"]
    return core_event(
        name=event_name(subject, problem.reason),
        involved=involved,
        reason=REASON,
        message=problem.reason,
        warning=True,
        component=COMPONENT,
        host=host,
        now=now,
    )


def core_event(
    *,
    name: str,
    involved: dict[str, Any],
    reason: str,
    message: str,
    warning: bool,
    component: str,
    host: str,
    now: datetime.datetime,
) -> dict[str, Any]:
    """A new core/v1 Event (count 1) on `involved`, in its namespace; the one shape both
    commands write (the autoscaler names its Events per occurrence)."""
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": involved["namespace"]},
        "involvedObject": involved,
        "reason": reason,
        "message": message[:MAX_MESSAGE],
        "type": "Warning" if warning else "Normal",
        "source": {"component": component, "host": host},
        "reportingComponent": component,
        "reportingInstance": host,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


@dataclass
class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; the clock is a parameter for tests."""

    rate: float = 1.0
    burst: float = 10.0
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self._tokens = self.burst
        self._at = self.clock()

    def wait_time(self) -> float:
        """0 and a token taken, or how long until one is there (nothing taken)."""
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.rate


def new_problems(current: Iterable[Problem], recorded: set[tuple[ObjectKey, str]]) -> list[Problem]:
    """The problems on API objects not recorded yet, in order (pure)."""
    return sorted(
        p
        for p in set(current)
        if p.subject.kind in API_KINDS and (p.subject, p.reason) not in recorded
    )


class EventRecorder:
    """Turns the reconciler's problems into Events, at most `bucket.rate` a second."""

    def __init__(
        self,
        *,
        api: ApiClient,
        problems: Callable[[], frozenset[Problem]],
        lookup: Callable[[ObjectKey], RawObject | None],
        host: str,
        bucket: TokenBucket | None = None,
        interval: float = 1.0,
    ) -> None:
        self._api = api
        self._problems = problems
        self._lookup = lookup
        self._host = host
        self._bucket = bucket or TokenBucket()
        self._interval = interval
        self._recorded: set[tuple[ObjectKey, str]] = set()
        self._counts: dict[str, int] = {}

    async def run(self) -> None:
        """Every `interval` seconds, record an Event for each new problem (forever)."""
        while True:
            current = self._problems()
            # A problem that went away may come back later: it is then recorded (counted) again.
            self._recorded &= {(p.subject, p.reason) for p in current}
            for problem in new_problems(current, self._recorded):
                delay = self._bucket.wait_time()
                while delay:
                    await asyncio.sleep(delay)
                    delay = self._bucket.wait_time()
                if problem not in self._problems():
                    continue
                if await self.record(problem):
                    self._recorded.add((problem.subject, problem.reason))
            await asyncio.sleep(self._interval)

    async def record(self, problem: Problem) -> bool:
        """Create the Event, or bump its count if it exists; False if the API refused."""
        subject = problem.subject
        body = event_body(
            problem,
            self._lookup(subject),
            host=self._host,
            now=datetime.datetime.now(datetime.UTC),
        )
        path = f"/api/v1/namespaces/{subject.namespace}/events"
        try:
            status, _ = await request_json(self._api, "POST", path, body=body)
            if status == 409:
                # It exists (from us, earlier): bump it. Our own tally, because reading it
                # back would need `get` on events, which we do not ask for.
                name = body["metadata"]["name"]
                count = self._counts[name] = self._counts.get(name, 1) + 1
                patch = {"count": count, "lastTimestamp": body["lastTimestamp"]}
                status, _ = await request_json(
                    self._api,
                    "PATCH",
                    f"{path}/{body['metadata']['name']}",
                    body=patch,
                    content_type="application/strategic-merge-patch+json",
                )
        except (aiohttp.ClientError, TimeoutError) as err:
            _LOG.warning("cannot record an Event for %s: %s", subject, err)
            return False
        if not 200 <= status < 300:
            _LOG.warning("cannot record an Event for %s: HTTP %d", subject, status)
            return False
        return True
