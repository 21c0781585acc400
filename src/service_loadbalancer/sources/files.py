"""The manifests directory: the source used without a cluster (`--manifests DIR`, the demo, tests).

Why it looks like this:

- **The same objects as the API.** Translation must not care where an object came from, so a
  manifest goes through the checks the API server would make before storing it (kind with its
  apiVersion, name and namespace formats, string-valued labels and annotations) and gets the
  namespace `kubectl apply` would give it. Scalars keep the meaning Kubernetes' YAML-to-JSON
  step gives them: dates stay strings, map keys become strings, and a key given twice is an
  error as in `kubectl apply --validate=strict`. An object the cluster would refuse is a
  `Problem` here too, never silently half-accepted.
- **Pure parsing.** `parse_manifests` and `load_directory` do no watching and raise nothing for
  bad input: every defect is a `Problem` naming the file, the document and the object, and the
  good objects next to it are still used. So the rules are tested with plain tables, and
  `check` (one pass) and `run` (watching) share them.
- **Re-read everything on each change.** `ManifestSource.load` reads the whole directory and
  hands each kind to `Store.replace`, which turns it into the minimal change (and reports "no
  change" when there is none). That is correct for deletes, renames, duplicates across files
  and Kubernetes ConfigMap volumes (whose files are symlinks swapped through a hidden `..data`
  link) without any per-file bookkeeping; a manifests directory is small.
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
import dataclasses
import difflib
import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import watchfiles
import yaml
from watchfiles._rust_notify import WatchfilesRustInternalError

from service_loadbalancer.kube.objects import KNOWN_KINDS, ObjectKey, RawObject, key_of
from service_loadbalancer.model import Problem
from service_loadbalancer.store import Store

try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

#: The name under which this source's problems go to `Store.set_problems`.
SOURCE_NAME: Final = "files"

#: File names read from the directory, as `kubectl apply -f DIR` reads them.
MANIFEST_SUFFIXES: Final = (".yaml", ".yml", ".json")

#: Watcher tuning: changes are collected for up to DEBOUNCE_MS (checking every STEP_MS), and the
#: watcher wakes up at least every WATCH_TIMEOUT_MS to check that the directory is still the one
#: it watches. POLL_INTERVAL is how often a missing directory is looked for, and how often the
#: directory is re-read where it cannot be watched.
DEBOUNCE_MS: Final = 50
STEP_MS: Final = 5  # an editor or kubectl writes a file within microseconds
WATCH_TIMEOUT_MS: Final = 250
POLL_INTERVAL: Final = 0.5

#: A document may not expand (through YAML aliases) into more values than this.
MAX_VALUES_PER_DOCUMENT: Final = 1_000_000

_LOG = logging.getLogger(__name__)


# --------------------------------------------------------------------------- parsing


class _ManifestLoader(_SafeLoader):
    """The safe loader without the YAML 1.1 timestamp type: Kubernetes keeps 2024-01-01 a string."""


_ManifestLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _SafeLoader.yaml_implicit_resolvers.items()
}

_MERGE_TAG: Final = "tag:yaml.org,2002:merge"

# Name formats, with the messages the API server gives (k8s.io/apimachinery validation).
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_NAME_FORMATS: Final[dict[str, tuple[re.Pattern[str], int, str]]] = {
    "dns-1123-label": (
        _DNS1123_LABEL,
        63,
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
        "'-', and must start and end with an alphanumeric character",
    ),
    "dns-1123-subdomain": (
        _DNS1123_SUBDOMAIN,
        253,
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
        "'-' or '.', and must start and end with an alphanumeric character",
    ),
    "dns-1035-label": (
        _DNS1035_LABEL,
        63,
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
        "with an alphabetic character, and end with an alphanumeric character",
    ),
}
#: The format of metadata.name per kind, as the API server validates it.
_NAME_FORMAT_OF_KIND: Final = {
    "Service": "dns-1035-label",
    "Endpoints": "dns-1123-subdomain",
    "EndpointSlice": "dns-1123-subdomain",
    "Secret": "dns-1123-subdomain",
}


class _BadDocument(Exception):
    """A document that cannot become an object; the message is the problem's reason."""


