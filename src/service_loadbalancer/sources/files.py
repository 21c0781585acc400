"""The manifests directory as a source (`--manifests DIR`, the demo, tests): keeps the store
equal to the directory, and watches it.

Why it looks like this:

- **Re-read everything on each change.** `ManifestSource.load` reads the whole directory (see
  sources/directory.py; unchanged files cost a stat) and makes the store match it, which the
  store turns into the minimal change (and reports "no change" when there is none). That is
  correct for deletes, renames, duplicates across files and Kubernetes ConfigMap volumes (whose
  files are symlinks swapped through a hidden `..data` link) without any per-file bookkeeping;
  a manifests directory is small.
- **A missing directory is not an empty one.** If the directory does not exist (yet, or any
  more) the store keeps what it had (nothing and not ready at start-up, the last good objects
  later) and carries a problem; only files that are gone from an existing directory delete their
  objects. A load balancer should not drop all traffic because a mount went away.
- **Async only where I/O waits.** Watching is watchfiles' `awatch` (inotify through Rust; its
  worker thread is watchfiles', not ours). It wakes at least every `WATCH_TIMEOUT_MS` so that a
  directory that was deleted or replaced is noticed (inotify watches die with their inode) and so
  that cancellation is prompt. Where watching is impossible the directory is simply re-read
  every POLL_INTERVAL seconds (see `ManifestSource`).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Final

import watchfiles
from watchfiles._rust_notify import WatchfilesRustInternalError

from service_loadbalancer.kube.objects import KNOWN_KINDS, ObjectKey, RawObject
from service_loadbalancer.sources.directory import ParseCache, scan_directory
from service_loadbalancer.store import Store

#: The name under which this source's problems go to `Store.set_problems`.
SOURCE_NAME: Final = "files"

#: Watcher tuning: changes are collected for up to DEBOUNCE_MS (checking every STEP_MS), and the
#: watcher wakes up at least every WATCH_TIMEOUT_MS to check that the directory is still the one
#: it watches. POLL_INTERVAL is how often a missing directory is looked for, and how often the
#: directory is re-read where it cannot be watched.
DEBOUNCE_MS: Final = 50
STEP_MS: Final = 5  # an editor or kubectl writes a file within microseconds
WATCH_TIMEOUT_MS: Final = 250
POLL_INTERVAL: Final = 0.5

_LOG = logging.getLogger(__name__)


class _StopSignal(asyncio.Event):
    """awatch's stop_event: set when the caller's `stop` is, but never setting the caller's.

    awatch sets its stop_event when it is cancelled; handing it the caller's event would stop
    everything else that shares that event. Its watching thread only calls `is_set()`.
    """

    def __init__(self, outer: asyncio.Event | None) -> None:
        super().__init__()
        self._outer = outer

    def is_set(self) -> bool:
        return super().is_set() or (self._outer is not None and self._outer.is_set())


class ManifestSource:
    """Keeps the store equal to a manifests directory, and its problems in the store.

    `poll` re-reads the directory every POLL_INTERVAL seconds instead of watching it, for file
    systems without change notification (NFS, some container mounts); by default it is on when
    watchfiles' WATCHFILES_FORCE_POLLING is set, and it is switched on when watching fails.
    Polling is ours, not watchfiles': its poller compares whole-second mtimes and would miss a
    second edit within the same second, while re-reading compares contents (through the store).
    """

    #: Objects from files are not API objects: no Events for them.
    api: Final = None

    def __init__(
        self,
        directory: Path,
        store: Store | None = None,
        *,
        logger: logging.Logger | None = None,
        poll: bool | None = None,
        name: str = "source:files",
    ) -> None:
        self.name = name
        self._directory = directory
        #: Every kind the controller reads; all are "listed" by the first load that finds
        #: the directory.
        self._store = store if store is not None else Store(KNOWN_KINDS)
        self._log = logger or _LOG
        self._poll = _polling_requested() if poll is None else poll
        self._cache = ParseCache()
        #: What the last load put in the store, by key.
        self._loaded: dict[ObjectKey, RawObject] | None = None

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def store(self) -> Store:
        return self._store

    @property
    def description(self) -> str:
        return str(self._directory)

    def problems(self) -> list[str]:
        """Always []: a missing directory or a bad file is a problem in the store, and an
        empty store is not ready, which /healthz says on its own."""
        return []

    async def load_once(self) -> None:
        self.load()

    async def aclose(self) -> None:
        """Nothing to release: watching ends with `run`."""

    @property
    def polling(self) -> bool:
        """Whether the directory is re-read on a timer rather than watched."""
        return self._poll

    def load(self) -> bool:
        """Read the directory and make the store match it; True if anything in the store changed.

        Every known kind is replaced, so a deleted file deletes its objects and the store becomes
        ready even for kinds without objects. A missing directory changes no objects (see the
        module docstring) and is only a problem. Each new problem is logged once.
        """
        scan = scan_directory(self._directory, self._cache)
        changed = False
        if scan.exists:
            by_kind: dict[str, list[RawObject]] = {kind: [] for kind in KNOWN_KINDS}
            for obj in scan.objects:
                by_kind[obj["kind"]].append(obj)
            current = dict(zip(scan.keys, scan.objects, strict=True))
            if self._loaded is None:
                changed = self._store.replace_many(by_kind)
            else:
                changed = self._apply_difference(self._loaded, current)
            self._loaded = current
            if changed:
                counts = ", ".join(f"{len(objs)} {kind}" for kind, objs in by_kind.items())
                self._log.info(
                    "manifests: %s from %d files in %s", counts, scan.files, self._directory
                )
        # Problems are logged by whoever translates the snapshot (once, with the others).
        return self._store.set_problems(SOURCE_NAME, scan.problems) or changed

    def _apply_difference(
        self, before: dict[ObjectKey, RawObject], after: dict[ObjectKey, RawObject]
    ) -> bool:
        """Upsert what differs from the last load and delete what is gone: the same result
        as replacing every kind, but the objects of unchanged files (the very same objects,
        from the parse cache) cost an identity check instead of a key and a comparison
        each (10 ms per change at 1,000 Services). The differences are found first and
        applied after, so the store changes in one burst at the end, not while this still
        walks every object (the reconciler starts its clock at the first change). No
        snapshot can be taken in between: listeners run synchronously and the
        reconciler's only set a flag."""
        upserts = [obj for key, obj in after.items() if before.get(key) is not obj]
        deletes: list[ObjectKey] = []
        if len(before) + sum(1 for k in after if k not in before) != len(after):
            deletes = [key for key in before.keys() - after.keys()]
        changed = False
        for obj in upserts:
            changed = self._store.upsert(obj) or changed
        for key in deletes:
            changed = self._store.delete(key) or changed
        return changed

    async def run(self, *, stop: asyncio.Event | None = None) -> None:
        """Load, then reload on every batch of changes until `stop` is set (or cancelled).

        A missing directory is looked for every POLL_INTERVAL seconds; a directory that is
        deleted or replaced while watched is noticed within WATCH_TIMEOUT_MS and watched anew.
        """
        self.load()
        while not (stop is not None and stop.is_set()):
            if self._poll or not self._directory.is_dir():
                if await _stopped(stop, POLL_INTERVAL):
                    return
                self.load()
                continue
            try:
                await self._watch(stop)
            except FileNotFoundError:
                continue  # gone between the check and the watcher's start: look for it again
            except (OSError, WatchfilesRustInternalError) as error:
                self._log.warning(
                    "cannot watch %s (%s); re-reading it every %s s instead",
                    self._directory,
                    error,
                    POLL_INTERVAL,
                )
                self._poll = True

    async def _watch(self, stop: asyncio.Event | None) -> None:
        """Watch the directory until stopped or until it is no longer the directory watched."""
        identity = _identity(self._directory)
        first = True
        async for changes in watchfiles.awatch(
            self._directory,
            debounce=DEBOUNCE_MS,
            step=STEP_MS,
            stop_event=_StopSignal(stop),
            rust_timeout=WATCH_TIMEOUT_MS,
            yield_on_timeout=True,
            recursive=True,
            force_polling=False,
        ):
            # The first load after the watcher started catches what changed before it did.
            if changes or first:
                self.load()
            first = False
            if _identity(self._directory) != identity:
                return


def _polling_requested() -> bool:
    """watchfiles' own switch, WATCHFILES_FORCE_POLLING, read the way watchfiles reads it."""
    value = os.environ.get("WATCHFILES_FORCE_POLLING", "")
    return bool(value) and value.lower() not in {"false", "disable", "disabled"}


def _identity(directory: Path) -> tuple[int, int] | None:
    try:
        status = directory.stat()
    except OSError:
        return None
    return (status.st_dev, status.st_ino)


async def _stopped(stop: asyncio.Event | None, delay: float) -> bool:
    """Wait `delay` seconds or until `stop` is set; whether it is set."""
    if stop is None:
        await asyncio.sleep(delay)
        return False
    try:
        async with asyncio.timeout(delay):
            await stop.wait()
    except TimeoutError:
        return False
    return True
