"""Second passes of streams that share a model, decoded on the CPU the live decodes leave.

While streams share a model, their second passes waited for the scheduler's slack (no
stream waiting for a worker) and, after `LOW_WAIT_S`, took a worker from the streams. On
continuous speech there is no such slack: the forced second passes held the first passes
back, and 8 streams of long/ had a final p90 of 2.26-2.46 s (1.73 s without second
passes, but 1.4 points more WER). Here they also run on a copy of the model whose threads
run at nice 19, as refinement's do (service/refine/decoder.py): the kernel gives them the
cores only while no live decode wants them. service/side_pass.py offers each second pass
to this lane and to the scheduler's slack at once (never forced), whichever starts it
first: 8 streams of long/ at p90 1.58 s with WER 0.5 point from offline, the dev halves as
before (docs/benchmarks.md, "Second passes on the idle lane"). The lane alone, without the
slack, cost the held-out speakers 0.3 point: with pauses between clips the slack is real.

The copy is loaded on first use, on the lane's own thread (so CTranslate2's threads
inherit its priority): tiny.en ~+90-130 MB peak RSS.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING

from service.config_decode import ModelSettings
from service.engine import DecodeRequest, DecodeResult, WhisperEngine
from service.errors import EngineError
from service.threads import lower_priority

if TYPE_CHECKING:
    from service.models import ModelSpec

logger = logging.getLogger(__name__)


class IdleLane:
    """One nice-19 thread that owns a copy of a model and decodes second passes, one at
    a time, in the order they come; one whose stream stopped waiting never runs."""

    def __init__(self, spec: ModelSpec, settings: ModelSettings) -> None:
        self._spec = spec
        # One request at a time, on as many threads as the live model's workers use
        # together (2 on the 2-core default): whatever the streams leave, on any core.
        threads = max(1, settings.workers * settings.cpu_threads)
        self._settings = replace(settings, workers=1, cpu_threads=threads)
        self._executor = ThreadPoolExecutor(
            1, thread_name_prefix="idle", initializer=lower_priority
        )
        self._engine: WhisperEngine | None = None
        self.decodes = 0

    def _decode(self, request: DecodeRequest) -> DecodeResult:
        if self._engine is None:
            self._engine = WhisperEngine(self._settings, self._spec)
        (result,) = self._engine.decode_batch([request])
        self.decodes += 1
        return result

    async def decode(self, request: DecodeRequest) -> DecodeResult:
        """The request's result (EngineError if the model fails on it). Cancelled before it
        starts, it is dropped from the lane's queue."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._decode, request)
        except Exception as exc:
            logger.exception("second pass on the idle lane failed")
            raise EngineError(f"the speech model failed: {exc}") from exc

    def stop(self) -> None:
        """Drop what waits; a decode running finishes on its thread (it cannot be cut)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