def parse_manifests(text: str, *, origin: str) -> tuple[list[RawObject], list[Problem]]:
    """Parse one file's text (multi-document YAML; JSON is YAML too) into checked objects.

    `kind: List` (and `<Kind>List`, as the API returns it) is flattened. Empty documents are
    ignored. Each object must be a mapping with a known kind and its apiVersion, a valid
    metadata.name and, if given, a valid metadata.namespace; objects without a namespace get
    "default" written into their metadata. An object that fails is skipped with a Problem on
    ObjectKey("File", "", origin) whose reason names the document and the object, e.g.
    'document 2 (Service "web"): unknown kind "Servise"'. Unparsable YAML gives one Problem with
    the parser's line and column; the objects of the documents before it are still returned.
    """
    subject = ObjectKey("File", "", origin)
    objects: list[RawObject] = []
    reasons: list[str] = []
    for index, document in _documents(text, reasons):
        label = f"document {index}"
        if isinstance(document, _BadDocument):
            reasons.append(f"{label}: {document}")
        else:
            _accept(document, label, objects, reasons)
    return objects, [Problem(subject, reason) for reason in reasons]


def _documents(text: str, reasons: list[str]) -> Iterator[tuple[int, object]]:
    """The documents of a YAML stream, 1-based, as plain JSON-like data or a `_BadDocument`.

    A syntax error ends the stream (the parser cannot resynchronise) and adds a reason; a
    document that parses but cannot be constructed (duplicate key, unknown tag) is bad alone.
    """
    loader = _ManifestLoader(text)
    index = 0
    try:
        while True:
            try:
                if not loader.check_node():
                    return
                node = loader.get_node()
            except yaml.MarkedYAMLError as error:
                reasons.append(_syntax_error(error, index))
                return
            except yaml.YAMLError as error:  # unmarked: should not happen, but is still input
                reasons.append(f"invalid YAML: {error}")
                return
            index += 1
            if node is None:
                continue
            try:
                duplicate = _duplicate_key(node)
                if duplicate:
                    raise _BadDocument(duplicate)
                data = loader.construct_document(node)
                yield index, _json_like(data)
            except _BadDocument as error:
                yield index, error
            except yaml.MarkedYAMLError as error:
                _reset_constructor(loader)
                yield index, _BadDocument(_marked(error))
            except RecursionError:
                _reset_constructor(loader)
                yield index, _BadDocument("nested too deeply")
    finally:
        loader.dispose()


def _syntax_error(error: yaml.MarkedYAMLError, documents_read: int) -> str:
    reason = f"invalid YAML: {_marked(error)}"
    if documents_read:
        reason += f"; documents after document {documents_read} were not read"
    return reason


def _marked(error: yaml.MarkedYAMLError) -> str:
    """'line 4, column 1: did not find ... (while parsing a flow sequence at line 3, column 4)'."""
    mark = error.problem_mark or error.context_mark
    text = error.problem or error.context or "error"
    if mark is not None:
        text = f"line {mark.line + 1}, column {mark.column + 1}: {text}"
    if error.context and error.problem:
        context = error.context
        if error.context_mark is not None:
            line, column = error.context_mark.line + 1, error.context_mark.column + 1
            context += f" at line {line}, column {column}"
        text += f" ({context})"
    return text


def _reset_constructor(loader: _ManifestLoader) -> None:
    """Forget a failed construction, as construct_document does after a good one."""
    loader.constructed_objects = {}
    loader.recursive_objects = {}
    loader.state_generators = []
    loader.deep_construct = False


def _duplicate_key(root: yaml.Node) -> str | None:
    """The first key given twice in one mapping (YAML merge keys aside), as a reason, or None."""
    seen: set[int] = set()
    stack: list[yaml.Node] = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:  # an alias: checked already
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: dict[str, yaml.Node] = {}
            for key, _ in node.value:
                if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE_TAG:
                    continue
                first = keys.setdefault(key.value, key)
                if first is not key:
                    return (
                        f'line {key.start_mark.line + 1}: key "{key.value}" is given twice '
                        f"(first at line {first.start_mark.line + 1})"
                    )
            stack.extend(child for pair in reversed(node.value) for child in reversed(pair))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(reversed(node.value))
    return None


