"""HAProxy's files on disk: the config and its maps, the server-state file.

One atomic write (temporary file, then rename) serves every file, so HAProxy, reading
at any moment (a reload, a restart after a crash), sees either the old or the new
content, never half of one. A config set is installed support files first and the
main config last, so a reload in between still reads a consistent set.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from service_loadbalancer.haproxy.render import CONFIG_FILE, Rendered


def atomic_write(
    path: Path, content: str | Iterable[str], *, mode: int | None = None, fsync: bool = False
) -> None:
    """Replace `path` with `content` (one text, or pieces written one after another).

    `mode`: create the file with these permissions from the first byte (key material);
    `fsync`: flush to the disk before the rename (content that must survive a crash).
    """
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    fd = os.open(tmp, flags, 0o644 if mode is None else mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        if isinstance(content, str):
            f.write(content)
        else:
            f.writelines(content)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


def write_files(rendered: Rendered, directory: Path, config_name: str) -> Path:
    """Write every file of `rendered` into `directory`; returns the main config's path."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.files.items():
        atomic_write(directory / (config_name if name == CONFIG_FILE else name), text)
    return directory / config_name


def install(candidate: Path, rendered: Rendered, config_path: Path) -> None:
    """Move a checked candidate into place: support files first, the config last, so
    a reload (or restart) at any moment reads a consistent set."""
    for name in sorted(rendered.files, key=lambda n: n == CONFIG_FILE):
        source = candidate / (config_path.name if name == CONFIG_FILE else name)
        target = config_path if name == CONFIG_FILE else config_path.parent / name
        os.replace(source, target)


def filter_server_state(text: str, keep: set[tuple[str, str]]) -> str:
    """`show servers state` reduced to the servers in `keep` (backend, server): a server
    that was draining and comes back later must not come back drained from an old file."""
    out: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split()
        if line.startswith("#") or len(fields) < 4 or (fields[1], fields[3]) in keep:
            out.append(line)
    return "\n".join(out) + "\n"
