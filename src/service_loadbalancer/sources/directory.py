"""Reading a directory of manifests once: which files, in which order, and a parse cache.

Why it looks like this:

- **Files as `kubectl apply -f DIR` takes them**, recursively, in path order, so "the first
  definition wins" means the same on every machine; hidden entries (a ConfigMap volume's
  `..data`), editor temporaries and anything that is not a regular file are skipped, and
  symlinks are followed with loops cut.
- **Nothing raises for bad input.** An unreadable file, a file that is not UTF-8, an object
  defined twice, a missing directory: each is a `Problem` naming the file, and the good
  objects are still returned. A missing directory is reported as missing (`Scan.exists`), not
  as empty: the source must not delete everything because a mount went away.
- **Re-reading is cheap** because of `ParseCache`: a file whose identity and times have not
  changed is not read again (once they have settled, see RACY_SECONDS), and a file whose
  bytes have not changed is not parsed again. Parsing 10,000 Services takes seconds;
  comparing a stat result takes microseconds. The same parsed objects are handed out again,
  so the source can tell unchanged objects by identity.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from service_loadbalancer.gcpause import gc_paused
from service_loadbalancer.kube.objects import ObjectKey, RawObject, key_of
from service_loadbalancer.model import Problem
from service_loadbalancer.sources.manifests import parse_manifests

#: File names read from the directory, as `kubectl apply -f DIR` reads them.
MANIFEST_SUFFIXES: Final = (".yaml", ".yml", ".json")

#: A file whose signature is unchanged is not even read again, provided it had not changed
#: for this many seconds when it was last read: file times advance in coarse ticks, so a
#: write in the tick of our read can leave the same size and times (git's "racily clean"
#: rule); such a file is read again until its signature has settled. Reading 1,000
#: unchanged files on every change was most of the time an endpoint change took.
RACY_SECONDS: Final = 2.0

#: A file's identity and times (device, inode, size, mtime_ns, ctime_ns); unchanged means
#: unchanged content, except within the clock tick of a write (see RACY_SECONDS).
Signature = tuple[int, int, int, int, int]


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """One file as last read: what it was, and what parsing it gave."""

    signature: Signature
    #: Whether `signature` had settled when the file was read, so it can be trusted.
    settled: bool
    #: A digest of the bytes read (not the bytes: 10,000 files would keep 15 MB alive).
    digest: bytes
    objects: list[RawObject]
    problems: list[Problem]
    #: The key of each of `objects`.
    keys: list[ObjectKey]


@dataclass(slots=True)
class ParseCache:
    """The last parse of each file, by path; lets a re-read parse only what changed."""

    files: dict[str, ParsedFile] = field(default_factory=dict)

    def read(self, path: Path, *, now: float) -> ParsedFile:
        """The file parsed, from the cache where its signature or its bytes are unchanged.

        Raises OSError (cannot stat or read) and UnicodeDecodeError (not UTF-8); the cache
        keeps its last entry for the file then.
        """
        origin = str(path)
        st = path.stat()
        signature = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        cached = self.files.get(origin)
        if cached is not None and cached.signature == signature and cached.settled:
            return cached
        # Stat before reading: if the times had settled then, a later write has newer
        # times, so this signature stands for exactly these bytes.
        settled = now - max(st.st_mtime, st.st_ctime) > RACY_SECONDS
        raw = path.read_bytes()
        digest = hashlib.blake2b(raw, digest_size=16).digest()
        if cached is not None and cached.digest == digest:
            parsed = ParsedFile(
                signature, settled, digest, cached.objects, cached.problems, cached.keys
            )
        else:
            objects, problems = parse_manifests(raw.decode("utf-8-sig"), origin=origin)
            keys = [key_of(obj) for obj in objects]
            parsed = ParsedFile(signature, settled, digest, objects, problems, keys)
        self.files[origin] = parsed
        return parsed

    def keep_only(self, paths: list[Path]) -> None:
        """Forget the files that are gone."""
        for gone in self.files.keys() - {str(path) for path in paths}:
            del self.files[gone]


@dataclass(frozen=True, slots=True)
class Scan:
    """The objects of a directory, first definition first, and what was wrong."""

    objects: list[RawObject]
    problems: list[Problem]
    #: False when the directory itself is missing (or is not a directory).
    exists: bool
    files: int
    #: The key of each of `objects`.
    keys: list[ObjectKey] = field(default_factory=list)


def load_directory(directory: Path) -> tuple[list[RawObject], list[Problem]]:
    """Read every *.yaml, *.yml and *.json file below `directory` into checked objects.

    Files are read recursively in path order; hidden files and directories (starting with
    '.') and editor temporary files are skipped. The same object (kind, namespace, name)
    defined twice: the first by path wins, the other is a Problem naming both files. An
    unreadable file, or a missing directory, is a Problem, not an exception.
    """
    scan = scan_directory(directory, ParseCache())
    return scan.objects, scan.problems


def scan_directory(directory: Path, cache: ParseCache) -> Scan:
    """`load_directory`, through `cache`, with what the source needs besides."""
    if not directory.is_dir():
        reason = "is not a directory" if directory.exists() else "directory does not exist"
        return Scan([], [Problem(ObjectKey("File", "", str(directory)), reason)], False, 0)
    problems: list[Problem] = []
    objects: list[RawObject] = []
    object_keys: list[ObjectKey] = []
    try:
        files = _manifest_files(directory, problems)
    except OSError as error:  # the directory itself: as good as missing, not as empty
        reason = f"cannot list directory: {error.strerror or error}"
        return Scan([], [Problem(ObjectKey("File", "", str(directory)), reason)], False, 0)
    now = time.time()
    with gc_paused():
        _read_files(files, cache, now=now, into=(objects, object_keys, problems))
    cache.keep_only(files)
    return Scan(objects, problems, True, len(files), object_keys)


def _read_files(
    files: list[Path],
    cache: ParseCache,
    *,
    now: float,
    into: tuple[list[RawObject], list[ObjectKey], list[Problem]],
) -> None:
    """Parse (or take from the cache) each file into (objects, their keys, problems);
    the first definition of an object wins."""
    objects, object_keys, problems = into
    defined_in: dict[ObjectKey, str] = {}
    for path in files:
        origin = str(path)
        subject = ObjectKey("File", "", origin)
        try:
            parsed = cache.read(path, now=now)
        except UnicodeDecodeError as error:
            byte = error.object[error.start : error.start + 1].hex()
            problems.append(Problem(subject, f"not UTF-8 (byte 0x{byte} at offset {error.start})"))
            continue
        except OSError as error:
            problems.append(Problem(subject, f"cannot read: {error.strerror or error}"))
            continue
        problems.extend(parsed.problems)
        for obj, key in zip(parsed.objects, parsed.keys, strict=True):
            first = defined_in.get(key)
            if first is None:
                defined_in[key] = origin
                objects.append(obj)
                object_keys.append(key)
                continue
            where = "earlier in this file" if first == origin else f"in {first}"
            problems.append(
                Problem(subject, f"{key} is defined {where} already; that definition is used")
            )


def _manifest_files(directory: Path, problems: list[Problem]) -> list[Path]:
    """Manifest files below `directory`, in path order; symlinks followed, loops cut.

    A subdirectory that cannot be listed is a problem; `directory` itself raises OSError.
    """
    found: list[Path] = []
    visited: set[tuple[int, int]] = set()
    pending = [directory]
    while pending:
        current = pending.pop()
        try:
            status = current.stat()
            if (status.st_dev, status.st_ino) in visited:
                continue
            visited.add((status.st_dev, status.st_ino))
            with os.scandir(current) as entries:
                listing = list(entries)
        except OSError as error:
            if current == directory:
                raise
            subject = ObjectKey("File", "", str(current))
            problems.append(Problem(subject, f"cannot list directory: {error.strerror or error}"))
            continue
        for entry in listing:
            if _skipped(entry.name):
                continue
            try:
                is_dir = entry.is_dir()  # follows symlinks
            except OSError:
                is_dir = False
            if is_dir:
                pending.append(Path(entry.path))
            elif not entry.name.endswith(MANIFEST_SUFFIXES):
                continue
            elif _is_file(entry) or entry.is_symlink():  # a broken link is reported on reading
                found.append(Path(entry.path))
            else:  # a FIFO would block the reader for good
                subject = ObjectKey("File", "", entry.path)
                problems.append(Problem(subject, "not a regular file"))
    return sorted(found, key=lambda path: path.relative_to(directory).parts)


def _is_file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file()  # follows symlinks
    except OSError:
        return False


#: Names editors give their temporary, backup and lock files (hidden ones are skipped anyway).
_TEMP_PREFIXES: Final = ("#", "~")
_TEMP_SUFFIXES: Final = ("~", "#", ".swp", ".swx", ".tmp", ".bak", ".orig")
_TEMP_MARKERS: Final = ("___jb_tmp___", "___jb_old___")


def _skipped(name: str) -> bool:
    return (
        name.startswith(".")
        or name.startswith(_TEMP_PREFIXES)
        or name.endswith(_TEMP_SUFFIXES)
        or any(marker in name for marker in _TEMP_MARKERS)
    )
