"""`GET /api/models`: the models the service has loaded, for the page's model and
language selectors (ListModels, made as the signed-in principal like every API call)."""

from __future__ import annotations

from aiohttp import web
from transcribe.v1 import streaming_pb2, streaming_pb2_grpc

from web_bridge.session import credentials
from web_bridge.state import CHANNEL


async def list_models(request: web.Request) -> web.StreamResponse:
    """`{"models": [{"name", "language_codes", "detects_language", "is_default",
    "description"}]}`, the default first."""
    stub = streaming_pb2_grpc.TranscriptionServiceStub(request.app[CHANNEL])
    resp = await stub.ListModels(streaming_pb2.ListModelsRequest(), metadata=credentials(request))
    models = [
        {
            "name": m.name,
            "language_codes": list(m.language_codes),
            "detects_language": m.detects_language,
            "is_default": m.is_default,
            "description": m.description,
        }
        for m in resp.models
    ]
    return web.json_response({"models": models})
