"""What the running HAProxy loaded: a record beside the config, for the next controller.

A controller that adopts a master an earlier one left serving (`HAProxyProcess.adopt`)
may skip its first reload only if that master runs exactly the config it would write.
The files on disk alone cannot say so: the earlier controller may have installed a
config and died before reloading. So the SHA-256 of every file is recorded in
`<run_dir>/loaded.json` after each start and reload, and after each background write of
servers that HAProxy already runs (runtime operations, applied before the write). The
master runs `rendered` if the record, the files on disk and `rendered` all agree; when
in doubt the answer is no, and the cost is one hitless reload.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from service_loadbalancer.haproxy.files import atomic_write
from service_loadbalancer.haproxy.render import CONFIG_FILE, Rendered

LOADED_FILE = "loaded.json"


def _digest(pieces: Iterable[str]) -> str:
    sha = hashlib.sha256()
    for piece in pieces:
        sha.update(piece.encode())
    return sha.hexdigest()


def _read(record: Path) -> dict[str, str]:
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): str(v) for k, v in data.items()}


def record_loaded(record: Path, files: Mapping[str, str]) -> None:
    """HAProxy has just loaded `files` (names relative to the config directory)."""
    atomic_write(record, json.dumps({n: _digest([t]) for n, t in files.items()}, sort_keys=True))


def record_config(record: Path, pieces: Iterable[str]) -> None:
    """The main config was rewritten with what HAProxy already runs (same maps)."""
    loaded = _read(record)
    if loaded:
        loaded[CONFIG_FILE] = _digest(pieces)
        atomic_write(record, json.dumps(loaded, sort_keys=True))


def runs(record: Path, rendered: Rendered, *, config_path: Path, certs_dir: Path) -> bool:
    """Whether the HAProxy that loaded what `record` says runs `rendered`, with every
    file of it on disk as well (a reload or restart would load the same)."""
    loaded = _read(record)
    if set(loaded) != set(rendered.files):
        return False
    for name, text in rendered.files.items():
        path = config_path if name == CONFIG_FILE else config_path.parent / name
        wanted = _digest([text])
        on_disk = None
        with contextlib.suppress(OSError):
            on_disk = hashlib.sha256(path.read_bytes()).hexdigest()
        if loaded[name] != wanted or on_disk != wanted:
            return False
    return all((certs_dir / name).is_file() for name in rendered.certificates)