def _json_like(data: object) -> object:
    """A deep copy as Kubernetes' YAML-to-JSON step would see it: string keys, no shared parts.

    Copying breaks the sharing YAML aliases create (so no two stored objects share a dict), and
    the budget stops an alias bomb from expanding without bound.
    """
    budget = MAX_VALUES_PER_DOCUMENT
    active: set[int] = set()

    def copy(value: object) -> object:
        nonlocal budget
        budget -= 1
        if budget < 0:
            raise _BadDocument(f"more than {MAX_VALUES_PER_DOCUMENT} values (alias expansion?)")
        if isinstance(value, dict | list):
            if id(value) in active:
                raise _BadDocument("a YAML alias refers to its own parent")
            active.add(id(value))
            try:
                if isinstance(value, dict):
                    return {_json_key(k): copy(v) for k, v in value.items()}
                return [copy(item) for item in value]
            finally:
                active.discard(id(value))
        return value

    try:
        return copy(data)
    except RecursionError:
        raise _BadDocument("nested too deeply") from None


def _json_key(key: object) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    return str(key)


def _accept(data: object, label: str, objects: list[RawObject], reasons: list[str]) -> None:
    """Check one document (or List item): append it to `objects`, or why not to `reasons`."""
    if data is None:
        return
    if not isinstance(data, dict):
        reasons.append(f"{label}: not a mapping but {_a(data)}")
        return
    where = _describe(label, data.get("kind"), _name_of(data))
    try:
        item_kind = _list_kind(data.get("kind"))
        if item_kind is None:
            objects.append(_checked(data))
            return
        for number, item in enumerate(_list_items(data, item_kind), start=1):
            _accept(item, f"{label}, item {number}", objects, reasons)
    except _BadDocument as error:
        reasons.append(f"{where}: {error}")


def _describe(label: str, kind: object, name: str | None) -> str:
    """'document 2 (Service "web")', as much of it as the document gives."""
    parts = [
        part for part in (kind if isinstance(kind, str) else "", name and _quote(name)) if part
    ]
    return f"{label} ({' '.join(parts)})" if parts else label


def _list_kind(kind: object) -> str | None:
    """For `List` "" (any kinds); for `ServiceList` and friends the item kind; else None."""
    if kind == "List":
        return ""
    if isinstance(kind, str) and kind.endswith("List") and kind[: -len("List")] in KNOWN_KINDS:
        return kind[: -len("List")]
    return None


def _list_items(data: dict[str, Any], item_kind: str) -> list[object]:
    want = KNOWN_KINDS[item_kind] if item_kind else "v1"
    if data.get("apiVersion") != want:
        kind, api_version = data.get("kind"), data.get("apiVersion")
        raise _BadDocument(f"{kind} needs apiVersion {_quote(want)}, not {_quote(api_version)}")
    items = data.get("items")
    if items is None:
        return []
    if not isinstance(items, list):
        raise _BadDocument(f"items is {_a(items)}, not a list")
    if item_kind:
        for item in items:
            if isinstance(item, dict):
                # The API leaves kind and apiVersion out of the items of a typed list.
                item.setdefault("kind", item_kind)
                item.setdefault("apiVersion", want)
    return items


