"""Reading the stats pages of the load-balancer replicas: which ones (a fixed list, or the
ready pods of the load balancer's workload) and one read of each, concurrently.

A replica that cannot be read (refused, slow, 401, not CSV) is not an error of the round:
its read is the reason it failed, and figures.py counts the round as incomplete (a lower
bound of the load, never zero). The stats credentials are the controller's own
(SLB_STATS_USER and SLB_STATS_PASSWORD), sent as HTTP Basic auth, which is what the
stats frontend's `http-request auth` asks for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping

import aiohttp

from service_loadbalancer.autoscale.figures import Sample
from service_loadbalancer.haproxy.stats import StatsFormatError, parse_stats_csv
from service_loadbalancer.kube.objects import RawObject, pod_ready

#: The stats page's CSV export (management.txt: "the CSV output is obtained by appending
#: ;csv to the stats URI").
CSV_SUFFIX = ";csv"
MAX_BYTES = 32 << 20


def csv_url(url: str) -> str:
    base = url.split("?", 1)[0]
    return url if base.endswith(CSV_SUFFIX) else base.rstrip("/") + "/" + CSV_SUFFIX


def pod_urls(pods: Iterable[RawObject], port: int) -> dict[str, str]:
    """Replica name (namespace/pod) -> its stats page, for the ready pods with an IP."""
    urls: dict[str, str] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        ip = (pod.get("status") or {}).get("podIP")
        if ip and pod_ready(pod):
            host = f"[{ip}]" if ":" in ip else ip
            urls[f"{meta.get('namespace')}/{meta.get('name')}"] = f"http://{host}:{port}/"
    return urls


async def read_one(
    session: aiohttp.ClientSession, url: str, auth: aiohttp.BasicAuth | None, seconds: float
) -> Sample | str:
    """One read: the sample, or why there is none."""
    try:
        async with session.get(
            csv_url(url), auth=auth, timeout=aiohttp.ClientTimeout(total=seconds)
        ) as response:
            if response.status != 200:
                return f"HTTP {response.status}"
            # The whole page: `content.read(n)` returns what has arrived so far, and a
            # page cut short would pass for Services without traffic.
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.content.iter_chunked(1 << 16):
                size += len(chunk)
                if size > MAX_BYTES:
                    return f"the stats page is larger than {MAX_BYTES} bytes"
                chunks.append(chunk)
        body = b"".join(chunks)
        return Sample(time.monotonic(), tuple(parse_stats_csv(body.decode(errors="replace"))))
    except (aiohttp.ClientError, TimeoutError, OSError) as err:
        return f"cannot read the stats page: {type(err).__name__} {err}".strip()
    except StatsFormatError as err:
        return str(err)


async def read_all(
    session: aiohttp.ClientSession,
    urls: Mapping[str, str],
    *,
    user: str | None,
    password: str | None,
    seconds: float,
) -> dict[str, Sample | str]:
    """replica -> its sample or the reason it has none, all read at once."""
    auth = aiohttp.BasicAuth(user, password) if user and password else None
    names = sorted(urls)
    results = await asyncio.gather(*(read_one(session, urls[n], auth, seconds) for n in names))
    return dict(zip(names, results, strict=True))
