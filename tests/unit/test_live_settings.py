"""Live --cfg edits, the pure part: which keys of a rebuilt `Settings` apply now and
which need a restart (settings.diff_settings)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from service_loadbalancer.model import Algorithm
from service_loadbalancer.settings import Settings
from service_loadbalancer.settings_diff import LIVE_FIELDS, diff_settings, field_key

START = Settings(run_dir=Path("/run/a"), http_port=8080)


def test_nothing_changed() -> None:
    change = diff_settings(started=START, running=START, new=START)
    assert change.live == () and change.restart == ()
    assert change.settings == START


def test_live_keys_apply() -> None:
    new = dataclasses.replace(
        START, balance_algorithm=Algorithm.LEASTCONN, syslog=True, template="t"
    )
    change = diff_settings(started=START, running=START, new=new)
    assert change.live == ("algorithm", "startSyslog", "template")
    assert change.restart == ()
    assert change.settings == new


def test_restart_keys_are_reported_and_not_applied() -> None:
    new = dataclasses.replace(
        START,
        run_dir=Path("/run/b"),
        haproxy_config=Path("/etc/h.cfg"),
        stats_user="u",
        stats_password="p",
        balance_algorithm=Algorithm.FIRST,
    )
    change = diff_settings(started=START, running=START, new=new)
    assert change.live == ("algorithm",)
    assert change.restart == ("config", "runDir", "statsUser", "statsPassword")
    # Only the live key is taken; everything else stays as it started.
    assert change.settings == dataclasses.replace(START, balance_algorithm=Algorithm.FIRST)
    assert change.settings.config_path == START.config_path


def test_restart_keys_compare_with_the_start_live_keys_with_what_runs() -> None:
    running = dataclasses.replace(START, balance_algorithm=Algorithm.LEASTCONN)
    # A restart-only edit stays reported after a later live edit; a live value that
    # already runs is no change.
    new = dataclasses.replace(running, run_dir=Path("/run/b"))
    change = diff_settings(started=START, running=running, new=new)
    assert change.live == ()
    assert change.restart == ("runDir",)
    assert change.settings == running
    # Reverting the restart-only edit clears it.
    change = diff_settings(started=START, running=running, new=running)
    assert change.restart == ()


def test_every_live_field_exists_and_has_a_name() -> None:
    names = {f.name for f in dataclasses.fields(Settings)}
    assert names >= LIVE_FIELDS
    for name in names:
        assert field_key(name)
    assert field_key("http_port") == "--http-port"
