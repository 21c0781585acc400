"""Holding a coordination.k8s.io/v1 Lease: the I/O around election.py's state machine.

Generic: `(api client, namespace, Lease name, identity, timings)` in, `is_leader()` and
a callback on each change out; it knows nothing of what the leader does (the status
publisher today; the autoscale command may reuse it). One read and at most one write
every retry period; the writes carry the resourceVersion read (409 when someone else
wrote first). `run()` releases the Lease when cancelled, so that a replica stopped with
SIGTERM hands over at once.

Needs get, create and update on leases (coordination.k8s.io) in the namespace.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import aiohttp

from service_loadbalancer import election
from service_loadbalancer.election import Action, Record, State, Timings, record_of
from service_loadbalancer.kube.client import request_json
from service_loadbalancer.kube.watch import resource_version

if TYPE_CHECKING:
    from kubernetes_asyncio.client import ApiClient

_LOG = logging.getLogger(__name__)

API: Final = "/apis/coordination.k8s.io/v1"
RELEASE_TIMEOUT: Final = 2.0


def micro_time(now: datetime.datetime | None = None) -> str:
    """A metav1.MicroTime: RFC 3339 with microseconds, UTC."""
    now = now or datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    """Campaigns for one Lease until cancelled (see the module docstring)."""

    def __init__(
        self,
        *,
        api: ApiClient,
        namespace: str,
        name: str,
        identity: str,
        timings: Timings | None = None,
        on_change: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._namespace = namespace
        self._name = name
        self._state = State(identity=identity, timings=timings or Timings())
        self._on_change = on_change or (lambda _: None)
        self._clock = clock
        self._object: dict[str, Any] | None = None
        self._version = ""
        self._was_leader = False

    def on_change(self, callback: Callable[[bool], None]) -> None:
        """Call `callback(leader)` whenever leadership is gained or lost."""
        self._on_change = callback

    @property
    def identity(self) -> str:
        return self._state.identity

    @property
    def collection(self) -> str:
        return f"{API}/namespaces/{self._namespace}/leases"

    def is_leader(self) -> bool:
        return election.is_leader(self._state, self._clock())

    async def run(self) -> None:
        """Try to acquire or renew every retry period; release when cancelled."""
        try:
            while True:
                await self.step()
                await asyncio.sleep(self._state.timings.retry_period)
        except asyncio.CancelledError:
            await self.release()
            raise

    async def step(self) -> None:
        """One round: read the Lease, decide, write if needed, tell a change."""
        timeout = self._state.timings.retry_period * 2
        sent = self._clock()
        try:
            status, body = await request_json(
                self._api, "GET", f"{self.collection}/{self._name}", seconds=timeout
            )
            if status == 404:
                record, self._object = None, None
            elif status == 200 and isinstance(body, dict):
                record, self._object = record_of(body), body
                self._version = resource_version(body)
            else:
                raise _Failed(f"HTTP {status} reading the Lease")
            self._state = election.observe(self._state, record, self._clock())
            decision = election.decide(
                self._state, record, self._version, self._clock(), micro_time()
            )
            if decision.action is Action.WAIT:
                self._state = election.waited(self._state)
            else:
                assert decision.record is not None
                await self._write(decision.action, decision.record, sent, seconds=timeout)
        except (_Failed, aiohttp.ClientError, TimeoutError) as err:
            self._state = election.failed(self._state, self._clock())
            _LOG.warning("lease %s/%s: %s", self._namespace, self._name, err or "timeout")
        self._tell()

    async def _write(self, action: Action, record: Record, sent: float, seconds: float) -> None:
        body = self._body(record)
        if action is Action.CREATE:
            status, answer = await request_json(
                self._api, "POST", self.collection, body=body, seconds=seconds
            )
        else:
            status, answer = await request_json(
                self._api, "PUT", f"{self.collection}/{self._name}", body=body, seconds=seconds
            )
        if status in (200, 201) and isinstance(answer, dict):
            self._object = answer
            self._version = resource_version(answer)
            self._state = election.succeeded(self._state, record, sent, self._clock())
        elif status == 409:  # someone else wrote (or created) it first
            self._state = election.conflicted(self._state)
        else:
            raise _Failed(f"HTTP {status} writing the Lease")

    def _body(self, record: Record) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self._name, "namespace": self._namespace}
        if self._object is not None:
            meta = {**(self._object.get("metadata") or {}), **meta}
            meta["resourceVersion"] = self._version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": record.spec(),
        }

    async def release(self) -> None:
        """Hand the Lease over (a clean stop): holder emptied, duration 1 s."""
        record = election.release(self._state, micro_time())
        self._state = election.conflicted(self._state)  # no more writes as leader
        self._tell()
        if record is None:
            return
        try:
            status, _ = await request_json(
                self._api, "PUT", f"{self.collection}/{self._name}", body=self._body(record),
                seconds=RELEASE_TIMEOUT,
            )  # fmt: skip
        except (aiohttp.ClientError, TimeoutError) as err:
            _LOG.warning("lease %s/%s: release failed: %s", self._namespace, self._name, err)
            return
        _LOG.info("lease %s/%s released (HTTP %d)", self._namespace, self._name, status)

    def _tell(self) -> None:
        leader = self.is_leader()
        if leader != self._was_leader:
            self._was_leader = leader
            _LOG.info(
                "lease %s/%s: %s %s",
                self._namespace,
                self._name,
                self._state.identity,
                "is now the leader" if leader else "is not the leader",
            )
            self._on_change(leader)


class _Failed(Exception):
    pass
