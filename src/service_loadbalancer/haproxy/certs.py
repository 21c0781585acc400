"""Key material on disk: the one place that writes certificates and their keys.

Files go into one private directory (mode 0700, each file 0600, created with that mode
so no other user can read it even for an instant). Names carry a hash of the content:
a rotated certificate is a new file, so the running worker keeps its own until the
(hitless) reload, and nothing is ever rewritten in place. Files no config references
any more (a Secret deleted, a certificate rotated) are removed after each apply.
Nothing here logs a file's content.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from service_loadbalancer.haproxy.files import atomic_write

#: The names translation gives certificate files (namespace_name_hash.pem).
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]*\.pem\Z")


def write_certificates(directory: Path, certificates: Mapping[str, str]) -> None:
    """Make sure every certificate is in `directory`, written atomically with mode 0600."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)  # mkdir's mode is masked by the umask, and exist_ok keeps any
    for name, pem in certificates.items():
        if not _NAME_RE.match(name):
            raise ValueError(f"not a certificate file name: {name!r}")
        target = directory / name
        data = pem.encode("ascii")
        with contextlib.suppress(OSError):
            if target.read_bytes() == data:
                continue
        atomic_write(target, pem, mode=0o600, fsync=True)


def remove_unused(directory: Path, keep: Iterable[str]) -> list[str]:
    """Delete every file of `directory` not in `keep`; returns the names removed."""
    wanted = set(keep)
    removed: list[str] = []
    if not directory.is_dir():
        return removed
    for entry in directory.iterdir():
        if entry.name not in wanted and entry.is_file():
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed.append(entry.name)
    return sorted(removed)
