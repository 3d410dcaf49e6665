"""One stream's transcription loop: decoded audio in, speech events and results out.

For each chunk of samples: the VAD (and, with diarization, the speaker embedder) in
their threads, the policy fed in blocks, each decode job it asks for sent to the
model's scheduler, and every final written to storage before it is yielded. At the end
of the audio: the last decodes, then the labels the speaker re-clustering corrected.
Between steps it sends the speaker names when a rename changed them (stream_names).
A lone stream on a model with a worker to spare runs its second passes beside its first
passes (a task of their own) instead of waiting for them (service/side_pass).
Knows nothing of protobuf, of the transcript's lease or of how the stream ends (the
session and service.stream_end own those).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import replace

import numpy as np

from service.audio import SAMPLE_RATE, AudioInput, Samples
from service.domain import Decoding, Segment
from service.engine import DecodeRequest, DecodeResult
from service.model_pool import Choice
from service.policy import FRAME, DecodeJob, JobKind, Policy, ResultUpdate
from service.registry import DecodeStats, StreamSlot
from service.side_pass import SidePass
from service.speakers.live import LiveSpeakers
from service.speakers.live_names import LiveNames
from service.storage.lease import LeaseKeeper, LeaseLostError, lost_message
from service.storage.writer import SegmentWriter
from service.stream_input import AudioLimits, InputPump
from service.stream_language import StreamLanguage, store_language
from service.stream_names import StreamNames
from service.stream_types import Output, SpeakerNames, StoredResult, StreamConfig, StreamDeps
from service.vad import FrameVad

BLOCK = 8 * FRAME  # 0.256 s: the policy sees audio at least this finely, whatever the chunking


FASTER_PACE = 1.5
FASTER_SLACK_S = 3.0
"""A source whose audio has arrived faster than this times real time (plus the slack, for
a resumed page's burst of buffered audio), or that has sent all of it, is not live (e.g. a
file piped in): its second passes run inline, not beside (`--revise-beside`). Its latency
is moot, and inline made better text: base on long/ streamed at 4x real time, 4.1 / 4.2 %
WER inline, 4.5 / 4.7 % beside, 4.2 % with this rule (offline 3.2 %; docs/benchmarks.md,
2 Dec 2026)."""


class StreamLoop:
    """The transcription of one stream's audio (module docstring); built by the session
    once its transcript is open, holding references to the session's per-stream parts."""

    def __init__(
        self,
        deps: StreamDeps,
        config: StreamConfig,
        slot: StreamSlot,
        owner: str,
        transcript_id: str,
        choice: Choice,
        language: StreamLanguage,
        pump: InputPump,
        decodes: DecodeStats,
        started: float,
        speakers: LiveSpeakers | None = None,
        names: LiveNames | None = None,
        renames: StreamNames | None = None,
    ) -> None:
        self.deps = deps
        self.config = config
        self.slot = slot
        self.owner = owner
        self.transcript_id = transcript_id
        self._choice = choice
        self._language = language
        self._pump = pump
        self.decodes = decodes
        self._started = started
        self._speakers = speakers
        self._names = names
        self._renames = renames
        self._second_passed: set[int] = set()
        """Indexes whose stored text is the second pass's (a relabel keeps the mark)."""
        self._side = SidePass(choice.model.scheduler, choice.model.idle, deps.metrics)

    async def run(
        self,
        audio: AudioInput,
        policy: Policy,
        writer: SegmentWriter,
        keeper: LeaseKeeper,
        limits: AudioLimits,
    ) -> AsyncGenerator[Output, None]:
        beside = self._choice.model.second_pass_beside
        try:
            async with aclosing(self._run(audio, policy, writer, keeper, limits, beside)) as outs:
                async for out in outs:
                    yield out
        finally:
            await self._side.cancel()

    async def _run(
        self,
        audio: AudioInput,
        policy: Policy,
        writer: SegmentWriter,
        keeper: LeaseKeeper,
        limits: AudioLimits,
        beside: bool,
    ) -> AsyncGenerator[Output, None]:
        loop = asyncio.get_running_loop()
        vad = FrameVad(self.deps.vad)
        min_step = int(policy.cfg.min_step_s * SAMPLE_RATE)
        probs_pending: list[float] = []
        frames_seen = 0
        started = loop.time()
        async for samples in audio:
            if keeper.lost.is_set():  # another stream took the transcript over
                raise LeaseLostError(lost_message(self.transcript_id, keeper.lease.epoch))
            if self._pump.error is not None:
                raise self._pump.error  # over a limit: no more decoding
            if renamed := self._renamed():
                yield renamed
            limits.check(policy.received_s + len(samples) / SAMPLE_RATE)
            self.deps.metrics.audio_seconds.inc(len(samples) / SAMPLE_RATE)
            vad_done = loop.run_in_executor(self.deps.vad_executor, vad.feed, samples)
            if self._speakers is not None:  # both in threads, awaited before any decode
                at = policy.origin_s + policy.received_s
                _, probs = await asyncio.gather(self._speakers.push(samples, at), vad_done)
                if self._names is not None and (
                    names := await self._names.check(self._speakers.speakers())
                ):
                    yield self._named(names)
            else:
                probs = await vad_done
            probs_pending.extend(float(p) for p in probs)
            for start in range(0, len(samples), BLOCK):
                block: Samples = samples[start : start + BLOCK]
                total_frames = int((policy.received_s * SAMPLE_RATE + len(block)) // FRAME)
                take = total_frames - frames_seen
                frame_probs, probs_pending = probs_pending[:take], probs_pending[take:]
                frames_seen += len(frame_probs)
                for event in policy.push(block, frame_probs):
                    if self.config.voice_events:
                        yield event
                async for out in self._landed(policy, writer):
                    yield out
                backlog = audio.queued_samples + len(samples) - start - len(block)
                caught_up = backlog < min_step
                arrived_s = policy.received_s + backlog / SAMPLE_RATE
                live_beside = (
                    beside
                    and not audio.ended
                    and arrived_s <= FASTER_PACE * (loop.time() - started) + FASTER_SLACK_S
                )
                job = policy.next_job(caught_up, self.slot.shared, live_beside)
                if job is not None and job.kind is JobKind.REVISE and live_beside:
                    self._launch(policy, job)  # the first pass goes on beside it
                    job = policy.next_job(caught_up, self.slot.shared, live_beside)
                if job is not None:
                    async for out in self._decode(policy, job, writer):
                        yield out
        # The last final decode, then the second pass of every sentence not yet revised;
        # while the server drains, the grace time is for finals: no new second passes.
        policy.finish()
        while True:
            drained = self._pump.drained
            side = beside and not drained
            job = policy.next_job(shared=self.slot.shared or drained, beside=side)
            if job is not None and job.kind is JobKind.REVISE and side:
                self._launch(policy, job)
            elif job is not None:
                async for out in self._decode(policy, job, writer):
                    yield out
            elif not self._side.running:
                break
            async for out in self._landed(policy, writer, wait=job is None):
                yield out
        if self._speakers is not None:  # labels the re-clustering corrected, as revisions
            for update in await self._speakers.finish():
                decoding = self._decoding(update.segment_index)
                stored = await writer.write(segment_of(update, decoding))
                yield StoredResult(update, stored, self._language.language)
            if self._names is not None and (
                names := await self._names.finish(self._speakers.speakers())
            ):
                yield self._named(names)
        if renamed := self._renamed():
            yield renamed

    def _decoding(self, index: int) -> Decoding:
        return Decoding.SECOND_PASS if index in self._second_passed else Decoding.FIRST_PASS

    def _renamed(self) -> SpeakerNames | None:
        """The transcript's names if a rename changed them since the client was last sent
        names (service.stream_names); LiveNames then knows them too."""
        names = self._renames.take() if self._renames is not None else None
        if names is None:
            return None
        if self._names is not None:
            self._names.renamed(names)
        return SpeakerNames(names)

    def _named(self, names: dict[str, str]) -> SpeakerNames:
        """Names LiveNames gave from remembered voices, about to be sent."""
        if self._renames is not None:
            self._renames.sent(names)
        return SpeakerNames(names)

    def _launch(self, policy: Policy, job: DecodeJob) -> None:
        """Start a second pass beside the first passes; `_landed` takes its result."""
        policy.job_started(job)
        self._side.start(job, self._request(job), shared=self.slot.shared)

    def _request(self, job: DecodeJob) -> DecodeRequest:
        """The model request of `job`, in the stream's language once it is forced."""
        return replace(job.request(), language=self._language.forced)

    async def _landed(
        self, policy: Policy, writer: SegmentWriter, wait: bool = False
    ) -> AsyncIterator[Output]:
        """The results of the second pass running beside, once it is done (`wait`: wait
        for it)."""
        landed = await self._side.take(wait)
        if landed is not None:
            async for out in self._results(policy, *landed, writer):
                yield out

    async def _decode(
        self, policy: Policy, job: DecodeJob, writer: SegmentWriter
    ) -> AsyncIterator[Output]:
        if renamed := self._renamed():  # before a decode that may take a while under load
            yield renamed
        policy.job_started(job)
        started = time.monotonic()
        result = await self._choice.model.scheduler.decode(self._request(job))
        async for out in self._results(policy, job, result, started, writer):
            yield out

    async def _results(
        self,
        policy: Policy,
        job: DecodeJob,
        result: DecodeResult,
        started: float,
        writer: SegmentWriter,
    ) -> AsyncIterator[Output]:
        """A decode's result through the policy, each final stored before it is yielded."""
        heard_s = len(job.audio) / SAMPLE_RATE
        self.decodes.add(job.end_s, heard_s, time.monotonic() - started, job.kind.value)
        speech_s = sum(w.end - w.start for w in result.words)  # silence is no evidence
        self._language.heard(result.language, result.language_probability, speech_s)
        updates = policy.on_result(job, result)
        if job.target is not None and job.target.turn:
            self.deps.metrics.turn_passes.labels("revised" if updates else "unchanged").inc()
        for update in updates:
            if self._speakers is not None:
                update = self._speakers.label(update)
            language, fixed = self._language.on_result(update.is_final)
            if fixed:
                await store_language(self.deps.store, self.owner, self.transcript_id, language)
            if update.is_final:
                if job.kind is JobKind.REVISE:
                    self._second_passed.add(update.segment_index)
                decoding = self._decoding(update.segment_index)
                stored = await writer.write(segment_of(update, decoding))
                m = self.deps.metrics
                if update.revision:
                    m.revisions.inc()
                else:  # a revision's words were timed at their first final
                    lag = time.monotonic() - self._started - (update.end_s - policy.origin_s)
                    m.final_latency.observe(max(0.0, lag))
                if not stored:
                    m.unstored_finals.inc()
                yield StoredResult(update, stored, language)
            elif self.config.interim_results:
                yield StoredResult(update, language=language)


def segment_of(update: ResultUpdate, decoding: Decoding = Decoding.FIRST_PASS) -> Segment:
    """A final result as the segment to store, with the decode its text is from."""
    return Segment(
        index=update.segment_index,
        start=update.start_s,
        end=update.end_s,
        text=update.text,
        words=update.words,
        confidence=float(np.mean([w.probability for w in update.words])),
        speaker_label=update.speaker_label,
        decoding=decoding,
    )
