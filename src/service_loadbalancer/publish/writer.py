"""Writing status.loadBalancer through the status subresource, for any kind that has one.

- **Optimistic concurrency**: a PUT carries the resourceVersion of the copy it was made
  from; a 409 (someone wrote in between) means reading the object again and, if it still
  differs, writing again on top of the fresh copy: a few tries, then the next pass.
- **Only the leader**: `may_write()` is asked right before every request, so a replica
  that lost the Lease (or cannot tell, the API being slow) writes nothing more.
- **Generic over kind**: the object's path comes from the informers' RESOURCES table
  (Services of type LoadBalancer, and Ingresses).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import aiohttp

from service_loadbalancer.election import Timings
from service_loadbalancer.kube.client import request_json
from service_loadbalancer.kube.objects import ObjectKey, RawObject
from service_loadbalancer.kube.watch import RESOURCES
from service_loadbalancer.publish.desired import Entries, needs_write, with_status

if TYPE_CHECKING:
    from kubernetes_asyncio.client import ApiClient

_LOG = logging.getLogger(__name__)

TRIES: Final = 3
#: A write sent just before the renew deadline (10 s) lands before the lease (15 s) could
#: have expired for anyone else: the 5 s between them bound every request.
WRITE_TIMEOUT: Final = Timings().lease_duration - Timings().renew_deadline


def object_path(key: ObjectKey) -> str:
    return f"{RESOURCES[key.kind].path(key.namespace)}/{key.name}"


class StatusWriter:
    """Writes one object's load-balancer status at a time (see the module docstring)."""

    def __init__(
        self,
        *,
        api: ApiClient,
        may_write: Callable[[], bool],
        on_result: Callable[[str], None] | None = None,
    ) -> None:
        self._api = api
        self._may_write = may_write
        self._on_result = on_result or (lambda _: None)

    async def write(self, key: ObjectKey, obj: RawObject | None, wanted: Entries | None) -> str:
        """Make `key`'s status `wanted`, starting from `obj` (a copy that may be stale,
        or None to read it). Returns "written", "unchanged", "gone", "not-leader" or
        "failed"; the caller retries the failed ones later."""
        result = await self._write(key, obj, wanted)
        self._on_result(result)
        return result

    async def _write(self, key: ObjectKey, obj: RawObject | None, wanted: Entries | None) -> str:
        path = object_path(key)
        try:
            for _ in range(TRIES):
                if obj is None:
                    status, body = await request_json(self._api, "GET", path, seconds=WRITE_TIMEOUT)
                    if status == 404:
                        return "gone"
                    if status != 200 or not isinstance(body, dict):
                        _LOG.warning("cannot read %s for its status: HTTP %d", key, status)
                        return "failed"
                    obj = body
                if not needs_write(obj, wanted):
                    return "unchanged"
                if not self._may_write():
                    return "not-leader"
                status, body = await request_json(
                    self._api, "PUT", f"{path}/status", body=with_status(obj, wanted),
                    seconds=WRITE_TIMEOUT,
                )  # fmt: skip
                if 200 <= status < 300:
                    what = "cleared" if not wanted else ", ".join(_shown(e) for e in wanted)
                    _LOG.info("status of %s: %s", key, what)
                    return "written"
                if status == 404:
                    return "gone"
                if status != 409:
                    _LOG.warning("cannot write the status of %s: HTTP %d", key, status)
                    return "failed"
                obj = None  # someone wrote in between: read it again
        except (aiohttp.ClientError, TimeoutError) as err:
            _LOG.warning("cannot write the status of %s: %s", key, err or type(err).__name__)
            return "failed"
        return "failed"


def _shown(entry: dict[str, object]) -> str:
    return str(entry.get("ip") or entry.get("hostname") or "?")
