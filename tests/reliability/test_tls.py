"""TLS on the gRPC port with a configured certificate and key."""

from __future__ import annotations

import subprocess
from pathlib import Path

import aiohttp
import grpc
import pytest
from aiohttp import web
from transcribe.v1 import transcripts_pb2, transcripts_pb2_grpc

from clients.python import connect
from service.config import Settings, StorageSettings
from service.engine import WhisperEngine
from service.server import start_server
from web_bridge.app import create_app
from web_bridge.config import BridgeSettings


async def test_tls_port(engine: WhisperEngine, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(  # noqa: ASYNC221 (before the server starts; nothing else runs)
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    running = await start_server(
        Settings(
            host="localhost",
            port=0,
            storage=StorageSettings(data_dir=tmp_path),
            tls_cert=str(cert),
            tls_key=str(key),
        ),
        engine=engine,
    )
    try:
        async with connect(
            f"localhost:{running.port}", tls=True, root_certificates=cert.read_bytes()
        ) as ch:
            stub = transcripts_pb2_grpc.TranscriptServiceStub(ch)
            resp = await stub.ListTranscripts(transcripts_pb2.ListTranscriptsRequest())
            assert list(resp.transcripts) == []
        async with grpc.aio.insecure_channel(f"localhost:{running.port}") as plain:
            stub = transcripts_pb2_grpc.TranscriptServiceStub(plain)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.ListTranscripts(transcripts_pb2.ListTranscriptsRequest(), timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        # The browser bridge talks TLS to the server when given its CA.
        bridge = web.AppRunner(
            create_app(
                BridgeSettings(grpc_target=f"localhost:{running.port}", grpc_ca_file=str(cert))
            )
        )
        await bridge.setup()
        await web.TCPSite(bridge, "127.0.0.1", 0).start()
        try:
            async with aiohttp.ClientSession() as http:
                url = f"http://127.0.0.1:{bridge.addresses[0][1]}/api/transcripts"
                async with http.get(url) as page:
                    assert page.status == 200, await page.text()
        finally:
            await bridge.cleanup()
    finally:
        await running.stop(1)
