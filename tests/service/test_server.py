"""Server plumbing: health, reflection, the command line and configuration."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from service.config import build_settings
from service.engine import WhisperEngine
from service.server import RunningServer


async def test_health_reports_serving(channel: grpc.aio.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for name in ("", "transcribe.v1.TranscriptionService", "transcribe.v1.TranscriptService"):
        resp = await stub.Check(health_pb2.HealthCheckRequest(service=name))
        assert resp.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_services(channel: grpc.aio.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def one() -> object:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    names: set[str] = set()
    async for resp in stub.ServerReflectionInfo(one()):
        names |= {s.name for s in resp.list_services_response.service}
    assert {"transcribe.v1.TranscriptionService", "transcribe.v1.TranscriptService"} <= names


def test_help_documents_every_flag() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "from service.server import main; main()", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for flag in (
        "--port",
        "--model",
        "--data-dir",
        "--storage",
        "--max-streams",
        "TRANSCRIBE_PORT",
    ):
        assert flag in out


def test_flags_override_environment_which_overrides_defaults(tmp_path: Path) -> None:
    env = {
        "TRANSCRIBE_PORT": "6000",
        "TRANSCRIBE_DATA_DIR": str(tmp_path),
        "TRANSCRIBE_BEAM_SIZE": "2",
    }
    s = build_settings(["--port", "7000"], env)
    assert s.port == 7000
    assert s.storage.data_dir == tmp_path
    assert s.model.beam_size == 2
    assert build_settings([], {}).port == 50051
    with pytest.raises(SystemExit):
        build_settings(["--port", "not-a-number"], {})


def test_any_model_directory_is_selectable(tmp_path: Path, engine: WhisperEngine) -> None:
    """A copy of the bundled model loaded from another directory transcribes the same."""
    import shutil

    from service.config import ModelSettings, bundled_model_path
    from service.engine import DecodeRequest
    from tests.helpers import decode_16k, dev_clips

    other = tmp_path / "my-model"
    shutil.copytree(bundled_model_path(), other)
    settings = build_settings(["--model", str(other), "--model-name", "custom"], {})
    custom = WhisperEngine(settings.model)
    assert custom.name == "custom"
    audio = decode_16k(dev_clips()[3].path)
    a = custom.decode_batch([DecodeRequest(audio)])[0].text
    b = engine.decode_batch([DecodeRequest(audio)])[0].text
    assert a == b and a
    with pytest.raises(Exception, match="model"):
        WhisperEngine(ModelSettings(path=str(tmp_path / "missing")))


async def test_server_reports_its_model(server: RunningServer) -> None:
    assert server.deps.models.default.name == "tiny.en"
