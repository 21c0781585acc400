"""The command-line pieces both commands share (`run` in cli.py, `autoscale` in
autoscale/options.py): a parser whose usage error is one line on stderr and exit code 2,
the flag types (Go-style booleans, ports, addresses, bounded numbers), the cluster-access
flags, and how logging starts. One copy, so the two commands read a flag the same way.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from service_loadbalancer.flag_values import port_number

#: The exit code of a wrong flag or config: one line on stderr, no traceback.
EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: {message}\n")
        sys.exit(EXIT_USAGE)


def bool_flag(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean")


def port_flag(text: str) -> int:
    try:
        return port_number(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def number_flag(
    low: float, high: float, *, unit: str = "", above: bool = False
) -> Callable[[str], float]:
    """A flag's parser for a number within [low, high] (or (low, high] with `above`);
    nan is refused by the comparisons."""
    span = (
        f"above {_shown(low)} and at most {_shown(high)}"
        if above
        else f"between {_shown(low)} and {_shown(high)}"
    )

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            noun = f" of {unit}" if unit else ""
            raise argparse.ArgumentTypeError(f"{text!r} is not a number{noun}") from None
        if not ((low < value) if above else (low <= value)) or not value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not {span}{' ' + unit if unit else ''}")
        return value

    return parse


def _shown(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def start_logging(level: str) -> None:
    """Both commands log the same way: to stderr, with time, level and logger."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def address_flag(text: str) -> str:
    if text in ("", "*"):
        return ""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP address") from None


def status_flags(p: argparse.ArgumentParser, *, bind_help: str) -> None:
    """The status server (/healthz, /metrics) and logging, the same for both commands."""
    flag = p.add_argument
    flag(
        "--healthz-port", type=port_flag, default=8081, help="port of /healthz and /metrics (8081)"
    )
    flag("--bind-address", type=address_flag, default="", help=bind_help)
    flag("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def kube_flags(p: argparse.ArgumentParser) -> None:
    """The cluster-access flags (used when --manifests is not given)."""
    flag = p.add_argument
    flag(
        "--kubeconfig",
        type=Path,
        default=None,
        help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)",
    )
    flag("--context", default=None, help="kubeconfig context (default: its current context)")
    flag(
        "--use-kubernetes-cluster-service",
        type=bool_flag,
        nargs="?",
        const=True,
        default=True,
        help="inside a pod, use its service account (true)",
    )
