"""The config text as sections, so one backend can be swapped without touching the rest.
Pure, no I/O.

Why: an endpoint change must cost work proportional to the change, not to the config
(tens of MB with 10,000 Services). The text of a full render is split once, off the hot
path, into top-level sections (`global`, `defaults`, each `frontend` and `backend`, a
comment block); a backend is then found by name in a dict and replaced by the same
section of a tiny render of just that backend. The whole text is only joined again
when it is written to disk, which happens in the background.

A section's trailing blank lines belong to it on disk but not to its *body*: a tiny
render ends a backend differently (end of text) from the full one (a blank line and the
next section), so only bodies are compared and swapped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

#: The start of the next top-level line (a section header or a comment).
_TOP_LEVEL = re.compile(r"\n(?=\S)")
#: Blank lines at the end of a section.
_TRAILING_BLANK = re.compile(r"(?:\n[ \t]*)+\Z")


@dataclass(frozen=True, slots=True)
class Sections:
    """`pieces` joined are the config text; `backends` gives a backend's piece by name."""

    pieces: tuple[str, ...]
    backends: Mapping[str, int]

    def text(self) -> str:
        return "".join(self.pieces)

    def body(self, backend: str) -> str | None:
        """The backend's section without its trailing blank lines (None if absent)."""
        at = self.backends.get(backend)
        return None if at is None else _split_tail(self.pieces[at])[0]

    def replace(self, bodies: Mapping[str, str]) -> Sections:
        """These backends' bodies swapped in (each keeps its own trailing blank lines);
        KeyError if one is absent. Copies the tuple of pieces, never the text."""
        if not bodies:
            return self
        pieces = list(self.pieces)
        for name, body in bodies.items():
            at = self.backends[name]
            pieces[at] = body + _split_tail(pieces[at])[1]
        return Sections(pieces=tuple(pieces), backends=self.backends)


def split_sections(text: str) -> Sections:
    """Cut a config text at every top-level line; index the `backend` sections."""
    starts = [0, *(m.end() for m in _TOP_LEVEL.finditer(text))]
    pieces = tuple(text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True))
    backends: dict[str, int] = {}
    for at, piece in enumerate(pieces):
        if piece.startswith("backend "):
            backends[piece[8 : piece.find("\n") if "\n" in piece else len(piece)].strip()] = at
    return Sections(pieces=pieces, backends=MappingProxyType(backends))


def _split_tail(piece: str) -> tuple[str, str]:
    blank = _TRAILING_BLANK.search(piece)
    if blank is None:
        return piece, ""
    return piece[: blank.start()], piece[blank.start() :]


def split_servers(text: str) -> tuple[str, dict[tuple[str, str], str]]:
    """The config without its server lines, and (backend, server) -> the server's
    arguments as rendered (`127.0.0.1:80 cookie x`), so a runtime `add server` gets
    exactly what the config on disk says."""
    rest: list[str] = []
    servers: dict[tuple[str, str], str] = {}
    backend = ""
    for line in text.splitlines():
        if line.startswith("backend "):
            backend = line.split()[1]
        elif line.startswith(("frontend ", "listen ", "defaults", "global")):
            backend = ""
        stripped = line.lstrip()
        if backend and stripped.startswith("server "):
            _, name, args = [*stripped.split(None, 2), ""][:3]
            servers[(backend, name)] = args
            continue
        rest.append(line)
    return "\n".join(rest), servers
