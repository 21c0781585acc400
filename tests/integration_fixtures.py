"""Fixtures most integration tests share (a pytest plugin, loaded by tests/conftest.py):
real backends on 127.0.0.0/8, closed after the test, and the fake Kubernetes API server
(bookmarks every 0.5 s, so a test waits little for a watch to catch up). A test file
that needs another shape defines its own, which wins.

Not a conftest.py in tests/integration: mypy would see two modules named `conftest`. The
helpers are imported when a fixture runs, by then pytest has put tests/integration on
the path (it does so for the test modules there)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from fake_apiserver import FakeAPIServer
    from harness import Backends


@pytest.fixture
async def backends() -> AsyncIterator[Backends]:
    from harness import Backends  # noqa: PLC0415 (see the docstring)

    b = Backends()
    yield b
    await b.close()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[FakeAPIServer]:
    from fake_apiserver import FakeAPIServer  # noqa: PLC0415 (see the docstring)

    server = FakeAPIServer(tmp_path, bookmark_interval=0.5)
    await server.start()
    yield server
    await server.stop()
