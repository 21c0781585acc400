"""Suite-wide hooks: the fuzz test's case count, printed at the end of every run.

pytest's `-ra` summary does not show what a test prints, and the issue asks for the
number of fuzz cases to be visible in the output of `make test` (CI), so the count
travels in the config's stash and is printed by `pytest_terminal_summary`.
"""

from __future__ import annotations

from collections import Counter

import pytest

FUZZ_COUNTS = pytest.StashKey[Counter[str]]()

#: The fixtures the integration tests share (backends, api).
pytest_plugins = ["integration_fixtures"]


def pytest_configure(config: pytest.Config) -> None:
    config.stash[FUZZ_COUNTS] = Counter()


@pytest.fixture(scope="session")
def fuzz_counts(pytestconfig: pytest.Config) -> Counter[str]:
    """Counts the fuzz tests add to (cases, snapshots, haproxy -c runs, ...)."""
    return pytestconfig.stash[FUZZ_COUNTS]


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    counts = config.stash.get(FUZZ_COUNTS, Counter())
    if not counts:
        return
    terminalreporter.section("fuzz cases")
    for name, value in sorted(counts.items()):
        terminalreporter.write_line(f"{name}: {value}")