def _checked(obj: dict[str, Any]) -> RawObject:
    """The object with its namespace defaulted; `_BadDocument` says why the API would refuse it."""
    kind = obj.get("kind")
    if kind is None or kind == "":
        raise _BadDocument("no kind")
    if not isinstance(kind, str):
        raise _BadDocument(f"kind is {_a(kind)}, not a string")
    if kind not in KNOWN_KINDS:
        raise _BadDocument(_unknown_kind(kind))
    want = KNOWN_KINDS[kind]
    api_version = obj.get("apiVersion")
    if api_version != want:
        if api_version is None or api_version == "":
            raise _BadDocument(f"no apiVersion ({kind} is {_quote(want)})")
        raise _BadDocument(f"{kind} needs apiVersion {_quote(want)}, not {_quote(api_version)}")

    meta = obj.get("metadata")
    if meta is None:
        raise _BadDocument("no metadata.name")
    if not isinstance(meta, dict):
        raise _BadDocument(f"metadata is {_a(meta)}, not a mapping")
    name = meta.get("name")
    if name is None or name == "":
        if meta.get("generateName"):
            raise _BadDocument("no metadata.name (generateName cannot be used in manifests)")
        raise _BadDocument("no metadata.name")
    if not isinstance(name, str):
        raise _BadDocument(f"metadata.name is {_a(name)}, not a string")
    _check_name("metadata.name", name, _NAME_FORMAT_OF_KIND[kind])

    namespace = meta.get("namespace")
    if namespace is None or namespace == "":
        meta["namespace"] = "default"
    elif not isinstance(namespace, str):
        raise _BadDocument(f"metadata.namespace is {_a(namespace)}, not a string")
    else:
        _check_name("metadata.namespace", namespace, "dns-1123-label")

    for field in ("labels", "annotations"):
        _check_string_map(meta, field)
    return obj


def _check_name(field: str, value: str, format_name: str) -> None:
    pattern, max_length, rule = _NAME_FORMATS[format_name]
    if len(value) > max_length:
        raise _BadDocument(
            f"{field} {_quote(value)} is invalid: must be no more than {max_length} characters"
        )
    if not pattern.fullmatch(value):
        raise _BadDocument(f"{field} {_quote(value)} is invalid: {rule}")


def _check_string_map(meta: dict[str, Any], field: str) -> None:
    """Labels and annotations are map[string]string in the API: `true` or `8080` unquoted fails."""
    value = meta.get(field)
    if value is None:
        return
    if not isinstance(value, dict):
        raise _BadDocument(f"metadata.{field} is {_a(value)}, not a mapping")
    for key, item in value.items():
        if item is None:  # JSON null decodes to "" in a Go map[string]string
            value[key] = ""
        elif not isinstance(item, str):
            raise _BadDocument(
                f"metadata.{field}[{_quote(key)}] must be a string, not {_a(item)} "
                f"{_yaml_scalar(item)} (quote it)"
            )


def _unknown_kind(kind: str) -> str:
    reason = f"unknown kind {_quote(kind)}"
    by_lower = {known.lower(): known for known in KNOWN_KINDS}
    guess = by_lower.get(kind.lower()) or next(
        iter(difflib.get_close_matches(kind, list(KNOWN_KINDS), n=1, cutoff=0.75)), None
    )
    if guess:
        return f"{reason} (did you mean {_quote(guess)}?)"
    return f"{reason} (service-loadbalancer reads {', '.join(KNOWN_KINDS)})"


def _name_of(data: dict[str, Any]) -> str | None:
    meta = data.get("metadata")
    if isinstance(meta, dict):
        name = meta.get("name")
        if isinstance(name, str) and name:
            return name
    return None


