"""Prometheus metrics: one Metrics object per server, served on a configurable port.

Labels never carry transcript text or ids (cardinality and privacy).
"""

from __future__ import annotations

import asyncio
import threading

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)


class Metrics:
    """The server's metrics, in their own registry (tests run several servers at once)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.active_streams = Gauge("transcribe_active_streams", "Streams now open", registry=r)
        self.streams = Counter(
            "transcribe_streams", "Streams ended, by final status", ["status"], registry=r
        )
        self.refused = Counter(
            "transcribe_refused_streams",
            "Streams refused or cut, by reason",
            ["reason"],
            registry=r,
        )
        self.audio_seconds = Counter(
            "transcribe_audio_seconds", "Seconds of audio received", registry=r
        )
        self.decode_seconds = Histogram(
            "transcribe_decode_seconds",
            "Wall time of one batched model call",
            buckets=(0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2),
            registry=r,
        )
        self.batch_size = Histogram(
            "transcribe_decode_batch_size",
            "Requests per model call",
            buckets=(1, 2, 4, 8, 16),
            registry=r,
        )
        self.batch_fallbacks = Counter(
            "transcribe_batch_fallbacks",
            "Batched decodes that failed as a whole and were retried one request at a time",
            registry=r,
        )
        self.queue_depth = Gauge(
            "transcribe_decode_queue_depth", "Decode requests waiting for the model", registry=r
        )
        self.final_latency = Histogram(
            "transcribe_final_word_latency_seconds",
            "Time from the end of a final result's last word in the audio to sending it "
            "(meaningful for streams sent at real-time pace)",
            buckets=(0.25, 0.5, 1, 1.5, 2, 3, 5, 10),
            registry=r,
        )
        self.storage_errors = Counter(
            "transcribe_storage_write_errors", "Failed storage writes (each is retried)", registry=r
        )
        self.storage_retries = Counter(
            "transcribe_storage_write_retries",
            "Storage writes retried after a failure",
            registry=r,
        )
        # Leak watch (soak runs): process RSS/fds/CPU, threads, event-loop tasks.
        ProcessCollector(registry=r)
        Gauge("transcribe_threads", "Threads in the server process", registry=r).set_function(
            threading.active_count
        )
        self.tasks = Gauge(
            "transcribe_event_loop_tasks", "Tasks on the server's event loop", registry=r
        )
        self.memory_releases = Counter(
            "transcribe_memory_releases",
            "Times the server handed freed memory back to the OS (when its last stream ended)",
            registry=r,
        )
        self.unstored_finals = Counter(
            "transcribe_finals_sent_before_stored",
            "Final results sent while storage had not confirmed them",
            registry=r,
        )
        self.revisions = Counter(
            "transcribe_revisions",
            "Final segments sent again with the text of a second pass (over their sentence "
            "or their turn)",
            registry=r,
        )
        self.second_passes = Counter(
            "transcribe_second_passes",
            "Second passes decoded, by where: beside (a lone stream's, on the model's other "
            "worker), idle (the model's low-priority copy) or slack (a worker no stream "
            "waited for) while streams shared it, forced (a stream's end waited for it), "
            "shared (while shared, with --revise-shared-idle false)",
            ["lane"],
            registry=r,
        )
        self.turn_passes = Counter(
            "transcribe_turn_passes",
            "Turn passes decoded (--revise-turns: a whole turn decoded once more when it "
            "ends), by outcome: revised (segments sent again) or unchanged",
            ["outcome"],
            registry=r,
        )

    def watch_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Report the task count of `loop` (read at scrape time from the HTTP thread)."""
        self.tasks.set_function(lambda: len(asyncio.all_tasks(loop)))

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Expose /metrics on host:port (a background thread of prometheus-client)."""
        start_http_server(port, addr=host, registry=self.registry)
