"""Global Services (global_services.py): endpoints merged by cluster and affinity, ports
matched by name then number, which remote Services share, and the store that carries the
remote clusters' changes into the local journal (the fast path's input)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from factories import render_checked
from objects import endpoint_slice, endpoints, ep_port, port, service, service_export, subset

from service_loadbalancer.fastpath import running_from, swap_endpoints
from service_loadbalancer.haproxy.render import render
from service_loadbalancer.kube.objects import KNOWN_KINDS, RawObject
from service_loadbalancer.model import Backend, Server, Translation
from service_loadbalancer.settings import Settings
from service_loadbalancer.store import Store
from service_loadbalancer.translate import translate

P = "serviceloadbalancer/"
GLOBAL = {P + "lb.global": "true"}
REMOTE_KINDS = ("Service", "EndpointSlice", "Endpoints", "ServiceExport")


def filled(objects: list[RawObject], kinds: tuple[str, ...] = tuple(KNOWN_KINDS)) -> Store:
    store = Store(kinds)
    by_kind: dict[str, list[RawObject]] = defaultdict(list)
    for obj in objects:
        by_kind[str(obj["kind"])].append(obj)
    store.replace_many({kind: by_kind.get(kind, []) for kind in kinds})
    return store


def clusters(local: list[RawObject], **remotes: list[RawObject]) -> tuple[Store, dict[str, Store]]:
    store = filled(local)
    stores = {}
    for name, objects in remotes.items():
        stores[name] = filled(objects, REMOTE_KINDS)
        store.add_remote(name, stores[name])
    return store, stores


def run(local: list[RawObject], **remotes: list[RawObject]) -> Translation:
    store, _ = clusters(local, **remotes)
    return translate(store.snapshot(), Settings())


def web(annotations: dict[str, str] | None = None, *addresses: str) -> list[RawObject]:
    return [service("web", annotations=annotations), endpoint_slice("web", *addresses)]


def the_backend(result: Translation, name: str = "http_default_web_80") -> Backend:
    return next(b for b in result.model.backends if b.name == name)


def names(backend: Backend) -> list[str]:
    return [s.name for s in backend.servers]


# --- affinity --------------------------------------------------------------------------


def test_local_affinity_keeps_remote_endpoints_as_backups() -> None:
    result = run(web(GLOBAL, "10.0.0.1"), east=web(GLOBAL, "10.9.0.1", "10.9.0.2"))
    backend = the_backend(result)
    assert backend.all_backups
    assert backend.servers == (
        Server("rb_east_10_9_0_1_8080", "10.9.0.1", 8080, backup=True, cluster="east"),
        Server("rb_east_10_9_0_2_8080", "10.9.0.2", 8080, backup=True, cluster="east"),
        Server("s_10_0_0_1_8080", "10.0.0.1", 8080),
    )
    assert result.problems == ()


def test_local_affinity_with_no_local_endpoint_serves_from_the_backups_unchanged() -> None:
    """Going to zero local endpoints changes no flag: the backups serve anyway, so
    fail-over re-creates no server."""
    before = names(the_backend(run(web(GLOBAL, "10.0.0.1"), east=web(GLOBAL, "10.9.0.1"))))
    after = names(the_backend(run(web(GLOBAL), east=web(GLOBAL, "10.9.0.1"))))
    assert after == ["rb_east_10_9_0_1_8080"]
    assert set(after) <= set(before)


@pytest.mark.parametrize(
    ("local", "remote_active"),
    [(0, True), (1, True), (2, True), (3, False), (4, False)],
)
def test_min_local_spills_over_below_the_minimum(local: int, remote_active: bool) -> None:
    annotations = {**GLOBAL, P + "lb.min-local": "3"}
    addresses = [f"10.0.0.{i + 1}" for i in range(local)]
    backend = the_backend(run(web(annotations, *addresses), east=web(GLOBAL, "10.9.0.1")))
    remote = [s for s in backend.servers if s.cluster == "east"]
    assert [s.backup for s in remote] == [not remote_active]
    assert [s.name for s in remote] == [("r" if remote_active else "rb") + "_east_10_9_0_1_8080"]
    assert not any(s.backup for s in backend.servers if not s.cluster)


def test_min_local_last_local_pod_going_keeps_the_remote_servers() -> None:
    """With lb.min-local 2 or more, 1 -> 0 local endpoints changes no remote server: they
    were active beside the last local one and stay active, not drained and re-added as
    backups at the moment of fail-over."""
    annotations = {**GLOBAL, P + "lb.min-local": "2"}
    before = names(the_backend(run(web(annotations, "10.0.0.1"), east=web(GLOBAL, "10.9.0.1"))))
    after = names(the_backend(run(web(annotations), east=web(GLOBAL, "10.9.0.1"))))
    assert before == ["r_east_10_9_0_1_8080", "s_10_0_0_1_8080"]
    assert after == ["r_east_10_9_0_1_8080"]


def test_none_affinity_balances_over_every_cluster() -> None:
    result = run(
        web({**GLOBAL, P + "lb.affinity": "none"}, "10.0.0.1"),
        east=web(GLOBAL, "10.9.0.1"),
        west=web(GLOBAL, "10.8.0.1"),
    )
    backend = the_backend(result)
    assert not backend.all_backups
    assert names(backend) == ["r_east_10_9_0_1_8080", "r_west_10_8_0_1_8080", "s_10_0_0_1_8080"]
    assert not any(s.backup for s in backend.servers)


def test_remote_affinity_makes_the_local_endpoints_backups() -> None:
    result = run(
        web({**GLOBAL, P + "lb.affinity": "remote"}, "10.0.0.1"), east=web(GLOBAL, "10.9.0.1")
    )
    backend = the_backend(result)
    assert backend.all_backups
    assert [(s.name, s.backup) for s in backend.servers] == [
        ("r_east_10_9_0_1_8080", False),
        ("sb_10_0_0_1_8080", True),
    ]


def test_a_local_service_that_is_not_global_takes_nothing_from_remote_clusters() -> None:
    backend = the_backend(run(web(None, "10.0.0.1"), east=web(GLOBAL, "10.9.0.1")))
    assert names(backend) == ["s_10_0_0_1_8080"]
    assert not backend.all_backups


# --- which remote Services share ----------------------------------------------------------


def test_a_remote_service_that_is_neither_global_nor_exported_is_not_merged() -> None:
    backend = the_backend(run(web(GLOBAL, "10.0.0.1"), east=web(None, "10.9.0.1")))
    assert names(backend) == ["s_10_0_0_1_8080"]


def test_an_exported_remote_service_is_merged() -> None:
    east = [*web(None, "10.9.0.1"), service_export("web")]
    backend = the_backend(run(web(GLOBAL, "10.0.0.1"), east=east))
    assert names(backend) == ["rb_east_10_9_0_1_8080", "s_10_0_0_1_8080"]


def test_an_export_of_another_service_or_namespace_does_not_count() -> None:
    east = [*web(None, "10.9.0.1"), service_export("api"), service_export("web", namespace="x")]
    backend = the_backend(run(web(GLOBAL, "10.0.0.1"), east=east))
    assert names(backend) == ["s_10_0_0_1_8080"]


@pytest.mark.parametrize("value", ["false", "yes", "TRUE\nserver x 1.2.3.4:80"])
def test_a_remote_global_annotation_must_say_true(value: str) -> None:
    east = web({P + "lb.global": value}, "10.9.0.1")
    backend = the_backend(run(web(GLOBAL, "10.0.0.1"), east=east))
    assert names(backend) == ["s_10_0_0_1_8080"]


def test_remote_annotations_other_than_global_change_nothing() -> None:
    """A remote cluster adds endpoints; it cannot route, reweigh or rename anything."""
    hostile = {
        **GLOBAL,
        P + "lb.affinity": "remote",
        P + "lb.host": "evil.example.com",
        P + "lb.aclMatch": "/",
        P + "lb.algorithm": "first",
        P + "lb.min-local": "junk",
    }
    plain = run(web(GLOBAL, "10.0.0.1"), east=web(GLOBAL, "10.9.0.1"))
    result = run(web(GLOBAL, "10.0.0.1"), east=web(hostile, "10.9.0.1"))
    assert result == plain


def test_remote_services_of_another_name_or_namespace_are_not_merged() -> None:
    east = [
        service("web", namespace="other", annotations=GLOBAL),
        endpoint_slice("web", "10.9.0.1", namespace="other"),
        service("api", annotations=GLOBAL),
        endpoint_slice("api", "10.9.0.2"),
    ]
    backend = the_backend(run(web(GLOBAL, "10.0.0.1"), east=east))
    assert names(backend) == ["s_10_0_0_1_8080"]


def test_remote_core_endpoints_are_read_where_there_are_no_slices() -> None:
    east = [
        service("web", annotations=GLOBAL),
        endpoints("web", subset("10.9.0.5")),
    ]
    backend = the_backend(run(web(GLOBAL, "10.0.0.1"), east=east))
    assert names(backend) == ["rb_east_10_9_0_5_8080", "s_10_0_0_1_8080"]


def test_a_bad_remote_address_is_a_problem_naming_the_cluster() -> None:
    result = run(web(GLOBAL, "10.0.0.1"), east=web(GLOBAL, "not-an-ip", "10.9.0.1"))
    assert names(the_backend(result)) == ["rb_east_10_9_0_1_8080", "s_10_0_0_1_8080"]
    assert [p.reason for p in result.problems] == [
        "cluster east: address 'not-an-ip' is not an IP address; skipped"
    ]


# --- ports -------------------------------------------------------------------------------


def two_ports(first: tuple[str, int, int], second: tuple[str, int, int]) -> list[RawObject]:
    """A Service with two named ports (name, port, targetPort), one slice serving both."""
    ports = [port(n, name=name, target=t) for name, n, t in (first, second)]
    return [
        service("web", *ports, annotations=GLOBAL),
        endpoint_slice(
            "web", "10.9.0.1", ports=[ep_port(t, name=name) for name, _, t in (first, second)]
        ),
    ]


def test_ports_are_matched_by_name_first() -> None:
    local = two_ports(("http", 80, 8080), ("admin", 81, 9090))
    # The remote swapped the numbers: the names decide.
    east = two_ports(("http", 81, 7070), ("admin", 80, 6060))
    result = run(local, east=east)
    assert [s.port for s in the_backend(result).servers if s.cluster] == [7070]
    assert [s.port for s in the_backend(result, "http_default_web_81").servers if s.cluster] == [
        6060
    ]


def test_ports_are_matched_by_number_when_no_name_matches() -> None:
    local = [service("web", port(80, target=8080), annotations=GLOBAL)]
    east = [
        service("web", port(80, name="web", target=7070), annotations=GLOBAL),
        endpoint_slice("web", "10.9.0.1", ports=[ep_port(7070, name="web")]),
    ]
    result = run(local, east=east)
    assert [(s.name, s.port) for s in the_backend(result).servers] == [
        ("rb_east_10_9_0_1_7070", 7070)
    ]


def test_a_port_the_remote_service_lacks_gets_no_remote_endpoints() -> None:
    local = [service("web", port(80, name="http", target=8080), annotations=GLOBAL)]
    east = [
        service("web", port(443, name="https", target=8443), annotations=GLOBAL),
        endpoint_slice("web", "10.9.0.1", ports=[ep_port(8443, name="https")]),
    ]
    assert the_backend(run(local, east=east)).servers == ()


# --- rendering ----------------------------------------------------------------------------


def test_backups_render_as_backup_servers_haproxy_accepts(tmp_path: Path) -> None:
    result = run(web(GLOBAL, "10.0.0.1"), east=web(GLOBAL, "10.9.0.1"))
    config = render_checked(result.model, Settings(), tmp_path).config
    assert "    option allbackups\n" in config
    assert "    server rb_east_10_9_0_1_8080 10.9.0.1:8080 backup " in config
    assert "    server s_10_0_0_1_8080 10.0.0.1:8080 check" in config


def test_a_service_that_is_not_global_renders_as_before() -> None:
    plain = render(run(web(None, "10.0.0.1")).model, Settings()).config
    assert "allbackups" not in plain
    assert " backup" not in plain


# --- the store and the fast path ------------------------------------------------------------


def test_a_remote_change_is_an_endpoint_change_of_that_service_in_the_local_journal() -> None:
    store, remotes = clusters(web(GLOBAL, "10.0.0.1"), east=web(GLOBAL, "10.9.0.1"))
    version = store.version
    remotes["east"].upsert(endpoint_slice("web", "10.9.0.1", "10.9.0.2"))
    changes = store.changes_since(version)
    assert changes is not None
    assert changes.endpoints == {("default", "web")}
    assert changes.endpoints_only
    remotes["east"].upsert(service_export("api"))
    changes = store.changes_since(version)
    assert changes is not None and changes.endpoints == {("default", "web"), ("default", "api")}
    assert changes.endpoints_only


def test_endpoints_of_carries_the_remote_views_of_the_same_services_only() -> None:
    store, _ = clusters(
        web(GLOBAL, "10.0.0.1"),
        east=[*web(GLOBAL, "10.9.0.1"), service("api"), service_export("web")],
    )
    view = store.endpoints_of({("default", "web")})
    kinds = sorted(k.kind for k in view.remote["east"].objects)
    assert kinds == ["EndpointSlice", "Service", "ServiceExport"]


def test_the_fast_path_applies_a_remote_change_as_server_changes_only() -> None:
    settings = Settings()
    store, remotes = clusters(web(GLOBAL, "10.0.0.1"), east=web(GLOBAL, "10.9.0.1"))
    translation = translate(store.snapshot(), settings)
    running = running_from(translation, render(translation.model, settings), version=store.version)
    version = store.version
    remotes["east"].upsert(endpoint_slice("web", "10.9.0.1", "10.9.0.2"))
    changes = store.changes_since(version)
    assert changes is not None
    swap, patch = swap_endpoints(running, store, changes.endpoints, settings)
    assert not swap.declined
    assert patch is not None
    old, new = swap.pairs["http_default_web_80"]
    assert {s.name for s in new.servers} - {s.name for s in old.servers} == {
        "rb_east_10_9_0_2_8080"
    }
    assert patch.args[("http_default_web_80", "rb_east_10_9_0_2_8080")].startswith(
        "10.9.0.2:8080 backup "
    )
    # The same as a full translation and render.
    full = translate(store.snapshot(), settings)
    assert patch.sections.text() == render(full.model, settings).config


def test_a_remote_bad_address_that_stays_does_not_hold_back_the_fast_path() -> None:
    """A bad address in a remote slice is a problem on the local Service's key; while it
    stays the same, local and remote endpoint changes still take the fast path."""
    settings = Settings()
    store, remotes = clusters(web(GLOBAL, "10.0.0.1"), east=web(GLOBAL, "10.9.0.1", "not-an-ip"))
    translation = translate(store.snapshot(), settings)
    assert [p.reason for p in translation.problems] == [
        "cluster east: address 'not-an-ip' is not an IP address; skipped"
    ]
    running = running_from(translation, render(translation.model, settings), version=store.version)
    store.upsert(endpoint_slice("web", "10.0.0.1", "10.0.0.2"))
    remotes["east"].upsert(endpoint_slice("web", "10.9.0.1", "10.9.0.3", "not-an-ip"))
    swap, patch = swap_endpoints(running, store, {("default", "web")}, settings)
    assert patch is not None and not swap.declined
    full = translate(store.snapshot(), settings)
    assert full.problems == translation.problems
    assert patch.sections.text() == render(full.model, settings).config
    # A second bad address changes the problems: the full sync's job.
    remotes["east"].upsert(endpoint_slice("web", "10.9.0.1", "bad", "not-an-ip"))
    swap, _ = swap_endpoints(running, store, {("default", "web")}, settings)
    assert swap.declined == {("default", "web")}


def test_min_local_flag_change_is_a_server_swap_on_the_fast_path() -> None:
    settings = Settings()
    annotations = {**GLOBAL, P + "lb.min-local": "2"}
    store, _ = clusters(web(annotations, "10.0.0.1", "10.0.0.2"), east=web(GLOBAL, "10.9.0.1"))
    translation = translate(store.snapshot(), settings)
    running = running_from(translation, render(translation.model, settings), version=store.version)
    store.upsert(endpoint_slice("web", "10.0.0.1"))
    swap, patch = swap_endpoints(running, store, {("default", "web")}, settings)
    assert patch is not None and not swap.declined
    old, new = swap.pairs["http_default_web_80"]
    assert names(old) == ["rb_east_10_9_0_1_8080", "s_10_0_0_1_8080", "s_10_0_0_2_8080"]
    assert names(new) == ["r_east_10_9_0_1_8080", "s_10_0_0_1_8080"]


def test_a_remote_cluster_is_attached_once_and_never_holds_back_readiness() -> None:
    store = Store(("Service",))
    remote = Store(())
    store.add_remote("east", remote)
    with pytest.raises(ValueError, match="attached twice"):
        store.add_remote("east", Store(()))
    assert not store.ready  # the local list is still awaited
    remote.replace_many({"Service": [service("web", annotations=GLOBAL)]})
    assert not store.ready  # a remote list changes nothing of that
    store.replace("Service", [])
    assert store.ready
    assert store.snapshot().remote["east"].of_kind("Service")[0]["metadata"]["name"] == "web"


@pytest.mark.parametrize(
    ("annotations", "reason"),
    [
        ({P + "lb.affinity": "none"}, "lb.affinity and serviceloadbalancer/lb.min-local need"),
        ({P + "lb.min-local": "2"}, "need serviceloadbalancer/lb.global; ignored"),
        (
            {**GLOBAL, P + "lb.affinity": "none", P + "lb.min-local": "2"},
            "serviceloadbalancer/lb.min-local needs serviceloadbalancer/lb.affinity: local",
        ),
    ],
)
def test_affinity_options_that_cannot_apply_are_a_problem(
    annotations: dict[str, str], reason: str
) -> None:
    result = run(web(annotations, "10.0.0.1"), east=web(GLOBAL, "10.9.0.1"))
    (problem,) = result.problems
    assert reason in problem.reason
    assert "10.0.0.1" in [s.address for s in the_backend(result).servers]  # still served


@pytest.mark.parametrize(
    "annotations",
    [GLOBAL, {**GLOBAL, P + "lb.min-local": "2"}, {**GLOBAL, P + "lb.affinity": "remote"}],
)
def test_valid_affinity_options_are_no_problem(annotations: dict[str, str]) -> None:
    assert run(web(annotations, "10.0.0.1"), east=web(GLOBAL, "10.9.0.1")).problems == ()