def _quote(value: object) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _a(value: object) -> str:
    """'a list', 'a number', ... for messages about wrong types."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def _yaml_scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int | float) else ""


# --------------------------------------------------------------------------- directory


@dataclass(frozen=True, slots=True)
class _Scan:
    objects: list[RawObject]
    problems: list[Problem]
    #: False when the directory itself is missing (or is not a directory).
    exists: bool
    files: int
    #: The key of each of `objects`.
    keys: list[ObjectKey] = dataclasses.field(default_factory=list)


def load_directory(directory: Path) -> tuple[list[RawObject], list[Problem]]:
    """Read every *.yaml, *.yml and *.json file below `directory` into checked objects.

    Files are read recursively in path order; hidden files and directories (starting with
    '.') and editor temporary files are skipped. The same object (kind, namespace, name)
    defined twice: the first by path wins, the other is a Problem naming both files. An
    unreadable file, or a missing directory, is a Problem, not an exception.
    """
    scan = _scan(directory)
    return scan.objects, scan.problems


#: Per file: its bytes when last parsed, and what parsing gave. Lets a re-read parse only
#: the files that changed (parsing 10,000 Services takes seconds; comparing bytes, not).
#: A file's identity and times; unchanged means unchanged content, except within the
#: clock tick of a write (see RACY_SECONDS).
Signature = tuple[int, int, int, int, int]
#: Per file: its signature, whether that signature can be trusted, its bytes, and what
#: parsing them gave.
ParseCache = dict[
    str, tuple[Signature, bool, bytes, list[RawObject], list[Problem], list[ObjectKey]]
]
#: A file whose signature is unchanged is not even read again, provided it had not changed
#: for this many seconds when it was last read: file times advance in coarse ticks, so a
#: write in the tick of our read can leave the same size and times (git's "racily clean"
#: rule); such a file is read again until its signature has settled. Reading 1,000
#: unchanged files on every change was most of the time an endpoint change took.
RACY_SECONDS: Final = 2.0


def _scan(directory: Path, cache: ParseCache | None = None) -> _Scan:
    if not directory.is_dir():
        reason = "is not a directory" if directory.exists() else "directory does not exist"
        return _Scan([], [Problem(ObjectKey("File", "", str(directory)), reason)], False, 0)
    problems: list[Problem] = []
    objects: list[RawObject] = []
    object_keys: list[ObjectKey] = []
    defined_in: dict[ObjectKey, str] = {}
    try:
        files = _manifest_files(directory, problems)
    except OSError as error:  # the directory itself: as good as missing, not as empty
        reason = f"cannot list directory: {error.strerror or error}"
        return _Scan([], [Problem(ObjectKey("File", "", str(directory)), reason)], False, 0)
    now = time.time()
    for path in files:
        origin = str(path)
        subject = ObjectKey("File", "", origin)
        try:
            st = path.stat()
            signature = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            cached = cache.get(origin) if cache is not None else None
            if cached is not None and cached[0] == signature and cached[1]:
                settled, raw = True, cached[2]
                parsed, parse_problems, keys = cached[3], cached[4], cached[5]
                text = None
            else:
                # Stat before reading: if the times had settled then, a later write has
                # newer times, so this signature stands for exactly these bytes.
                settled = now - max(st.st_mtime, st.st_ctime) > RACY_SECONDS
                raw = path.read_bytes()
                if cached is not None and cached[2] == raw:
                    parsed, parse_problems, keys = cached[3], cached[4], cached[5]
                    text = None
                else:
                    text = raw.decode("utf-8-sig")
            if cache is not None and text is None:
                cache[origin] = (signature, settled, raw, parsed, parse_problems, keys)
        except UnicodeDecodeError as error:
            byte = error.object[error.start : error.start + 1].hex()
            problems.append(Problem(subject, f"not UTF-8 (byte 0x{byte} at offset {error.start})"))
            continue
        except OSError as error:
            problems.append(Problem(subject, f"cannot read: {error.strerror or error}"))
            continue
        if text is not None:
            parsed, parse_problems = parse_manifests(text, origin=origin)
            keys = [key_of(obj) for obj in parsed]
            if cache is not None:
                cache[origin] = (signature, settled, raw, parsed, parse_problems, keys)
        problems.extend(parse_problems)
        for obj, key in zip(parsed, keys, strict=True):
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
    if cache is not None:
        for gone in cache.keys() - {str(f) for f in files}:
            del cache[gone]
    return _Scan(objects, problems, True, len(files), object_keys)


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


# --------------------------------------------------------------------------- the source


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

    def __init__(
        self,
        directory: Path,
        store: Store,
        *,
        logger: logging.Logger | None = None,
        poll: bool | None = None,
    ) -> None:
        self._directory = directory
        self._store = store
        self._log = logger or _LOG
        self._poll = _polling_requested() if poll is None else poll
        self._cache: ParseCache = {}
        #: What the last load put in the store, by key.
        self._loaded: dict[ObjectKey, RawObject] | None = None

    @property
    def directory(self) -> Path:
        return self._directory

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
        scan = _scan(self._directory, self._cache)
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
        each (10 ms per change at 1,000 Services). No snapshot can be taken in between:
        listeners run synchronously and the reconciler's only set a flag."""
        changed = False
        for key, obj in after.items():
            if before.get(key) is not obj:
                changed = self._store.upsert(obj) or changed
        if len(before) + sum(1 for k in after if k not in before) != len(after):
            for key in before.keys() - after.keys():
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
