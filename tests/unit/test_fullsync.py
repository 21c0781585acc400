"""fullsync.prepare with new settings: one "settings or template changed" reason stands
for the option and text changes they explain, and only when the config changes."""

from __future__ import annotations

import dataclasses

from objects import endpoint_slice, service

from service_loadbalancer.fullsync import prepare
from service_loadbalancer.haproxy.plan import ReasonKind
from service_loadbalancer.kube.objects import KNOWN_KINDS
from service_loadbalancer.model import Algorithm
from service_loadbalancer.settings import Settings
from service_loadbalancer.store import Snapshot, Store

OBJECTS = [
    service("web", 80),
    endpoint_slice("web", "10.0.0.1"),
    service("api", 80),
    endpoint_slice("api", "10.0.0.2"),
]
WHY = "settings changed: algorithm"


def snapshot_of(objects: list[dict[str, object]]) -> Snapshot:
    store = Store(KNOWN_KINDS)
    store.replace_many({kind: [o for o in objects if o["kind"] == kind] for kind in KNOWN_KINDS})
    return store.snapshot()


def kinds(settings: Settings, new: Settings, *, changed: str | None) -> list[ReasonKind]:
    snapshot = snapshot_of(OBJECTS)
    base = prepare(snapshot, settings, None).running
    return [r.kind for r in prepare(snapshot, new, base, settings_changed=changed).reasons]


def test_a_new_algorithm_is_one_settings_reason() -> None:
    new = Settings(balance_algorithm=Algorithm.LEASTCONN)
    assert kinds(Settings(), new, changed=WHY) == [ReasonKind.SETTINGS]
    # Without being told, the same change is one reason per backend.
    assert kinds(Settings(), new, changed=None) == [ReasonKind.OPTIONS] * 2


def test_a_text_only_change_is_the_settings_reason() -> None:
    new = Settings(syslog=True)
    assert kinds(Settings(), new, changed="settings changed: startSyslog") == [ReasonKind.SETTINGS]


def test_settings_that_render_the_same_config_give_no_reason() -> None:
    same = dataclasses.replace(Settings(), dry=True)
    assert kinds(Settings(), same, changed="settings changed: dry") == []
