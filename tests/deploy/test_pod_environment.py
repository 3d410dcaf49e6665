"""The server starts with the environment the dev overlay gives its pod, and answers the
probes Kubernetes will send: gRPC health on the serving port, metrics on the metrics port.

Only what cannot exist here is replaced: the pod's addresses (loopback instead of
0.0.0.0, free ports), DynamoDB Local's Service name (a local one), the Secret's mount
(the generated key written to a file) and the data volume (a temporary directory).
"""

from __future__ import annotations

import asyncio
import base64
import socket
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from transcribe.v1 import transcripts_pb2, transcripts_pb2_grpc

from service.config import build_settings
from service.engine import WhisperEngine
from service.server import start_server
from tests.deploy.manifests import SERVER, container, container_env, find, port_number, render
from tests.dynamodb_local import DynamoDBLocal


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_dev_pod_environment_starts_and_answers_the_probes(
    engine: WhisperEngine, dynamodb_local: DynamoDBLocal, tmp_path: Path
) -> None:
    objs = render("overlays/dev")
    c = container(objs, SERVER)
    env = container_env(objs, c)
    secret = find(objs, "Secret", "transcribe-api-keys")["data"]["keys"]
    keys = tmp_path / "keys"
    keys.write_bytes(base64.b64decode(secret))
    metrics_port = _free_port()
    assert port_number(c, "metrics") == int(env["TRANSCRIBE_METRICS_PORT"])
    env.update(
        TRANSCRIBE_HOST="127.0.0.1",
        TRANSCRIBE_PORT="0",
        TRANSCRIBE_METRICS_PORT=str(metrics_port),
        TRANSCRIBE_DYNAMODB_ENDPOINT=dynamodb_local.endpoint,
        TRANSCRIBE_DYNAMODB_TABLE_PREFIX="pod" + str(metrics_port),
        TRANSCRIBE_API_KEYS_FILE=str(keys),
        TRANSCRIBE_DATA_DIR=str(tmp_path / "data"),
    )
    settings = build_settings([], environ=env)
    running = await start_server(settings, engine=engine)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            # What the kubelet's grpc probe sends: Check with service "", no credentials.
            health = health_pb2_grpc.HealthStub(channel)
            answer = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            transcripts = transcripts_pb2_grpc.TranscriptServiceStub(channel)
            try:
                await transcripts.ListTranscripts(transcripts_pb2.ListTranscriptsRequest())
                raise AssertionError("a call without a key was accepted")
            except grpc.aio.AioRpcError as err:
                assert err.code() == grpc.StatusCode.UNAUTHENTICATED
            key = base64.b64decode(secret).decode().strip().split(":", 1)[1]
            listed = await transcripts.ListTranscripts(
                transcripts_pb2.ListTranscriptsRequest(),
                metadata=(("authorization", f"Bearer {key}"),),
            )
            assert list(listed.transcripts) == []  # DynamoDB tables created and readable
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        page = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read())
        assert b"\ntranscribe_active_streams 0.0\n" in page  # what the HPA scales on
    finally:
        await running.stop(1)
