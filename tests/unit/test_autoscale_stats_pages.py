"""Reading a stats page: the whole of it, however it arrives. A page cut at the first
network read would pass for most Services having no traffic (and their counters, seen
again later, for a burst)."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from service_loadbalancer.autoscale.figures import Sample
from service_loadbalancer.autoscale.stats_pages import read_one

HEADER = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,lastchg,req_tot\n"


async def test_a_large_page_sent_in_pieces_is_read_whole() -> None:
    rows = [f"http_default_web{i}_80,BACKEND,0,0,1,1,,{i},60,{i}\n" for i in range(3000)]

    async def page(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/csv"})
        await response.prepare(request)
        await response.write(HEADER.encode())
        for at in range(0, len(rows), 500):
            await response.write("".join(rows[at : at + 500]).encode())
            await asyncio.sleep(0.01)  # the next piece arrives later, as on a network
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            sample = await read_one(session, f"http://127.0.0.1:{port}/", None, 10.0)
    finally:
        await runner.cleanup()
    assert isinstance(sample, Sample)
    assert len(sample.proxies) == 3000
