"""`haproxy -c`: whether HAProxy accepts a config, and in its own words why not.

A config that HAProxy refuses must never replace the one that serves, so a candidate is
checked before it is installed (apply.py), and the `check` command checks what it
renders (oneshot.py). A refusal, a missing binary or a run that takes too long is a
result, not an exception, so that each caller reports it its own way: the controller
logs and counts it and keeps the last good config, `check` prints it and exits 1.
"""

# The `timeout=` parameter bounds the run and, when it expires, kills the process and
# says so in the result, which a bare `asyncio.timeout()` around the call cannot do.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from service_loadbalancer.haproxy.children import merged_env

__all__ = ["CheckResult", "check_config"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The verdict of `haproxy -c` on one config."""

    ok: bool
    #: HAProxy's combined stdout/stderr, stripped.
    output: str


async def check_config(
    haproxy_bin: str,
    config_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> CheckResult:
    """Run `haproxy -c -f config_path` with `env` merged over `os.environ`.

    Never raises for an invalid config or a missing binary: both are a result with
    `ok=False` and an output that says what went wrong.
    """
    try:
        proc = await asyncio.create_subprocess_exec(
            haproxy_bin,
            "-c",
            "-f",
            str(config_path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=merged_env(env),
        )
    except OSError as err:
        return CheckResult(ok=False, output=f"cannot run {haproxy_bin!r}: {err}")
    try:
        async with asyncio.timeout(timeout):
            out, _ = await proc.communicate()
    except TimeoutError:
        return CheckResult(ok=False, output=f"{haproxy_bin} -c did not finish within {timeout:g} s")
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    return CheckResult(ok=proc.returncode == 0, output=out.decode(errors="replace").strip())
