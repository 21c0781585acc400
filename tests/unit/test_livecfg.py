"""LiveConfig.check: a --cfg edit rebuilt as at start, applied through a stand-in for
`Reconciler.update_settings` (the reconciler with HAProxy is tests/integration's)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service_loadbalancer.cli import build_parser
from service_loadbalancer.config import build_settings
from service_loadbalancer.livecfg import LiveConfig
from service_loadbalancer.metrics import Metrics
from service_loadbalancer.model import Algorithm
from service_loadbalancer.settings import Settings


class Applier:
    """Records what it is asked to apply; refuses with `refuse` when set."""

    def __init__(self) -> None:
        self.calls: list[tuple[Settings, str]] = []
        self.refuse: str | None = None

    async def __call__(self, settings: Settings, *, why: str) -> str | None:
        self.calls.append((settings, why))
        return self.refuse


def write(path: Path, text: str) -> None:
    tmp = path.with_name(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "lb.yaml"
    path.write_text("algorithm: roundrobin\n")
    return path


def live_for(cfg: Path, *flags: str) -> LiveConfig:
    args = build_parser().parse_args(["--cfg", str(cfg), "--run-dir", "/run/slb", *flags])
    return LiveConfig.from_args(args, {}, build_settings(args, {}))


def failures(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("slb_config_reload_failures_total") or 0.0


async def test_an_edit_is_applied_once(cfg: Path) -> None:
    live, apply, metrics = live_for(cfg), Applier(), Metrics()
    await live.check(apply, metrics)
    assert apply.calls == []  # as at start
    write(cfg, "algorithm: leastconn\n")
    await live.check(apply, metrics)
    await live.check(apply, metrics)  # same bytes: nothing to do
    assert [(s.balance_algorithm, why) for s, why in apply.calls] == [
        (Algorithm.LEASTCONN, "settings changed: algorithm")
    ]
    assert live.settings.balance_algorithm is Algorithm.LEASTCONN
    assert live.error is None and live.note() == ""


async def test_a_broken_edit_is_counted_once_and_cleared_by_a_good_one(cfg: Path) -> None:
    live, apply, metrics = live_for(cfg), Applier(), Metrics()
    write(cfg, "algorithm: fastest\n")
    await live.check(apply, metrics)
    await live.check(apply, metrics)
    assert failures(metrics) == 1 and apply.calls == []
    assert live.error is not None and "algorithm" in live.error
    assert live.note().startswith("; --cfg edit not applied, the last good settings serve: ")
    write(cfg, "algorithm: roundrobin\n")  # back as it was: nothing to apply, no error
    await live.check(apply, metrics)
    assert live.error is None and apply.calls == []


async def test_a_refused_apply_keeps_the_settings(cfg: Path) -> None:
    live, apply, metrics = live_for(cfg), Applier(), Metrics()
    apply.refuse = "haproxy -c refused the config: nope"
    write(cfg, "algorithm: first\n")
    await live.check(apply, metrics)
    assert live.settings.balance_algorithm is Algorithm.ROUNDROBIN
    assert live.error == "haproxy -c refused the config: nope" and failures(metrics) == 1


async def test_restart_keys_are_reported_not_applied(cfg: Path, tmp_path: Path) -> None:
    live, apply, metrics = live_for(cfg), Applier(), Metrics()
    write(cfg, f"config: {tmp_path / 'h.cfg'}\nstartSyslog: true\n")
    await live.check(apply, metrics)
    ((settings, why),) = apply.calls
    assert why == "settings changed: startSyslog"
    assert settings.syslog and settings.haproxy_config is None
    assert live.restart == ("config",)
    assert metrics.registry.get_sample_value("slb_config_restart_needed") == 1
    assert live.note() == "; --cfg keys that need a restart: config"


async def test_flags_win_and_a_template_edit_applies(cfg: Path, tmp_path: Path) -> None:
    live, apply, metrics = live_for(cfg, "--balance-algorithm", "first"), Applier(), Metrics()
    template = tmp_path / "t.j2"
    template.write_text("global\n")
    write(cfg, "algorithm: leastconn\ntemplate: t.j2\n")
    await live.check(apply, metrics)
    ((settings, why),) = apply.calls
    assert why == "settings changed: template" and settings.template == "global\n"
    assert settings.balance_algorithm is Algorithm.FIRST
    template.write_text("global\n    maxconn 10\n")  # the template alone, edited
    await live.check(apply, metrics)
    assert apply.calls[-1][0].template == "global\n    maxconn 10\n"
    template.write_text("{% if %}")  # does not compile
    await live.check(apply, metrics)
    assert live.error is not None and "t.j2" in live.error and len(apply.calls) == 2


async def test_health_keeps_the_verdict_and_adds_the_note(cfg: Path) -> None:
    live, metrics = live_for(cfg), Metrics()
    write(cfg, "bogus: 1\n")
    await live.check(Applier(), metrics)

    async def ok() -> tuple[bool, str]:
        return True, "ok"

    verdict, text = await live.health(ok)()
    assert verdict and text.startswith("ok; --cfg edit not applied") and "bogus" in text
