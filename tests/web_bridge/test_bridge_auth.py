"""The bridge's own auth rules: no network-facing bridge in front of a keyless server
unless explicitly asked; HTTPS/WSS with its own certificate or behind a trusted proxy,
and then a Secure cookie; the cookie holds a sealed session, not the API key."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
import sys
from pathlib import Path

import aiohttp
import grpc
import pytest
from transcribe.v1 import streaming_pb2, transcripts_pb2_grpc

from tests.web_bridge.conftest import NoTranscripts, Response, start_scripted
from tests.web_bridge.test_bridge_protocol import collect
from web_bridge.config import BridgeSettings

KEY = "alice-key-0123"
ROOT = Path(__file__).resolve().parents[2]


async def test_a_network_bridge_refuses_a_keyless_server_unless_told() -> None:
    with pytest.raises(SystemExit, match="--auth none"):
        async with start_scripted(BridgeSettings(host="0.0.0.0")):
            pass  # not reached
    with pytest.raises(SystemExit, match="answers without an API key"):
        async with start_scripted(BridgeSettings(auth="api-key")):  # same rule on request
            pass
    async with start_scripted(BridgeSettings(host="0.0.0.0", auth="none")) as (_, _, _, url):
        async with aiohttp.ClientSession() as http:
            assert (await http.get(f"{url}/api/transcripts")).status == 200
    async with start_scripted(BridgeSettings(host="0.0.0.0"), api_key=KEY) as (
        _,
        transcripts,
        _,
        url,
    ):
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            r = await http.get(f"{url}/api/transcripts")
            assert r.status == 401  # refused by the bridge itself: nothing relayed unsigned
            assert (await http.get(f"{url}/api/session")).status == 200
            async with http.ws_connect(f"{url}/ws") as ws:
                assert (await collect(ws))[0]["code"] == "UNAUTHENTICATED"
            assert (await http.post(f"{url}/api/login", json={"api_key": KEY})).status == 200
            assert (await http.get(f"{url}/api/transcripts")).status == 200
            transcripts.api_key = ""  # the server restarted without keys
            r = await http.post(f"{url}/api/login", json={"api_key": "anything"})
            assert r.status == 503, "no sign-in while the service checks no keys"


def keyless_grpc_port() -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    transcripts_pb2_grpc.add_TranscriptServiceServicer_to_server(
        NoTranscripts(),  # type: ignore[abstract]  # the stubs mark every method abstract
        server,
    )
    return server, server.add_insecure_port("127.0.0.1:0")


async def test_transcribe_bridge_exits_with_a_message_not_a_traceback() -> None:
    server, port = keyless_grpc_port()
    await server.start()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from web_bridge.main import main; main()",
            "--host", "0.0.0.0", "--port", "0", "--grpc-target", f"127.0.0.1:{port}",
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            async with asyncio.timeout(60):
                _, err = await proc.communicate()
        finally:
            if proc.returncode is None:  # it started after all: stop it
                proc.kill()
                await proc.wait()
    finally:
        await server.stop(0)
    assert proc.returncode == 1
    assert "--auth none" in err.decode() and "Traceback" not in err.decode()


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_https_and_wss_with_a_secure_cookie(tmp_path: Path) -> None:
    from web_bridge.guard import server_ssl_context

    cert, key = self_signed(tmp_path)
    settings = BridgeSettings(tls_cert=str(cert), tls_key=str(key))
    tls = server_ssl_context(settings)
    client_tls = ssl.create_default_context(cafile=str(cert))
    async with start_scripted(settings, api_key=KEY, ssl_context=tls) as (service, _, _, url):
        assert url.startswith("https://")
        connector = aiohttp.TCPConnector(ssl=client_tls)
        async with aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as http:
            r = await http.post(f"{url}/api/login", json={"api_key": KEY})
            assert r.status == 200
            cookie = r.headers["Set-Cookie"]
            assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
            assert (await http.get(f"{url}/api/transcripts")).status == 200  # cookie sent
            service.responses.put_nowait(
                Response(session=streaming_pb2.SessionInfo(transcript_id="t1"))
            )
            service.responses.put_nowait(None)
            wss = url.replace("https://", "wss://")
            async with http.ws_connect(f"{wss}/ws", headers={"Origin": url}) as ws:
                await ws.send_json({"type": "start", "config": {"encoding": "webm"}})
                assert [m["type"] for m in await collect(ws)] == ["session", "end"]
        with pytest.raises(aiohttp.ClientError):  # plain HTTP is not served on that port
            async with aiohttp.ClientSession() as http:
                await http.get(url.replace("https://", "http://"))
    with pytest.raises(SystemExit, match="--tls-cert"):
        server_ssl_context(BridgeSettings(tls_cert=str(key), tls_key=str(key)))


async def test_forwarded_proto_counts_only_from_a_trusted_proxy() -> None:
    forwarded = {"X-Forwarded-Proto": "https"}
    async with start_scripted(api_key=KEY) as (_, _, _, url):  # no proxy configured
        async with aiohttp.ClientSession() as http:
            r = await http.post(f"{url}/api/login", json={"api_key": KEY}, headers=forwarded)
            assert r.status == 200 and "Secure" not in r.headers["Set-Cookie"]
    proxied = BridgeSettings(trusted_proxies=("127.0.0.0/8",))
    async with start_scripted(proxied, api_key=KEY) as (_, _, _, url):
        async with aiohttp.ClientSession() as http:
            host = url.removeprefix("http://")
            page = {**forwarded, "Origin": f"https://{host}"}  # the page is https to the user
            r = await http.post(f"{url}/api/login", json={"api_key": KEY}, headers=page)
            assert r.status == 200 and "Secure" in r.headers["Set-Cookie"]
            r = await http.post(f"{url}/api/login", json={"api_key": KEY})
            assert r.status == 200 and "Secure" not in r.headers["Set-Cookie"]
            spoofed = {"X-Forwarded-Proto": "https, http"}  # the proxy's own value is last
            r = await http.post(f"{url}/api/login", json={"api_key": KEY}, headers=spoofed)
            assert "Secure" not in r.headers["Set-Cookie"]


async def test_the_cookie_is_a_sealed_session_not_the_key() -> None:
    secret = "s" * 40
    shared = BridgeSettings(session_secret=secret)
    async with contextlib.AsyncExitStack() as stack:
        urls = []
        for settings in (shared, shared, BridgeSettings(session_secret="t" * 40)):
            urls.append((await stack.enter_async_context(start_scripted(settings, KEY)))[3])
        a, b, other = urls
        async with aiohttp.ClientSession() as http:
            r = await http.post(f"{a}/api/login", json={"api_key": KEY})
            token = r.cookies["transcribe_session"].value
            assert KEY not in r.headers["Set-Cookie"] and token
            cookie = {"Cookie": f"transcribe_session={token}"}
            http.cookie_jar.clear()
            for url, status in ((a, 200), (b, 200), (other, 401)):  # same secret: stateless
                r = await http.get(f"{url}/api/transcripts", headers=cookie)
                assert r.status == status, url
            forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
            r = await http.get(
                f"{a}/api/transcripts", headers={"Cookie": f"transcribe_session={forged}"}
            )
            assert r.status == 401
            r = await http.get(
                f"{a}/api/transcripts", headers={"Cookie": f"transcribe_session={KEY}"}
            )
            assert r.status == 401, "a raw key in the cookie is not a session"


def test_sealed_sessions_expire_and_resist_tampering() -> None:
    from web_bridge.sealed import SessionSealer

    now = [1000.0]
    sealer = SessionSealer(b"k" * 32, lifetime_s=60, clock=lambda: now[0])
    token = sealer.seal(KEY)
    assert sealer.open(token) == KEY
    assert KEY not in token and sealer.seal(KEY) != token  # a fresh nonce each time
    assert SessionSealer(b"j" * 32, 60, clock=lambda: now[0]).open(token) is None
    for i in range(len(token)):
        alt = "g" if token[i] in "ABCD" else "A"  # differs in the bits the last char carries
        flipped = token[:i] + alt + token[i + 1 :]
        assert sealer.open(flipped) is None, i
    for junk in ("", "!!!", "é", "A" * 200, token + "A"):
        assert sealer.open(junk) is None
    now[0] += 61
    assert sealer.open(token) is None, "expired"
