"""DNS rebinding and foreign pages: the bridge answers only Host names it serves, checks
Origin on every API call and the socket, and its CSP lets the page reach only itself."""

from __future__ import annotations

import logging

import aiohttp
import pytest

from tests.web_bridge.conftest import start_scripted
from web_bridge.config import BridgeSettings

EVIL = "evil.example"


async def refused_host(resp: aiohttp.ClientResponse) -> None:
    assert resp.status == 421, (resp.status, await resp.text())
    assert (await resp.json())["error"]["field"] == "Host"


async def test_a_dns_rebinding_request_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    """A page on evil.example whose name now resolves to the bridge: Host and Origin are
    both evil.example, so an Origin-equals-Host check alone lets it in."""
    caplog.set_level(logging.INFO)
    async with start_scripted() as (_, _, _, url):
        port = url.rsplit(":", 1)[1]
        rebound = {"Host": f"{EVIL}:{port}", "Origin": f"http://{EVIL}:{port}"}
        async with aiohttp.ClientSession() as http:
            for path in ("/api/transcripts", "/api/session", "/", "/static/app.js"):
                await refused_host(await http.get(f"{url}{path}", headers=rebound))
            await refused_host(
                await http.post(f"{url}/api/login", json={"api_key": "k"}, headers=rebound)
            )
            await refused_host(await http.get(f"{url}/api/transcripts", headers={"Host": EVIL}))
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await http.ws_connect(f"{url}/ws", headers=rebound)
            assert err.value.status == 421
            for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "LOCALHOST"):
                r = await http.get(f"{url}/api/transcripts", headers={"Host": host})
                assert r.status == 200, host
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_get_api_calls_check_origin_when_a_browser_sends_one() -> None:
    async with start_scripted() as (_, _, _, url):
        async with aiohttp.ClientSession() as http:
            r = await http.get(f"{url}/api/transcripts", headers={"Origin": f"https://{EVIL}"})
            assert r.status == 403
            assert (await r.json())["error"]["field"] == "Origin"
            r = await http.get(f"{url}/api/transcripts", headers={"Origin": "null"})
            assert r.status == 403
            r = await http.get(f"{url}/api/transcripts", headers={"Origin": url})
            assert r.status == 200
            r = await http.get(f"{url}/api/transcripts")  # not a browser page
            assert r.status == 200


async def test_allowed_hosts_and_origins_are_settings() -> None:
    settings = BridgeSettings(
        allowed_hosts=("transcribe.example",), allowed_origins=("https://transcribe.example",)
    )
    async with start_scripted(settings) as (_, _, _, url):
        async with aiohttp.ClientSession() as http:
            page = {"Host": "transcribe.example", "Origin": "https://transcribe.example"}
            assert (await http.get(f"{url}/api/transcripts", headers=page)).status == 200
            await refused_host(await http.get(f"{url}/api/transcripts"))  # 127.0.0.1: not listed
    async with start_scripted(BridgeSettings(host="0.0.0.0", auth="none")) as (_, _, _, url):
        async with aiohttp.ClientSession() as http:
            # on all interfaces any IP literal is served (rebinding needs a DNS name)
            r = await http.get(f"{url}/api/transcripts", headers={"Host": "192.168.1.20:8080"})
            assert r.status == 200
            await refused_host(await http.get(f"{url}/api/transcripts", headers={"Host": EVIL}))


async def test_the_page_may_connect_only_to_its_own_origin() -> None:
    async with start_scripted() as (_, _, _, url):
        async with aiohttp.ClientSession() as http:
            csp = (await http.get(url)).headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    # 'self' covers ws:/wss: to the page's own host and port (CSP3; the browser tests
    # stream over it in Chromium); a bare ws: or wss: would allow any host.
    assert directives["connect-src"] == "'self'"
