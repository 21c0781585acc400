"""The README is part of the product: its annotation table and flag list must match
the code, so a newcomer never reads about a flag that does not exist (or misses one)."""

from __future__ import annotations

import re
from pathlib import Path

from service_loadbalancer.annotations import markdown_table
from service_loadbalancer.autoscale.options import build_autoscale_parser
from service_loadbalancer.cli import build_parser

README = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")


def test_annotation_table_matches_the_registry() -> None:
    block = README.split("<!-- annotations:begin -->\n", 1)[1].split("<!-- annotations:end -->")[0]
    assert block.strip() == markdown_table().strip()


def test_every_flag_is_documented_and_every_documented_flag_exists() -> None:
    parser_flags = {
        opt
        for parser in (build_parser(), build_autoscale_parser())
        for action in parser._actions
        for opt in action.option_strings
        if opt.startswith("--") and opt != "--help"
    }
    documented = set(re.findall(r"^\| `(--[a-z-]+)", README, flags=re.MULTILINE))
    assert parser_flags == documented


def test_the_two_commands_are_there() -> None:
    assert "make demo" in README and "make test" in README
