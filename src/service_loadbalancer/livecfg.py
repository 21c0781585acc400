"""A live --cfg file: edits apply without a restart (the original controller's
"dynamically modify loadbalancer.json").

Why it looks like this:

- **Rebuilt exactly as at start.** An edit rebuilds the whole `Settings` with
  `config.build_settings` from the same flags and environment, so flags still win over
  the file and every check of the start (YAML, unknown keys, values, the template
  compiling, the files named) runs again. `settings.diff_settings` then splits it: the
  live keys go to the reconciler (a full sync, a reload if the config changes), the
  others are reported as needing a restart and not applied.
- **A broken edit changes nothing.** It is logged with its reason, counted
  (`slb_config_reload_failures_total`) and shown by /healthz, and the last good settings
  keep serving. /healthz stays 200 then: HAProxy serves a good config, and a readiness
  probe that failed on a typo would take every load balancer out at once when a shared
  ConfigMap is edited. The body says what was not applied.
- **Contents, not events, decide.** The directories of the files read are watched
  (watchfiles, not recursive): a ConfigMap volume swaps its `..data` symlink there. Any
  event, and a wake-up every WATCH_TIMEOUT_MS (inotify watches die with a replaced
  directory), re-reads those few small files; only different bytes lead to a rebuild, so
  an unrelated file or a touch does nothing and a broken edit is counted once. Where
  watching fails, they are re-read every POLL_INTERVAL seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Final, Protocol

import watchfiles
from watchfiles._rust_notify import WatchfilesRustInternalError

from service_loadbalancer.config import build_settings, settings_inputs
from service_loadbalancer.metrics import Metrics
from service_loadbalancer.settings import Settings, SettingsError
from service_loadbalancer.settings_diff import diff_settings

WATCH_TIMEOUT_MS: Final = 500
POLL_INTERVAL: Final = 1.0

log = logging.getLogger("service_loadbalancer.livecfg")

HealthCheck = Callable[[], Awaitable[tuple[bool, str]]]
#: What the files held at the last check: each path with its bytes (None: unreadable).
Contents = tuple[tuple[str, bytes | None], ...]


class Apply(Protocol):
    """`Reconciler.update_settings`: None once the settings serve, else why not."""

    async def __call__(self, settings: Settings, *, why: str) -> str | None: ...


class LiveConfig:
    """Watches the --cfg file and applies its edits; says how the last one went."""

    def __init__(
        self,
        *,
        build: Callable[[], Settings],
        inputs: Callable[[], tuple[Path, ...]],
        settings: Settings,
    ) -> None:
        self._build = build
        self._inputs = inputs
        self._started = settings
        self._running = settings
        self._seen: Contents | None = None
        #: The files the last check read (the --cfg file names the template): watched.
        self._watched: tuple[Path, ...] = ()
        #: Why the last edit was not applied (None: it was, or there was none).
        self.error: str | None = None
        #: Keys whose edited values only a restart applies.
        self.restart: tuple[str, ...] = ()

    @classmethod
    def from_args(
        cls, args: argparse.Namespace, env: Mapping[str, str], settings: Settings
    ) -> LiveConfig:
        env = dict(env)
        return cls(
            build=functools.partial(build_settings, args, env),
            inputs=functools.partial(settings_inputs, args),
            settings=settings,
        )

    @property
    def settings(self) -> Settings:
        """The settings that serve (the last good ones)."""
        return self._running

    def note(self) -> str:
        """What /healthz adds to its answer: "" while the file is what serves."""
        notes = []
        if self.error is not None:
            notes.append(f"--cfg edit not applied, the last good settings serve: {self.error}")
        if self.restart:
            notes.append("--cfg keys that need a restart: " + ", ".join(self.restart))
        return "".join(f"; {n}" for n in notes)

    def health(self, check: HealthCheck) -> HealthCheck:
        """`check` with `note()` appended to its text (its verdict unchanged)."""

        async def checked() -> tuple[bool, str]:
            ok, text = await check()
            return ok, text + self.note()

        return checked

    async def check(self, apply: Apply, metrics: Metrics) -> None:
        """Rebuild the settings if a file changed, and apply what can apply live."""
        # Finding the inputs parses the --cfg file (for the template's path): once a check.
        self._watched = self._inputs()
        contents = _read(self._watched)
        if contents == self._seen:
            return
        self._seen = contents
        try:
            new = self._build()
        except SettingsError as err:
            self._failed(str(err), metrics)
            return
        change = diff_settings(started=self._started, running=self._running, new=new)
        if change.restart != self.restart:
            if change.restart:
                log.warning(
                    "--cfg: %s changed; not applied, a restart applies it",
                    ", ".join(change.restart),
                )
            self.restart = change.restart
            metrics.config_restart_needed.set(len(change.restart))
        if change.live:
            why = "settings changed: " + ", ".join(change.live)
            log.info("--cfg: applying %s", ", ".join(change.live))
            failure = await apply(change.settings, why=why)
            if failure is not None:
                self._failed(failure, metrics)
                return
            self._running = change.settings
        if self.error is not None:
            log.info("--cfg: applied; the earlier error is gone")
        self.error = None

    def _failed(self, reason: str, metrics: Metrics) -> None:
        log.error("--cfg edit not applied, the last good settings keep serving: %s", reason)
        metrics.config_reload_failures.inc()
        self.error = reason

    async def run(self, apply: Apply, metrics: Metrics) -> None:
        """Watch and apply until cancelled."""
        await self.check(apply, metrics)
        poll = False
        while True:
            directories = _directories(self._watched)
            if poll or not directories:
                await asyncio.sleep(POLL_INTERVAL)
                await self.check(apply, metrics)
                continue
            try:
                async for _ in watchfiles.awatch(
                    *directories,
                    debounce=50,
                    step=5,
                    rust_timeout=WATCH_TIMEOUT_MS,
                    yield_on_timeout=True,
                    recursive=False,
                    watch_filter=None,
                    force_polling=False,
                ):
                    await self.check(apply, metrics)
                    if _directories(self._watched) != directories:
                        break  # the template moved elsewhere, or a directory came or went
            except FileNotFoundError:
                continue
            except (OSError, WatchfilesRustInternalError) as err:
                log.warning("cannot watch the --cfg file (%s); re-reading it instead", err)
                poll = True


def _directories(paths: tuple[Path, ...]) -> list[Path]:
    found = {p.absolute().parent for p in paths}
    return sorted(d for d in found if d.is_dir())


def _read(paths: tuple[Path, ...]) -> Contents:
    contents = []
    for path in paths:
        try:
            data: bytes | None = path.read_bytes()
        except OSError:
            data = None
        contents.append((str(path), data))
    return tuple(contents)
