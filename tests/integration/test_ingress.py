"""Ingress end to end: the scenarios of kubernetes-sigs/ingress-controller-conformance
(features/default_backend, load_balancing, path_rules, host_rules, ingress_class) against
the real controller reading the fake API server, the real HAProxy and real backends on
127.0.0.0/8; then an Ingress beside the Service routes, the redirect of TLS hosts, and
endpoint churn of an Ingress backend without a reload."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
import trustme
from fake_apiserver import FakeAPIServer
from harness import Backends, Controller, backend_names, request, running, wait_for, write_manifest
from objects import (
    cert_secret,
    ingress,
    ingress_backend,
    ingress_class,
    ingress_path,
    ingress_rule,
    ingress_tls,
    port,
    service,
    slices,
)

from service_loadbalancer.haproxy.process import HAProxyProcess

P = "serviceloadbalancer/"


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def send(
    c: Controller, method: str, host: str | None, path: str
) -> tuple[int, dict[str, str]]:
    """One request with that method, Host (None: the address) and path; the answer's
    status and the `key=value` words of its body."""
    headers = {"Host": host} if host else {}
    connector = aiohttp.TCPConnector(force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as s,
        s.request(
            method,
            f"http://127.0.0.1:{c.http_port}{path}",
            headers=headers,
            data=b"payload" if method in ("POST", "PUT", "PATCH") else None,
            allow_redirects=False,
        ) as r,
    ):
        text = await r.text()
    words = dict(w.split("=", 1) for w in text.split() if "=" in w)
    return r.status, words


async def served_by(c: Controller, host: str | None, path: str) -> str:
    """The service that answered (its pods are named `<service>-<n>`), or `HTTP <code>`."""
    status, words = await send(c, "GET", host, path)
    if status != 200:
        return f"HTTP {status}"
    assert words["path"] == path, words  # no stripping, no rewriting
    if host:
        assert words["host"] == host, words
    return words["backend"].rsplit("-", 1)[0]


async def create_service(
    api: FakeAPIServer, backends: Backends, name: str, address: str, *, pods: int = 1
) -> None:
    """A Service on port 8080 (named http) with `pods` real method-echo backends."""
    eps = [await backends.methods(f"{name}-{i}", f"{address}{i}") for i in range(1, pods + 1)]
    await api.create(service(name, port(8080, name="http", target=8080)))
    for obj in slices(name, eps, port_name="http"):
        await api.create(obj)


PATH_RULES = ingress(
    "path-rules",
    ingress_rule("exact-path-rules", ingress_path("/foo", "foo-exact", 8080, path_type="Exact")),
    ingress_rule(
        "prefix-path-rules",
        ingress_path("/foo", "foo-prefix", 8080),
        ingress_path("/aaa/bbb", "aaa-slash-bbb-prefix", 8080),
        ingress_path("/aaa", "aaa-prefix", 8080),
    ),
    ingress_rule(
        "mixed-path-rules",
        ingress_path("/foo", "foo-prefix", 8080),
        ingress_path("/foo", "foo-exact", 8080, path_type="Exact"),
    ),
    ingress_rule(
        "trailing-slash-path-rules",
        ingress_path("/aaa/bbb/", "aaa-slash-bbb-slash-prefix", 8080),
        ingress_path("/foo/", "foo-slash-exact", 8080, path_type="Exact"),
    ),
)
HOST_RULES = ingress(
    "host-rules",
    ingress_rule("*.foo.com", ingress_path("/", "wildcard-foo-com", 8080)),
    ingress_rule("foo.bar.com", ingress_path("/", "foo-bar-com", "http")),
    tls=[ingress_tls("foo.bar.com", secret="conformance-tls")],
)
INVALID_CLASS = ingress(
    "test-ingress-class",
    ingress_rule("ingress-class", ingress_path("/", "ingress-class-prefix", 8080)),
    class_name="some-invalid-class-name",
)

#: (host, path, the service that must answer or the status), from the feature files.
PATH_AND_HOST_SCENARIOS = [
    ("exact-path-rules", "/foo", "foo-exact"),
    ("exact-path-rules", "/foo/", "HTTP 404"),
    ("exact-path-rules", "/FOO", "HTTP 404"),
    ("exact-path-rules", "/bar", "HTTP 404"),
    ("prefix-path-rules", "/foo", "foo-prefix"),
    ("prefix-path-rules", "/foo/", "foo-prefix"),
    ("prefix-path-rules", "/FOO", "HTTP 404"),
    ("prefix-path-rules", "/aaa/bbb", "aaa-slash-bbb-prefix"),
    ("prefix-path-rules", "/aaa/bbb/ccc", "aaa-slash-bbb-prefix"),
    ("prefix-path-rules", "/aaa/ccc", "aaa-prefix"),
    ("prefix-path-rules", "/aaaccc", "HTTP 404"),
    ("mixed-path-rules", "/foo", "foo-exact"),
    ("trailing-slash-path-rules", "/aaa/bbb", "aaa-slash-bbb-slash-prefix"),
    ("trailing-slash-path-rules", "/aaa/bbb/", "aaa-slash-bbb-slash-prefix"),
    ("trailing-slash-path-rules", "/foo", "HTTP 404"),
    ("foo.bar.com", "/", "foo-bar-com"),
    ("subdomain.bar.com", "/", "HTTP 404"),
    ("bar.foo.com", "/", "wildcard-foo-com"),
    ("baz.bar.foo.com", "/", "HTTP 404"),
    ("foo.com", "/", "HTTP 404"),
    ("ingress-class", "/", "HTTP 404"),
]

DEFAULT_BACKEND_SCENARIOS = [
    ("GET", "my-host", "/"),
    ("GET", "my-host", "/sub-path"),
    ("POST", "some-host", "/"),
    ("PUT", None, "/resource"),
    ("DELETE", "some-host", "/resource"),
    ("PATCH", "my-host", "/resource"),
]


async def test_conformance(tmp_path: Path, api: FakeAPIServer, backends: Backends) -> None:
    ca = trustme.CA()
    await api.create(ingress_class())
    await api.create(cert_secret("conformance-tls", ca.issue_cert("foo.bar.com")))
    # features/default_backend.feature and features/load_balancing.feature
    await create_service(api, backends, "echo-service", "127.0.90.", pods=10)
    await api.create(
        ingress("default-backend", default_backend=ingress_backend("echo-service", 8080))
    )
    kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
    c = Controller(
        tmp_path,
        use_manifests=False,
        # The conformance client expects the plain HTTP answer of a TLS host: no redirect.
        extra_args=["--kubeconfig", str(kubeconfig), "--tls-secrets",
                    "--ingress-ssl-redirect=false"],
    )  # fmt: skip
    with running(c):
        await c.wait_healthy()

        async def default_served() -> bool:
            return (await send(c, "GET", "my-host", "/"))[0] == 200

        await wait_for(default_served, what=f"the default backend; log:\n{c.log()}")
        for method, host, path in DEFAULT_BACKEND_SCENARIOS:
            status, words = await send(c, method, host, path)
            assert status == 200, (method, host, path)
            assert words["backend"].startswith("echo-service-")
            assert words["method"] == method and words["path"] == path
            assert words["host"] == (host or f"127.0.0.1:{c.http_port}")
        pods = set()
        for _ in range(100):
            status, words = await send(c, "GET", "load-balancing", "/")
            assert status == 200
            pods.add(words["backend"])
        assert len(pods) == 10
        await api.delete("Ingress", "default", "default-backend")

        # features/path_rules.feature, host_rules.feature, ingress_class.feature
        for number, name in enumerate(
            (
                "foo-exact",
                "foo-prefix",
                "aaa-slash-bbb-prefix",
                "aaa-prefix",
                "aaa-slash-bbb-slash-prefix",
                "foo-slash-exact",
                "wildcard-foo-com",
                "foo-bar-com",
                "ingress-class-prefix",
            ),
            start=1,
        ):
            await create_service(api, backends, name, f"127.0.91.{number}")
        for obj in (PATH_RULES, HOST_RULES, INVALID_CLASS):
            await api.create(obj)

        async def rules_served() -> bool:
            return (
                await served_by(c, "prefix-path-rules", "/aaa/ccc") == "aaa-prefix"
                and (await served_by(c, "my-host", "/")) == "HTTP 404"
            )

        await wait_for(rules_served, what=f"the path rules; log:\n{c.log()}")
        results = {
            (host, path): await served_by(c, host, path)
            for host, path, _ in PATH_AND_HOST_SCENARIOS
        }
        assert results == {(h, p): want for h, p, want in PATH_AND_HOST_SCENARIOS}
        # TLS: the certificate from the Secret, chosen by SNI and verified by the client.
        answer = await request(c.https_port, "/", sni="foo.bar.com", tls=trusting(ca))
        assert answer.status == 200
        assert answer.peer_names == ("foo.bar.com",)
        assert answer.body.startswith("backend=foo-bar-com-1 ")
        assert "host=foo.bar.com" in answer.body
        # A rule that cannot be served: an Event on the Ingress says why; the rest serves.
        broken = ingress(
            "broken",
            ingress_rule(
                "broken.example",
                ingress_path("/gone", "no-such-service", 8080),
                ingress_path("/", "foo-exact", 8080),
            ),
        )
        stored = await api.create(broken)

        async def event_on_broken() -> bool:
            return any(
                e["involvedObject"].get("uid") == stored["metadata"]["uid"]
                and e["involvedObject"]["kind"] == "Ingress"
                and "Service default/no-such-service not found" in e["message"]
                for e in api.events.values()
            )

        await wait_for(event_on_broken, what=f"an Event on Ingress broken; log:\n{c.log()}")
        assert await served_by(c, "broken.example", "/gone/x") == "foo-exact"
        # Not ours: no Event either.
        assert not any(
            e["involvedObject"]["name"] == "test-ingress-class" for e in api.events.values()
        )


async def test_ingress_beside_service_routes_and_tls_redirect(
    tmp_path: Path, backends: Backends
) -> None:
    ca = trustme.CA()
    web = await backends.http("web-1", "127.0.92.1")
    shop = await backends.http("shop-1", "127.0.92.2")
    api_pod = await backends.http("api-1", "127.0.92.3")
    default = tmp_path / "default.pem"
    ca.issue_cert("default.example").private_key_and_cert_chain_pem.write_to_path(str(default))
    c = Controller(tmp_path, extra_args=["--tls-secrets", "--ssl-cert", str(default)])
    c.manifests.mkdir(parents=True)
    # "api" redirects its own routes to HTTPS (lb.sslRedirect): not its Ingress routes.
    secure = {f"{P}lb.sslTerm": "true", f"{P}lb.sslRedirect": "true", f"{P}lb.hsts": "60"}
    write_manifest(
        c.manifests / "apps.yaml",
        [
            ingress_class(),
            service("web", 80), *slices("web", [web]),
            service("shop", 80), *slices("shop", [shop]),
            service("api", 80, annotations=secure), *slices("api", [api_pod]),
            cert_secret("shop-tls", ca.issue_cert("shop.example")),
            # /web is also the Service route of "web": the Ingress comes first.
            ingress("routes", ingress_rule(None, ingress_path("/web", "shop"))),
            ingress(
                "shop",
                ingress_rule("shop.example", ingress_path("/", "shop")),
                tls=[ingress_tls("shop.example", secret="shop-tls")],
            ),
            # A bad rule is skipped and reported; the rest of the Ingress is served.
            ingress("half", ingress_rule("half.example", ingress_path("/ok", "api"),
                                         ingress_path("/bad", "missing"))),
        ],
    )  # fmt: skip
    with running(c):
        await c.wait_healthy()

        async def ready() -> bool:
            return (await c.get("/web/x"))[1].startswith("backend=shop-1 path=/web/x ")

        await wait_for(ready, what=f"the Ingress route; log:\n{c.log()}")
        # Service routes still serve what no Ingress rule takes (with their stripping),
        # with their Service's redirect over HTTP, and its HSTS over HTTPS.
        answer = await request(c.http_port, "/api/v1", host="half.example")
        assert answer.status == 308
        assert answer.headers["location"] == f"https://half.example:{c.https_port}/api/v1"
        answer = await request(c.https_port, "/api/v1", sni="default.example", tls=trusting(ca))
        assert answer.status == 200 and answer.body.startswith("backend=api-1 path=/v1 ")
        assert answer.headers["strict-transport-security"] == "max-age=60"
        # The Ingress route to "api" is not redirected: half.example has no certificate.
        answer = await request(c.http_port, "/ok", host="half.example")
        assert answer.status == 200 and answer.body.startswith("backend=api-1 path=/ok ")
        assert "strict-transport-security" not in answer.headers
        assert "spec.rules[0].http.paths[1].backend: Service default/missing" in c.log()
        # A TLS host: plain HTTP goes to HTTPS (308), HTTPS is served with the Secret's cert.
        answer = await request(c.http_port, "/a?b=1", host="shop.example")
        assert answer.status == 308
        assert answer.headers["location"] == f"https://shop.example:{c.https_port}/a?b=1"
        answer = await request(c.https_port, "/a", sni="shop.example", tls=trusting(ca))
        assert answer.status == 200 and answer.body.startswith("backend=shop-1 path=/a ")
        # A host without TLS is not redirected.
        assert (await c.get("/web", host="other.example"))[0] == 200


def master(c: Controller) -> HAProxyProcess:
    return HAProxyProcess(
        haproxy_bin="haproxy", config_path=c.run_dir / "haproxy.cfg", run_dir=c.run_dir
    )


async def test_endpoint_churn_of_an_ingress_backend_without_reload(
    tmp_path: Path, backends: Backends
) -> None:
    pool = [await backends.http(f"app-{i}", f"127.0.93.{i}") for i in range(1, 5)]
    c = Controller(tmp_path, extra_args=["--service-routes=false"])
    c.manifests.mkdir(parents=True)

    def app(endpoints: list[tuple[str, int]]) -> None:
        write_manifest(
            c.manifests / "app.yaml",
            [
                ingress_class(),
                service("app", 80),
                *slices("app", endpoints),
                ingress("app", ingress_rule("app.example", ingress_path("/", "app"))),
            ],
        )

    async def serving(wanted: set[str]) -> bool:
        names = []
        for _ in range(2 * len(wanted)):
            status, body, _ = await c.get("/x", host="app.example")
            if status != 200:
                return False
            names.append(body)
        return set(backend_names(names)) == wanted

    app(pool[:1])
    with running(c):
        await c.wait_healthy()
        await wait_for(lambda: serving({"app-1"}), what=f"app-1; log:\n{c.log()}")
        # --service-routes=false: the Service has no route of its own.
        assert (await c.get("/app"))[0] == 404
        before = await master(c).show_proc()
        for wanted in ([0, 1], [1, 2, 3], [3], [0, 1, 2, 3]):
            app([pool[i] for i in wanted])
            names = {f"app-{i + 1}" for i in wanted}
            await wait_for(lambda n=names: serving(n), what=f"{names}; log:\n{c.log()}")  # type: ignore[misc]
        after = await master(c).show_proc()
        assert after.reloads == before.reloads


async def test_a_cluster_without_ingress_v1_still_serves_its_services(
    tmp_path: Path, backends: Backends
) -> None:
    """networking.k8s.io/v1 came with Kubernetes 1.19: where it is not served, Ingress is
    off (said once in the log) and everything else is served, and /healthz is 200."""
    api = FakeAPIServer(tmp_path, unserved=frozenset({"ingresses", "ingressclasses"}))
    await api.start()
    try:
        web = await backends.http("old-1", "127.0.94.1")
        await api.create(service("old", 80))
        for obj in slices("old", [web]):
            await api.create(obj)
        kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
        c = Controller(tmp_path, use_manifests=False, extra_args=["--kubeconfig", str(kubeconfig)])
        with running(c):
            await c.wait_healthy()

            async def served() -> bool:
                return (await c.get("/old"))[1].startswith("backend=old-1 ")

            await wait_for(served, what=f"/old; log:\n{c.log()}")
            assert "ingresses (networking.k8s.io/v1) is not served" in c.log()
            assert await c.healthz() == 200
    finally:
        await api.stop()
