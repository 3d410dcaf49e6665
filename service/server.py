"""Build, serve, drain and stop the gRPC server."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from transcribe.v1 import streaming_pb2, streaming_pb2_grpc, transcripts_pb2, transcripts_pb2_grpc

from service import logs
from service.auth import ApiKeyInterceptor, load_keys
from service.config import Settings, build_settings
from service.engine import SpeechEngine, WhisperEngine
from service.memory import limit_malloc_arenas
from service.metrics import Metrics
from service.model_pool import LoadedModel, ModelPool
from service.models import ModelChoiceError, ModelSpec, plan, settings_for
from service.ports import bind_error
from service.recordings import RecordingStore
from service.refine.decoder import RefineDecoders
from service.refine.worker import Refiner
from service.registry import StreamRegistry
from service.servicer import TranscriptionServicer
from service.session import StreamDeps
from service.storage.base import TranscriptStore
from service.storage.factory import open_store
from service.storage.lease import RELEASE_S
from service.threads import named_executor
from service.transcripts_servicer import TranscriptServicer
from service.upload import Uploads
from service.vad import shared_vad
from service.wire import WireFormatInterceptor

logger = logging.getLogger(__name__)


@dataclass
class RunningServer:
    """A started server and what it owns; `stop` drains and releases everything."""

    server: grpc.aio.Server
    port: int
    deps: StreamDeps
    registry: StreamRegistry
    store: TranscriptStore
    health: health.aio.HealthServicer
    refiner: Refiner
    stopped: bool = False

    async def stop(self, grace: float | None = 5.0) -> None:
        """Refuse new calls, give active streams `grace` seconds (then cancel them), wait
        for every stream's last writes and lease release, then close storage. The wait
        after the grace is bounded by the streams' close bound and RELEASE_S, so a hung
        store cannot hold the process past its termination grace."""
        if self.stopped:
            return
        self.stopped = True
        await self.health.enter_graceful_shutdown()
        self.registry.drain()  # streams finalize what they have and end normally
        await self.server.stop(grace)
        # Calls cancelled when the grace ran out are still unwinding: wait for each to hand
        # over its last writes and release its lease, or the store would close under them
        # (and the process exit) with their leases held until they expire.
        bound = self.deps.close_s + RELEASE_S
        try:
            async with asyncio.timeout(bound):
                await self.registry.wait_ended()
                await self.registry.wait_closed()
        except TimeoutError:
            logger.error(
                "%d stream(s) still storing their last results %g s after the grace; stopping",
                self.registry.active + self.registry.closing,
                bound,
            )
        await self.deps.models.stop()
        await self.refiner.stop()  # a job cut short is PENDING/RUNNING: its lease lets it resume
        if self.deps.vad_executor is not None:
            self.deps.vad_executor.shutdown(wait=False)
        await self.store.close()


def auth_interceptors(settings: Settings) -> list[grpc.aio.ServerInterceptor]:
    """API-key authentication as configured; refuses to expose an open server by accident."""
    mode = settings.auth
    has_keys = bool(settings.api_keys_file or settings.api_keys)
    if mode == "auto":
        local = settings.host in ("127.0.0.1", "localhost", "::1")
        if has_keys:
            mode = "api-key"
        elif local:
            mode = "none"
        else:
            raise SystemExit(
                f"refusing to listen on {settings.host} without authentication: pass "
                "--api-keys-file, or --auth none to allow unauthenticated access explicitly"
            )
    if mode == "none":
        return []
    if mode != "api-key" or not has_keys:
        raise SystemExit(
            "--auth api-key needs --api-keys-file (lines of principal:key) or --api-keys"
        )
    path = Path(settings.api_keys_file) if settings.api_keys_file else None
    try:
        keys = load_keys(path, settings.api_keys)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"cannot load API keys: {exc}") from None
    return [ApiKeyInterceptor(keys)]


def _cannot_listen(address: str, why: str) -> SystemExit:
    return SystemExit(
        f"transcribe-server cannot listen on {address}: {why}. Stop the other server there, "
        "or choose another port with --port N (environment: TRANSCRIBE_PORT=N)"
    )


def model_plan(settings: Settings) -> list[ModelSpec]:
    """The models to load, the default first; SystemExit saying what to do if one cannot be."""
    try:
        return plan(settings.model)
    except ModelChoiceError as exc:
        raise SystemExit(f"transcribe-server: {exc}") from None


def model_settings(specs: Sequence[ModelSpec], settings: Settings) -> list[Settings]:
    """Each model's own decode settings (service/models.settings_for), computed once at
    start-up for its engine, scheduler and streams; SystemExit saying what is wrong."""
    try:
        return [settings_for(spec, settings) for spec in specs]
    except ModelChoiceError as exc:
        raise SystemExit(f"transcribe-server: {exc}") from None


async def load_engines(
    specs: list[ModelSpec], own: Sequence[Settings], given: Sequence[SpeechEngine] = ()
) -> list[SpeechEngine]:
    """An engine per spec (loaded with that model's settings `own`, e.g. its threads and
    shortest encoder input): a given engine of the same name, else the model loaded now.
    A given engine no spec names replaces the default (tests pass the shared tiny.en)."""
    by_name = {e.name: e for e in given}
    names = {s.name for s in specs}
    spare = [e for e in given if e.name not in names]
    engines: list[SpeechEngine] = []
    for i, (spec, settings) in enumerate(zip(specs, own, strict=True)):
        engine = by_name.get(spec.name) or (spare.pop(0) if i == 0 and spare else None)
        if engine is None:
            engine = await asyncio.to_thread(WhisperEngine, settings.model, spec)
        engines.append(engine)
    return engines


async def start_server(
    settings: Settings,
    engine: SpeechEngine | None = None,
    *,
    engines: Sequence[SpeechEngine] = (),
    refine_streams: bool = False,
) -> RunningServer:
    """Start serving on settings.host:settings.port (port 0 picks a free port).

    Loads the models `settings` names (service/models.py), except those given as
    `engine`/`engines` (already loaded, e.g. shared by the servers of a test run).
    A busy port is refused (SystemExit naming it) before the model loads, never shared.
    Uploads are always transcribed by the refiner; `refine_streams` also queues every
    stream's transcript when it ends. `serve()` (the command line) passes `--refine`
    (on by default); servers embedded in tests opt in, so that their stored text stays
    the text their streams sent unless refinement is what they test."""
    address = f"{settings.host}:{settings.port}"
    why = await asyncio.to_thread(bind_error, settings.host, settings.port)
    if why:
        raise _cannot_listen(address, why)
    specs = model_plan(settings)
    own = model_settings(specs, settings)
    loaded = await load_engines(specs, own, [*engines, *([engine] if engine else [])])
    store = await open_store(settings.storage)
    recordings = RecordingStore(settings.storage.data_dir / "recordings")
    metrics = Metrics()
    # Short CPU-bound calls: a thread per core and two spare (for the moments one
    # waits for the GIL or hands memory back), all started now.
    vad_executor = named_executor((os.cpu_count() or 1) + 2, "vad", prestart=True)
    registry = StreamRegistry(settings.limits.max_streams, metrics, vad_executor)
    m = settings.model
    models = ModelPool([LoadedModel.load(e, o, metrics) for e, o in zip(loaded, own, strict=True)])
    refine_specs = [getattr(e, "spec", s) for e, s in zip(loaded, specs, strict=True)]
    refiner = Refiner(
        store,
        recordings,
        RefineDecoders(
            refine_specs,
            m.compute_type,
            settings.refine.cpu_threads,
            settings.refine.model,
            {model.name: model.languages for model in models.models},
        ),
        lease_s=settings.refine.lease_s,
        poll_s=settings.refine.poll_s,
        max_seconds=settings.refine.max_s,
    )
    deps = StreamDeps(
        metrics=metrics,
        models=models,
        vad=await asyncio.to_thread(shared_vad),
        vad_executor=vad_executor,
        store=store,
        recordings=recordings,
        limits=settings.limits,
        lease_s=settings.storage.lease_s,
        refiner=refiner if refine_streams else None,
    )
    limit = settings.limits.max_message_bytes
    server = grpc.aio.server(
        # Authentication first, then malformed bytes -> INVALID_ARGUMENT (service/wire.py).
        interceptors=[*auth_interceptors(settings), WireFormatInterceptor()],
        options=[
            # The servicer refuses messages over `limit` with a clear RESOURCE_EXHAUSTED;
            # the transport's own cap (4x) only stops absurd ones before they are read.
            ("grpc.max_receive_message_length", 4 * limit),
            ("grpc.max_send_message_length", 16 * 1024 * 1024),
            # Linux gRPC shares a busy port by default (SO_REUSEPORT): a second server would
            # take half the clients to another store. One server per port.
            ("grpc.so_reuseport", 0),
        ],
    )
    streaming_pb2_grpc.add_TranscriptionServiceServicer_to_server(
        TranscriptionServicer(deps, registry, settings), server
    )
    transcripts_pb2_grpc.add_TranscriptServiceServicer_to_server(
        TranscriptServicer(
            store,
            recordings,
            settings.limits.max_page_size,
            Uploads(
                store,
                recordings,
                refiner,
                models,
                settings.refine.max_upload_bytes,
                settings.refine.upload_idle_timeout_s,
            ),
            live=registry,  # renames reach this server's live streams at once
        ),
        server,
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = (
        streaming_pb2.DESCRIPTOR.services_by_name["TranscriptionService"].full_name,
        transcripts_pb2.DESCRIPTOR.services_by_name["TranscriptService"].full_name,
        health.SERVICE_NAME,
        reflection.SERVICE_NAME,
    )
    reflection.enable_server_reflection(names, server)
    creds = None
    if settings.tls_cert or settings.tls_key:
        if not (settings.tls_cert and settings.tls_key):
            raise SystemExit("TLS needs both --tls-cert and --tls-key")
        key, cert = await asyncio.gather(
            asyncio.to_thread(Path(settings.tls_key).read_bytes),
            asyncio.to_thread(Path(settings.tls_cert).read_bytes),
        )
        creds = grpc.ssl_server_credentials([(key, cert)])
    try:
        port = (
            server.add_secure_port(address, creds) if creds else server.add_insecure_port(address)
        )
    except RuntimeError:  # taken since bind_error looked (gRPC logs its own reason)
        await store.close()
        raise _cannot_listen(address, "the port is in use or not available") from None
    await server.start()
    models.start()
    refiner.start()
    if settings.metrics_port:
        metrics.watch_loop(asyncio.get_running_loop())
        metrics.serve(settings.metrics_port, settings.host)
    for name in ("", *names[:2]):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server, port, deps, registry, store, health_servicer, refiner)


async def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM, then drain gracefully."""
    running = await start_server(settings, refine_streams=settings.refine.enabled)
    print(
        f"transcribe-server listening on {settings.host}:{running.port} "
        f"(models {running.deps.models.names()}, storage {settings.storage.backend} "
        f"in {settings.storage.data_dir})",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logger.info("shutting down; active streams get %.0f s", settings.grace_s)
    await running.stop(settings.grace_s)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point `transcribe-server`."""
    settings = build_settings(argv)
    logs.configure(settings.log_level, settings.log_format)
    # Process-wide, so here and not in start_server (tests run servers inside pytest);
    # before the server's threads exist, which would each take an arena.
    limit_malloc_arenas(settings.malloc_arenas)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
