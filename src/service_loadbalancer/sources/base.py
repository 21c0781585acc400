"""The one shape every source has, so that the controller and the one-shot commands drive a
manifests directory and a cluster (and later several clusters) the same way.

Why a Protocol: a new cluster or kind is another instance of a source, not another code
path in the controller. What a caller may ask of a source is exactly this:

- its `store`, which the source keeps equal to what it reads (and which is `ready` once
  everything has been read at least once);
- `load_once()` for `render` and `check`: read everything once, no watching;
- `run(stop=...)` for the controller: read, then follow changes until `stop` is set or the
  task is cancelled;
- `problems()` for /healthz: what keeps the source from being complete right now (a missing
  permission). Problems with single objects or files are not these; they are in the store;
- `api`, the cluster's client where the objects come from a cluster, for Events about them;
  None otherwise (a file has nothing to attach an Event to);
- `description` for the log, and `aclose()` for what the source holds (a client's pool).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from kubernetes_asyncio.client import ApiClient

    from service_loadbalancer.store import Store


@runtime_checkable
class Source(Protocol):
    """Where objects come from (see the module docstring). `isinstance(x, Source)` checks
    only that the members exist; mypy checks their types."""

    #: The name of its task, e.g. "source:files".
    @property
    def name(self) -> str: ...

    @property
    def store(self) -> Store: ...

    #: For the log line "serving <description>".
    @property
    def description(self) -> str: ...

    #: The API client of the cluster the objects come from (Events go there), or None.
    @property
    def api(self) -> ApiClient | None: ...

    async def load_once(self) -> None:
        """Read everything once into the store; ConfigError if the source cannot be read."""

    async def run(self, *, stop: asyncio.Event | None = None) -> None:
        """Read, then follow changes until `stop` is set (or until cancelled)."""

    def problems(self) -> list[str]:
        """Why the source is incomplete right now (for /healthz); [] when it is not."""

    async def aclose(self) -> None:
        """Release what the source holds; it is not used afterwards."""
