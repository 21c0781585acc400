"""Unit-test helpers: a ready store's snapshot of given objects, and the `haproxy -c`
check every rendered config goes through. The objects themselves come from
`tests/objects.py`, which the integration tests share.

Imported as `from factories import ...`: pytest (prepend import mode) puts this
directory on sys.path for the test modules next to it, and mypy does the same for
files outside a package. Keep it free of pytest fixtures so it stays a plain module.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

from service_loadbalancer.haproxy.render import CONFIG_FILE, Rendered, render
from service_loadbalancer.kube.objects import KNOWN_KINDS, RawObject
from service_loadbalancer.model import LoadBalancer, Problem
from service_loadbalancer.settings import ENV_STATS_PASSWORD, ENV_STATS_USER, Settings
from service_loadbalancer.store import Snapshot, Store

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


# --- Snapshots --------------------------------------------------------------------------


def snapshot(
    *objects: RawObject, problems: Mapping[str, Iterable[Problem]] | None = None
) -> Snapshot:
    """A ready store holding exactly `objects` (every KNOWN_KIND listed), as a snapshot."""
    store = Store(KNOWN_KINDS)
    by_kind: dict[str, list[RawObject]] = defaultdict(list)
    for obj in objects:
        by_kind[str(obj["kind"])].append(obj)
    unknown = set(by_kind) - set(KNOWN_KINDS)
    assert not unknown, f"not a known kind: {unknown}"
    for kind in KNOWN_KINDS:
        store.replace(kind, by_kind.get(kind, []))
    for source, found in (problems or {}).items():
        store.set_problems(source, found)
    assert store.ready
    return store.snapshot()


# --- haproxy -c -------------------------------------------------------------------------


def stats_env(settings: Settings) -> dict[str, str]:
    """The variables the built-in template reads for stats authentication."""
    if settings.stats_user is None or settings.stats_password is None:
        return {}
    return {ENV_STATS_USER: settings.stats_user, ENV_STATS_PASSWORD: settings.stats_password}


def write_files(rendered: Rendered, directory: Path) -> Path:
    """Write every file of `rendered` into `directory`; the path of the config."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory / CONFIG_FILE


def haproxy_check(
    rendered: Rendered, directory: Path, env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """`haproxy -c` on the files of `rendered`, written into `directory`, with exactly
    `env` (plus PATH) as the environment."""
    config = write_files(rendered, directory)
    return subprocess.run(
        [HAPROXY, "-c", "-f", str(config)],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_haproxy_accepts(rendered: Rendered, settings: Settings) -> None:
    """Every rendered config must pass the real `haproxy -c`. The files go to
    `settings.run_dir`; the environment is `settings.haproxy_env()` plus the stats
    variables the template references."""
    env = {**settings.haproxy_env(), **stats_env(settings)}
    result = haproxy_check(rendered, settings.run_dir, env)
    assert result.returncode == 0, (
        f"haproxy -c failed ({result.returncode}):\n{result.stdout}{result.stderr}\n"
        f"--- config ---\n{rendered.config}"
    )


def render_checked(model: LoadBalancer, settings: Settings, run_dir: Path) -> Rendered:
    """Render `model` with `settings` (run_dir replaced), and check it with haproxy -c."""
    settings = dataclasses.replace(settings, run_dir=run_dir)
    rendered = render(model, settings)
    assert_haproxy_accepts(rendered, settings)
    return rendered


def block(config: str, header: str) -> str:
    """The section of `config` that starts with the line `header` (e.g. "backend x"),
    up to the next blank-line-separated top-level section."""
    lines = config.splitlines()
    start = lines.index(header)
    out = [lines[start]]
    for line in lines[start + 1 :]:
        if line and not line.startswith((" ", "\t")):
            break
        out.append(line)
    return "\n".join(out).rstrip() + "\n"
