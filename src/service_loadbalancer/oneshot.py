"""The one-shot commands: `render` (and --dry) prints the config, `check` validates it.

Both read every source once (the manifests directory, or one list of the cluster, and
one list of each remote cluster that answers within a few seconds), then
run the same translation and rendering as the controller, so what they show is what
`run` would serve.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
import tempfile
from pathlib import Path

from service_loadbalancer.haproxy.certs import write_certificates
from service_loadbalancer.haproxy.check import check_config
from service_loadbalancer.haproxy.files import write_files
from service_loadbalancer.haproxy.render import CERTS_DIR, TemplateError, render
from service_loadbalancer.kube.client import KubeOptions
from service_loadbalancer.remote_clusters import load_remote_once
from service_loadbalancer.settings import Settings
from service_loadbalancer.sources import open_source
from service_loadbalancer.store import Store
from service_loadbalancer.translate import translate

log = logging.getLogger("service_loadbalancer")


async def load_store(settings: Settings, kube: KubeOptions) -> Store:
    """Everything the source has, once: the manifests directory, or one list of the
    cluster (no watch)."""
    source = await open_source(settings, kube)
    try:
        await source.load_once()
    finally:
        await source.aclose()
    for cluster in settings.remote_clusters:  # their endpoints, for global Services
        remote = await load_remote_once(cluster, namespaces=settings.namespaces)
        if remote is not None:
            source.store.add_remote(cluster.name, remote)
    return source.store


def render_once(settings: Settings, kube: KubeOptions) -> int:
    """--dry: print the config (and its map files) once; problems go to stderr."""
    translation = translate(asyncio.run(load_store(settings, kube)).snapshot(), settings)
    for problem in translation.problems:
        log.warning("skipped: %s", problem)
    try:
        rendered = render(translation.model, settings)
    except TemplateError as err:
        sys.stderr.write(f"service-loadbalancer: {err}\n")
        return 1
    sys.stdout.write(rendered.config)
    for name, text in rendered.files.items():
        if name != "haproxy.cfg":
            sys.stdout.write(f"\n# ==> {name} <==\n{text}")
    return 0


async def check_once(settings: Settings, kube: KubeOptions) -> int:
    """`check`: translate, render and `haproxy -c` without starting anything.
    Exit 0 when the config is valid and nothing was skipped, 1 otherwise."""
    translation = translate((await load_store(settings, kube)).snapshot(), settings)
    for problem in translation.problems:
        print(f"problem: {problem}")
    with tempfile.TemporaryDirectory(prefix="slb-check-") as tmp:
        # Certificates go to the temporary directory, not the real run directory.
        settings = dataclasses.replace(settings, run_dir=Path(tmp))
        try:
            rendered = render(translation.model, settings)
        except TemplateError as err:
            print(f"invalid template: {err}")
            return 1
        write_certificates(Path(tmp) / CERTS_DIR, rendered.certificates)
        path = write_files(rendered, Path(tmp), "haproxy.cfg")
        result = await check_config(settings.haproxy_bin, path, env=settings.haproxy_env())
    model = translation.model
    print(
        f"{len(model.backends)} backends, {len(model.http_routes)} HTTP routes, "
        f"{len(model.ingress_routes)} Ingress routes, "
        f"{len(model.tcp_frontends)} TCP listeners, {len(translation.problems)} problems; "
        f"haproxy -c: {'valid' if result.ok else 'INVALID'}"
    )
    if not result.ok:
        print(result.output)
    return 0 if result.ok and not translation.problems else 1
